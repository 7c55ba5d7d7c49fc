"""
Arms from different result folders side by side: a one-key sweep writes its runs under its own ``--out``, and this
sets them against the main benchmark's arms on the same seeds. It prints the report's equal-steps and equal-time
table (the first arm is the baseline) and the two-sided Mann-Whitney p of every pair of arms, on the final returns,
the mean returns over the run, and the returns at the cheapest arm's training time.

    python benchmarks/pairs.py --env LunarLanderNoVel-v3 benchmarks/results:ppo-lstm benchmarks/results:ppg-lstm \
        "benchmarks/results/sweeps/LunarLanderNoVel-v3/n_epochs_10:ppg-lstm=ppg-lstm, E_pi 10"

Each arm is ``FOLDER:ARM`` (its run files are ``FOLDER/run_files/<env>/<ARM>_seed<k>.csv``), with ``=LABEL`` to name
it in the tables; labels must differ.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

# Run as a script: the repository root holds the benchmarks package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.curves import CurveSummary, format_p, mann_whitney_p, render_curves, summarize_curves, training_clock
from benchmarks.files import RUN_FILES_DIR, Row, read_rows

# The per-seed values each p compares: (the table's name for them, the summary's field)
COMPARED = (("final", "finals"), ("mean over the run", "areas"), ("return at the time budget", "at_budget"))


def parse_arm(spec: str) -> tuple[Path, str, str]:
    """
    One ``FOLDER:ARM[=LABEL]`` argument.

    :param spec: the argument
    :return: the folder, the arm's name in its run files, and its label (the arm's name when none is given)
    """
    location, _, label = spec.partition("=")
    folder, colon, arm = location.rpartition(":")
    if not colon or not folder or not arm:
        raise ValueError(f"An arm is FOLDER:ARM or FOLDER:ARM=LABEL, got {spec!r}")
    return Path(folder), arm, label or arm


def read_arm(folder: Path, env_id: str, arm: str, label: str) -> list[Row]:
    """
    Every run file of one arm, its rows relabelled.

    :param folder: the benchmark's ``--out``
    :param env_id: the env
    :param arm: the arm's name in its run files
    :param label: its name in the tables
    :return: the rows
    """
    paths = sorted((folder / RUN_FILES_DIR / env_id).glob(f"{arm}_seed*.csv"))
    if not paths:
        raise FileNotFoundError(f"No run files of {arm!r} under {folder / RUN_FILES_DIR / env_id}")
    return [{**row, "algo": label} for row in read_rows(paths)]


def render_pairs(summaries: dict[str, CurveSummary], labels: Sequence[str]) -> str:
    """
    The Mann-Whitney p of every pair of arms, for each of ``COMPARED``.

    :param summaries: per-arm summaries from ``summarize_curves``
    :param labels: the arms in table order
    :return: markdown
    """
    lines = ["## Every pair of arms", "", "Two-sided Mann-Whitney U test of the per-seed values.", ""]
    lines += [f"| arm | against | {' | '.join(f'p, {name}' for name, _ in COMPARED)} |", "|---|---|---|---|---|"]
    for i, first in enumerate(labels):
        for second in labels[i + 1 :]:
            cells = [
                format_p(mann_whitney_p(getattr(summaries[first], field), getattr(summaries[second], field)))
                for _, field in COMPARED
            ]
            lines.append(f"| {first} | {second} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def compare_arms(env_id: str, specs: Sequence[str]) -> str:
    """
    The side-by-side report of the arms.

    :param env_id: the env
    :param specs: ``FOLDER:ARM[=LABEL]`` of each arm; the first is the baseline
    :return: markdown
    """
    arms = [parse_arm(spec) for spec in specs]
    labels = [label for _, _, label in arms]
    if len(arms) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"Give at least two arms with different labels, got {', '.join(labels)}")
    rows = [row for folder, arm, label in arms for row in read_arm(folder, env_id, arm, label)]
    clock = training_clock(rows)
    budget, summaries = summarize_curves(rows, clock)
    sources = "".join(f"- {label}: `{folder}`, arm `{arm}`\n" for folder, arm, label in arms)
    return (
        f"# {env_id}: arms side by side\n\n{sources}\n"
        + render_curves(budget, summaries, labels, baseline=labels[0], clock=clock)
        + "\n"
        + render_pairs(summaries, labels)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the side-by-side report of the arms named on the command line, and write it with ``--write``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, help="the env id of the run files")
    parser.add_argument("arms", nargs="+", help="FOLDER:ARM or FOLDER:ARM=LABEL; the first is the baseline")
    parser.add_argument("--write", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    try:
        markdown = compare_arms(args.env, args.arms)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    print(markdown, end="")
    if args.write is not None:
        args.write.write_text(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
