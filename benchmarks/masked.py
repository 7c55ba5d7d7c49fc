"""
Benchmark MaskablePPG against SB3-Contrib's MaskablePPO on a masked task: same seeds, same step budget, same
shared settings, periodic deterministic evaluations with masks.

    python benchmarks/masked.py --seeds 5 --timesteps 80000

The task is SB3-Contrib's ``InvalidActionEnvDiscrete`` (an identity task: reward 1 when the action equals the
observed state, 100 steps an episode) at ``--dim`` states and actions, of which ``--invalid`` random ones, never the
right one, are masked at each step. Runs are done one at a time; each (arm, seed) run writes
``<out>/run_files/<env>/<arm>_seed<k>.csv`` when it completes, existing run files are skipped, so an interrupted
benchmark resumes. ``<out>/<env>.csv``, ``.png`` and ``.md`` are rebuilt from all run files, with the file
helpers and the summary of ``compare.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Run as a script: the repository root holds the benchmarks package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.files import Row, group_runs, run_missing, run_path, write_rows
from benchmarks.report import per_seed_table, steps_to_threshold, summarize, write_reports
from benchmarks.runner import learn_with_evaluations

ARMS = ("maskable-ppg", "maskable-ppo", "maskable-ppo-4-epochs", "maskable-ppg-no-aux")
# Settings every arm takes: PPO's defaults but a short horizon (the reward is immediate) and shorter rollouts
SHARED = dict(n_steps=512, batch_size=64, gamma=0.5, learning_rate=3e-4, ent_coef=0.0)
# MaskablePPO's n_epochs is its default; PPG's policy phase gets fewer epochs, as in ppg.yml, plus its aux phase.
# The last two arms separate the two: MaskablePPO with PPG's 4 epochs, and MaskablePPG without its aux phase.
PPG_POLICY_PHASE = dict(n_epochs=4, n_value_epochs=4, n_policy_iterations=4, aux_batch_size=256)
ARM_KWARGS: dict[str, dict[str, Any]] = {
    "maskable-ppo": dict(n_epochs=10),
    "maskable-ppg": dict(PPG_POLICY_PHASE, n_aux_epochs=6),
    "maskable-ppo-4-epochs": dict(n_epochs=4),
    "maskable-ppg-no-aux": dict(PPG_POLICY_PHASE, n_aux_epochs=0),
}


def env_name(dim: int, invalid: int) -> str:
    """The name of the task in the result files."""
    return f"InvalidActionEnvDiscrete-{dim}-{invalid}"


def run_one(arm: str, dim: int, invalid: int, seed: int, timesteps: int, eval_freq: int, eval_episodes: int, out: Path) -> int:
    """
    Train one (arm, seed), evaluating every ``eval_freq`` steps and at the end, then write its run file.

    :return: the number of evaluations written
    """
    import torch
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.envs import InvalidActionEnvDiscrete
    from sb3_contrib.common.maskable.evaluation import evaluate_policy
    from stable_baselines3.common.utils import set_random_seed

    from sb3_ppg import MaskablePPG

    torch.set_num_threads(1)
    # The env draws its masks from NumPy's global generator
    set_random_seed(seed)
    env = InvalidActionEnvDiscrete(dim=dim, n_invalid_actions=invalid)
    eval_env = InvalidActionEnvDiscrete(dim=dim, n_invalid_actions=invalid)
    algo_class = MaskablePPG if arm.startswith("maskable-ppg") else MaskablePPO
    model = algo_class("MlpPolicy", env, seed=seed, verbose=0, **SHARED, **ARM_KWARGS[arm])

    def evaluate_once() -> tuple[float, float]:
        return evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True, warn=False)  # type: ignore[return-value]

    rows = learn_with_evaluations(model, timesteps, eval_freq, evaluate_once, arm, seed, env_name(dim, invalid))
    write_rows(run_path(out, env_name(dim, invalid), arm, seed), rows)
    return len(rows)


def render_markdown(name: str, threshold: float, rows: list[Row], args: argparse.Namespace) -> str:
    """The report: per arm, final return, steps and wall-clock to the threshold."""
    summaries = summarize(rows, threshold)
    lines = [
        f"# {name}: MaskablePPG vs MaskablePPO",
        "",
        f"SB3-Contrib's `InvalidActionEnvDiscrete(dim={args.dim}, n_invalid_actions={args.invalid})`: reward 1 when "
        f"the action is the observed state, 100 steps an episode (return at most 100), {args.invalid} of the "
        f"{args.dim} actions masked at each step. Threshold: {threshold:g}. Evaluations every {args.eval_freq} steps, "
        f"{args.eval_episodes} deterministic episodes with masks. Final eval: mean ± population std over seeds of each seed's "
        "last evaluation. Medians to threshold count a seed that never reached it as infinity. One run at a time, "
        "one thread.",
        "",
        f"Shared settings: `{SHARED}`. " + "; ".join(f"{arm}: `{ARM_KWARGS[arm]}`" for arm in ARMS) + ".",
        "",
        "| arm | seeds | final eval | seeds reaching threshold | median steps to threshold "
        "| median wall-clock s to threshold | train steps/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in [arm for arm in ARMS if arm in summaries]:
        s = summaries[arm]
        lines.append(
            f"| {arm} | {s.n_seeds} | {s.final_mean:.1f} ± {s.final_std:.1f} | {s.n_reached}/{s.n_seeds} "
            f"| {s.median_steps:,.0f} | {s.median_wall_s:.1f} | {s.steps_per_s:.0f} |"
        )
    lines += per_seed_table(
        "Steps to threshold per seed:",
        group_runs(rows),
        args.seeds,
        lambda run: f"{steps_to_threshold(run, threshold)[0]:,.0f}",
    )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 to N-1")
    parser.add_argument("--timesteps", type=int, default=80_000, help="env steps per run")
    parser.add_argument("--dim", type=int, default=150, help="number of states and actions")
    parser.add_argument("--invalid", type=int, default=100, help="actions masked at each step")
    parser.add_argument("--threshold", type=float, default=80.0, help="return to reach")
    parser.add_argument("--eval-freq", type=int, default=5_120, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the missing (arm, seed) runs one after the other, then rebuild the reports."""
    args = parse_args(argv)
    out = Path(args.out)
    name = env_name(args.dim, args.invalid)

    def run(arm: str, seed: int) -> None:
        run_one(arm, args.dim, args.invalid, seed, args.timesteps, args.eval_freq, args.eval_episodes, out)

    rows = run_missing(out, name, args.arms, args.seeds, args.timesteps, run)
    if rows:
        write_reports(out, name, rows, render_markdown(name, args.threshold, rows, args))
        print(f"Wrote {out / name}.csv, .png and .md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
