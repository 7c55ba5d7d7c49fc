from sb3_ppg.ppg.policies import CnnPolicy, ImpalaCnnPolicy, MlpPolicy, MultiInputPolicy
from sb3_ppg.ppg.ppg import PPG

__all__ = ["PPG", "CnnPolicy", "ImpalaCnnPolicy", "MlpPolicy", "MultiInputPolicy"]
