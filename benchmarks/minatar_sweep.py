"""
The one-key sweep of the MinAtar benchmark (step 3 of the entry rule in ``benchmarks/README.md``): one PPG arm on one
game, one setting changed at a time, 3 seeds, 2M steps, one run at a time (one core).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/minatar_sweep.py run Freeway-v1 ppg-detach
    python benchmarks/minatar_sweep.py report Freeway-v1 ppg-detach

Each setting writes under ``<out>/sweeps/MinAtar-<Game>/<key>_<value>/`` and resumes from its run files. The values
are E_pi (with E_V) 1, 2, 4 and 8, N_pi 4, 16 and 32, E_aux 2, 6 and 9, beta_clone 0.3, 1 and 3, aux_batch_size 256,
1024 and 4096 and arch dual, detach and shared, less the arm's own and those that make another main arm (E_pi 1 of
``ppg-e4`` is ``ppg-e1``): the report reads those from the main benchmark. Every setting is read against the arm
itself and ``ppo`` on the same seeds of the main benchmark, which must exist before the sweep starts.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

# Run as a script: the repository root holds the benchmarks package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.configs import MINATAR_PPG_ARMS, minatar_arm_config
from benchmarks.curves import format_p, mann_whitney_p, mean_std
from benchmarks.files import Row, group_runs, read_rows, run_files, run_is_complete, run_path
from benchmarks.minatar_entry import time_per_step

# The values tried for each key; E_pi moves with E_V, as in the main arms
SWEEP_VALUES: dict[str, tuple[Any, ...]] = {
    "n_epochs": (1, 2, 4, 8),
    "n_policy_iterations": (4, 16, 32),
    "n_aux_epochs": (2, 6, 9),
    "beta_clone": (0.3, 1.0, 3.0),
    "aux_batch_size": (256, 1024, 4096),
    "arch": ("dual", "detach", "shared"),
}
BASELINE = "ppo"
TIMESTEPS = 2_000_000
# What made a setting's runs, beside them: runs of other settings or code are never read as this one's
SETTING_FILE = "setting.json"


def arm_values(arm: str) -> dict[str, Any]:
    """The swept keys' values of a main PPG arm."""
    from sb3_ppg import PPG

    hyperparams = minatar_arm_config(arm, "MinAtar/Asterix-v1")["hyperparams"]
    defaults = inspect.signature(PPG).parameters
    values = {key: hyperparams.get(key, defaults[key].default) for key in SWEEP_VALUES if key != "arch"}
    return {**values, "arch": hyperparams["policy_kwargs"]["arch"]}


def overrides_of(key: str, value: Any) -> dict[str, Any]:
    """The arm's constructor arguments that one swept value replaces."""
    if key == "arch":
        return {"policy_kwargs": {"arch": value}}
    if key == "n_epochs":
        return {"n_epochs": value, "n_value_epochs": value}
    return {key: value}


def sweep_settings(arm: str) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """
    :param arm: one of ``MINATAR_PPG_ARMS``
    :return: the settings to run (folder name to overrides), and the settings that are another main arm (folder name
        to that arm), each in ``SWEEP_VALUES`` order
    """
    if arm not in MINATAR_PPG_ARMS:
        raise ValueError(f"arm must be one of {', '.join(MINATAR_PPG_ARMS)}, got {arm!r}")
    own = arm_values(arm)
    main_arms = {name: arm_values(name) for name in MINATAR_PPG_ARMS if name != arm}
    to_run: dict[str, dict[str, Any]] = {}
    main: dict[str, str] = {}
    for key, values in SWEEP_VALUES.items():
        for value in values:
            if value == own[key]:
                continue
            changed = {**own, key: value}
            name = f"{key}_{value}"
            other = next((main_arm for main_arm, values in main_arms.items() if values == changed), None)
            if other is not None:
                main[name] = other
            else:
                to_run[name] = overrides_of(key, value)
    return to_run, main


def sweep_dir(out: Path, game: str, name: str) -> Path:
    """The results folder of one setting."""
    return out / "sweeps" / f"MinAtar-{game.removesuffix('-v1')}" / name


def check_baselines(out: Path, env_id: str, arm: str, seeds: int) -> None:
    """Refuse to sweep until the main benchmark has complete ``ppo`` and arm runs at the sweep's seeds."""
    for seed in range(seeds):
        for baseline in (BASELINE, arm):
            path = run_path(out, env_id, baseline, seed)
            if not run_is_complete(path, TIMESTEPS):
                message = f"run the main benchmark's {baseline} seed {seed} on {env_id} first: {path} is missing or short"
                raise FileNotFoundError(message)


def check_setting(folder: Path, env_id: str, arm: str, overrides: dict[str, Any], write: bool = False) -> None:
    """
    Refuse a setting's folder whose runs were made for another arm or other overrides (its ``setting.json``), or
    whose runs have no record of what made them; with ``write``, record them in a new folder.
    """
    path = folder / SETTING_FILE
    expected = {"arm": arm, "overrides": overrides}
    if path.exists():
        recorded = json.loads(path.read_text())
        if recorded != expected:
            raise ValueError(f"{folder} holds runs of {recorded}, not {expected}: move it away to rerun")
    elif any(file.name.startswith(f"{arm}_") for file in run_files(folder, env_id)):
        raise ValueError(f"{folder} holds {arm} runs without a {SETTING_FILE}: move it away to rerun")
    elif write:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(expected, indent=1) + "\n")


def run(out: Path, game: str, arm: str, seeds: int, dry_run: bool = False) -> int:
    """Run every missing (setting, seed), copying the main benchmark's ``ppo`` run files beside each setting's."""
    env_id = f"MinAtar/{game}"
    check_baselines(out, env_id, arm, seeds)
    failures = 0
    for name, overrides in sweep_settings(arm)[0].items():
        folder = sweep_dir(out, game, name)
        check_setting(folder, env_id, arm, overrides, write=not dry_run)
        for seed in range(seeds):
            copy = run_path(folder, env_id, BASELINE, seed)
            if not copy.exists() and not dry_run:
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(run_path(out, env_id, BASELINE, seed), copy)
        command = [sys.executable, str(Path(__file__).resolve().parent / "compare.py"), "--env", env_id]
        command += ["--seeds", str(seeds), "--arms", arm, "--timesteps", str(TIMESTEPS), "--jobs", "1"]
        command += ["--eval-freq", "100000", "--eval-episodes", "10", "--out", str(folder)]
        for key, value in overrides.items():
            command += ["--ppg", f"{key}={_yaml(value)}"]
        print(shlex.join(command), flush=True)
        if not dry_run:
            failures += subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode != 0
    return 1 if failures else 0


def _yaml(value: Any) -> str:
    """A value as compare.py's ``--ppg KEY=VALUE`` reads it back (YAML, flow style)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _complete_finals(runs: dict[int, list[Row]], seeds: Sequence[int]) -> dict[int, float]:
    """Each seed's final return, for the seeds whose run reached the sweep's budget."""
    last = {seed: runs[seed][-1] for seed in seeds if seed in runs}
    return {seed: float(row["eval_mean"]) for seed, row in last.items() if row["timesteps"] >= TIMESTEPS}


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}" if denominator > 0 and math.isfinite(numerator / denominator) else "n/a"


def report(out: Path, game: str, arm: str, seeds: int) -> str:
    """
    The sweep's table: per setting, the final return (mean ± std over its complete seeds), its ratios to the arm's
    and to ``ppo``'s means over the same seeds, the Mann-Whitney p against the arm on them, the training CPU time per
    step over the arm's (n/a without CPU times), and whether it beats the arm: complete on every seed, with a mean
    above the arm's by more than the larger of the two sample standard deviations. The main arms that are a setting
    (e.g. arch dual of ``ppg-detach``) are shown but never "beat": steps 1 and 2 of the rule weighed them already.
    """
    env_id = f"MinAtar/{game}"
    main_runs = group_runs(read_rows(run_files(out, env_id)))
    chosen = list(range(seeds))
    own = _complete_finals(main_runs.get(arm, {}), chosen)
    base = _complete_finals(main_runs.get(BASELINE, {}), chosen)
    if len(own) < seeds or len(base) < seeds:
        raise ValueError(f"the main benchmark needs complete {arm} and {BASELINE} seeds 0 to {seeds - 1} on {env_id}")
    to_run, main = sweep_settings(arm)
    lines = [
        f"# One-key sweep of `{arm}` on {env_id} ({seeds} seeds, {TIMESTEPS:,} steps)",
        "",
        f"`{arm}`: {mean_std(list(own.values()))}; `{BASELINE}`: {mean_std(list(base.values()))} (the main "
        f"benchmark's seeds 0 to {seeds - 1}). Ratios and p are over the seeds of the row. Beats: complete on every "
        "seed, with a mean above the arm's by more than the larger of the two sample standard deviations. Cost: "
        "training CPU time per step over the arm's (the sweep's runs and the main ones may have run under different "
        "loads).",
        "",
        f"| setting | seeds | final | vs `{arm}` | vs `{BASELINE}` | p vs `{arm}` | cost | beats `{arm}` |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in [*to_run, *main]:
        if name in main:
            runs, label = main_runs.get(main[name], {}), f"{name} (`{main[name]}`)"
        else:
            folder = sweep_dir(out, game, name)
            check_setting(folder, env_id, arm, to_run[name])
            runs, label = group_runs(read_rows(run_files(folder, env_id))).get(arm, {}), name
        finals = _complete_finals(runs, chosen)
        if not finals:
            lines.append(f"| {label} | 0/{seeds} | not run | | | | | |")
            continue
        shared = sorted(finals)
        values, own_values = [finals[seed] for seed in shared], [own[seed] for seed in shared]
        mean, own_mean = statistics.fmean(values), statistics.fmean(own_values)
        if len(values) < seeds:
            beats = "incomplete"
        else:
            margin = max(statistics.stdev(values), statistics.stdev(own_values)) if seeds > 1 else 0.0
            beats = "yes" if mean - own_mean > margin else "no"
        if name in main:
            # Shown, never chosen here: steps 1 and 2 weigh a main arm over the four games
            beats += " (steps 1-2)"
        timed = all(math.isfinite(group[seed][-1]["cpu_s"]) for group in (runs, main_runs[arm]) for seed in shared)
        arm_time = time_per_step([main_runs[arm][seed] for seed in shared], "cpu_s")
        cost = _ratio(time_per_step([runs[seed] for seed in shared], "cpu_s"), arm_time) if timed else "n/a"
        lines.append(
            f"| {label} | {len(values)}/{seeds} | {mean_std(values)} | {_ratio(mean, own_mean)} | "
            f"{_ratio(mean, statistics.fmean(base[seed] for seed in shared))} | "
            f"{format_p(mann_whitney_p(values, own_values))} | "
            f"{cost} | {beats} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("game", help="a MinAtar game, e.g. Asterix-v1")
    parser.add_argument("arm", choices=list(MINATAR_PPG_ARMS), help="the PPG arm to sweep")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 to SEEDS - 1 of every setting")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="results folder")
    parser.add_argument("--dry-run", action="store_true", help="print the runs' commands without running them")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    out = Path(args.out)
    try:
        if args.command == "run":
            return run(out, args.game, args.arm, args.seeds, args.dry_run)
        text = report(out, args.game, args.arm, args.seeds)
    except (FileNotFoundError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    print(text, end="")
    path = sweep_dir(out, args.game, f"{args.arm}.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
