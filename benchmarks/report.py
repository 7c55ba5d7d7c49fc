"""The benchmark's summary, markdown report and learning-curve plot (pure functions but for the file writers)."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.configs import ARMS, MINATAR_LONG_ARM, arms_for, baseline_arm, is_minatar, is_procgen, is_recurrent
from benchmarks.curves import render_curves, render_long_baseline, summarize_curves, training_clock
from benchmarks.files import Row, atomic_write, group_runs, read_rows, run_files, write_rows


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
    ppg_arm = next((arm for arm in ("ppg", "ppg-lstm") if arm in summaries), None)
    if ppg_arm is not None:
        lines += ["", f"| ratio | steps {header} | wall-clock {header} |", "|---|---|---|"]
        ppg = summaries[ppg_arm]
        for other in ("ppo", "ppo-matched", "ppo-reference", "ppo-lstm", "ppo-lstm-ppg-epochs"):
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
    baseline: str = "ppo",
) -> str:
    """
    The benchmark's markdown report.

    :param env_id: gymnasium environment id
    :param threshold: the env's return threshold
    :param summaries: per-arm summaries at ``threshold``
    :param to_ppo_final: per-arm summaries at the baseline arm's final eval mean, if that arm ran
    :param baseline: the PPO arm the others are set against
    """
    measure = (
        "Procgen rows are the mean return of the last 100 training episodes, the paper's measure, not separate evaluations. "
        if is_procgen(env_id)
        else ""
    )
    lines = [
        f"# {env_id}: {'RecurrentPPG vs RecurrentPPO' if is_recurrent(env_id) else 'PPG vs PPO'}",
        "",
        f"Threshold: {threshold:g}. {measure}Final eval: mean ± population std over seeds of each seed's last evaluation. "
        "Medians to threshold count a seed that never reached it as infinity.",
        "",
        *_threshold_table(summaries, "to threshold"),
    ]
    if to_ppo_final is not None:
        target = summaries[baseline].final_mean
        lines += [
            "",
            f"## To the {baseline} arm's final eval mean ({target:.1f})",
            "",
            f"How fast each arm first reaches the return the {baseline} arm ends with.",
            "",
            *_threshold_table(to_ppo_final, f"to {baseline}'s final"),
        ]
    return "\n".join(lines) + "\n"


def plot(env_id: str, rows: Sequence[Row], path: Path, time_only_rows: Sequence[Row] = ()) -> None:
    """
    Learning curves per arm, mean and min-max band over seeds, against env steps (left) and against training time
    (right, at each eval step's mean over seeds): CPU seconds when every row has them, as the report's equal-time
    comparison, else wall-clock (see ``training_clock``). Only eval steps shared by all of an arm's seeds are
    plotted. ``time_only_rows`` (PPO trained for a time budget, to another step count) are drawn on the right only.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clock = training_clock([*rows, *time_only_rows])
    fig, (ax_steps, ax_wall) = plt.subplots(1, 2, figsize=(12, 4.5))
    for arm_rows, axes in ((rows, (ax_steps, ax_wall)), (time_only_rows, (ax_wall,))):
        for arm, seeds in group_runs(arm_rows).items():
            by_step: dict[int, list[Row]] = {}
            for run in seeds.values():
                for row in run:
                    by_step.setdefault(row["timesteps"], []).append(row)
            steps = sorted(step for step, step_rows in by_step.items() if len(step_rows) == len(seeds))
            means = [statistics.fmean(r["eval_mean"] for r in by_step[s]) for s in steps]
            lows = [min(r["eval_mean"] for r in by_step[s]) for s in steps]
            highs = [max(r["eval_mean"] for r in by_step[s]) for s in steps]
            walls = [statistics.fmean(r[clock] for r in by_step[s]) for s in steps]
            for ax in axes:
                xs = steps if ax is ax_steps else walls
                (line,) = ax.plot(xs, means, label=f"{arm} ({len(seeds)} seeds)")
                ax.fill_between(xs, lows, highs, alpha=0.2, color=line.get_color())
    ax_steps.set_xlabel("env steps")
    ax_wall.set_xlabel("training CPU time (s)" if clock == "cpu_s" else "training wall-clock (s)")
    # Procgen's rows are the training episodes' return, as in the paper's curves
    ylabel = "training episode return (last 100)" if is_procgen(env_id) else "deterministic eval return"
    for ax in (ax_steps, ax_wall):
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{env_id}: mean and min-max over seeds")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------------
# Procgen: the paper's own curves beside ours
# ---------------------------------------------------------------------------------------------------------------------

# The reference repository's published curves: mean training return of its 3 runs per arm at fixed env steps
ANCHORS_PATH = Path(__file__).parent / "anchors" / "openai-ppg-procgen-hard.csv"
# Each Procgen arm and the paper's curve it is set beside ("ppgsingle" is the paper's single-network PPG, --arch detach)
PAPER_ARMS = {"ppg": "ppg", "ppg-detach": "ppgsingle", "ppo-reference": "ppo"}


@dataclass
class Anchor:
    """One point of the paper's curves."""

    arm: str
    env_steps: int
    mean: float


def read_anchors(game: str, path: Path = ANCHORS_PATH) -> list[Anchor]:
    """
    :param game: a Procgen game in lower case, e.g. ``"starpilot"``
    :param path: the anchors CSV (``game,arm,env_steps,run0,run1,run2,mean``)
    :return: the game's points, in file order
    """
    with open(path, newline="") as file:
        return [
            Anchor(arm=raw["arm"], env_steps=int(raw["env_steps"]), mean=float(raw["mean"]))
            for raw in csv.DictReader(file)
            if raw["game"] == game
        ]


def procgen_game(env_id: str) -> str:
    """``"StarpilotHard-v0"`` -> ``"starpilot"``, the game's name in the anchors file."""
    from sb3_ppg.common.envpool import procgen_game_and_mode

    return procgen_game_and_mode(env_id)[0]


def mean_at_steps(runs: Sequence[Sequence[Row]], env_steps: int) -> float:
    """
    The mean over seeds of each seed's first row at or past ``env_steps``; ``nan`` when a seed stops short of it.
    """
    values = []
    for run in runs:
        reached = [row for row in sorted(run, key=lambda row: row["timesteps"]) if row["timesteps"] >= env_steps]
        if not reached:
            return math.nan
        values.append(float(reached[0]["eval_mean"]))
    return statistics.fmean(values) if values else math.nan


def render_anchors(rows: Iterable[Row], anchors: Sequence[Anchor]) -> str:
    """
    Our Procgen arms beside the paper's curves, only at the paper's marks our runs reached.

    :param rows: rows of every arm and seed (the training return, as the paper measures)
    :param anchors: the game's points of the paper's curves
    :return: markdown
    """
    runs = {arm: [seeds[seed] for seed in sorted(seeds)] for arm, seeds in group_runs(rows).items()}
    reached = min(run[-1]["timesteps"] for arm_runs in runs.values() for run in arm_runs)
    marks = sorted({anchor.env_steps for anchor in anchors})
    paper = {(anchor.arm, anchor.env_steps): anchor.mean for anchor in anchors}
    lines = [
        "## Beside the paper's curves",
        "",
        "The paper's curves: the mean training episode return of its 3 runs per arm at fixed env steps (the "
        "reference repository's published curves, `benchmarks/anchors/`). Ours: the mean over seeds of the same "
        "measure, at each seed's first row at or past the mark. Only the marks every run reached are compared.",
        "",
    ]
    compared = [mark for mark in marks if mark <= reached]
    if not compared:
        first = marks[0] if marks else None
        lines.append(
            f"Every run stopped by {reached:,} env steps, before the paper's first mark"
            + (f" ({first:,}): nothing is compared." if first is not None else ": the anchors have no mark.")
        )
        return "\n".join(lines) + "\n"
    lines += ["| arm | paper's arm | env steps | ours | paper's |", "|---|---|---|---|---|"]
    for arm in [arm for arm in PAPER_ARMS if arm in runs]:
        for mark in compared:
            ours = mean_at_steps(runs[arm], mark)
            theirs = paper.get((PAPER_ARMS[arm], mark), math.nan)
            lines.append(f"| {arm} | {PAPER_ARMS[arm]} | {mark:,} | {ours:.2f} | {theirs:.2f} |")
    return "\n".join(lines) + "\n"


def build_reports(out: Path, env_id: str, threshold: float) -> list[Row]:
    """
    Rebuild ``<out>/<env>.csv``, ``.png`` and ``.md`` from all run files; MinAtar's report adds the equal-steps and
    equal-wall-clock section. :return: the rows
    """
    every_row = read_rows(run_files(out, env_id))
    arms = arms_for(env_id)
    order = {arm: i for i, arm in enumerate(arms)}
    every_row.sort(key=lambda row: (order.get(row["algo"], len(arms)), row["algo"], row["seed"], row["timesteps"]))
    # The long PPO runs end at another step count: they only enter the equal-compute section
    rows = [row for row in every_row if row["algo"] != MINATAR_LONG_ARM]
    long_rows = [row for row in every_row if row["algo"] == MINATAR_LONG_ARM]
    if not rows:
        return rows
    write_rows(out / f"{env_id}.csv", every_row)
    plot(env_id, rows, out / f"{env_id}.png", long_rows)
    summaries = summarize(rows, threshold)
    baseline = baseline_arm(env_id)
    to_baseline_final = summarize(rows, summaries[baseline].final_mean) if baseline in summaries else None
    markdown = render_markdown(env_id, threshold, summaries, to_baseline_final, baseline)
    if is_minatar(env_id) or is_procgen(env_id) or is_recurrent(env_id):
        clock = training_clock(rows + long_rows)
        markdown += "\n" + render_curves(*summarize_curves(rows, clock), order=arms, baseline=baseline, clock=clock)
        if long_rows:
            markdown += "\n" + render_long_baseline(rows, long_rows, clock)
    if is_procgen(env_id):
        markdown += "\n" + render_anchors(rows, read_anchors(procgen_game(env_id)))
    atomic_write(out / f"{env_id}.md", lambda tmp: tmp.write_text(markdown))
    return rows


def write_reports(out: Path, name: str, rows: Sequence[Row], markdown: str) -> None:
    """Write ``<out>/<name>.csv`` (every row), ``.png`` (the learning curves) and ``.md`` (``markdown``)."""
    write_rows(out / f"{name}.csv", rows)
    plot(name, rows, out / f"{name}.png")
    atomic_write(out / f"{name}.md", lambda tmp: tmp.write_text(markdown))


def per_seed_table(
    title: str, runs: dict[str, dict[int, list[Row]]], n_seeds: int, cell: Callable[[list[Row]], str]
) -> list[str]:
    """
    Markdown lines of a table with one row per arm and one column per seed, ``title`` above it.

    :param runs: per arm, per seed, the run's rows (see ``group_runs``), arms in row order
    :param n_seeds: seeds 0 to ``n_seeds`` - 1 get a column; a seed an arm lacks gets an empty cell
    :param cell: the cell of one run
    """
    lines = ["", title, "", "| arm | " + " | ".join(f"seed {k}" for k in range(n_seeds)) + " |", "|---|" + "---|" * n_seeds]
    for arm, seeds in runs.items():
        lines.append(f"| {arm} | " + " | ".join(cell(seeds[k]) if k in seeds else "" for k in range(n_seeds)) + " |")
    return lines
