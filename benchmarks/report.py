"""The benchmark's summary, markdown report and learning-curve plot (pure functions but for the file writers)."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from benchmarks.configs import ARMS, MINATAR_LONG_ARM, arms_for, baseline_arm, is_minatar, is_procgen, is_recurrent
from benchmarks.files import Row, atomic_write, read_rows, run_files, write_rows


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
# Equal env steps and equal wall-clock (pure functions)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class CurveSummary:
    """
    Per-arm results at equal env steps (each seed's final return and area under the curve) and at equal training
    wall-clock (each seed's return at the budget, ``nan`` when it had no evaluation by then).
    """

    finals: list[float]
    areas: list[float]
    final_wall_s: float
    at_budget: list[float]
    # The mean over seeds of training time per env step, for the cost ratio against the baseline
    time_per_step: float


def area_under_curve(run: Sequence[Row]) -> float:
    """
    The mean eval return over a run's env steps: the trapezoid area under (timesteps, eval_mean) from its first to its
    last evaluation, divided by that span of steps; a single evaluation's return when there is one.

    :param run: one (arm, seed)'s rows, in any order
    :return: the normalised area
    """
    points = sorted((row["timesteps"], row["eval_mean"]) for row in run)
    if not points:
        raise ValueError("area_under_curve needs at least one evaluation")
    if len(points) == 1 or points[-1][0] == points[0][0]:
        return float(points[-1][1])
    area = sum((t1 - t0) * (m0 + m1) / 2 for (t0, m0), (t1, m1) in pairwise(points))
    return area / (points[-1][0] - points[0][0])


def return_at_wall_clock(run: Sequence[Row], wall_s: float, clock: str = "wall_s") -> float:
    """
    The return a run had reached after ``wall_s`` seconds of training: its last evaluation at or before then.

    :param run: one (arm, seed)'s rows, in any order
    :param wall_s: training seconds
    :param clock: the column that counts them, ``wall_s`` or ``cpu_s``
    :return: that evaluation's mean, ``nan`` when the run had none by then
    """
    reached = [row for row in sorted(run, key=lambda row: row["timesteps"]) if row[clock] <= wall_s]
    return float(reached[-1]["eval_mean"]) if reached else math.nan


def mann_whitney_p(sample: Sequence[float], baseline: Sequence[float]) -> float:
    """
    Two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``; exact for small samples without ties).

    :param sample: one arm's per-seed values
    :param baseline: the other arm's per-seed values
    :return: the p-value, ``nan`` when either side is empty
    """
    if not sample or not baseline:
        return math.nan
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(sample, baseline, alternative="two-sided").pvalue)


def format_p(p_value: float) -> str:
    """
    A p-value for a report: three decimals, and ``< 0.001`` where three decimals would print a false 0.

    :param p_value: from :func:`mann_whitney_p`
    :return: the text for a table cell
    """
    return "< 0.001" if p_value < 0.0005 else f"{p_value:.3f}"


def training_clock(rows: Iterable[Row]) -> str:
    """
    The column that times training in the equal-time comparison: ``cpu_s`` when every row has it (it does not grow
    when other jobs share the machine), else ``wall_s``.
    """
    return "cpu_s" if all(math.isfinite(row.get("cpu_s", math.nan)) for row in rows) else "wall_s"


def summarize_curves(rows: Iterable[Row], clock: str = "wall_s") -> tuple[float, dict[str, CurveSummary]]:
    """
    Per arm: each seed's final return, area under the curve, and return at the time budget, which is the
    cheapest arm's training time (the smallest over arms of the mean over seeds of the time at the last
    evaluation).

    :param rows: rows of every arm and seed
    :param clock: the column that times training, ``wall_s`` or ``cpu_s`` (see ``training_clock``)
    :return: the budget in seconds, and the per-arm summaries
    """
    runs = {arm: [seeds[seed] for seed in sorted(seeds)] for arm, seeds in group_runs(rows).items()}
    final_walls = {arm: statistics.fmean(run[-1][clock] for run in arm_runs) for arm, arm_runs in runs.items()}
    budget = min(final_walls.values())
    summaries = {
        arm: CurveSummary(
            finals=[float(run[-1]["eval_mean"]) for run in arm_runs],
            areas=[area_under_curve(run) for run in arm_runs],
            final_wall_s=final_walls[arm],
            at_budget=[return_at_wall_clock(run, budget, clock) for run in arm_runs],
            time_per_step=statistics.fmean(run[-1][clock] / run[-1]["timesteps"] for run in arm_runs),
        )
        for arm, arm_runs in runs.items()
    }
    return budget, summaries


def mean_std(values: Sequence[float]) -> str:
    """Mean ± population std of the finite values, with how many seeds they are when some are missing."""
    finite = [value for value in values if math.isfinite(value)]
    if not finite:
        return "none"
    text = f"{statistics.fmean(finite):.1f} ± {statistics.pstdev(finite):.1f}"
    return text if len(finite) == len(values) else f"{text} ({len(finite)}/{len(values)} seeds)"


def _finite_mean(values: Sequence[float]) -> float:
    """The mean of the finite values, ``nan`` when there are none."""
    finite = [value for value in values if math.isfinite(value)]
    return statistics.fmean(finite) if finite else math.nan


def render_curves(
    budget: float, summaries: dict[str, CurveSummary], order: Sequence[str], baseline: str = "ppo", clock: str = "wall_s"
) -> str:
    """
    The equal-steps and equal-training-time section of the report.

    :param budget: the time budget in seconds
    :param summaries: per-arm summaries from ``summarize_curves``
    :param order: arms in report order (others follow, sorted)
    :param baseline: the arm the others are tested and divided against
    :param clock: the column the budget was measured in, ``wall_s`` or ``cpu_s``
    :return: markdown
    """
    time_name = "CPU time" if clock == "cpu_s" else "wall-clock"
    arms = [arm for arm in order if arm in summaries] + sorted(arm for arm in summaries if arm not in order)
    base = summaries.get(baseline)
    lines = [
        f"## At equal env steps and at equal training {time_name}",
        "",
        "Final: each seed's last evaluation. Area: the mean eval return over the run's env steps (trapezoid area under "
        f"the curve over its span). p: two-sided Mann-Whitney U test of the per-seed final returns against {baseline}'s "
        "(with 3 seeds a side, p cannot go below 0.1).",
        "",
        f"Equal {time_name}: each arm's last evaluation within {budget:.0f} s of training ({time_name}, evaluations "
        f"left out), the cheapest arm's mean training time. Ratio: the arm's mean return then over {baseline}'s "
        f"(n/a unless {baseline}'s is positive). Cost: the arm's training time per env step over {baseline}'s (means "
        "over seeds).",
        "",
        f"| arm | seeds | final | area | p, final vs {baseline} | train s | cost | return at {budget:.0f} s | ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in arms:
        s = summaries[arm]
        p_value = "" if base is None or arm == baseline else format_p(mann_whitney_p(s.finals, base.finals))
        ratio = cost = "n/a"
        if base is not None:
            cost = f"{s.time_per_step / base.time_per_step:.2f}"
            numerator, denominator = _finite_mean(s.at_budget), _finite_mean(base.at_budget)
            # A ratio of returns means nothing when the baseline's is not positive (Pendulum's are all negative)
            if math.isfinite(numerator) and math.isfinite(denominator) and denominator > 0:
                ratio = f"{numerator / denominator:.2f}"
        lines.append(
            f"| {arm} | {len(s.finals)} | {mean_std(s.finals)} | {mean_std(s.areas)} | {p_value} "
            f"| {s.final_wall_s:.0f} | {cost} | {mean_std(s.at_budget)} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def render_long_baseline(rows: Iterable[Row], long_rows: Iterable[Row], clock: str, long_arm: str = MINATAR_LONG_ARM) -> str:
    """
    PPO given each arm's compute: each arm's final return against the return the long PPO runs had reached after
    that arm's mean training time, so that PPO is not cut short at the cheapest arm's time.

    :param rows: rows of the arms run to the step budget
    :param long_rows: rows of the PPO runs trained for the slowest arm's time
    :param clock: the column that times training, ``wall_s`` or ``cpu_s``
    :param long_arm: the long runs' arm name
    :return: markdown
    """
    long_runs = list(group_runs(long_rows).get(long_arm, {}).values())
    time_name = "CPU time" if clock == "cpu_s" else "wall-clock"
    seeds = f"{len(long_runs)} seed{'s' if len(long_runs) > 1 else ''}"
    lines = [
        f"## PPO given each arm's training {time_name}",
        "",
        f"{long_arm}: PPO with the same settings, trained for about the slowest arm's training time "
        f"({seeds}, to {statistics.fmean(run[-1]['timesteps'] for run in long_runs):,.0f} steps on "
        f"average). For each arm, its final return against the return {long_arm} had reached within that arm's mean "
        f"training time (its last evaluation by then); n/a when a {long_arm} run ended before that time.",
        "",
        f"| arm | train s | final | {long_arm} by then | ratio |",
        "|---|---|---|---|---|",
    ]
    for arm, seeds in group_runs(rows).items():
        runs = [seeds[seed] for seed in sorted(seeds)]
        train_s = statistics.fmean(run[-1][clock] for run in runs)
        finals = [float(run[-1]["eval_mean"]) for run in runs]
        long_returns = [return_at_wall_clock(run, train_s, clock) for run in long_runs]
        denominator = _finite_mean(long_returns)
        # A long run that ended before train_s would be read at its end: PPO cut short
        cut_short = any(run[-1][clock] < train_s for run in long_runs)
        ratio = (
            f"{statistics.fmean(finals) / denominator:.2f}"
            if math.isfinite(denominator) and denominator and not cut_short
            else "n/a"
        )
        lines.append(f"| {arm} | {train_s:.0f} | {mean_std(finals)} | {mean_std(long_returns)} | {ratio} |")
    return "\n".join(lines) + "\n"


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
