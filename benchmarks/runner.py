"""Training of one (arm, seed) with periodic deterministic evaluations; ``run_one`` runs in the worker processes."""

from __future__ import annotations

import ctypes
import math
import signal
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.configs import arm_config, is_procgen, is_recurrent
from benchmarks.files import Row, run_path, write_rows

Evaluate = Callable[[], tuple[float, float]]


def die_with_parent() -> None:
    """
    A pool worker's initializer: on Linux, the worker gets SIGTERM when the process that started it ends, so that a
    stopped ``compare.py`` never leaves a run going on unseen beside the next one (and skewing its timing).
    """
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def build_model(config: dict[str, Any], env_id: str, seed: int) -> Any:
    """
    The model of an arm's settings (from ``arm_config``) on its training env, with the arm's reward normalisation.

    :param config: the arm's settings
    :param env_id: environment id; EnvPool's Procgen and Atari ids get an EnvPool env
    :param seed: seed of the model and the envs
    :return: the model
    """
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_ppg import PPG, RecurrentPPG
    from sb3_ppg.train import make_env

    if is_recurrent(env_id):
        import rl_zoo3.import_envs  # noqa: F401  (registers the tasks without velocities)

    # Importing sb3_ppg registered MinAtar's games
    env = make_env(env_id, config["n_envs"], seed, config.get("env_kwargs"))
    normalize = config["normalize"]
    if normalize:
        kwargs = dict(normalize) if isinstance(normalize, dict) else {}
        # As the RL Zoo does: the reward normalisation discounts with the algorithm's gamma, unless it has its own
        kwargs.setdefault("gamma", config["hyperparams"].get("gamma", 0.99))
        env = VecNormalize(env, **kwargs)
    algo_class = {"PPG": PPG, "PPO": PPO, "RecurrentPPG": RecurrentPPG, "RecurrentPPO": RecurrentPPO}[config["algo"]]
    return algo_class(config["policy"], env, seed=seed, verbose=0, **config["hyperparams"])


def training_return(model: Any) -> tuple[float, float]:
    """
    Mean and std of the undiscounted return of the model's last training episodes (up to 100: SB3's
    ``rollout/ep_rew_mean``), the measure of the Procgen paper's curves; NaN before the first episode ends.
    """
    returns = np.array([info["r"] for info in model.ep_info_buffer], dtype=np.float64)
    if returns.size == 0:
        return math.nan, math.nan
    return float(returns.mean()), float(returns.std())


def run_one(
    arm: str,
    env_id: str,
    seed: int,
    timesteps: int,
    eval_freq: int,
    eval_episodes: int,
    out: str,
    ppg_overrides: dict[str, Any] | None = None,
    train_seconds: float | None = None,
) -> int:
    """
    Train one (arm, seed), evaluating every ``eval_freq`` steps and at the end, then write its run file. Procgen
    runs record the training episodes' return instead of separate evaluations, as the paper's curves do.

    :param train_seconds: also stop once training has used this much CPU time (evaluations left out)
    :return: the number of rows written
    """
    import torch
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

    torch.set_num_threads(1)
    config = arm_config(arm, env_id, ppg_overrides)
    model = build_model(config, env_id, seed)
    evaluate_once: Evaluate
    if is_procgen(env_id):
        evaluate_once = partial(training_return, model)
    else:
        eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 10_000, env_kwargs=config.get("env_kwargs"))
        env = model.get_env()
        if isinstance(env, VecNormalize):
            eval_env = VecNormalize(eval_env, training=False, norm_obs=env.norm_obs, norm_reward=False)

        def evaluate_once() -> tuple[float, float]:
            sync_envs_normalization(env, eval_env)
            return evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)  # type: ignore[return-value]

    rows = learn_with_evaluations(model, timesteps, eval_freq, evaluate_once, arm, seed, env_id, train_seconds)
    write_rows(run_path(Path(out), env_id, arm, seed), rows)
    return len(rows)


def learn_with_evaluations(
    model: Any,
    timesteps: int,
    eval_freq: int,
    evaluate_once: Evaluate,
    arm: str,
    seed: int,
    label: str,
    train_seconds: float | None = None,
) -> list[Row]:
    """
    Train in one ``learn()`` (lin_ schedules decay over the whole budget), evaluating with ``evaluate_once`` (mean,
    std) after the update that passes each multiple of ``eval_freq`` steps and at the end; the wall-clock and CPU
    time leave the evaluations out. With ``train_seconds``, training also stops at the first step past that much CPU
    time. :return: one row per evaluation
    """
    from stable_baselines3.common.callbacks import BaseCallback

    rows: list[Row] = []
    # CPU time as well as wall-clock: with one torch thread it does not grow when other jobs share the machine
    clock = {"start": time.perf_counter(), "eval": 0.0, "cpu_start": time.process_time(), "cpu_eval": 0.0}

    def training_cpu_s() -> float:
        return time.process_time() - clock["cpu_start"] - clock["cpu_eval"]

    def evaluate() -> None:
        wall_s = time.perf_counter() - clock["start"] - clock["eval"]
        cpu_s = training_cpu_s()
        eval_start, eval_cpu_start = time.perf_counter(), time.process_time()
        mean, std = evaluate_once()
        clock["eval"] += time.perf_counter() - eval_start
        clock["cpu_eval"] += time.process_time() - eval_cpu_start
        row = dict(algo=arm, seed=seed, timesteps=model.num_timesteps, eval_mean=float(mean), eval_std=float(std))
        rows.append({**row, "wall_s": round(wall_s, 3), "cpu_s": round(cpu_s, 3)})
        print(f"{label} {arm} seed {seed}: {model.num_timesteps} steps, eval mean {float(mean):.1f}", flush=True)

    class EvalAfterTrain(BaseCallback):
        def _on_rollout_start(self) -> None:
            if self.num_timesteps >= (len(rows) + 1) * eval_freq:
                evaluate()

        def _on_step(self) -> bool:
            return train_seconds is None or training_cpu_s() < train_seconds

    model.learn(timesteps, callback=EvalAfterTrain())
    if not rows or rows[-1]["timesteps"] != model.num_timesteps:
        evaluate()
    return rows
