"""Run files of the benchmark: one CSV per (arm, seed), written atomically, and the combined CSVs."""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

# cpu_s: the training process's CPU seconds, evaluations left out; blank in runs made before it was recorded
COLUMNS = ("algo", "seed", "timesteps", "eval_mean", "eval_std", "wall_s", "cpu_s")

Row = dict[str, Any]


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
                        "cpu_s": float(raw["cpu_s"]) if raw.get("cpu_s") else math.nan,
                    }
                )
    return rows


# Committed with the results, so a benchmark resumes on another machine ("runs/" is ignored: the zoo's logs)
RUN_FILES_DIR = "run_files"


def run_path(out: Path, env_id: str, arm: str, seed: int) -> Path:
    """The per-run file of (arm, seed)."""
    return out / RUN_FILES_DIR / env_id / f"{arm}_seed{seed}.csv"


def run_files(out: Path, env_id: str) -> list[Path]:
    """Every run file of an env, in name order."""
    return sorted((out / RUN_FILES_DIR / env_id).glob("*.csv"))


def run_is_complete(path: Path, timesteps: int, train_seconds: float | None = None) -> bool:
    """
    Whether a run file exists and its last evaluation is at or past ``timesteps``, or past ``train_seconds`` of
    training CPU time when given: a file from a shorter budget would otherwise be reused silently.
    """
    if not path.exists():
        return False
    rows = read_rows([path])
    if not rows:
        return False
    last = max(rows, key=lambda row: row["timesteps"])
    return last["timesteps"] >= timesteps or (train_seconds is not None and last["cpu_s"] >= train_seconds)


def run_missing(
    out: Path, name: str, arms: Sequence[str], seeds: int, timesteps: int, run: Callable[[str, int], object]
) -> list[Row]:
    """
    Run each (arm, seed) whose run file is missing or short, seed-major, one at a time, so an interrupted benchmark
    resumes where it stopped.

    :param out: the results directory
    :param name: the task's name in the run files
    :param arms: the arms, in report order
    :param seeds: seeds 0 to ``seeds`` - 1
    :param timesteps: the steps a complete run reaches
    :param run: trains (arm, seed) and writes its run file
    :return: the rows of every run file of the task, sorted by arm (in ``arms`` order, others after), seed and steps
    """
    for seed in range(seeds):
        for arm in arms:
            path = run_path(out, name, arm, seed)
            if run_is_complete(path, timesteps):
                print(f"skipped {arm} seed {seed}: {path} exists", flush=True)
                continue
            run(arm, seed)
    order = {arm: i for i, arm in enumerate(arms)}
    rows = read_rows(run_files(out, name))
    rows.sort(key=lambda row: (order.get(row["algo"], len(arms)), row["algo"], row["seed"], row["timesteps"]))
    return rows


def group_runs(rows: Iterable[Row]) -> dict[str, dict[int, list[Row]]]:
    """Rows grouped by arm then seed, each run sorted by timesteps."""
    runs: dict[str, dict[int, list[Row]]] = {}
    for row in rows:
        runs.setdefault(row["algo"], {}).setdefault(row["seed"], []).append(row)
    for seeds in runs.values():
        for run in seeds.values():
            run.sort(key=lambda row: row["timesteps"])
    return runs
