"""
The one MinAtar entry, chosen from the committed runs by the rule that ``benchmarks/README.md`` fixed before them:

    python benchmarks/minatar_entry.py

For each PPG arm and game: the arm's mean final return over its seeds divided by ``ppo``'s, and its training time
per env step divided by ``ppo``'s (CPU time when every run of the game has it). The first table is the per-game
results the docs quote (final mean ± std over seeds, Mann-Whitney p against ``ppo``, cost). The entry is the arm
with the highest geometric mean of the return ratios over the games; an arm within ``--tolerance`` of it that costs
less (geometric mean of the cost ratios) wins instead. An arm without runs on every game is not a candidate.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Run as a script: the repository root holds the benchmarks package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.configs import MINATAR_ENVS, MINATAR_PPG_ARMS
from benchmarks.files import Row, read_rows, run_files
from benchmarks.report import mann_whitney_p, mean_std, summarize_curves, training_clock

BASELINE = "ppo"


@dataclass
class GameResult:
    """One arm on one game, against the baseline on that game."""

    seeds: int
    return_ratio: float
    cost_ratio: float


# Per game, per arm
Results = dict[str, dict[str, GameResult]]
# Per arm: the geometric means of its return and cost ratios
Scores = dict[str, tuple[float, float]]


def game_results(rows: Sequence[Row], arms: Sequence[str]) -> dict[str, GameResult]:
    """
    :param rows: every run of one game
    :param arms: the candidate arms
    :return: per candidate arm with runs: its return and cost ratios to the baseline's
    """
    _, summaries = summarize_curves(rows, training_clock(rows))
    if BASELINE not in summaries:
        raise ValueError(f"no {BASELINE} runs to divide by")
    base = summaries[BASELINE]
    base_return = statistics.fmean(base.finals)
    if base_return <= 0:
        raise ValueError(f"{BASELINE}'s mean final return is {base_return}: return ratios need it above 0")
    return {
        arm: GameResult(
            seeds=len(summaries[arm].finals),
            return_ratio=statistics.fmean(summaries[arm].finals) / base_return,
            cost_ratio=summaries[arm].time_per_step / base.time_per_step,
        )
        for arm in arms
        if arm in summaries
    }


def geometric_mean(values: Sequence[float]) -> float:
    """The geometric mean; 0 when a value is 0 (an arm that scored nothing on a game)."""
    return 0.0 if min(values) <= 0 else math.exp(statistics.fmean(math.log(value) for value in values))


def choose(results: Results, games: Sequence[str], tolerance: float) -> tuple[str, Scores]:
    """
    :param results: per game, per arm, from :func:`game_results`
    :param games: the games an arm must have runs on
    :param tolerance: how far below the best geometric mean a cheaper arm may be and still win
    :return: the chosen arm, and per candidate arm the geometric means of its return and cost ratios
    """
    arms = {arm for game in games for arm in results.get(game, {})}
    scores = {
        arm: (
            geometric_mean([results[game][arm].return_ratio for game in games]),
            geometric_mean([results[game][arm].cost_ratio for game in games]),
        )
        for arm in sorted(arms)
        if all(arm in results.get(game, {}) for game in games)
    }
    if not scores:
        raise ValueError(f"no arm has runs on every game of {list(games)}")
    best = max(scores, key=lambda arm: scores[arm][0])
    close = [arm for arm in scores if scores[arm][0] >= (1 - tolerance) * scores[best][0]]
    return min(close, key=lambda arm: (scores[arm][1], -scores[arm][0])), scores


def render_games(rows_by_game: dict[str, Sequence[Row]], arms: Sequence[str]) -> str:
    """
    Per game, ``ppo`` and then each arm with runs: seeds, final return (mean ± std over seeds), the Mann-Whitney p of
    the finals against ``ppo``'s, and the cost (training time per env step over ``ppo``'s, on the game's clock).

    :param rows_by_game: every run of each game
    :param arms: the arms after ``ppo``, in table order
    """
    lines = ["| game | arm | seeds | final | p vs ppo | cost | clock |", "|---|---|---|---|---|---|---|"]
    for game, rows in rows_by_game.items():
        clock = training_clock(rows)
        _, summaries = summarize_curves(rows, clock)
        base = summaries.get(BASELINE)
        name = game.removeprefix("MinAtar/").removesuffix("-v1")
        for arm in (BASELINE, *arms):
            if arm not in summaries:
                continue
            summary = summaries[arm]
            p_value = "" if arm == BASELINE or base is None else f"{mann_whitney_p(summary.finals, base.finals):.3f}"
            cost = "" if base is None else f"{summary.time_per_step / base.time_per_step:.2f}"
            lines.append(
                f"| {name} | `{arm}` | {len(summary.finals)} | {mean_std(summary.finals)} | {p_value} | {cost} | "
                f"{clock.removesuffix('_s')} |"
            )
            name = ""
    return "\n".join(lines) + "\n"


def render(results: Results, games: Sequence[str], chosen: str, scores: Scores) -> str:
    """The table of ratios per arm and game, the geometric means and the choice, in markdown."""
    short = [game.removeprefix("MinAtar/").removesuffix("-v1") for game in games]
    lines = [
        "| arm | " + " | ".join(f"{name}: return, cost (seeds)" for name in short) + " | geometric mean: return, cost |",
        "|---|" + "---|" * (len(games) + 1),
    ]
    for arm in scores:
        cells = [
            f"{results[game][arm].return_ratio:.2f}, {results[game][arm].cost_ratio:.2f} ({results[game][arm].seeds})"
            for game in games
        ]
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {scores[arm][0]:.2f}, {scores[arm][1]:.2f} |")
    return "\n".join(lines) + f"\n\nChosen: `{chosen}`.\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="results folder")
    parser.add_argument("--tolerance", type=float, default=0.05, help="how far below the best a cheaper arm may be")
    args = parser.parse_args(argv)
    if not 0 <= args.tolerance < 1:
        parser.error(f"--tolerance must be in [0, 1), got {args.tolerance}")
    out = Path(args.out)
    rows_by_game = {game: read_rows(run_files(out, game)) for game in MINATAR_ENVS}
    arms = [*MINATAR_PPG_ARMS, "ppg"]
    print(render_games(rows_by_game, arms))
    results = {game: game_results(rows, list(MINATAR_PPG_ARMS)) for game, rows in rows_by_game.items()}
    chosen, scores = choose(results, MINATAR_ENVS, args.tolerance)
    print(render(results, MINATAR_ENVS, chosen, scores), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
