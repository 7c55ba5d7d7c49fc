import numpy as np
import pytest
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    StopTrainingOnRewardThreshold,
)
from stable_baselines3.common.env_util import make_vec_env

from sb3_ppg import PPG
from tests.conftest import SMALL


def test_sb3_callbacks(tmp_path):
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=1)
    checkpoint = CheckpointCallback(save_freq=100, save_path=str(tmp_path / "checkpoints"), name_prefix="ppg")
    stop = StopTrainingOnRewardThreshold(reward_threshold=1e9, verbose=0)
    evaluation = EvalCallback(
        eval_env,
        callback_on_new_best=stop,
        n_eval_episodes=2,
        eval_freq=100,
        best_model_save_path=str(tmp_path / "best"),
        log_path=str(tmp_path / "eval"),
    )
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    model.learn(4 * 64, callback=CallbackList([checkpoint, evaluation]), progress_bar=True)
    assert len(list((tmp_path / "checkpoints").glob("ppg_*_steps.zip"))) == 2
    assert (tmp_path / "best" / "best_model.zip").exists()
    assert len(evaluation.evaluations_results) == 2
    PPG.load(tmp_path / "best" / "best_model.zip")


def test_stop_on_reward_threshold_stops_training():
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=1)
    stop = StopTrainingOnRewardThreshold(reward_threshold=-1.0)
    evaluation = EvalCallback(eval_env, callback_on_new_best=stop, n_eval_episodes=1, eval_freq=70)
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    model.learn(10 * 64, callback=evaluation)
    assert model.num_timesteps == 70


class StopAt(BaseCallback):
    def __init__(self, step: int):
        super().__init__()
        self.step = step

    def _on_step(self) -> bool:
        return self.num_timesteps < self.step


def test_stopping_mid_rollout_skips_training_and_resumes():
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **dict(SMALL, n_policy_iterations=3))
    # Stops inside the third rollout, before it completes the N_pi block
    model.learn(10 * 64, callback=StopAt(2 * 64 + 10))
    assert model.num_timesteps == 2 * 64 + 10
    assert model._n_aux_phases == 0
    assert model.aux_buffer.n_samples == 2 * 64
    # The next call collects a whole rollout again and completes the block
    model.learn(64, reset_num_timesteps=False)
    assert model._n_aux_phases == 1


def test_callback_sees_aux_keys_in_logger(tmp_path):
    from stable_baselines3.common.logger import configure

    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(4 * 64)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in (
        "train/policy_gradient_loss",
        "train/value_loss",
        "train/entropy_loss",
        "train/approx_kl",
        "train/clip_fraction",
        "train/explained_variance",
        "train/n_updates",
        "train/loss",
        "train/learning_rate",
        "train/aux_value_loss",
        "train/aux_kl",
        "train/aux_critic_loss",
        "train/aux_n_updates",
        "train/aux_learning_rate",
    ):
        assert key in header, key
    rows = [line.split(",") for line in (tmp_path / "progress.csv").read_text().splitlines()[1:]]
    kl_column = header.index("train/aux_kl")
    assert any(row[kl_column] and np.isfinite(float(row[kl_column])) for row in rows)


def test_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, tensorboard_log=str(tmp_path), **SMALL)
    model.learn(2 * 64)
    assert list(tmp_path.glob("PPG_1/events.out.tfevents.*"))
