from sb3_ppg.ppg.policies import CnnPolicy, ImpalaCnnPolicy, MinAtarCnnPolicy, MlpPolicy, MultiInputPolicy
from sb3_ppg.ppg.ppg import PPG

__all__ = ["PPG", "CnnPolicy", "ImpalaCnnPolicy", "MinAtarCnnPolicy", "MlpPolicy", "MultiInputPolicy"]
