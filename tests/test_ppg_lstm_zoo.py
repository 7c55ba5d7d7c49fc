"""``python -m sb3_ppg.zoo train --algo ppg_lstm``: RecurrentPPG in the RL Zoo, with its packaged config."""

import glob
import os

import numpy as np
import pytest
import yaml

pytest.importorskip("rl_zoo3", reason="the zoo integration needs the zoo extra: pip install -e '.[zoo]'")

from sb3_ppg import RecurrentPPG
from sb3_ppg.zoo import PPG_LSTM_CONFIG_PATH, with_default_config
from sb3_ppg.zoo.exp_manager import HyperparameterError, check_ppg_hyperparams
from tests.conftest import run_zoo


def test_the_packaged_ppg_lstm_config_is_the_default_for_ppg_lstm():
    assert with_default_config(["--algo", "ppg_lstm"]) == ["--conf-file", PPG_LSTM_CONFIG_PATH, "--algo", "ppg_lstm"]


def test_ppg_lstm_entries_are_checked_against_recurrent_ppgs_arguments():
    with open(PPG_LSTM_CONFIG_PATH) as file:
        entries = yaml.safe_load(file)
    assert {"CartPoleNoVel-v1", "PendulumNoVel-v1", "LunarLanderNoVel-v3"} <= set(entries)
    for entry in entries.values():
        check_ppg_hyperparams(entry, PPG_LSTM_CONFIG_PATH, algo_class=RecurrentPPG)
    # PPG's own arguments (through **kwargs) and RecurrentPPG's are allowed; a typo is not
    check_ppg_hyperparams(
        {"recompute_lstm_states": True, "policy": "MlpLstmPolicy", "n_timesteps": 1}, "mine.yml", algo_class=RecurrentPPG
    )
    with pytest.raises(HyperparameterError, match=r"(?s)invalid RecurrentPPG hyperparameters.*'n_aux_epoch'.*'n_aux_epochs'"):
        check_ppg_hyperparams(
            {"n_aux_epoch": 1, "policy": "MlpLstmPolicy", "n_timesteps": 1}, "mine.yml", algo_class=RecurrentPPG
        )


def test_ppg_lstm_entries_keep_the_zoo_recurrent_ppo_entries():
    """Every key of rl_zoo3's ppo_lstm.yml entry is kept as is; LunarLander's is keyed -v2 there."""
    from benchmarks.configs import ZOO_LSTM_KEYS, zoo_ppo_entry

    with open(PPG_LSTM_CONFIG_PATH) as file:
        entries = yaml.safe_load(file)
    for env_id, entry in entries.items():
        zoo = zoo_ppo_entry(ZOO_LSTM_KEYS.get(env_id, env_id), "ppo_lstm")
        assert {key: entry[key] for key in zoo} == zoo, env_id
        assert entry["n_value_epochs"] == entry["n_epochs"]


def test_train_ppg_lstm_on_cartpole_without_velocities(tmp_path):
    result = run_zoo(
        "train", "--algo", "ppg_lstm", "--env", "CartPoleNoVel-v1", "-n", "1024", "--seed", "0",
        "--eval-freq", "512", "--eval-episodes", "2", "-f", "logs",
        "--hyperparams", "n_envs:2", "n_steps:32", "n_policy_iterations:2", "n_epochs:2", "n_value_epochs:2",
        "n_aux_epochs:1", "aux_batch_size:64",
        cwd=tmp_path,
    )  # fmt: skip
    assert f"Loading hyperparameters from: {PPG_LSTM_CONFIG_PATH}" in result.stdout
    (run_folder,) = glob.glob(str(tmp_path / "logs" / "ppg_lstm" / "CartPoleNoVel-v1_*"))
    model = RecurrentPPG.load(os.path.join(run_folder, "CartPoleNoVel-v1.zip"))
    assert model.n_policy_iterations == 2 and model.policy.arch == "dual" and model.policy.lstm_actor.hidden_size == 64
    evaluations = np.load(os.path.join(run_folder, "evaluations.npz"))
    assert evaluations["results"].shape == (2, 2)
