"""
The RL Zoo integration, end to end: ``python -m sb3_ppg.zoo ...`` runs in a subprocess, as a user would run it.
"""

import argparse
import copy
import glob
import math
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import yaml

pytest.importorskip("rl_zoo3", reason="the zoo integration needs the zoo extra: pip install -e '.[zoo]'")
optuna = pytest.importorskip("optuna", reason="the zoo integration needs the zoo extra: pip install -e '.[zoo]'")

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

from sb3_ppg import PPG  # noqa: E402
from sb3_ppg.zoo import (  # noqa: E402
    PPG_CONFIG_PATH,
    PPGExperimentManager,
    convert_ppg_params,
    packaged_config,
    register,
    sample_ppg_params,
    with_default_config,
)
from tests.conftest import run_zoo  # noqa: E402
from tests.test_configs import GAMES as PROCGEN_GAMES  # noqa: E402

PACKAGED_CONFIG = os.path.join("sb3_ppg", "hyperparams", "ppg.yml")
with open(PPG_CONFIG_PATH) as config_file:
    PPG_ENTRIES = yaml.safe_load(config_file)

# CartPole settings under which the aux phase runs every 2 rollouts of 2 x 64 steps
SMALL = [
    "n_envs:2",
    "n_steps:64",
    "batch_size:64",
    "n_epochs:2",
    "n_value_epochs:2",
    "n_policy_iterations:2",
    "aux_batch_size:128",
]
TRAIN_STEPS = 2048


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """A short ``train --algo ppg`` run on CartPole-v1 with the packaged config: its folder and its output."""
    folder = tmp_path_factory.mktemp("zoo_train")
    result = run_zoo(
        "train", "--algo", "ppg", "--env", "CartPole-v1", "-n", str(TRAIN_STEPS), "--seed", "0", "--eval-freq", "-1",
        "-f", "logs", "--hyperparams", *SMALL,
        cwd=folder,
    )  # fmt: skip
    return folder, result


def test_train_uses_the_packaged_config_and_writes_a_ppg_model(trained):
    folder, result = trained
    assert f"Loading hyperparameters from: {PPG_CONFIG_PATH}" in result.stdout
    model_path = folder / "logs" / "ppg" / "CartPole-v1_1" / "CartPole-v1.zip"
    assert model_path.is_file()

    model = PPG.load(model_path, device="cpu")
    assert isinstance(model, PPG)
    assert model.num_timesteps == TRAIN_STEPS
    # --hyperparams overrides, then values only the packaged entry has
    assert (model.n_envs, model.n_steps, model.n_policy_iterations, model.aux_batch_size) == (2, 64, 2, 128)
    assert model.n_aux_epochs == PPG_ENTRIES["CartPole-v1"]["n_aux_epochs"]
    assert model.gae_lambda == PPG_ENTRIES["CartPole-v1"]["gae_lambda"]
    # 16 rollouts: the aux phase ran after every second one
    assert model._n_aux_phases == TRAIN_STEPS // (2 * 64 * 2)


def test_enjoy_replays_the_model(trained):
    folder, _ = trained
    # CartPole-v1 truncates at 500 steps, so 600 steps end at least one episode
    result = run_zoo(
        "enjoy", "--algo", "ppg", "--env", "CartPole-v1", "-f", "logs", "--no-render", "-n", "600", "--seed", "0",
        cwd=folder,
    )  # fmt: skip
    assert os.path.join("logs", "ppg", "CartPole-v1_1", "CartPole-v1.zip") in result.stdout
    assert "Episode Reward" in result.stdout
    assert "Mean reward" in result.stdout


def test_record_video_writes_a_video(trained):
    pytest.importorskip("moviepy", reason="record_video needs moviepy (zoo extra)")
    pytest.importorskip("pygame", reason="CartPole's rgb_array rendering needs pygame")
    folder, _ = trained
    run_zoo("record_video", "--algo", "ppg", "--env", "CartPole-v1", "-f", "logs", "-n", "50", "-o", "videos", cwd=folder)
    assert list((folder / "videos").glob("final-model-ppg-CartPole-v1-*.mp4"))


def test_record_training_subprocesses_go_to_sb3_ppg(monkeypatch):
    from sb3_ppg.zoo import _record_video_with_sb3_ppg

    calls = []
    monkeypatch.setattr(subprocess, "call", lambda args, *other, **kwargs: calls.append(args) or 0)
    with _record_video_with_sb3_ppg():
        # What rl_zoo3.record_training runs for each model
        subprocess.call(["python", "-m", "rl_zoo3.record_video", "--algo", "ppg", "--exp-id", "1"])
        subprocess.call(["ffmpeg", "-i", "in.mp4"])
    assert calls == [
        [sys.executable, "-m", "sb3_ppg.zoo", "record_video", "--algo", "ppg", "--exp-id", "1"],
        ["ffmpeg", "-i", "in.mp4"],
    ]


def test_optimize_runs_two_trials_in_parallel(tmp_path):
    pytest.importorskip("pandas", reason="the zoo writes the -optimize report with pandas (zoo extra)")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    # No enqueued trials: with two threads on SQLite, two workers can pop the same waiting trial
    optuna.create_study(storage=storage, study_name="ppg", direction="maximize")

    run_zoo(
        "train", "--algo", "ppg", "--env", "CartPole-v1", "-optimize", "--n-trials", "2", "--n-jobs", "2",
        "--storage", storage, "--study-name", "ppg", "-n", "1000", "--n-evaluations", "1", "--eval-episodes", "2",
        "--sampler", "random", "--pruner", "none", "--no-optim-plots", "--seed", "0", "-f", "logs",
        "--hyperparams", "n_envs:2",
        cwd=tmp_path,
    )  # fmt: skip

    trials = optuna.load_study(storage=storage, study_name="ppg").trials
    assert [trial.state for trial in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in trials:
        assert math.isfinite(trial.value)
        assert {"n_policy_iterations", "n_aux_epochs", "beta_clone", "n_value_epochs", "batch_size_pow"} <= set(trial.params)
    for trial in trials:
        # The sampler lowers sizes that do not fit, so every sampled model was valid
        aux_capacity = trial.params["n_policy_iterations"] * 2 ** trial.params["n_steps_pow"] * trial.params["n_envs"]
        assert trial.user_attrs["aux_batch_size"] == min(2 ** trial.params["aux_batch_size_pow"], aux_capacity)
    assert glob.glob(str(tmp_path / "logs" / "ppg" / "report_CartPole-v1_2-trials-1000-random-none_*.csv"))


def test_other_zoo_algos_still_work(tmp_path):
    result = run_zoo(
        "train", "--algo", "ppo", "--env", "CartPole-v1", "-n", "256", "--seed", "0", "--eval-freq", "-1", "-f", "logs",
        "--hyperparams", "n_envs:1", "n_steps:64", "batch_size:64",
        cwd=tmp_path,
    )  # fmt: skip
    assert os.path.join("rl_zoo3", "hyperparams", "ppo.yml") in result.stdout
    assert PACKAGED_CONFIG not in result.stdout
    model = PPO.load(tmp_path / "logs" / "ppo" / "CartPole-v1_1" / "CartPole-v1.zip", device="cpu")
    assert type(model) is PPO


def test_env_without_an_entry_is_a_clear_error(tmp_path):
    args = ["train", "--algo", "ppg", "--env", "MountainCarContinuous-v0", "-f", "logs"]
    result = run_zoo(*args, cwd=tmp_path, expect_success=False)
    assert result.returncode == 2
    assert "Hyperparameters not found for ppg-MountainCarContinuous-v0" in result.stderr
    assert PACKAGED_CONFIG in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["conf-file", "hyperparams"])
def test_unknown_hyperparameter_is_named(tmp_path, where):
    entry = {"CartPole-v1": {"n_envs": 1, "n_timesteps": 1000, "policy": "MlpPolicy", "n_aux_epoch": 3}}
    if where == "conf-file":
        (tmp_path / "my_ppg.yml").write_text(yaml.safe_dump(entry))
        args = ["--conf-file", "my_ppg.yml"]
        origin = "my_ppg.yml"
    else:
        args = ["--hyperparams", "n_aux_epoch:3"]
        origin = "--hyperparams"
    result = run_zoo("train", "--algo", "ppg", "--env", "CartPole-v1", "-f", "logs", *args, cwd=tmp_path, expect_success=False)
    assert result.returncode == 2
    assert f"unknown hyperparameter 'n_aux_epoch' (from {origin}), did you mean 'n_aux_epochs'?" in result.stderr
    assert "Traceback" not in result.stderr
    # Stopped before any folder or model was made
    assert not (tmp_path / "logs").exists()


def test_aux_learning_rate_reads_a_linear_schedule():
    from sb3_ppg.zoo import HyperparameterError

    hyperparams = PPGExperimentManager._preprocess_schedules({"learning_rate": 1e-3, "aux_learning_rate": "lin_4e-4"})
    assert hyperparams["aux_learning_rate"](0.5) == pytest.approx(2e-4)
    with pytest.raises(HyperparameterError, match="aux_learning_rate must be a number or 'lin_<initial value>'"):
        PPGExperimentManager._preprocess_schedules({"aux_learning_rate": "cos_4e-4"})


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--algo", "ppg", "--env", "CartPole-v1"], ["--conf-file", PPG_CONFIG_PATH, "--algo", "ppg", "--env", "CartPole-v1"]),
        (["--algo=ppg"], ["--conf-file", PPG_CONFIG_PATH, "--algo=ppg"]),
        (
            ["-params", "n_steps:64", "--algo", "ppg"],
            ["--conf-file", PPG_CONFIG_PATH, "-params", "n_steps:64", "--algo", "ppg"],
        ),
        (["--algo", "ppg", "-conf", "mine.yml"], ["--algo", "ppg", "-conf", "mine.yml"]),
        (["--algo", "ppg", "--conf-file=mine.yml"], ["--algo", "ppg", "--conf-file=mine.yml"]),
        (["--algo", "ppo"], ["--algo", "ppo"]),
        ([], []),
        # Left for the zoo's own parser to report
        (["--algo"], ["--algo"]),
    ],
)
def test_packaged_config_is_the_default_for_ppg_only(args, expected):
    assert with_default_config(args) == expected


def test_conf_file_takes_a_packaged_configs_name(tmp_path, monkeypatch):
    ppo_reference = packaged_config("procgen_ppo_reference")
    assert ppo_reference is not None and ppo_reference.endswith("procgen_ppo_reference.yml")
    assert packaged_config("procgen_replication.yml") == packaged_config("procgen_replication")
    assert packaged_config("no_such_config") is None
    assert packaged_config("../hyperparams/ppg") is None
    args = ["--algo", "ppg", "--env", "StarpilotHard-v0", "--conf-file", "procgen_ppo_reference"]
    assert with_default_config(args) == [*args[:-1], ppo_reference]
    assert with_default_config(["-conf", "procgen_ppo_reference"]) == ["-conf", ppo_reference]
    assert with_default_config(["--conf-file=procgen_ppo_reference"]) == [f"--conf-file={ppo_reference}"]
    # A file of that name in the working directory is the user's and wins
    monkeypatch.chdir(tmp_path)
    (tmp_path / "procgen_ppo_reference").write_text("{}")
    assert with_default_config(["-conf", "procgen_ppo_reference"]) == ["-conf", "procgen_ppo_reference"]


@pytest.mark.parametrize("n_envs", [1, 3, 8])
def test_sampler_returns_only_what_ppg_accepts(n_envs):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=n_envs), direction="maximize")
    env = make_vec_env("CartPole-v1", n_envs=n_envs)
    for trial_number in range(60):
        trial = study.ask()
        hyperparams = sample_ppg_params(trial, 0, n_envs, {})
        # The zoo's PPO sampler was used, under its own parameter names
        assert {"n_steps_pow", "batch_size_pow", "one_minus_gamma", "net_arch"} <= set(trial.params)
        rollout_size = hyperparams["n_steps"] * n_envs
        assert 2 <= hyperparams["batch_size"] <= rollout_size
        assert 1 <= hyperparams["aux_batch_size"] <= hyperparams["n_policy_iterations"] * rollout_size
        # What --trial-id rebuilds from the stored trial is what the trial trained with
        assert convert_ppg_params(trial.params) == {**hyperparams, "n_envs": n_envs}
        if trial_number < 4:
            PPG("MlpPolicy", env, device="cpu", **hyperparams)
        study.tell(trial, 0.0)
    env.close()


def test_ppg_yml_has_the_documented_entries():
    expected = {
        "LunarLander-v3",
        "LunarLander-v2",
        "LunarLanderContinuous-v3",
        "CartPole-v1",
        "Acrobot-v1",
        "MountainCar-v0",
        "Pendulum-v1",
        "BipedalWalker-v3",
        "atari",
        *(f"{game}Hard-v0" for game in PROCGEN_GAMES),
        *(f"MinAtar/{game}-v1" for game in ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")),
    }
    assert set(PPG_ENTRIES) == expected
    assert PPG_ENTRIES["LunarLander-v2"] == PPG_ENTRIES["LunarLander-v3"]
    for env_id, entry in PPG_ENTRIES.items():
        assert entry["n_value_epochs"] == entry["n_epochs"], env_id
        aux_buffer_size = entry["n_policy_iterations"] * entry["n_steps"] * entry["n_envs"]
        assert entry["aux_batch_size"] <= aux_buffer_size, env_id
    for env_id in ("LunarLander-v3", "LunarLanderContinuous-v3"):
        assert eval(PPG_ENTRIES[env_id]["normalize"]) == {"norm_obs": False, "norm_reward": True}


@pytest.mark.parametrize("env_id", sorted(PPG_ENTRIES))
def test_every_ppg_yml_entry_builds_a_model(env_id, tmp_path):
    if env_id == "atari":
        pytest.skip("the 'atari' entry applies to Atari ids (ale_py), which this test does not build")
    entry = copy.deepcopy(PPG_ENTRIES[env_id])
    try:
        gym.make(env_id).close()
    except (gym.error.DependencyNotInstalled, ImportError) as error:
        pytest.skip(f"{env_id} cannot be made here: {error}")

    register()
    # The zoo's own path from config to model (schedules, normalisation, checks), without training
    manager = PPGExperimentManager(
        argparse.Namespace(env=env_id), "ppg", env_id, str(tmp_path), eval_freq=-1, seed=0, verbose=0, device="cpu",
        config=PPG_CONFIG_PATH,
    )  # fmt: skip
    result = manager.setup_experiment()
    assert result is not None
    model, _ = result
    try:
        assert isinstance(model, PPG)
        assert model.n_envs == entry["n_envs"]
        for key in ("n_steps", "batch_size", "n_epochs", "n_value_epochs", "n_policy_iterations", "n_aux_epochs"):
            if key in entry:
                assert getattr(model, key) == entry[key], key
        for key in ("gamma", "gae_lambda", "ent_coef", "beta_clone", "use_sde"):
            if key in entry:
                assert getattr(model, key) == entry[key], key
        vec_normalize = model.get_vec_normalize_env()
        assert (vec_normalize is not None) == ("normalize" in entry)
        if isinstance(entry.get("normalize"), str):
            assert isinstance(vec_normalize, VecNormalize)
            assert (vec_normalize.norm_obs, vec_normalize.norm_reward) == (False, True)
    finally:
        assert model.env is not None
        model.env.close()


def test_train_minatar_with_its_packaged_entry(tmp_path):
    """
    The zoo's processes see MinAtar's ids (registered by sb3_ppg), the alias and the entry's env_kwargs; and they take
    the largest seed the zoo draws, though the second env's seed, 2**32, is past what MinAtar itself takes.
    """
    env_id = "MinAtar/Breakout-v1"
    small = ["n_envs:2", "n_steps:64", "batch_size:64", "n_policy_iterations:2", "aux_batch_size:128"]
    result = run_zoo(
        "train", "--algo", "ppg", "--env", env_id, "-n", "256", "--seed", str(2**32 - 1), "--eval-freq", "-1",
        "-f", "logs", "--hyperparams", *small,
        cwd=tmp_path,
    )  # fmt: skip
    assert f"Seed: {2**32 - 1}" in result.stdout
    # The zoo turns the "/" of the id into "-" in its folder and file names
    model = PPG.load(tmp_path / "logs" / "ppg" / "MinAtar-Breakout-v1_1" / "MinAtar-Breakout-v1.zip", device="cpu")
    assert type(model.policy).__name__ == "AuxActorCriticMinAtarCnnPolicy" and model.policy.arch == "dual"
    # The entry's values, not PPG's defaults (gamma 0.99, lr 3e-4)
    assert (model.gamma, model.lr_schedule(1.0), model.n_epochs, model.n_value_epochs) == (0.999, 5e-4, 8, 8)
    assert model.num_timesteps == 256 and model._n_aux_phases == 1


def test_checkpoints_with_the_aux_buffer_resume_on_schedule(tmp_path):
    # Rollouts of 2 x 64 steps, an aux phase every 3; checkpoints every 2 rollouts
    hyperparams = ["--hyperparams", *SMALL, "n_policy_iterations:3", "normalize:True"]
    common = ["train", "--algo", "ppg", "--env", "CartPole-v1", "--seed", "0", "--eval-freq", "-1", "-f", "logs"]
    run_zoo(*common, "-n", "512", "--save-freq", "256", "--save-aux-buffer", *hyperparams, cwd=tmp_path)
    run_folder = tmp_path / "logs" / "ppg" / "CartPole-v1_1"
    for steps in (256, 512):
        for name in (f"rl_model_{steps}_steps.zip", f"rl_model_aux_buffer_{steps}_steps.npz"):
            assert (run_folder / name).is_file(), name
        assert (run_folder / f"rl_model_vecnormalize_{steps}_steps.pkl").is_file()
    assert (run_folder / "aux_buffer.npz").is_file()
    uninterrupted = PPG.load(run_folder / "rl_model_512_steps.zip")
    assert (uninterrupted._n_aux_phases, uninterrupted._saved_aux_cycle_steps) == (1, 64)

    # Resumed 2 rollouts into the cycle: the aux phase comes after the next rollout, as in the uninterrupted run
    checkpoint = str(run_folder / "rl_model_256_steps.zip")
    result = run_zoo(*common, "-i", checkpoint, "-n", "256", *hyperparams, cwd=tmp_path)
    assert f"Loading the aux buffer {run_folder / 'rl_model_aux_buffer_256_steps.npz'}" in result.stdout
    assert "Loading the checkpoint's VecNormalize stats" in result.stdout
    assert "aux buffer was not loaded" not in result.stderr
    resumed = PPG.load(tmp_path / "logs" / "ppg" / "CartPole-v1_2" / "CartPole-v1.zip")
    assert resumed.num_timesteps == 512
    assert (resumed._n_aux_phases, resumed._saved_aux_cycle_steps) == (1, 64)

    # A checkpoint without its own statistics is refused, not resumed with the run's latest
    (run_folder / "rl_model_vecnormalize_512_steps.pkl").unlink()
    checkpoint = str(run_folder / "rl_model_512_steps.zip")
    result = run_zoo(*common, "-i", checkpoint, "-n", "256", *hyperparams, cwd=tmp_path, expect_success=False)
    assert result.returncode != 0
    assert "rl_model_vecnormalize_512_steps.pkl are missing" in result.stderr, result.stderr[-3000:]
