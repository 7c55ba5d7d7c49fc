from sb3_ppg.ppg_recurrent.policies import CnnLstmPolicy, MlpLstmPolicy, MultiInputLstmPolicy
from sb3_ppg.ppg_recurrent.ppg_recurrent import RecurrentPPG

__all__ = ["CnnLstmPolicy", "MlpLstmPolicy", "MultiInputLstmPolicy", "RecurrentPPG"]
