from sb3_ppg.ppg_mask.policies import CnnPolicy, ImpalaCnnPolicy, MlpPolicy, MultiInputPolicy
from sb3_ppg.ppg_mask.ppg_mask import MaskablePPG

__all__ = ["CnnPolicy", "ImpalaCnnPolicy", "MaskablePPG", "MlpPolicy", "MultiInputPolicy"]
