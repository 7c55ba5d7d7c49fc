"""
Training speed of PPG against PPO, side by side in one process: env steps per second of ``learn()``.

    python benchmarks/speed.py --env LunarLander-v3 --timesteps 131072 --repeats 3
    python benchmarks/speed.py --env FakeImage --timesteps 4096 --arms ppg ppg-shared ppg-detach ppo-shared
    python benchmarks/speed.py --env StarpilotHard-v0 --timesteps 16384 --repeats 1

The arms run interleaved (A B A B ...) with one torch thread, so outside load falls on each alike; the report gives
each arm's median steps/s and its ratio to the last arm. LunarLander arms come from ``compare.py`` (``ppg`` is the
ppg.yml entry, ``ppo-matched`` PPO with the same rollouts and minibatches). ``FakeImage`` is SB3's ``FakeImageEnv``
at Procgen's shape (3, 64, 64) with the IMPALA CNN and 64 envs; ``ppg-<arch>`` sets ``arch`` and ``ppo-shared`` is
SB3's PPO with the same shared IMPALA trunk. A Procgen id (``StarpilotHard-v0``) runs its packaged entries through
EnvPool as they are: ``ppg`` (ppg.yml, 64 envs), ``ppg-detach`` (the same with ``arch="detach"``) and
``ppo-reference`` (the paper's PPO baseline, procgen_ppo_reference.yml). Timings include rollout collection, as
the benchmark's steps/s does.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.configs import PROCGEN_ARMS, arm_config, arms_for, is_procgen
from benchmarks.runner import build_model as build_arm_model

FAKE_IMAGE = "FakeImage"
IMAGE_ARMS = ("ppg", "ppg-shared", "ppg-detach", "ppo-shared")
# Procgen's reference settings at the 64-env scale, shrunk to a short rollout so that a timing sees aux phases
IMAGE_PPG: dict[str, Any] = dict(
    n_steps=16,
    batch_size=256,
    n_epochs=1,
    n_value_epochs=1,
    n_policy_iterations=4,
    n_aux_epochs=6,
    aux_batch_size=512,
    learning_rate=5e-4,
    gamma=0.999,
    gae_lambda=0.95,
    ent_coef=0.01,
)


def build_model(arm: str, env_id: str, seed: int) -> Any:
    """
    A model of one arm, ready to ``learn``.

    :param arm: an arm of ``compare.ARMS`` for a gymnasium id, or of ``IMAGE_ARMS`` for ``FakeImage``
    :param env_id: a gymnasium id, or ``FakeImage``
    :param seed: seed of the model and the envs
    :return: the model
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_ppg import PPG

    if env_id == FAKE_IMAGE:
        from stable_baselines3.common.envs import FakeImageEnv

        from sb3_ppg.common.torch_layers import ImpalaCNN

        if arm not in IMAGE_ARMS:
            raise ValueError(f"--arms for {FAKE_IMAGE} must be among {', '.join(IMAGE_ARMS)}; got {arm!r}")
        env = make_vec_env(
            FakeImageEnv,
            n_envs=64,
            seed=seed,
            env_kwargs=dict(screen_height=64, screen_width=64, n_channels=3, discrete=True, channel_first=True),
        )
        policy_kwargs: dict[str, Any] = dict(features_extractor_class=ImpalaCNN, net_arch=[])
        if arm == "ppo-shared":
            ppo_keys = ("n_steps", "batch_size", "learning_rate", "gamma", "gae_lambda", "ent_coef")
            hyperparams = {key: IMAGE_PPG[key] for key in ppo_keys}
            return PPO("CnnPolicy", env, n_epochs=3, seed=seed, policy_kwargs=policy_kwargs, **hyperparams)
        policy_kwargs["arch"] = arm.partition("-")[2] or "dual"
        return PPG("CnnPolicy", env, seed=seed, policy_kwargs=policy_kwargs, **IMAGE_PPG)  # type: ignore[arg-type]
    if arm not in arms_for(env_id):
        raise ValueError(f"--arms for {env_id} must be among {', '.join(arms_for(env_id))}; got {arm!r}")
    return build_arm_model(arm_config(arm, env_id), env_id, seed)


def time_learn(arm: str, env_id: str, timesteps: int, seed: int) -> float:
    """
    :return: seconds that ``learn(timesteps)`` of a fresh model took
    """
    model = build_model(arm, env_id, seed)
    start = time.perf_counter()
    model.learn(timesteps)
    return time.perf_counter() - start


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--env", default="LunarLander-v3", help=f"gymnasium id, or {FAKE_IMAGE}")
    parser.add_argument("--arms", nargs="+", default=None, help="arms to time; the last one is the ratios' baseline")
    parser.add_argument("--timesteps", type=int, default=131072, help="env steps per timing (cover whole aux cycles)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per arm, interleaved")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="CSV to write (a .md table goes beside it)")
    args = parser.parse_args(argv)
    if args.arms is None:
        if args.env == FAKE_IMAGE:
            args.arms = list(IMAGE_ARMS)
        elif is_procgen(args.env):
            args.arms = list(PROCGEN_ARMS)
        else:
            args.arms = ["ppg", "ppo-matched"]
    if args.timesteps < 1 or args.repeats < 1:
        parser.error("--timesteps and --repeats must be >= 1")
    return args


def render(rows: Sequence[dict[str, Any]], arms: Sequence[str], command: str) -> str:
    """
    :return: a markdown table of each arm's median steps/s and its ratio to the last arm
    """
    medians = {arm: statistics.median(row["steps_per_s"] for row in rows if row["arm"] == arm) for arm in arms}
    lines = [f"`{command}`", "", f"| arm | median steps/s | ratio to {arms[-1]} |", "| --- | --- | --- |"]
    lines += [f"| {arm} | {medians[arm]:.0f} | {medians[arm] / medians[arms[-1]]:.3f} |" for arm in arms]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for repeat in range(args.repeats):
        for arm in args.arms:
            wall_s = time_learn(arm, args.env, args.timesteps, args.seed)
            rows.append({"arm": arm, "repeat": repeat, "timesteps": args.timesteps, "wall_s": round(wall_s, 3)})
            rows[-1]["steps_per_s"] = round(args.timesteps / wall_s, 1)
            print(f"{arm} repeat {repeat}: {rows[-1]['steps_per_s']} steps/s", flush=True)
    command = "python benchmarks/speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = render(rows, args.arms, command)
    print(report)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        out.with_suffix(".md").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
