"""
Benchmark PPG against SB3's PPO: same seeds, same step budget, periodic deterministic evaluations.

    python benchmarks/compare.py --env LunarLander-v3 --seeds 5 --timesteps 1000000 --jobs 2

Three arms are trained: ``ppg`` (the env's entry of sb3_ppg's ``ppg.yml``), ``ppo`` (rl_zoo3's own ``ppo.yml``
entry) and ``ppo-matched`` (PPO with PPG's env-side settings and PPO's own ``n_epochs``). On MinAtar's games
(``--env MinAtar/Breakout-v1``) the arms are ``ppo``, ``ppg`` and ``ppg-detach``; on a Procgen id through EnvPool
(``--env StarpilotHard-v0``) ``ppg``, ``ppg-detach`` and ``ppo-reference``, the packaged entries as they are, and
the rows hold the training episodes' return, the paper's measure, set beside the paper's own curves; on the RL
Zoo's tasks without velocities (``--env CartPoleNoVel-v1``) ``ppg-lstm`` (RecurrentPPG), ``ppo-lstm`` (RecurrentPPO)
and ``ppo-lstm-ppg-epochs`` (see ``configs.py`` and ``report.py``). Each
(arm, seed) run writes ``<out>/run_files/<env>/<arm>_seed<k>.csv`` when it completes; existing run files are skipped,
so an interrupted benchmark resumes. ``<out>/<env>.csv``, ``.png`` and ``.md`` are rebuilt from all run files
after each run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import yaml

# Run as a script: the repository root holds the benchmarks package
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The names other code imports from here: the benchmark's modules, by responsibility
from benchmarks.configs import (
    ARMS,
    MATCHED_KEYS,
    MINATAR_ARMS,
    MINATAR_LONG_ARM,
    PROCGEN_ARMS,
    RECURRENT_ARMS,
    THRESHOLDS,
    ZOO_ENV_KEYS,
    arm_config,
    arms_for,
    optional_arms,
    zoo_ppo_entry,
)
from benchmarks.files import (
    COLUMNS,
    Row,
    atomic_write,
    group_runs,
    read_rows,
    run_files,
    run_is_complete,
    run_path,
    write_rows,
)
from benchmarks.report import ArmSummary, build_reports, plot, render_markdown, steps_to_threshold, summarize
from benchmarks.runner import Evaluate, die_with_parent, learn_with_evaluations, run_one

__all__ = [
    "ARMS",
    "COLUMNS",
    "MATCHED_KEYS",
    "MINATAR_ARMS",
    "PROCGEN_ARMS",
    "RECURRENT_ARMS",
    "THRESHOLDS",
    "ZOO_ENV_KEYS",
    "ArmSummary",
    "Evaluate",
    "Row",
    "arm_config",
    "arms_for",
    "atomic_write",
    "build_reports",
    "group_runs",
    "learn_with_evaluations",
    "main",
    "optional_arms",
    "parse_args",
    "plot",
    "read_rows",
    "render_markdown",
    "resolve_threshold",
    "run_files",
    "run_is_complete",
    "run_one",
    "run_path",
    "steps_to_threshold",
    "summarize",
    "write_rows",
    "zoo_ppo_entry",
]


def resolve_threshold(env_id: str, override: float | None) -> float | None:
    """The --threshold flag, else the known threshold, else gymnasium's ``reward_threshold``."""
    if override is not None:
        return override
    if env_id in THRESHOLDS:
        return THRESHOLDS[env_id]
    import gymnasium

    import sb3_ppg  # noqa: F401  (registers its env aliases)

    return gymnasium.spec(env_id).reward_threshold


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--env", default="LunarLander-v3", help="gymnasium environment id")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..seeds-1 for every arm")
    parser.add_argument("--timesteps", type=int, default=1_000_000, help="env steps per run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one process each)")
    parser.add_argument("--eval-freq", type=int, default=25_000, help="evaluate every this many env steps")
    parser.add_argument("--eval-episodes", type=int, default=20, help="deterministic episodes per evaluation")
    parser.add_argument("--threshold", type=float, default=None, help="return to reach (default: per env)")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"), help="output directory")
    all_arms = list(dict.fromkeys(ARMS + MINATAR_ARMS + (MINATAR_LONG_ARM,) + PROCGEN_ARMS + RECURRENT_ARMS))
    parser.add_argument("--arms", nargs="+", choices=all_arms, default=None, help="arms to run (default: the env's all)")
    parser.add_argument(
        "--ppg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a PPG hyperparameter of ppg.yml (on MinAtar: of both PPG arms; on NoVel tasks: of ppg_lstm.yml), "
        "e.g. --ppg n_policy_iterations=4 (repeatable; for sweeps, with a separate --out)",
    )
    parser.add_argument(
        "--train-seconds",
        type=float,
        default=None,
        help="the training CPU time of the timed arms (ppo-long: the slowest PPG arm's training time); they run to it, "
        "whatever --timesteps, and the other arms ignore it",
    )
    args = parser.parse_args(argv)
    env_arms = arms_for(args.env) + optional_arms(args.env)
    if args.arms is None:
        args.arms = list(arms_for(args.env))
    elif not set(args.arms) <= set(env_arms):
        parser.error(f"{args.env}'s arms are {', '.join(env_arms)}; got {', '.join(args.arms)}")
    if args.train_seconds is not None and args.train_seconds <= 0:
        parser.error(f"--train-seconds must be > 0, got {args.train_seconds}")
    long_arms = set(args.arms) & set(optional_arms(args.env))
    if long_arms and args.train_seconds is None:
        parser.error(f"--arms {', '.join(sorted(long_arms))} needs --train-seconds, the slowest PPG arm's training time")
    args.ppg_overrides = {}
    for item in args.ppg:
        key, separator, value = item.partition("=")
        if not separator or not key:
            parser.error(f"--ppg takes KEY=VALUE, got {item!r}")
        args.ppg_overrides[key] = yaml.safe_load(value)
    for name in ("seeds", "timesteps", "jobs", "eval_freq", "eval_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    args.threshold = resolve_threshold(args.env, args.threshold)
    if args.threshold is None:
        parser.error(f"{args.env} has no known reward threshold: pass --threshold")
    return args


# The step cap of a timed arm (ppo-long): it ends on its time budget only, so that a step budget that the time would
# outrun cannot cut it short. MinAtar's learning rate and clip range are constant, so the cap changes no schedule.
TIMED_ARM_MAX_STEPS = 10**12


def arm_budget(args: argparse.Namespace, arm: str) -> tuple[int, float | None]:
    """
    :return: an arm's step budget and CPU-time budget: ``--timesteps`` and none for the arms compared at equal steps,
        no step cap and ``--train-seconds`` for the timed arms (``--train-seconds`` never cuts the others short)
    """
    if arm in optional_arms(args.env):
        return TIMED_ARM_MAX_STEPS, args.train_seconds
    return args.timesteps, None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the missing (arm, seed) runs, then rebuild the reports; returns the exit code."""
    args = parse_args(argv)
    out = Path(args.out)
    todo = []
    # Seed-major order, so that load from elsewhere on the machine falls on every arm alike
    for seed in range(args.seeds):
        for arm in args.arms:
            path = run_path(out, args.env, arm, seed)
            if run_is_complete(path, *arm_budget(args, arm)):
                print(f"skipped {arm} seed {seed}: {path} exists", flush=True)
            else:
                if path.exists():
                    print(f"rerunning {arm} seed {seed}: {path} stops short of its budget", flush=True)
                todo.append((arm, seed))
    failures = 0
    if todo:
        print(
            f"Running {len(todo)} runs on {args.env} ({args.timesteps} steps; timed arms: their time), {args.jobs} at once",
            flush=True,
        )
        workers = min(args.jobs, len(todo))
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=die_with_parent) as pool:
            futures: dict[Future[int], tuple[str, int]] = {}
            for arm, seed in todo:
                timesteps, train_seconds = arm_budget(args, arm)
                run_args = (
                    arm,
                    args.env,
                    seed,
                    timesteps,
                    args.eval_freq,
                    args.eval_episodes,
                    str(out),
                    args.ppg_overrides,
                    train_seconds,
                )
                futures[pool.submit(run_one, *run_args)] = (arm, seed)
            for future, (arm, seed) in futures.items():
                try:
                    print(f"done {arm} seed {seed}: {future.result()} evaluations", flush=True)
                except Exception as error:
                    failures += 1
                    print(f"FAILED {arm} seed {seed}: {error!r}", file=sys.stderr, flush=True)
                else:
                    # Reports follow each finished run, so a long benchmark can be read (and stopped) midway
                    build_reports(out, args.env, args.threshold)
    rows = build_reports(out, args.env, args.threshold)
    if rows:
        print(f"Wrote {out / (args.env + '.csv')}, {out / (args.env + '.png')} and {out / (args.env + '.md')}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
