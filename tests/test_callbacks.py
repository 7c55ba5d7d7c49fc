import os
import select
import signal
import subprocess
import sys

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
from stable_baselines3.common.envs import FakeImageEnv
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ppg import PPG
from sb3_ppg.common.callbacks import PPGCheckpointCallback, checkpoint_companion
from tests.conftest import SMALL, zoo_env


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


def test_ppg_checkpoint_callback_saves_the_aux_buffer_and_vecnormalize_at_rollout_ends(tmp_path, monkeypatch):
    env = VecNormalize(make_vec_env("CartPole-v1", n_envs=2, seed=0))
    model = PPG("MlpPolicy", env, seed=0, **dict(SMALL, n_policy_iterations=3))
    # Due at calls 48, 96 and 144, in the middle of rollouts of 64 calls: taken at their ends, once trained on
    checkpoint = PPGCheckpointCallback(48, str(tmp_path), save_replay_buffer=True, save_vecnormalize=True)
    written = []
    replace = os.replace
    monkeypatch.setattr(
        os, "replace", lambda source, target: (written.append(os.path.basename(target)), replace(source, target))
    )
    model.learn(3 * 128, callback=checkpoint)
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == sorted(
        f"rl_model_{kind}{steps}_steps.{extension}"
        for steps in (128, 256, 384)
        for kind, extension in [("", "zip"), ("aux_buffer_", "npz"), ("vecnormalize_", "pkl")]
    )
    # Each checkpoint's model is written last: a model file is never without its companions
    assert [name for name in written if not name.startswith(".")] == [
        f"rl_model_{kind}{steps}_steps.{extension}"
        for steps in (128, 256, 384)
        for kind, extension in [("aux_buffer_", "npz"), ("vecnormalize_", "pkl"), ("", "zip")]
    ]
    loaded = PPG.load(tmp_path / "rl_model_256_steps.zip")
    loaded.load_aux_buffer(checkpoint_companion(str(tmp_path / "rl_model_256_steps.zip"), "aux_buffer_", "npz"))
    assert loaded.aux_buffer.pos == 2 * 64
    assert loaded._saved_aux_cycle_steps == 2 * 64
    assert VecNormalize.load(str(tmp_path / "rl_model_vecnormalize_256_steps.pkl"), env).obs_rms.count > 256


_KILLED_SAVE = """
import sys, time
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv
import sb3_ppg.common.checkpoints as checkpoints
from sb3_ppg import PPG

env = make_vec_env(lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=1), n_envs=2)
model = PPG("CnnPolicy", env, n_steps=16, batch_size=32, n_policy_iterations=3, aux_batch_size=32, seed=0)
model.learn(32)
model.save(sys.argv[1]); model.save_aux_buffer(sys.argv[2])
model.learn(32, reset_num_timesteps=False)

def hang(*args, **kwargs):
    print("saving", flush=True)
    time.sleep(600)

if sys.argv[3] == "model":
    # SB3 writes the model's data, then its tensors: hang there, the zip half written
    import torch
    torch.save = hang
    model.save(sys.argv[1])
else:
    write_npy = checkpoints._write_npy
    def write_half(file, storage, n_rows):
        write_npy(file, storage, n_rows // 2)
        hang()
    checkpoints._write_npy = write_half
    model.save_aux_buffer(sys.argv[2])
"""


@pytest.mark.parametrize("killed_in", ["model", "aux_buffer"])
def test_a_save_killed_midway_leaves_the_previous_checkpoint_whole(tmp_path, killed_in):
    model_path, buffer_path = tmp_path / "model.zip", tmp_path / "aux_buffer.npz"
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SAVE, str(model_path), str(buffer_path), killed_in],
        stdout=subprocess.PIPE,
        env=zoo_env(),
        text=True,
    )
    try:
        assert process.stdout is not None
        # A process that never reaches the save fails the test instead of blocking it
        assert select.select([process.stdout], [], [], 120)[0], "the saving process printed nothing in 120 s"
        assert process.stdout.readline() == "saving\n"
        # A temporary file is being written beside the checkpoint
        assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    env = make_vec_env(lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=1), n_envs=2)
    loaded = PPG.load(model_path, env=env)
    loaded.load_aux_buffer(buffer_path)
    assert loaded.num_timesteps == 32
    assert loaded.aux_buffer.pos == loaded._saved_aux_cycle_steps == 16
    # The killed process's temporary file stays until the next save of that file, which removes it; a temporary
    # file of a live process (here this one's parent, as if saving the same file) is left alone
    target = model_path if killed_in == "model" else buffer_path
    (leftover,) = [path for path in tmp_path.iterdir() if path.name.startswith(".")]
    assert leftover.name == f".{target.stem}.{process.pid}.tmp{target.suffix}"
    live = target.with_name(f".{target.stem}.{os.getppid()}.tmp{target.suffix}")
    live.write_bytes(b"")
    if killed_in == "model":
        loaded.save(model_path)
    else:
        loaded.save_aux_buffer(buffer_path)
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == [live.name]
