from sb3_ppg.ppg.policies import CnnPolicy, MlpPolicy, MultiInputPolicy
from sb3_ppg.ppg.ppg import PPG

__all__ = ["PPG", "CnnPolicy", "MlpPolicy", "MultiInputPolicy"]
