"""``python -m sb3_ppg.zoo train --algo ppg_mask``: MaskablePPG in the RL Zoo, with its packaged config."""

import argparse
import glob
import os

import numpy as np
import pytest
import yaml

pytest.importorskip("rl_zoo3", reason="the zoo integration needs the zoo extra: pip install -e '.[zoo]'")

import rl_zoo3.exp_manager
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from stable_baselines3.common.callbacks import EvalCallback

from sb3_ppg import MaskablePPG
from sb3_ppg.zoo import PPG_CONFIG_PATH, PPG_MASK_CONFIG_PATH, PPGExperimentManager, register, with_default_config
from sb3_ppg.zoo.exp_manager import HyperparameterError, check_ppg_hyperparams
from tests.conftest import run_zoo


def test_the_packaged_ppg_mask_config_is_the_default_for_ppg_mask_only():
    assert with_default_config(["--algo", "ppg_mask"]) == ["--conf-file", PPG_MASK_CONFIG_PATH, "--algo", "ppg_mask"]
    assert with_default_config(["--algo", "ppg"]) == ["--conf-file", PPG_CONFIG_PATH, "--algo", "ppg"]
    assert with_default_config(["--algo", "ppg_mask", "-conf", "mine.yml"]) == ["--algo", "ppg_mask", "-conf", "mine.yml"]


def test_ppg_mask_entries_are_checked_against_maskable_ppgs_arguments():
    with open(PPG_MASK_CONFIG_PATH) as file:
        entries = yaml.safe_load(file)
    assert set(entries) == {"InvalidActionEnvDiscrete-v0"}
    for entry in entries.values():
        check_ppg_hyperparams(entry, PPG_MASK_CONFIG_PATH, algo_class=MaskablePPG)
    with pytest.raises(HyperparameterError, match=r"(?s)invalid MaskablePPG hyperparameters.*'n_aux_epoch'.*'n_aux_epochs'"):
        check_ppg_hyperparams({"n_aux_epoch": 1, "policy": "MlpPolicy", "n_timesteps": 1}, "mine.yml", algo_class=MaskablePPG)


def test_train_ppg_mask_on_a_registered_masked_env(tmp_path):
    result = run_zoo(
        "train", "--algo", "ppg_mask", "--env", "InvalidActionEnvDiscrete-v0", "-n", "1024", "--seed", "0",
        "--eval-freq", "512", "--eval-episodes", "2", "-f", "logs",
        "--hyperparams", "n_envs:2", "n_steps:64", "n_policy_iterations:2", "aux_batch_size:128",
        cwd=tmp_path,
    )  # fmt: skip
    assert f"Loading hyperparameters from: {PPG_MASK_CONFIG_PATH}" in result.stdout
    (run_folder,) = glob.glob(str(tmp_path / "logs" / "ppg_mask" / "InvalidActionEnvDiscrete-v0_*"))
    model = MaskablePPG.load(os.path.join(run_folder, "InvalidActionEnvDiscrete-v0.zip"))
    assert model.n_policy_iterations == 2 and model.gamma == 0.5
    evaluations = np.load(os.path.join(run_folder, "evaluations.npz"))
    assert list(evaluations["timesteps"]) == [512, 1024]


@pytest.mark.parametrize(("algo", "masked"), [("ppg_mask", True), ("ppg", False)])
def test_the_zoos_periodic_evaluation_uses_masks_for_ppg_mask(tmp_path, algo, masked):
    register()
    config = PPG_MASK_CONFIG_PATH
    manager = PPGExperimentManager(
        argparse.Namespace(env="InvalidActionEnvDiscrete-v0"), algo, "InvalidActionEnvDiscrete-v0", str(tmp_path),
        eval_freq=100, seed=0, verbose=0, device="cpu", config=config,
    )  # fmt: skip
    manager.create_callbacks()
    (eval_callback,) = [callback for callback in manager.callbacks if isinstance(callback, EvalCallback)]
    assert isinstance(eval_callback, MaskableEvalCallback) == masked
    # The zoo's own name is back for the other algos
    assert rl_zoo3.exp_manager.EvalCallback is EvalCallback
