"""
The benchmark's equal-compute comparison: each arm at equal env steps, at the cheapest arm's training time, and against
PPO trained for that arm's time (pure functions).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from benchmarks.configs import MINATAR_LONG_ARM
from benchmarks.files import Row, group_runs


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


def evaluations_by(run: Sequence[Row], wall_s: float, clock: str = "wall_s") -> list[Row]:
    """
    :param run: one (arm, seed)'s rows, in any order
    :param wall_s: training seconds
    :param clock: the column that counts them, ``wall_s`` or ``cpu_s``
    :return: the run's evaluations at or before ``wall_s`` seconds of training, in step order
    """
    return [row for row in sorted(run, key=lambda row: row["timesteps"]) if row[clock] <= wall_s]


def return_at_wall_clock(run: Sequence[Row], wall_s: float, clock: str = "wall_s") -> float:
    """
    The return a run had reached after ``wall_s`` seconds of training: its last evaluation at or before then.

    :return: that evaluation's mean, ``nan`` when the run had none by then (arguments as ``evaluations_by``)
    """
    reached = evaluations_by(run, wall_s, clock)
    return float(reached[-1]["eval_mean"]) if reached else math.nan


def mean_of_last_evaluations(run: Sequence[Row], wall_s: float, clock: str, evaluations: int) -> float:
    """
    A steadier reading of the return a run had reached after ``wall_s`` seconds: the mean of its last
    ``evaluations`` evaluations at or before then (fewer when it had fewer).

    :return: that mean, ``nan`` when the run had none by then (other arguments as ``evaluations_by``)
    """
    if evaluations < 1:
        raise ValueError(f"evaluations must be >= 1, got {evaluations}")
    reached = evaluations_by(run, wall_s, clock)[-evaluations:]
    return statistics.fmean(float(row["eval_mean"]) for row in reached) if reached else math.nan


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


# How many of ppo-long's evaluations before each arm's time its steadier reading averages
STEADY_EVALUATIONS = 10


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
        f"p: two-sided Mann-Whitney U test of the arm's per-seed finals against {long_arm}'s returns by then. A "
        f"single evaluation swings, so the last column reads {long_arm} more steadily: each seed's mean over its last "
        f"{STEADY_EVALUATIONS} evaluations by then.",
        "",
        f"| arm | train s | final | {long_arm} by then | p | ratio | {long_arm}, last {STEADY_EVALUATIONS} evaluations |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, seeds in group_runs(rows).items():
        runs = [seeds[seed] for seed in sorted(seeds)]
        train_s = statistics.fmean(run[-1][clock] for run in runs)
        finals = [float(run[-1]["eval_mean"]) for run in runs]
        long_returns = [return_at_wall_clock(run, train_s, clock) for run in long_runs]
        steady = [mean_of_last_evaluations(run, train_s, clock, STEADY_EVALUATIONS) for run in long_runs]
        denominator = _finite_mean(long_returns)
        # A long run that ended before train_s would be read at its end: PPO cut short
        cut_short = any(run[-1][clock] < train_s for run in long_runs)
        ratio = (
            f"{statistics.fmean(finals) / denominator:.2f}"
            if math.isfinite(denominator) and denominator and not cut_short
            else "n/a"
        )
        reached = [value for value in long_returns if math.isfinite(value)]
        p_value = "n/a" if cut_short or not reached else format_p(mann_whitney_p(finals, reached))
        lines.append(
            f"| {arm} | {train_s:.0f} | {mean_std(finals)} | {mean_std(long_returns)} | {p_value} | {ratio} "
            f"| {mean_std(steady)} |"
        )
    return "\n".join(lines) + "\n"
