"""
The one MinAtar entry, chosen from the committed runs by the rule that ``benchmarks/README.md`` fixed before them:

    python benchmarks/minatar_entry.py
    python benchmarks/minatar_entry.py --write-docs docs/guide/benchmarks.md


For each PPG arm and game: the arm's mean final return over its seeds divided by ``ppo``'s, and its training time
per env step divided by ``ppo``'s (CPU time when every run of the game has it). The first table is the per-game
results the docs quote (final mean ± population std over seeds, Mann-Whitney p against ``ppo``, cost). The entry is the arm
with the highest geometric mean of the return ratios over the games; an arm within ``--tolerance`` of it that costs
less (geometric mean of the cost ratios) wins instead. An arm without runs on every game is not a candidate. A last
table, once its runs exist, sets PPG arms against their controls: PPO with as many epochs (``ppo-e8``), PPO with
separate actor and critic trunks (``ppo-dual``). Then PPO's settings (``ppo`` and the controls) go through the same
rule, and PPG's choice is set against PPO's on every game, Seaquest included: the fair head-to-head, since PPG's
arms were chosen from several while ``ppo`` was never tuned.

``--write-docs`` replaces the output quoted between the page's ``<!-- minatar_entry: start -->`` and
``<!-- minatar_entry: end -->`` comments with the output over the results folder.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Run as a script: the repository root holds the benchmarks package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.configs import MINATAR_ENTRY_ARM, MINATAR_ENVS, MINATAR_HELD_OUT, MINATAR_PPG_ARMS, MINATAR_PPO_CONTROLS
from benchmarks.curves import format_p, mann_whitney_p, mean_std, summarize_curves, training_clock
from benchmarks.files import Row, group_runs, read_rows, run_files

BASELINE = "ppo"
DOCS_START, DOCS_END = "<!-- minatar_entry: start -->\n", "<!-- minatar_entry: end -->"


@dataclass
class GameResult:
    """One arm on one game, against the baseline on the seeds both have."""

    seeds: int
    return_ratio: float
    cost_ratio: float
    # The column that timed training on this game: cpu_s when every run of the game has it, else wall_s
    clock: str = "cpu_s"


# Per game, per arm
Results = dict[str, dict[str, GameResult]]
# Per arm: the geometric means of its return and cost ratios
Scores = dict[str, tuple[float, float]]


def game_results(rows: Sequence[Row], arms: Sequence[str]) -> dict[str, GameResult]:
    """
    :param rows: every run of one game
    :param arms: the candidate arms
    :return: per candidate arm with a seed in common with the baseline: its return and cost ratios to the
        baseline's, each a ratio of means over the seeds both have (seed k of both ran side by side, under one load)
    """
    clock = training_clock(rows)
    runs = group_runs(rows)
    if BASELINE not in runs:
        raise ValueError(f"no {BASELINE} runs to divide by")
    base = runs[BASELINE]
    results = {}
    for arm in arms:
        shared = sorted(set(runs.get(arm, {})) & set(base))
        if not shared:
            continue
        base_return = statistics.fmean(float(base[seed][-1]["eval_mean"]) for seed in shared)
        if base_return <= 0:
            raise ValueError(f"{BASELINE}'s mean final return is {base_return}: return ratios need it above 0")
        arm_runs, base_runs = [runs[arm][seed] for seed in shared], [base[seed] for seed in shared]
        results[arm] = GameResult(
            seeds=len(shared),
            return_ratio=statistics.fmean(float(run[-1]["eval_mean"]) for run in arm_runs) / base_return,
            cost_ratio=time_per_step(arm_runs, clock) / time_per_step(base_runs, clock),
            clock=clock,
        )
    return results


def time_per_step(runs: Sequence[Sequence[Row]], clock: str) -> float:
    """The mean over runs of training time (``clock``) per env step at each run's last evaluation."""
    return statistics.fmean(run[-1][clock] / run[-1]["timesteps"] for run in runs)


def geometric_mean(values: Sequence[float]) -> float:
    """The geometric mean; 0 when a value is 0 (an arm that scored nothing on a game)."""
    return 0.0 if min(values) <= 0 else math.exp(statistics.fmean(math.log(value) for value in values))


def cost_games(results: Results, games: Sequence[str]) -> list[str]:
    """
    The games the cost is taken from: those timed in CPU time (wall-clock moves with the machine's load, which
    differed between runs), or all of them when none is.
    """
    return [game for game in games if all(r.clock == "cpu_s" for r in results.get(game, {}).values())] or list(games)


def choose(results: Results, games: Sequence[str], tolerance: float) -> tuple[str, Scores]:
    """
    :param results: per game, per arm, from :func:`game_results`
    :param games: the games an arm must have runs on
    :param tolerance: how far below the best geometric mean a cheaper arm may be and still win
    :return: the chosen arm, and per candidate arm the geometric means of its return ratios and of its cost ratios
        (the latter over the games timed in CPU time, when there are any)
    """
    arms = {arm for game in games for arm in results.get(game, {})}
    scores = {
        arm: (
            geometric_mean([results[game][arm].return_ratio for game in games]),
            geometric_mean([results[game][arm].cost_ratio for game in cost_games(results, games)]),
        )
        for arm in sorted(arms)
        if all(arm in results.get(game, {}) for game in games)
    }
    if not scores:
        raise ValueError(f"no arm has runs on every game of {list(games)}")
    best = max(scores, key=lambda arm: scores[arm][0])
    close = [arm for arm in scores if scores[arm][0] >= (1 - tolerance) * scores[best][0]]
    return min(close, key=lambda arm: (scores[arm][1], -scores[arm][0])), scores


def render_games(rows_by_game: Mapping[str, Sequence[Row]], arms: Sequence[str]) -> str:
    """
    Per game, ``ppo`` and then each arm with runs: seeds, final return (mean ± population std over seeds), the
    Mann-Whitney p of the finals against ``ppo``'s, and the cost (training time per env step over ``ppo``'s, on the
    game's clock).

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
            p_value = "" if arm == BASELINE or base is None else format_p(mann_whitney_p(summary.finals, base.finals))
            cost = "" if base is None else f"{summary.time_per_step / base.time_per_step:.2f}"
            lines.append(
                f"| {name} | `{arm}` | {len(summary.finals)} | {mean_std(summary.finals)} | {p_value} | {cost} | "
                f"{clock.removesuffix('_s')} |"
            )
            name = ""
    return "\n".join(lines) + "\n"


def pair_lines(rows_by_game: Mapping[str, Sequence[Row]], ppg_arm: str, ppo_arm: str) -> list[str]:
    """
    ``ppg_arm`` against ``ppo_arm``, one markdown row per game with runs of both, over the seeds both have: their
    finals (mean ± population std), the ratio of the means and the Mann-Whitney p. On a game without runs named
    ``ppg_arm``, the packaged entry's arm is read from its ``ppg`` runs (the same model, weight for weight).

    :param rows_by_game: every run of each game
    """
    lines = []
    for game, rows in rows_by_game.items():
        runs = group_runs(rows)
        name_here = "ppg" if ppg_arm not in runs and ppg_arm == MINATAR_ENTRY_ARM else ppg_arm
        shared = sorted(set(runs.get(ppo_arm, {})) & set(runs.get(name_here, {})))
        if not shared:
            continue
        ppg_finals, ppo_finals = ([float(runs[arm][seed][-1]["eval_mean"]) for seed in shared] for arm in (name_here, ppo_arm))
        ratio = statistics.fmean(ppg_finals) / statistics.fmean(ppo_finals)
        name = game.removeprefix("MinAtar/").removesuffix("-v1")
        lines.append(
            f"| {name} | `{name_here}` against `{ppo_arm}` | {len(shared)} | {mean_std(ppg_finals)} | "
            f"{mean_std(ppo_finals)} | {ratio:.2f} | {format_p(mann_whitney_p(ppg_finals, ppo_finals))} |"
        )
    return lines


PAIR_HEADER = ["| game | arms | seeds | PPG final | PPO final | ratio | p |", "|---|---|---|---|---|---|---|"]


def render_controls(rows_by_game: Mapping[str, Sequence[Row]]) -> str:
    """
    Each PPG arm against its control, PPO given what that arm has besides its aux phase (``MINATAR_PPO_CONTROLS``),
    per game with runs of both (see :func:`pair_lines`). Empty before the first control run.

    :param rows_by_game: every run of each game
    """
    lines = [
        line for control, (ppg_arm, _) in MINATAR_PPO_CONTROLS.items() for line in pair_lines(rows_by_game, ppg_arm, control)
    ]
    return "\n".join(PAIR_HEADER + lines) + "\n" if lines else ""


def render_ppo_choice(rows_by_game: Mapping[str, Sequence[Row]], ppg_choice: str, tolerance: float, seeds: int) -> str:
    """
    PPO's settings (``ppo`` and its controls) put through the same rule as PPG's arms, and the PPG choice against
    the PPO choice on every game, the held-out one included: PPG's arms were chosen from five and a sweep, so
    ``ppo`` alone, never tuned, would flatter them. Empty before the first control run.

    :param rows_by_game: every run of each game
    :param ppg_choice: the rule's choice among PPG's arms
    :param tolerance: how far below the best a cheaper setting may be
    :param seeds: seeds per setting and game before the choice is final
    """
    settings = [BASELINE, *MINATAR_PPO_CONTROLS]
    results = {game: game_results(rows_by_game[game], settings) for game in MINATAR_ENVS}
    if not any(control in results[game] for game in MINATAR_ENVS for control in MINATAR_PPO_CONTROLS):
        return ""
    chosen, scores = choose(results, MINATAR_ENVS, tolerance)
    table = render(results, MINATAR_ENVS, chosen, scores, seeds, settings)
    if MINATAR_PPO_CONTROLS.get(chosen, ("", {}))[0] == ppg_choice:
        pairs = f"`{ppg_choice}` against `{chosen}`: its rows in the table of controls above.\n"
    else:
        pairs = "\n" + "\n".join(PAIR_HEADER + pair_lines(rows_by_game, ppg_choice, chosen)) + "\n"
    return f"PPO's settings through the same rule:\n\n{table}\nPPG's choice against PPO's: {pairs}"


def render(results: Results, games: Sequence[str], chosen: str, scores: Scores, seeds: int, arms: Sequence[str]) -> str:
    """
    The table of ratios per arm and game, the geometric means and the choice, in markdown; the choice is provisional
    while one of ``arms`` (the main PPG arms) has fewer than ``seeds`` seeds in common with the baseline on some game,
    or none.
    """
    short = [game.removeprefix("MinAtar/").removesuffix("-v1") for game in games]
    lines = [
        "| arm | " + " | ".join(f"{name}: return, cost (seeds)" for name in short) + " | geometric mean: return, cost |",
        "|---|" + "---|" * (len(games) + 1),
    ]
    # Arms not yet run on every game are shown, without a geometric mean
    for arm in sorted(arm for arm in arms if any(arm in results[game] for game in games)):
        cells = [
            f"{results[game][arm].return_ratio:.2f}, {results[game][arm].cost_ratio:.2f} ({results[game][arm].seeds})"
            if arm in results[game]
            else "not run"
            for game in games
        ]
        mean = f"{scores[arm][0]:.2f}, {scores[arm][1]:.2f}" if arm in scores else "not on every game"
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {mean} |")
    timed = ", ".join(game.removeprefix("MinAtar/").removesuffix("-v1") for game in cost_games(results, games))
    lines.append("")
    lines.append(f"Ratios over the seeds each arm shares with {BASELINE}; the cost's geometric mean is over {timed}.")
    if not is_final(results, games, arms, seeds):
        return "\n".join(lines) + f"\n\nProvisional (fewer than {seeds} seeds somewhere): `{chosen}`.\n"
    return "\n".join(lines) + f"\n\nChosen: `{chosen}`.\n"


def is_final(results: Results, games: Sequence[str], arms: Sequence[str], seeds: int) -> bool:
    """
    Whether every one of ``arms`` (the main PPG arms) has ``seeds`` seeds in common with the baseline on every game:
    an arm still short of them somewhere keeps the choice open, as steps 1 and 2 weigh every main arm.
    """
    return min(results[game][arm].seeds if arm in results[game] else 0 for game in games for arm in arms) >= seeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="results folder")
    parser.add_argument("--tolerance", type=float, default=0.05, help="how far below the best a cheaper arm may be")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per arm and game before the choice is final")
    parser.add_argument("--write-docs", type=Path, help="a docs page whose quoted output to replace with this one")
    args = parser.parse_args(argv)
    if not 0 <= args.tolerance < 1:
        parser.error(f"--tolerance must be in [0, 1), got {args.tolerance}")
    report = entry_report(Path(args.out), args.tolerance, args.seeds)
    if args.write_docs is not None:
        args.write_docs.write_text(quote_in_page(args.write_docs.read_text(), report))
    print(report, end="")
    return 0


def quote_in_page(page: str, report: str) -> str:
    """
    :param page: a docs page with one ``DOCS_START`` ... ``DOCS_END`` block
    :param report: the script's output
    :return: the page with the block's contents replaced by ``report``
    """
    if page.count(DOCS_START) != 1 or page.count(DOCS_END) != 1 or page.index(DOCS_START) > page.index(DOCS_END):
        raise ValueError(f"the page needs one {DOCS_START.strip()} ... {DOCS_END} block")
    before, rest = page.split(DOCS_START)
    _, after = rest.split(DOCS_END)
    return before + DOCS_START + report + DOCS_END + after


def entry_report(out: Path, tolerance: float = 0.05, seeds: int = 5) -> str:
    """
    The script's output, which the docs' Benchmarks page quotes whole: the per-game table, then the ratios and the
    choice.

    :param out: the results folder
    :param tolerance: how far below the best a cheaper arm may be
    :param seeds: seeds per arm and game before the choice is final
    """
    # The held-out game is in the table, never in the choice
    rows_by_game = {game: read_rows(run_files(out, game)) for game in (*MINATAR_ENVS, MINATAR_HELD_OUT)}
    chosen, results, scores = choose_entry(rows_by_game, tolerance)
    games = render_games(rows_by_game, [*MINATAR_PPG_ARMS, *MINATAR_PPO_CONTROLS, "ppg"])
    report = games + "\n" + render(results, MINATAR_ENVS, chosen, scores, seeds, list(MINATAR_PPG_ARMS))
    for section in (render_controls(rows_by_game), render_ppo_choice(rows_by_game, chosen, tolerance, seeds)):
        report += "\n" + section if section else ""
    return report


def choose_entry(rows_by_game: Mapping[str, Sequence[Row]], tolerance: float = 0.05) -> tuple[str, Results, Scores]:
    """
    Steps 1 and 2 of the rule over ``MINATAR_ENVS``.

    :param rows_by_game: every run of each game (others are ignored)
    :param tolerance: how far below the best a cheaper arm may be
    :return: the chosen arm, the per-game results and the candidates' scores
    """
    results = {game: game_results(rows_by_game[game], list(MINATAR_PPG_ARMS)) for game in MINATAR_ENVS}
    chosen, scores = choose(results, MINATAR_ENVS, tolerance)
    return chosen, results, scores


if __name__ == "__main__":
    sys.exit(main())
