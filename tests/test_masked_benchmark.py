"""benchmarks/masked.py end to end on a tiny budget: every arm runs, resumes, and lands in the report."""

import csv
import subprocess
import sys
from pathlib import Path

from benchmarks.masked import ARM_KWARGS, ARMS

ROOT = Path(__file__).resolve().parents[1]


def run_masked(out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "benchmarks/masked.py", "--seeds", "1", "--timesteps", "1024", "--dim", "10"]
    command += ["--invalid", "5", "--threshold", "50", "--eval-freq", "512", "--eval-episodes", "1", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_every_arm_runs_resumes_and_is_reported(tmp_path):
    run_masked(tmp_path)
    name = "InvalidActionEnvDiscrete-10-5"
    with (tmp_path / f"{name}.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert {row["algo"] for row in rows} == set(ARMS)
    assert {int(row["timesteps"]) for row in rows} >= {1024}
    report = (tmp_path / f"{name}.md").read_text()
    for arm in ARMS:
        assert f"| {arm} | 1 |" in report
    assert "skipped" in run_masked(tmp_path).stdout


def test_the_matched_arms_differ_from_the_main_ones_in_one_thing_each():
    # PPO with PPG's policy epochs, and PPG without its aux phase: each isolates one difference
    ppg_epochs = ARM_KWARGS["maskable-ppg"]["n_epochs"]
    assert ARM_KWARGS["maskable-ppo-4-epochs"] == dict(ARM_KWARGS["maskable-ppo"], n_epochs=ppg_epochs)
    no_aux = dict(ARM_KWARGS["maskable-ppg"], n_aux_epochs=0)
    assert ARM_KWARGS["maskable-ppg-no-aux"] == no_aux
