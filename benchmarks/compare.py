"""
Benchmark PPG against SB3's PPO: same seeds, same step budget, periodic deterministic evaluations.

    python benchmarks/compare.py --env LunarLander-v3 --seeds 5 --timesteps 1000000 --jobs 2

Three arms are trained: ``ppg`` (the env's entry of sb3_ppg's ``ppg.yml``), ``ppo`` (rl_zoo3's own ``ppo.yml``
entry) and ``ppo-matched`` (PPO with PPG's env-side settings and PPO's own ``n_epochs``). Each (arm, seed) run
writes ``<out>/runs/<env>/<arm>_seed<k>.csv`` when it completes; existing run files are skipped, so an
interrupted benchmark resumes. ``<out>/<env>.csv``, ``.png`` and ``.md`` are rebuilt from all run files.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

ARMS = ("ppg", "ppo", "ppo-matched")
COLUMNS = ("algo", "seed", "timesteps", "eval_mean", "eval_std", "wall_s")
# Keys of a zoo entry that describe the environment rather than the algorithm's constructor
ZOO_ENV_KEYS = ("n_envs", "n_timesteps", "normalize", "policy")
# Keys that ppo-matched copies from the ppg entry (n_epochs comes from the zoo PPO entry)
MATCHED_KEYS = ("n_steps", "learning_rate", "batch_size", "gamma", "gae_lambda", "ent_coef", "clip_range", "policy_kwargs")
THRESHOLDS = {"LunarLander-v3": 200.0, "LunarLanderContinuous-v3": 200.0, "CartPole-v1": 475.0, "Acrobot-v1": -100.0}

Row = dict[str, Any]
Evaluate = Callable[[], tuple[float, float]]


# ---------------------------------------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------------------------------------


def zoo_ppo_entry(env_id: str) -> dict[str, Any]:
    """
    The env's raw entry of the installed rl_zoo3 package's ``hyperparams/ppo.yml`` (the package is not imported).

    :param env_id: gymnasium environment id
    :return: the raw entry
    """
    import yaml

    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("rl_zoo3 is not installed: pip install 'sb3-ppg[zoo]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "hyperparams" / "ppo.yml"
    entry = yaml.safe_load(path.read_text()).get(env_id)
    if not entry:
        raise ValueError(f"rl_zoo3's ppo.yml has no entry for {env_id}")
    return dict(entry)


def arm_config(arm: str, env_id: str, ppg_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    The settings of one arm: ``algo`` (class name), ``policy``, ``n_envs``, ``normalize`` and ``hyperparams``.

    :param arm: one of ``ARMS``
    :param env_id: gymnasium environment id
    :param ppg_overrides: PPG constructor arguments that replace the ppg.yml values (for sweeps); ppg arm only
    :return: the settings
    """
    from sb3_ppg.train import ENV_KEYS, convert_zoo_entry, load_config

    if arm == "ppg":
        entry, algo, env_keys = load_config(env_id), "PPG", ENV_KEYS
        hyperparams = {key: value for key, value in entry.items() if key not in env_keys}
        hyperparams.update(ppg_overrides or {})
    elif arm == "ppo":
        entry, algo = convert_zoo_entry(zoo_ppo_entry(env_id)), "PPO"
        hyperparams = {key: value for key, value in entry.items() if key not in ZOO_ENV_KEYS}
    elif arm == "ppo-matched":
        entry, algo = load_config(env_id), "PPO"
        hyperparams = {key: entry[key] for key in MATCHED_KEYS if key in entry}
        hyperparams["n_epochs"] = zoo_ppo_entry(env_id).get("n_epochs", 10)
    else:
        raise ValueError(f"Unknown arm {arm!r}, expected one of {ARMS}")
    return {
        "algo": algo,
        "policy": entry.get("policy", "MlpPolicy"),
        "n_envs": int(entry.get("n_envs", 1)),
        "normalize": entry.get("normalize", False),
        "hyperparams": hyperparams,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------------


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """
    Write a file through a temporary file in the same directory, then move it into place.

    :param path: the final path
    :param write: writes the content to the path it is given
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix + ".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_rows(path: Path, rows: Iterable[Row]) -> None:
    """Write rows with the ``COLUMNS`` header, atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def read_rows(paths: Iterable[Path]) -> list[Row]:
    """Read and type the rows of CSV files written by ``write_rows``."""
    rows: list[Row] = []
    for path in paths:
        with open(path, newline="") as file:
            for raw in csv.DictReader(file):
                rows.append(
                    {
                        "algo": raw["algo"],
                        "seed": int(raw["seed"]),
                        "timesteps": int(raw["timesteps"]),
                        "eval_mean": float(raw["eval_mean"]),
                        "eval_std": float(raw["eval_std"]),
                        "wall_s": float(raw["wall_s"]),
                    }
                )
    return rows


def run_path(out: Path, env_id: str, arm: str, seed: int) -> Path:
    """The per-run file of (arm, seed)."""
    return out / "runs" / env_id / f"{arm}_seed{seed}.csv"


def run_is_complete(path: Path, timesteps: int) -> bool:
    """
    Whether a run file exists and its last evaluation is at or past ``timesteps``: a file from a shorter budget
    would otherwise be reused silently.
    """
    if not path.exists():
        return False
    rows = read_rows([path])
    return bool(rows) and max(row["timesteps"] for row in rows) >= timesteps


# ---------------------------------------------------------------------------------------------------------------------
# Training (runs in the worker processes)
# ---------------------------------------------------------------------------------------------------------------------


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
    env = make_vec_env(env_id, n_envs=config["n_envs"], seed=seed)
    eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 10_000)
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


# ---------------------------------------------------------------------------------------------------------------------
# Summary (pure functions)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class ArmSummary:
    """Per-arm results over seeds; ``inf`` medians mean that the median seed did not reach the threshold."""

    n_seeds: int
    final_mean: float
    final_std: float
    n_reached: int
    median_steps: float
    median_wall_s: float
    steps_per_s: float


def group_runs(rows: Iterable[Row]) -> dict[str, dict[int, list[Row]]]:
    """Rows grouped by arm then seed, each run sorted by timesteps."""
    runs: dict[str, dict[int, list[Row]]] = {}
    for row in rows:
        runs.setdefault(row["algo"], {}).setdefault(row["seed"], []).append(row)
    for seeds in runs.values():
        for run in seeds.values():
            run.sort(key=lambda row: row["timesteps"])
    return runs


def steps_to_threshold(run: Sequence[Row], threshold: float) -> tuple[float, float]:
    """
    The env steps and training wall-clock seconds of a run's first evaluation at or above the threshold.

    :param run: one (arm, seed)'s rows
    :param threshold: the return to reach
    :return: ``(steps, wall_s)``, both ``inf`` when never reached
    """
    for row in sorted(run, key=lambda row: row["timesteps"]):
        if row["eval_mean"] >= threshold:
            return float(row["timesteps"]), float(row["wall_s"])
    return math.inf, math.inf


def summarize(rows: Iterable[Row], threshold: float) -> dict[str, ArmSummary]:
    """
    Per arm: final eval mean and (population) std over seeds, how many seeds reached the threshold, the median
    steps and wall-clock to it (not-reached counted as infinity) and the training throughput (mean over seeds).
    """
    summaries: dict[str, ArmSummary] = {}
    for arm, seeds in group_runs(rows).items():
        runs = [seeds[seed] for seed in sorted(seeds)]
        finals = [run[-1]["eval_mean"] for run in runs]
        reached = [steps_to_threshold(run, threshold) for run in runs]
        summaries[arm] = ArmSummary(
            n_seeds=len(runs),
            final_mean=statistics.fmean(finals),
            final_std=statistics.pstdev(finals),
            n_reached=sum(math.isfinite(steps) for steps, _ in reached),
            median_steps=statistics.median(steps for steps, _ in reached),
            median_wall_s=statistics.median(wall for _, wall in reached),
            steps_per_s=statistics.fmean(run[-1]["timesteps"] / run[-1]["wall_s"] for run in runs),
        )
    return summaries


def _format_median(value: float, summary: ArmSummary, digits: int) -> str:
    """A median to threshold, or "not reached", with how many seeds reached it."""
    reached = f"{summary.n_reached}/{summary.n_seeds} seeds reached"
    if math.isinf(value):
        return f"not reached ({reached})"
    return f"{value:.{digits}f} ({reached})"


def _format_ratio(numerator: float, denominator: float) -> str:
    """A ratio of medians, "n/a" when either side did not reach the threshold."""
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return "n/a"
    return f"{numerator / denominator:.2f}"


def _threshold_table(summaries: dict[str, ArmSummary], header: str) -> list[str]:
    """Per-arm medians to a threshold, then PPG's ratios to the other arms."""
    lines = [
        f"| arm | seeds | final eval | median steps {header} | median wall-clock s {header} | train steps/s |",
        "|---|---|---|---|---|---|",
    ]
    arms = [arm for arm in ARMS if arm in summaries] + sorted(arm for arm in summaries if arm not in ARMS)
    for arm in arms:
        s = summaries[arm]
        lines.append(
            f"| {arm} | {s.n_seeds} | {s.final_mean:.1f} ± {s.final_std:.1f} | {_format_median(s.median_steps, s, 0)} "
            f"| {_format_median(s.median_wall_s, s, 1)} | {s.steps_per_s:.0f} |"
        )
    if "ppg" in summaries:
        lines += ["", f"| ratio | steps {header} | wall-clock {header} |", "|---|---|---|"]
        ppg = summaries["ppg"]
        for other in ("ppo", "ppo-matched"):
            if other in summaries:
                steps = _format_ratio(ppg.median_steps, summaries[other].median_steps)
                wall = _format_ratio(ppg.median_wall_s, summaries[other].median_wall_s)
                lines.append(f"| PPG/{other} | {steps} | {wall} |")
    return lines


def render_markdown(
    env_id: str,
    threshold: float,
    summaries: dict[str, ArmSummary],
    to_ppo_final: dict[str, ArmSummary] | None = None,
) -> str:
    """
    The benchmark's markdown report.

    :param env_id: gymnasium environment id
    :param threshold: the env's return threshold
    :param summaries: per-arm summaries at ``threshold``
    :param to_ppo_final: per-arm summaries at the ``ppo`` arm's final eval mean, if that arm ran
    """
    lines = [
        f"# {env_id}: PPG vs PPO",
        "",
        f"Threshold: {threshold:g}. Final eval: mean ± std over seeds of each seed's last evaluation. "
        "Medians to threshold count a seed that never reached it as infinity.",
        "",
        *_threshold_table(summaries, "to threshold"),
    ]
    if to_ppo_final is not None:
        target = summaries["ppo"].final_mean
        lines += [
            "",
            f"## To the ppo arm's final eval mean ({target:.1f})",
            "",
            "How fast each arm first reaches the return the zoo's PPO ends with.",
            "",
            *_threshold_table(to_ppo_final, "to ppo's final"),
        ]
    return "\n".join(lines) + "\n"


def plot(env_id: str, rows: Sequence[Row], path: Path) -> None:
    """
    Learning curves per arm, mean and min-max band over seeds, against env steps (left) and against training
    wall-clock seconds (right, at each eval step's mean wall-clock over seeds). Only eval steps shared by all
    of an arm's seeds are plotted.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_steps, ax_wall) = plt.subplots(1, 2, figsize=(12, 4.5))
    for arm, seeds in group_runs(rows).items():
        by_step: dict[int, list[Row]] = {}
        for run in seeds.values():
            for row in run:
                by_step.setdefault(row["timesteps"], []).append(row)
        steps = sorted(step for step, step_rows in by_step.items() if len(step_rows) == len(seeds))
        means = [statistics.fmean(r["eval_mean"] for r in by_step[s]) for s in steps]
        lows = [min(r["eval_mean"] for r in by_step[s]) for s in steps]
        highs = [max(r["eval_mean"] for r in by_step[s]) for s in steps]
        walls = [statistics.fmean(r["wall_s"] for r in by_step[s]) for s in steps]
        for ax, xs in ((ax_steps, steps), (ax_wall, walls)):
            (line,) = ax.plot(xs, means, label=f"{arm} ({len(seeds)} seeds)")
            ax.fill_between(xs, lows, highs, alpha=0.2, color=line.get_color())
    ax_steps.set_xlabel("env steps")
    ax_wall.set_xlabel("training wall-clock (s)")
    for ax in (ax_steps, ax_wall):
        ax.set_ylabel("deterministic eval return")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{env_id}: mean and min-max over seeds")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def build_reports(out: Path, env_id: str, threshold: float) -> list[Row]:
    """Rebuild ``<out>/<env>.csv``, ``.png`` and ``.md`` from all run files; returns the rows."""
    rows = read_rows(sorted((out / "runs" / env_id).glob("*.csv")))
    order = {arm: i for i, arm in enumerate(ARMS)}
    rows.sort(key=lambda row: (order.get(row["algo"], len(ARMS)), row["algo"], row["seed"], row["timesteps"]))
    if not rows:
        return rows
    write_rows(out / f"{env_id}.csv", rows)
    plot(env_id, rows, out / f"{env_id}.png")
    summaries = summarize(rows, threshold)
    to_ppo_final = summarize(rows, summaries["ppo"].final_mean) if "ppo" in summaries else None
    markdown = render_markdown(env_id, threshold, summaries, to_ppo_final)
    atomic_write(out / f"{env_id}.md", lambda tmp: tmp.write_text(markdown))
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------


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
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS), help="arms to run (default: all)")
    parser.add_argument(
        "--ppg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a PPG hyperparameter of ppg.yml, e.g. --ppg n_policy_iterations=4 (repeatable; for sweeps, "
        "with a separate --out)",
    )
    args = parser.parse_args(argv)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the missing (arm, seed) runs, then rebuild the reports; returns the exit code."""
    args = parse_args(argv)
    out = Path(args.out)
    todo = []
    # Seed-major order, so that load from elsewhere on the machine falls on every arm alike
    for seed in range(args.seeds):
        for arm in args.arms:
            path = run_path(out, args.env, arm, seed)
            if run_is_complete(path, args.timesteps):
                print(f"skipped {arm} seed {seed}: {path} exists", flush=True)
            else:
                if path.exists():
                    print(f"rerunning {arm} seed {seed}: {path} stops short of {args.timesteps} steps", flush=True)
                todo.append((arm, seed))
    failures = 0
    if todo:
        print(f"Running {len(todo)} runs of {args.timesteps} steps on {args.env}, {args.jobs} at a time", flush=True)
        with ProcessPoolExecutor(max_workers=min(args.jobs, len(todo)), mp_context=get_context("spawn")) as pool:
            futures: dict[Future[int], tuple[str, int]] = {}
            for arm, seed in todo:
                run_args = (
                    arm,
                    args.env,
                    seed,
                    args.timesteps,
                    args.eval_freq,
                    args.eval_episodes,
                    str(out),
                    args.ppg_overrides,
                )
                futures[pool.submit(run_one, *run_args)] = (arm, seed)
            for future, (arm, seed) in futures.items():
                try:
                    print(f"done {arm} seed {seed}: {future.result()} evaluations", flush=True)
                except Exception as error:
                    failures += 1
                    print(f"FAILED {arm} seed {seed}: {error!r}", file=sys.stderr, flush=True)
    rows = build_reports(out, args.env, args.threshold)
    if rows:
        print(f"Wrote {out / (args.env + '.csv')}, {out / (args.env + '.png')} and {out / (args.env + '.md')}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
