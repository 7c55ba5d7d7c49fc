import os

from sb3_ppg.common.env_aliases import register_aliases
from sb3_ppg.ppg import PPG
from sb3_ppg.ppg_mask import MaskablePPG
from sb3_ppg.ppg_recurrent import RecurrentPPG

with open(os.path.join(os.path.dirname(__file__), "version.txt")) as file_handler:
    __version__ = file_handler.read().strip()

register_aliases()

__all__ = ["PPG", "MaskablePPG", "RecurrentPPG", "__version__"]
