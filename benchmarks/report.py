"""The benchmark's summary, markdown report and learning-curve plot (pure functions but for the file writers)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.configs import ARMS
from benchmarks.files import Row, atomic_write, read_rows, write_rows


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
