"""Training of one (arm, seed) with periodic deterministic evaluations; ``run_one`` runs in the worker processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.configs import arm_config, is_minatar
from benchmarks.files import Row, run_path, write_rows

Evaluate = Callable[[], tuple[float, float]]


def register_minatar() -> None:
    """Register MinAtar's games with gymnasium (1.x does not load its plugin), once per process."""
    import gymnasium
    import minatar.gym

    if "MinAtar/Breakout-v1" not in gymnasium.registry:
        minatar.gym.register_envs()


def run_one(
    arm: str,
    env_id: str,
    seed: int,
    timesteps: int,
    eval_freq: int,
    eval_episodes: int,
    out: str,
    ppg_overrides: dict[str, Any] | None = None,
) -> int:
    """
    Train one (arm, seed), evaluating every ``eval_freq`` steps and at the end, then write its run file.

    :return: the number of rows written
    """
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

    from sb3_ppg import PPG

    torch.set_num_threads(1)
    config = arm_config(arm, env_id, ppg_overrides)
    hyperparams = config["hyperparams"]
    if is_minatar(env_id):
        register_minatar()
    env_kwargs = config.get("env_kwargs")
    env = make_vec_env(env_id, n_envs=config["n_envs"], seed=seed, env_kwargs=env_kwargs)
    eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 10_000, env_kwargs=env_kwargs)
    normalize = config["normalize"]
    if normalize:
        kwargs = dict(normalize) if isinstance(normalize, dict) else {}
        # As the RL Zoo does: the reward normalisation discounts with the algorithm's gamma
        if "gamma" in hyperparams:
            kwargs["gamma"] = hyperparams["gamma"]
        env = VecNormalize(env, **kwargs)
        eval_env = VecNormalize(eval_env, training=False, norm_obs=kwargs.get("norm_obs", True), norm_reward=False)
    algo_class = PPG if config["algo"] == "PPG" else PPO
    model = algo_class(config["policy"], env, seed=seed, verbose=0, **hyperparams)

    def evaluate_once() -> tuple[float, float]:
        sync_envs_normalization(env, eval_env)
        return evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)  # type: ignore[return-value]

    rows = learn_with_evaluations(model, timesteps, eval_freq, evaluate_once, arm, seed, env_id)
    write_rows(run_path(Path(out), env_id, arm, seed), rows)
    return len(rows)


def learn_with_evaluations(
    model: Any, timesteps: int, eval_freq: int, evaluate_once: Evaluate, arm: str, seed: int, label: str
) -> list[Row]:
    """
    Train in one ``learn()`` (lin_ schedules decay over the whole budget), evaluating with ``evaluate_once`` (mean,
    std) after the update that passes each multiple of ``eval_freq`` steps and at the end; the wall-clock leaves the
    evaluations out. :return: one row per evaluation
    """
    from stable_baselines3.common.callbacks import BaseCallback

    rows: list[Row] = []
    clock = {"start": time.perf_counter(), "eval": 0.0}

    def evaluate() -> None:
        wall_s = time.perf_counter() - clock["start"] - clock["eval"]
        eval_start = time.perf_counter()
        mean, std = evaluate_once()
        clock["eval"] += time.perf_counter() - eval_start
        row = dict(algo=arm, seed=seed, timesteps=model.num_timesteps, eval_mean=float(mean), eval_std=float(std))
        rows.append({**row, "wall_s": round(wall_s, 3)})
        print(f"{label} {arm} seed {seed}: {model.num_timesteps} steps, eval mean {float(mean):.1f}", flush=True)

    class EvalAfterTrain(BaseCallback):
        def _on_rollout_start(self) -> None:
            if self.num_timesteps >= (len(rows) + 1) * eval_freq:
                evaluate()

        def _on_step(self) -> bool:
            return True

    model.learn(timesteps, callback=EvalAfterTrain())
    if not rows or rows[-1]["timesteps"] != model.num_timesteps:
        evaluate()
    return rows
