"""Tests of benchmarks/compare.py: tiny end-to-end runs with resume, the MinAtar arms, and the summary arithmetic."""

import csv
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.compare import (
    ARMS,
    COLUMNS,
    render_markdown,
    read_rows,
    run_files,
    run_is_complete,
    run_path,
    steps_to_threshold,
    summarize,
    write_rows,
)

ROOT = Path(__file__).resolve().parents[1]
ENV = "CartPole-v1"


def run_compare(out: Path) -> subprocess.CompletedProcess:
    """Run the benchmark tool on a tiny budget."""
    command = [sys.executable, "benchmarks/compare.py", "--env", ENV, "--seeds", "2", "--timesteps", "2000"]
    command += ["--eval-freq", "1000", "--eval-episodes", "2", "--jobs", "1", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=80)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def run_one_evaluation(env: str, timesteps: int, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """Run every arm of an env for one seed, evaluated once (one episode) at the end of its budget."""
    command = [sys.executable, "benchmarks/compare.py", "--env", env, "--seeds", "1", "--timesteps", str(timesteps)]
    command += ["--eval-freq", str(timesteps), "--eval-episodes", "1", "--jobs", "1", "--out", str(out), *extra]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """The output directory and process of one tiny benchmark."""
    out = tmp_path_factory.mktemp("bench")
    return out, run_compare(out)


def test_outputs(first_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    """The CSV, PNG and MD exist; the CSV has exactly the columns and every (arm, seed) with both evaluations."""
    out, result = first_run
    for suffix in ("csv", "png", "md"):
        assert (out / f"{ENV}.{suffix}").stat().st_size > 0
    with open(out / f"{ENV}.csv", newline="") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    assert {(row["algo"], int(row["seed"])) for row in rows} == {(arm, seed) for arm in ARMS for seed in range(2)}
    for arm in ARMS:
        for seed in range(2):
            steps = [int(row["timesteps"]) for row in rows if row["algo"] == arm and int(row["seed"]) == seed]
            # 8 envs x 32 steps per rollout: evaluations after 1024 and 2048 steps
            assert steps == [1024, 2048]
    assert all(float(row["wall_s"]) > 0 and float(row["cpu_s"]) > 0 for row in rows)
    assert "eval mean" in result.stdout
    assert not list(out.rglob("*.tmp")), "temporary files left behind"
    markdown = (out / f"{ENV}.md").read_text()
    assert "PPG/ppo" in markdown and "PPG/ppo-matched" in markdown


def test_resume_skips_finished_runs(first_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    """A second invocation redoes no run and rebuilds the reports from the run files."""
    out, _ = first_run
    finished = run_files(out, ENV)
    assert len(finished) == len(ARMS) * 2
    mtimes = {path: path.stat().st_mtime_ns for path in finished}
    combined = (out / f"{ENV}.csv").read_text()
    result = run_compare(out)
    assert result.stdout.count("skipped") == len(ARMS) * 2
    assert "eval mean" not in result.stdout
    assert {path: path.stat().st_mtime_ns for path in finished} == mtimes
    assert (out / f"{ENV}.csv").read_text() == combined


def make_rows(algo: str, seed: int, points: list[tuple[int, float, float]]) -> list[dict[str, Any]]:
    """Rows of one run from (timesteps, eval_mean, wall_s) points."""
    return [{"algo": algo, "seed": seed, "timesteps": t, "eval_mean": m, "eval_std": 0.0, "wall_s": w} for t, m, w in points]


def hand_made_rows() -> list[dict[str, Any]]:
    """Three PPG seeds (one never reaches 200), two PPO seeds that never do, two ppo-matched seeds that do."""
    return (
        make_rows("ppg", 0, [(1000, 100.0, 1.0), (2000, 210.0, 2.0), (3000, 250.0, 3.0)])
        + make_rows("ppg", 1, [(3000, 190.0, 4.5), (1000, 50.0, 1.5), (2000, 150.0, 3.0)])  # unsorted on purpose
        + make_rows("ppg", 2, [(1000, 200.0, 1.0), (2000, 180.0, 2.0), (3000, 220.0, 3.0)])
        + make_rows("ppo", 0, [(1000, 10.0, 1.0), (2000, 20.0, 2.0)])
        + make_rows("ppo", 1, [(1000, 30.0, 1.0), (2000, 40.0, 2.0)])
        + make_rows("ppo-matched", 0, [(2000, 150.0, 1.0), (4000, 205.0, 2.0)])
        + make_rows("ppo-matched", 1, [(2000, 199.9, 1.0), (4000, 300.0, 6.0)])
    )


def test_steps_to_threshold() -> None:
    """First evaluation at or above the threshold (ties count), infinity when never reached."""
    rows = hand_made_rows()
    assert steps_to_threshold([r for r in rows if r["algo"] == "ppg" and r["seed"] == 0], 200.0) == (2000.0, 2.0)
    assert steps_to_threshold([r for r in rows if r["algo"] == "ppg" and r["seed"] == 2], 200.0) == (1000.0, 1.0)
    assert steps_to_threshold([r for r in rows if r["algo"] == "ppg" and r["seed"] == 1], 200.0) == (math.inf, math.inf)
    assert steps_to_threshold([r for r in rows if r["algo"] == "ppg" and r["seed"] == 1], 150.0) == (2000.0, 3.0)


def test_summary_and_markdown() -> None:
    """Final means, medians with not-reached seeds as infinity, throughput, and the rendered report."""
    summaries = summarize(hand_made_rows(), 200.0)
    ppg, ppo, matched = summaries["ppg"], summaries["ppo"], summaries["ppo-matched"]
    assert ppg.n_seeds == 3 and ppg.n_reached == 2
    assert ppg.final_mean == pytest.approx((250 + 190 + 220) / 3)
    assert ppg.final_std == pytest.approx(math.sqrt(((250 - 220) ** 2 + (190 - 220) ** 2 + 0) / 3))
    assert (ppg.median_steps, ppg.median_wall_s) == (2000.0, 2.0)  # median of {2000, inf, 1000}
    assert ppg.steps_per_s == pytest.approx((1000 + 3000 / 4.5 + 1000) / 3)
    assert ppo.n_reached == 0 and math.isinf(ppo.median_steps) and math.isinf(ppo.median_wall_s)
    assert (matched.median_steps, matched.median_wall_s) == (4000.0, 4.0)  # median of {4000, 4000}, of {2, 6}
    markdown = render_markdown("Test-v0", 200.0, summaries)
    assert "| ppg | 3 | 220.0 ± 24.5 | 2000 (2/3 seeds reached) | 2.0 (2/3 seeds reached) | 889 |" in markdown
    assert "not reached (0/2 seeds reached)" in markdown
    assert "| PPG/ppo | n/a | n/a |" in markdown
    assert "| PPG/ppo-matched | 0.50 | 0.50 |" in markdown
    assert "ppo's final" not in markdown


def test_markdown_reports_steps_to_ppo_final_return() -> None:
    """The second table measures every arm against the ppo arm's final mean, (20 + 40) / 2 = 30 here."""
    rows = hand_made_rows()
    summaries = summarize(rows, 200.0)
    to_ppo_final = summarize(rows, summaries["ppo"].final_mean)
    assert to_ppo_final["ppg"].median_steps == 1000.0  # every PPG seed is at 50 or more at 1000 steps
    assert to_ppo_final["ppo"].n_reached == 1 and math.isinf(to_ppo_final["ppo"].median_steps)  # seed 0 ends at 20
    assert to_ppo_final["ppo-matched"].median_steps == 2000.0
    markdown = render_markdown("Test-v0", 200.0, summaries, to_ppo_final)
    assert "## To the ppo arm's final eval mean (30.0)" in markdown
    assert "| ppg | 3 | 220.0 ± 24.5 | 1000 (3/3 seeds reached) | 1.0 (3/3 seeds reached) | 889 |" in markdown
    assert "| PPG/ppo-matched | 0.50 | 1.00 |" in markdown.split("## To the ppo")[1]  # walls: {1, 1.5, 1} vs {1, 1}


def test_a_run_file_from_a_shorter_budget_is_rerun(tmp_path: Path) -> None:
    """Resume only skips run files that reach the requested budget."""
    path = run_path(tmp_path, ENV, "ppg", 0)
    assert not run_is_complete(path, 2000)
    path.parent.mkdir(parents=True)
    write_rows(path, make_rows("ppg", 0, [(1024, 20.0, 1.0), (2048, 30.0, 2.0)]))
    assert run_is_complete(path, 2000) and run_is_complete(path, 2048)
    assert not run_is_complete(path, 4096)


def test_ppg_overrides_reach_only_the_ppg_arm() -> None:
    """--ppg KEY=VALUE values are parsed as YAML and change the ppg arm only."""
    from benchmarks.compare import arm_config, parse_args

    args = parse_args(["--env", "CartPole-v1", "--arms", "ppg", "--ppg", "n_policy_iterations=2", "--ppg", "beta_clone=0.5"])
    assert args.arms == ["ppg"]
    assert args.ppg_overrides == {"n_policy_iterations": 2, "beta_clone": 0.5}
    assert arm_config("ppg", "CartPole-v1", args.ppg_overrides)["hyperparams"]["n_policy_iterations"] == 2
    assert "n_policy_iterations" not in arm_config("ppo-matched", "CartPole-v1", args.ppg_overrides)["hyperparams"]


def test_speed_times_each_arm_and_reports_ratios(tmp_path):
    out = tmp_path / "speed.csv"
    command = [sys.executable, "benchmarks/speed.py", "--env", ENV, "--timesteps", "512", "--repeats", "2"]
    command += ["--arms", "ppg", "ppo", "--out", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    with out.open() as file:
        rows = list(csv.DictReader(file))
    # Interleaved: ppg, ppo, ppg, ppo
    assert [(row["arm"], row["repeat"]) for row in rows] == [("ppg", "0"), ("ppo", "0"), ("ppg", "1"), ("ppo", "1")]
    for row in rows:
        assert float(row["steps_per_s"]) == pytest.approx(512 / float(row["wall_s"]), rel=0.01)
    report = out.with_suffix(".md").read_text()
    assert "| ppo | " in report and report.rstrip().endswith("| 1.000 |")


def test_speed_report_ratios_are_to_the_last_arm():
    from benchmarks.speed import render

    rows = [{"arm": "a", "steps_per_s": value} for value in (10.0, 30.0, 20.0)]
    rows += [{"arm": "b", "steps_per_s": value} for value in (40.0, 40.0)]
    report = render(rows, ["a", "b"], "cmd")
    assert "| a | 20 | 0.500 |" in report and "| b | 40 | 1.000 |" in report


def test_speed_refuses_arms_it_cannot_build():
    from benchmarks.speed import FAKE_IMAGE, build_model

    with pytest.raises(ValueError, match="--arms for FakeImage must be among ppg, ppg-shared, ppg-detach, ppo-shared"):
        build_model("ppo-matched", FAKE_IMAGE, seed=0)


def curve_rows() -> list[dict[str, Any]]:
    """ppo ends its seeds at 30 s and 36 s of training (the cheapest, 33 s on average); ppg and ppg-detach are slower."""
    return (
        make_rows("ppo", 0, [(100, 1.0, 10.0), (200, 3.0, 20.0), (300, 5.0, 30.0)])
        + make_rows("ppo", 1, [(100, 2.0, 12.0), (200, 2.0, 24.0), (300, 6.0, 36.0)])
        + make_rows("ppg", 0, [(100, 4.0, 30.0), (200, 6.0, 60.0), (300, 10.0, 90.0)])
        + make_rows("ppg", 1, [(300, 14.0, 90.0), (100, 0.0, 30.0), (200, 10.0, 60.0)])  # unsorted on purpose
        + make_rows("ppg-detach", 0, [(100, 1.0, 40.0), (300, 3.0, 50.0)])  # no evaluation within 33 s
        + make_rows("ppg-detach", 1, [(100, 7.0, 20.0), (300, 9.0, 66.0)])
    )


def test_area_under_curve_is_the_mean_return_over_the_steps() -> None:
    from benchmarks.curves import area_under_curve

    rows = curve_rows()
    # (100 * (1 + 3) / 2 + 100 * (3 + 5) / 2) / 200
    assert area_under_curve([r for r in rows if r["algo"] == "ppo" and r["seed"] == 0]) == 3.0
    # (100 * (0 + 10) / 2 + 100 * (10 + 14) / 2) / 200, from unsorted rows
    assert area_under_curve([r for r in rows if r["algo"] == "ppg" and r["seed"] == 1]) == 8.5
    # Uneven spacing: (200 * (1 + 3) / 2) / 200
    assert area_under_curve([r for r in rows if r["algo"] == "ppg-detach" and r["seed"] == 0]) == 2.0
    assert area_under_curve(make_rows("ppo", 0, [(100, 7.0, 1.0)])) == 7.0
    with pytest.raises(ValueError):
        area_under_curve([])


def test_return_at_wall_clock_is_the_last_evaluation_by_then() -> None:
    from benchmarks.curves import return_at_wall_clock

    run = make_rows("ppo", 1, [(100, 2.0, 12.0), (200, 3.0, 24.0), (300, 6.0, 36.0)])
    assert return_at_wall_clock(run, 33.0) == 3.0
    assert return_at_wall_clock(run, 24.0) == 3.0  # at the budget counts
    assert return_at_wall_clock(run, 100.0) == 6.0
    assert math.isnan(return_at_wall_clock(run, 11.9))


def test_mann_whitney_p() -> None:
    from benchmarks.curves import mann_whitney_p

    # Exact two-sided: 3 vs 3 fully separated is 2 of the C(6, 3) = 20 orderings
    assert mann_whitney_p([10.0, 12.0, 11.0], [5.0, 8.0, 7.0]) == pytest.approx(0.1)
    assert mann_whitney_p([1.0, 2.0], [3.0, 4.0]) == pytest.approx(2 / 6)
    # U = 2 is the middle of 0..4: no evidence either way
    assert mann_whitney_p([3.0, 9.0], [5.0, 6.0]) == pytest.approx(1.0)
    assert math.isnan(mann_whitney_p([], [1.0]))


def test_format_p_never_prints_a_false_zero() -> None:
    from benchmarks.curves import format_p, mann_whitney_p

    # 10 vs 10 fully separated: exact p = 2 / C(20, 10), about 1.1e-5, which three decimals would round to 0.000
    assert format_p(mann_whitney_p([float(v) for v in range(10, 20)], [float(v) for v in range(10)])) == "< 0.001"
    assert format_p(0.0005) == "0.001"
    assert format_p(0.0423) == "0.042"
    assert format_p(math.nan) == "nan"


def test_curves_at_equal_steps_and_equal_wall_clock() -> None:
    from benchmarks.configs import MINATAR_ARMS
    from benchmarks.curves import render_curves, summarize_curves

    budget, summaries = summarize_curves(curve_rows())
    assert budget == 33.0  # ppo's mean of 30 and 36; ppg's is 90, ppg-detach's 58
    ppg, detach = summaries["ppg"], summaries["ppg-detach"]
    assert ppg.finals == [10.0, 14.0] and ppg.areas == [6.5, 8.5] and ppg.at_budget == [4.0, 0.0]
    assert math.isnan(detach.at_budget[0]) and detach.at_budget[1] == 7.0
    assert detach.final_wall_s == 58.0
    markdown = render_curves(budget, summaries, MINATAR_ARMS)
    assert "| arm | seeds | final | area | p, final vs ppo | train s | cost | return at 33 s | ratio |" in markdown
    # Cost: time per step, ppo (0.1 + 0.12) / 2 = 0.11; ppg 0.3 (2.73x); ppg-detach (50 + 66) / 2 / 300 (1.76x)
    assert "| ppo | 2 | 5.5 ± 0.5 | 3.0 ± 0.0 |  | 33 | 1.00 | 3.5 ± 1.5 | 1.00 |" in markdown
    # p = 2 / 6 (U = 4 of 4); at 33 s: 4 and 0, against ppo's 5 and 2
    assert "| ppg | 2 | 12.0 ± 2.0 | 7.5 ± 1.0 | 0.333 | 90 | 2.73 | 2.0 ± 2.0 | 0.57 |" in markdown
    assert "| ppg-detach | 2 | 6.0 ± 3.0 | 5.0 ± 3.0 | 1.000 | 58 | 1.76 | 7.0 ± 0.0 (1/2 seeds) | 2.00 |" in markdown
    assert markdown.index("| ppo |") < markdown.index("| ppg |") < markdown.index("| ppg-detach |")


def test_curves_at_equal_cpu_time() -> None:
    """CPU seconds time the comparison when every run has them; one run without them falls back to wall-clock."""
    from benchmarks.curves import render_curves, summarize_curves, training_clock

    rows = curve_rows()
    assert training_clock(rows) == "wall_s"
    # Every wall-clock doubled by a busy machine; the CPU seconds are the wall-clock of curve_rows
    timed = [{**row, "wall_s": 2 * row["wall_s"], "cpu_s": row["wall_s"]} for row in rows]
    assert training_clock(timed) == "cpu_s"
    budget, summaries = summarize_curves(timed, "cpu_s")
    assert budget == 33.0 and summaries["ppg"].at_budget == [4.0, 0.0]
    assert summarize_curves(timed, "wall_s")[0] == 66.0
    markdown = render_curves(budget, summaries, ("ppo", "ppg", "ppg-detach"), clock="cpu_s")
    assert "## At equal env steps and at equal training CPU time" in markdown
    assert training_clock([*timed[:-1], {**timed[-1], "cpu_s": math.nan}]) == "wall_s"


def test_minatar_arms_share_the_env_side_settings() -> None:
    from benchmarks.compare import arm_config, parse_args
    from benchmarks.configs import MINATAR_ARMS
    from sb3_ppg.common.torch_layers import MinAtarCNN

    args = parse_args(["--env", "MinAtar/SpaceInvaders-v1", "--ppg", "n_aux_epochs=2"])
    assert tuple(args.arms) == MINATAR_ARMS
    assert MINATAR_ARMS == ("ppo", "ppg", "ppg-e1", "ppg-e4", "ppg-detach", "ppg-e8", "ppg-aux2", "ppo-e8", "ppo-dual")
    fixed_arms = [arm for arm in args.arms if arm != "ppg"]  # ppg is ppg.yml's entry, pinned in test_configs
    configs = {arm: arm_config(arm, args.env, args.ppg_overrides) for arm in fixed_arms}
    shared = ("n_steps", "batch_size", "gamma", "gae_lambda", "learning_rate", "ent_coef", "clip_range")
    for config in configs.values():
        assert config["n_envs"] == 64 and config["policy"] == "MlpPolicy" and not config["normalize"]
        ppo_hyperparams = configs["ppo"]["hyperparams"]
        assert {key: config["hyperparams"][key] for key in shared} == {key: ppo_hyperparams[key] for key in shared}
        assert config["hyperparams"]["policy_kwargs"]["features_extractor_class"] is MinAtarCNN
    assert configs["ppo"]["algo"] == "PPO" and configs["ppo"]["hyperparams"]["policy_kwargs"]["share_features_extractor"]
    assert configs["ppo"]["hyperparams"]["n_epochs"] == 4
    assert "n_aux_epochs" not in configs["ppo"]["hyperparams"]
    # ppg-e8's control: PPO itself, but for as many policy epochs as ppg-e8 makes
    assert {**configs["ppo-e8"]["hyperparams"], "n_epochs": 4} == configs["ppo"]["hyperparams"]
    assert configs["ppo-e8"]["hyperparams"]["n_epochs"] == configs["ppg-e8"]["hyperparams"]["n_epochs"] == 8
    # ppg-e4 against ppo-dual is the aux phase alone: PPO with separate actor and critic trunks, nothing else changed
    dual = configs["ppo-dual"]["hyperparams"]
    assert dual["policy_kwargs"]["share_features_extractor"] is False and configs["ppo-dual"]["algo"] == "PPO"
    assert {**dual, "policy_kwargs": configs["ppo"]["hyperparams"]["policy_kwargs"]} == configs["ppo"]["hyperparams"]
    # The step-3 arms are ppg-e4 with the one sweep key that beat it changed (here without the --ppg override)
    e4, e8, aux2 = (arm_config(arm, args.env)["hyperparams"] for arm in ("ppg-e4", "ppg-e8", "ppg-aux2"))
    assert e4["n_aux_epochs"] == 6 and {**aux2, "n_aux_epochs": 6} == e4
    assert {**e8, "n_epochs": 4, "n_value_epochs": 4} == e4
    for arm, arch, epochs in (("ppg-e1", "dual", 1), ("ppg-e4", "dual", 4), ("ppg-detach", "detach", 4)):
        hyperparams = configs[arm]["hyperparams"]
        assert configs[arm]["algo"] == "PPG" and hyperparams["policy_kwargs"]["arch"] == arch
        assert hyperparams["n_value_epochs"] == hyperparams["n_epochs"] == epochs
        assert hyperparams["n_policy_iterations"] == 16
        assert hyperparams["n_aux_epochs"] == 2  # the --ppg override, on every PPG arm
    with pytest.raises(SystemExit):
        parse_args(["--env", "MinAtar/Breakout-v1", "--arms", "ppo-matched"])


def test_minatar_end_to_end(tmp_path: Path) -> None:
    """One rollout (64 envs x 128 steps) per arm; the report has the equal-steps and equal-wall-clock section."""
    env = "MinAtar/Breakout-v1"
    result = run_one_evaluation(env, 8192, tmp_path)
    assert "Overriding environment" not in result.stderr  # MinAtar is registered once per process
    with open(tmp_path / f"{env}.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    arms = ["ppo", "ppg", "ppg-e1", "ppg-e4", "ppg-detach", "ppg-e8", "ppg-aux2", "ppo-e8", "ppo-dual"]
    assert [(row["algo"], int(row["timesteps"])) for row in rows] == [(arm, 8192) for arm in arms]
    markdown = (tmp_path / f"{env}.md").read_text()
    assert "## At equal env steps and at equal training CPU time" in markdown
    assert (tmp_path / f"{env}.png").stat().st_size > 0


def test_speed_refuses_arms_that_procgen_has_not():
    from benchmarks.speed import build_model

    with pytest.raises(ValueError, match="--arms for StarpilotHard-v0 must be among ppg, ppg-detach, ppo-reference"):
        build_model("ppo-matched", "StarpilotHard-v0", seed=0)


def test_long_ppo_is_read_at_each_arms_training_time() -> None:
    """ppo-long's return at each arm's mean training time: ppg trains 90 s, ppo-long had 8 and 12 by then."""
    from benchmarks.curves import render_long_baseline

    long_rows = make_rows("ppo-long", 0, [(300, 5.0, 30.0), (900, 8.0, 90.0), (1500, 9.0, 150.0)]) + make_rows(
        "ppo-long", 1, [(300, 6.0, 30.0), (900, 12.0, 85.0), (1500, 20.0, 140.0)]
    )
    rows = [row for row in curve_rows() if row["algo"] in ("ppo", "ppg")]
    markdown = render_long_baseline(rows, long_rows, "wall_s")
    assert "2 seeds, to 1,500 steps on average" in markdown
    # ppg: finals 10 and 14 (12.0) against 8 and 12 (10.0) at 90 s; U = 3 of 4 pairs, exact two-sided p = 2 * 2/6;
    # the steadier reading averages each seed's evaluations by 90 s: (5 + 8) / 2 and (6 + 12) / 2
    assert "| ppg | 90 | 12.0 ± 2.0 | 10.0 ± 2.0 | 0.667 | 1.20 | 7.8 ± 1.2 |" in markdown
    # ppo: 33 s, when ppo-long had 5 and 6, its first evaluations
    assert "| ppo | 33 | 5.5 ± 0.5 | 5.5 ± 0.5 | 1.000 | 1.00 | 5.5 ± 0.5 |" in markdown
    # A long run that ended before an arm's training time cannot stand for PPO given that time
    short_rows = make_rows("ppo-long", 0, [(300, 5.0, 30.0), (900, 8.0, 89.0)])
    short_markdown = render_long_baseline(rows, short_rows, "wall_s")
    assert "| ppg | 90 | 12.0 ± 2.0 | 8.0 ± 0.0 | n/a | n/a | 6.5 ± 0.0 |" in short_markdown
    assert "(1 seed, to 900 steps on average)" in short_markdown


def test_steady_reading_averages_only_the_last_evaluations_by_then() -> None:
    """Twelve evaluations, one a second, returns 1 to 12: by 11.5 s the last ten are 2 to 11."""
    from benchmarks.curves import mean_of_last_evaluations, return_at_wall_clock

    run = make_rows("ppo-long", 0, [(100 * k, float(k), float(k)) for k in range(1, 13)])
    assert mean_of_last_evaluations(run, 11.5, "wall_s", 10) == 6.5
    # Fewer evaluations than asked for: all of them; one: the same as the single reading
    assert mean_of_last_evaluations(run, 3.0, "wall_s", 10) == 2.0
    assert mean_of_last_evaluations(run, 11.5, "wall_s", 1) == return_at_wall_clock(run, 11.5) == 11.0
    assert math.isnan(mean_of_last_evaluations(run, 0.5, "wall_s", 10))
    # [-0:] would be every evaluation
    with pytest.raises(ValueError, match="evaluations must be >= 1, got 0"):
        mean_of_last_evaluations(run, 11.5, "wall_s", 0)


def test_long_ppo_needs_a_time_budget_and_stops_at_it(tmp_path: Path) -> None:
    from benchmarks.compare import TIMED_ARM_MAX_STEPS, arm_budget, parse_args

    with pytest.raises(SystemExit):
        parse_args(["--env", "MinAtar/Breakout-v1", "--arms", "ppo-long"])
    with pytest.raises(SystemExit):
        parse_args(["--env", "CartPole-v1", "--arms", "ppo-long", "--train-seconds", "5"])
    assert "ppo-long" not in parse_args(["--env", "MinAtar/Breakout-v1"]).arms
    env = "MinAtar/Breakout-v1"
    # The timed arm runs to its time whatever --timesteps (one rollout here); --train-seconds leaves the others alone
    args = parse_args(["--env", env, "--arms", "ppo-long", "ppg-e4", "--timesteps", "8192", "--train-seconds", "2"])
    assert arm_budget(args, "ppo-long") == (TIMED_ARM_MAX_STEPS, 2.0) and arm_budget(args, "ppg-e4") == (8192, None)
    command = [sys.executable, "benchmarks/compare.py", "--env", env, "--seeds", "1", "--timesteps", "8192"]
    command += ["--arms", "ppo-long", "--train-seconds", "2", "--eval-freq", "8192", "--eval-episodes", "1"]
    command += ["--jobs", "1", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    path = run_path(tmp_path, env, "ppo-long", 0)
    last = max(read_rows([path]), key=lambda row: row["timesteps"])
    # Stopped at the first step past 2 CPU seconds, past --timesteps' one rollout; that counts as complete
    assert 2.0 <= last["cpu_s"] < 10.0 and 8192 < last["timesteps"] < 1_000_000
    assert run_is_complete(path, TIMED_ARM_MAX_STEPS, train_seconds=2.0) and not run_is_complete(path, 10_000_000)
    assert "skipped ppo-long seed 0" in subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120).stdout


def test_recurrent_arms_are_the_zoo_entries_and_ppg_lstm_yml() -> None:
    from benchmarks.compare import arm_config, parse_args, zoo_ppo_entry

    args = parse_args(["--env", "CartPoleNoVel-v1", "--ppg", "n_aux_epochs=2"])
    assert tuple(args.arms) == ("ppg-lstm", "ppo-lstm", "ppo-lstm-ppg-epochs") and args.threshold == 475
    configs = {arm: arm_config(arm, args.env, args.ppg_overrides) for arm in args.arms}
    zoo = zoo_ppo_entry("CartPoleNoVel-v1", "ppo_lstm")
    assert configs["ppg-lstm"]["algo"] == "RecurrentPPG"
    assert configs["ppg-lstm"]["hyperparams"]["n_aux_epochs"] == 2  # the --ppg override, on the PPG arm only
    for arm in ("ppo-lstm", "ppo-lstm-ppg-epochs"):
        config = configs[arm]
        assert config["algo"] == "RecurrentPPO" and "n_aux_epochs" not in config["hyperparams"]
        assert (config["n_envs"], config["normalize"], config["policy"]) == (zoo["n_envs"], zoo["normalize"], zoo["policy"])
        assert config["hyperparams"]["batch_size"] == zoo["batch_size"]
        assert config["hyperparams"]["policy_kwargs"]["enable_critic_lstm"]
    assert configs["ppo-lstm"]["hyperparams"]["n_epochs"] == zoo["n_epochs"] == 20
    # E_pi + E_aux of ppg_lstm.yml's entry (20 + 6), not the overridden value
    assert configs["ppo-lstm-ppg-epochs"]["hyperparams"]["n_epochs"] == 26
    # rl_zoo3 keys LunarLander's entry -v2; the env is -v3
    lunar_zoo = zoo_ppo_entry("LunarLanderNoVel-v2", "ppo_lstm")
    assert arm_config("ppo-lstm", "LunarLanderNoVel-v3")["n_envs"] == lunar_zoo["n_envs"] == 32
    with pytest.raises(SystemExit):
        parse_args(["--env", "CartPoleNoVel-v1", "--arms", "ppo"])


def test_recurrent_end_to_end_and_resume(tmp_path: Path) -> None:
    """One rollout (8 envs x 32 steps) per arm, an aux phase in RecurrentPPG's; a second call trains nothing."""
    env = "CartPoleNoVel-v1"
    run_one_evaluation(env, 256, tmp_path, "--ppg", "n_policy_iterations=1")
    with open(tmp_path / f"{env}.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    arms = ["ppg-lstm", "ppo-lstm", "ppo-lstm-ppg-epochs"]
    assert [(row["algo"], int(row["timesteps"])) for row in rows] == [(arm, 256) for arm in arms]
    markdown = (tmp_path / f"{env}.md").read_text()
    assert "PPG/ppo-lstm |" in markdown and "PPG/ppo-lstm-ppg-epochs |" in markdown
    assert "p, final vs ppo-lstm" in markdown and "RecurrentPPG vs RecurrentPPO" in markdown
    again = run_one_evaluation(env, 256, tmp_path, "--ppg", "n_policy_iterations=1")
    assert again.stdout.count("skipped") == 3 and "eval mean" not in again.stdout


def test_cue_recall_benchmark_reports_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import cue_recall

    argv = ["--delay", "2", "--seeds", "2", "--timesteps", "512", "--eval-freq", "256", "--out", str(tmp_path)]
    assert cue_recall.main([*argv, "--arms", "stored", "recompute"]) == 0
    markdown = (tmp_path / "CueRecall-delay2.md").read_text()
    assert "| stored | 2 |" in markdown and "| recompute | 2 |" in markdown and "| no-aux |" not in markdown
    rows = list(csv.DictReader((tmp_path / "CueRecall-delay2.csv").open()))
    # An evaluation at 256 and at 512 steps per run, of 2 arms x 2 seeds, each a share of cues named
    assert len(rows) == 8 and all(0.0 <= float(row["eval_mean"]) <= 1.0 for row in rows)
    capsys.readouterr()
    assert cue_recall.main(argv) == 0
    assert capsys.readouterr().out.count("skipped") == 4
    markdown = (tmp_path / "CueRecall-delay2.md").read_text()
    assert "| no-aux | 2 |" in markdown and "| feed-forward | 2 |" in markdown
    assert "feed-forward: PPG, `MlpPolicy`, `net_arch=[16]`" in markdown
    with pytest.raises(SystemExit):
        cue_recall.parse_args(["--seeds", "0"])


def test_the_minatar_entry_rule_by_hand() -> None:
    from benchmarks.minatar_entry import GameResult, choose, game_results, geometric_mean, is_final, render

    assert geometric_mean([2.0, 0.5]) == pytest.approx(1.0) and geometric_mean([3.0, 0.0]) == 0.0
    results = {
        "A": {"wide": GameResult(5, 2.0, 4.0), "cheap": GameResult(5, 0.98, 2.0), "partial": GameResult(5, 9.0, 1.0)},
        "B": {"wide": GameResult(5, 0.5, 4.0), "cheap": GameResult(5, 0.98, 2.0)},
    }
    # wide: geometric mean 1.0 at cost 4; cheap: 0.98 at cost 2, within 5%, so it wins; partial lacks game B
    chosen, scores = choose(results, ["A", "B"], tolerance=0.05)
    assert chosen == "cheap" and set(scores) == {"wide", "cheap"}
    assert scores["wide"] == pytest.approx((1.0, 4.0)) and scores["cheap"] == pytest.approx((0.98, 2.0))
    assert choose(results, ["A", "B"], tolerance=0.01)[0] == "wide"
    with pytest.raises(ValueError, match="no arm has runs on every game"):
        choose({"A": {}}, ["A"], 0.05)
    # From rows: ppo ends at 4 and 6 in 30 and 36 s; ppg-e4's seed 0 at 10 in 90 s: against ppo's seed 0 alone (the
    # seed both have, run side by side), 2.5x the return at 3x the time per step
    rows = (
        make_rows("ppo", 0, [(100, 1.0, 10.0), (300, 4.0, 30.0)])
        + make_rows("ppo", 1, [(100, 2.0, 12.0), (300, 6.0, 36.0)])
        + make_rows("ppg-e4", 0, [(300, 10.0, 90.0)])
        + make_rows("ppg-e1", 7, [(300, 10.0, 90.0)])
    )
    (result,) = game_results(rows, ["ppg-e4", "ppg-e1"]).values()
    assert (result.seeds, result.return_ratio, result.cost_ratio) == (1, pytest.approx(2.5), pytest.approx(3.0))
    assert result.clock == "wall_s"
    # The cost comes from the games timed in CPU time when there are any
    results = {"A": {"x": GameResult(5, 1.0, 4.0, "wall_s")}, "B": {"x": GameResult(5, 1.0, 2.0, "cpu_s")}}
    assert choose(results, ["A", "B"], 0.05)[1]["x"] == pytest.approx((1.0, 2.0))
    assert "Provisional (fewer than 6 seeds somewhere): `x`" in render(results, ["A", "B"], "x", {"x": (1.0, 2.0)}, 6, ["x"])
    assert "Chosen: `x`" in render(results, ["A", "B"], "x", {"x": (1.0, 2.0)}, 5, ["x"])
    assert is_final(results, ["A", "B"], ["x"], 5) and not is_final(results, ["A", "B"], ["x"], 6)
    # A main arm not yet run on every game keeps the choice open, and is shown without a geometric mean
    partial = {"A": {**results["A"], "y": GameResult(seeds=5, return_ratio=2.0, cost_ratio=1.0)}, "B": results["B"]}
    text = render(partial, ["A", "B"], "x", {"x": (1.0, 2.0)}, 5, ["x", "y"])
    assert "Provisional (fewer than 5 seeds somewhere): `x`" in text
    assert "| y | 2.00, 1.00 (5) | not run | not on every game |" in text
    with pytest.raises(ValueError, match="no ppo runs"):
        game_results(make_rows("ppg-e4", 0, [(300, 10.0, 90.0)]), ["ppg-e4"])


def test_ppos_settings_go_through_the_same_rule_by_hand() -> None:
    from benchmarks.configs import MINATAR_ENVS, MINATAR_HELD_OUT
    from benchmarks.minatar_entry import render_ppo_choice

    # On every game: ppo ends at 10, ppo-dual at 20 in twice the time, ppo-e8 at 5; PPG's choice, ppg-e1, at 30
    def game_rows(with_controls: bool) -> list[dict[str, Any]]:
        rows = make_rows("ppo", 0, [(300, 10.0, 10.0)]) + make_rows("ppg-e1", 0, [(300, 30.0, 40.0)])
        if with_controls:
            rows += make_rows("ppo-dual", 0, [(300, 20.0, 20.0)]) + make_rows("ppo-e8", 0, [(300, 5.0, 10.0)])
        return rows

    rows_by_game = {game: game_rows(True) for game in (*MINATAR_ENVS, MINATAR_HELD_OUT)}
    text = render_ppo_choice(rows_by_game, "ppg-e1", tolerance=0.05, seeds=1)
    assert "| ppo-dual | 2.00, 2.00 (1) | 2.00, 2.00 (1) | 2.00, 2.00 (1) | 2.00, 2.00 (1) | 2.00, 2.00 |" in text
    assert "| ppo-e8 | 0.50, 1.00 (1) |" in text and "Chosen: `ppo-dual`." in text
    # PPG's choice against PPO's on each game, the held-out one included
    pair = "`ppg-e1` against `ppo-dual` | 1 | 30.0 ± 0.0 | 20.0 ± 0.0 | 1.50 | 1.000 |"
    assert [line for line in text.splitlines() if pair in line] == [
        f"| {game.removeprefix('MinAtar/').removesuffix('-v1')} | {pair}" for game in (*MINATAR_ENVS, MINATAR_HELD_OUT)
    ]
    # When PPO's choice is the control of PPG's, its rows are those of the control table
    assert "`ppg-e4` against `ppo-dual`: its rows in the table of controls above" in render_ppo_choice(
        rows_by_game, "ppg-e4", 0.05, 1
    )
    assert render_ppo_choice({game: game_rows(False) for game in rows_by_game}, "ppg-e1", 0.05, 1) == ""


def test_the_minatar_control_table_by_hand() -> None:
    from benchmarks.minatar_entry import render_controls

    # ppg-e8 ends at 10 and 20 on seeds 0 and 1, ppo-e8 at 5 and 15 on seeds 1 and 2: only seed 1 is shared
    rows = (
        make_rows("ppg-e8", 0, [(300, 10.0, 90.0)])
        + make_rows("ppg-e8", 1, [(300, 20.0, 90.0)])
        + make_rows("ppo-e8", 1, [(300, 5.0, 30.0)])
        + make_rows("ppo-e8", 2, [(300, 15.0, 30.0)])
    )
    table = render_controls({"MinAtar/Breakout-v1": rows, "MinAtar/Freeway-v1": make_rows("ppo", 0, [(300, 1.0, 1.0)])})
    assert table.splitlines()[2:] == ["| Breakout | `ppg-e8` against `ppo-e8` | 1 | 20.0 ± 0.0 | 5.0 ± 0.0 | 4.00 | 1.000 |"]
    assert render_controls({"MinAtar/Freeway-v1": rows[:2]}) == ""


def test_the_minatar_games_table_by_hand() -> None:
    from benchmarks.minatar_entry import render_games

    # ppo ends at 4 and 6 in 30 and 36 s (0.11 s/step); ppg-e4 at 10 and 12 in 90 s (0.3 s/step: 2.73x)
    rows = (
        make_rows("ppo", 0, [(300, 4.0, 30.0)])
        + make_rows("ppo", 1, [(300, 6.0, 36.0)])
        + make_rows("ppg-e4", 0, [(300, 10.0, 90.0)])
        + make_rows("ppg-e4", 1, [(300, 12.0, 90.0)])
    )
    table = render_games({"MinAtar/Asterix-v1": rows}, ["ppg-e4", "ppg-e1"])
    assert "| Asterix | `ppo` | 2 | 5.0 ± 1.0 |  | 1.00 | wall |" in table
    # Two seeds a side, all of ppg-e4's above: the exact two-sided p is 2 / C(4, 2) = 0.333
    assert "|  | `ppg-e4` | 2 | 11.0 ± 1.0 | 0.333 | 2.73 | wall |" in table
    assert "ppg-e1" not in table


def test_no_return_ratio_against_a_baseline_that_is_not_positive() -> None:
    from benchmarks.curves import render_curves, summarize_curves

    # Pendulum-like returns: -200 is better than -1000, so -200 / -1000 = 0.2 would read as a loss
    rows = make_rows("ppo-lstm", 0, [(100, -1000.0, 10.0)]) + make_rows("ppg-lstm", 0, [(100, -200.0, 5.0)])
    budget, summaries = summarize_curves(rows)
    markdown = render_curves(budget, summaries, ("ppg-lstm", "ppo-lstm"), baseline="ppo-lstm")
    assert "| ppg-lstm | 1 | -200.0 ± 0.0 | -200.0 ± 0.0 | 1.000 | 5 | 0.50 | -200.0 ± 0.0 | n/a |" in markdown


def test_a_minatar_policy_kwargs_override_is_merged_not_dropped() -> None:
    from benchmarks.compare import arm_config
    from sb3_ppg.common.torch_layers import MinAtarCNN

    config = arm_config("ppg-e4", "MinAtar/Asterix-v1", {"policy_kwargs": {"arch": "shared"}, "beta_clone": 3.0})
    policy_kwargs = config["hyperparams"]["policy_kwargs"]
    assert policy_kwargs == dict(features_extractor_class=MinAtarCNN, net_arch=[], arch="shared")
    assert config["hyperparams"]["beta_clone"] == 3.0 and config["hyperparams"]["n_epochs"] == 4


def test_the_minatar_sweep_settings_leave_out_the_arm_and_the_main_arms() -> None:
    from benchmarks.minatar_sweep import sweep_settings

    to_run, main = sweep_settings("ppg-e4")
    main_arms = {"n_epochs_1": "ppg-e1", "n_epochs_8": "ppg-e8", "n_aux_epochs_2": "ppg-aux2", "arch_detach": "ppg-detach"}
    assert main == main_arms
    assert list(to_run) == [
        "n_epochs_2", "n_policy_iterations_4", "n_policy_iterations_32",
        "n_aux_epochs_9", "beta_clone_0.3", "beta_clone_3.0", "aux_batch_size_256", "aux_batch_size_4096", "arch_shared",
    ]  # fmt: skip
    assert to_run["n_epochs_2"] == {"n_epochs": 2, "n_value_epochs": 2}
    assert to_run["arch_shared"] == {"policy_kwargs": {"arch": "shared"}}
    # detach at E_pi 1 is no main arm, so it runs; dual at E_pi 4 is ppg-e4
    to_run, main = sweep_settings("ppg-detach")
    assert "n_epochs_1" in to_run and "arch_detach" not in to_run and main == {"arch_dual": "ppg-e4"}
    # Main arms are matched on every swept key: ppg-aux2 at E_aux 6 is ppg-e4, but at E_pi 8 it is not ppg-e8 (E_aux 6)
    to_run, main = sweep_settings("ppg-aux2")
    assert main == {"n_aux_epochs_6": "ppg-e4"} and to_run["n_epochs_8"] == {"n_epochs": 8, "n_value_epochs": 8}
    with pytest.raises(ValueError, match="arm must be one of ppg-e1, ppg-e4, ppg-detach, ppg-e8, ppg-aux2, got 'ppo'"):
        sweep_settings("ppo")


def write_minatar_run(out: Path, algo: str, seed: int, final: float, cpu_s: float | None, steps: int = 2_007_040) -> None:
    """One MinAtar run file on Asterix, ending at ``final`` after ``steps`` and ``cpu_s`` of training (None: untimed)."""
    rows = [
        {"algo": algo, "seed": seed, "timesteps": t, "eval_mean": m, "eval_std": 0.0, "wall_s": 1.0, "cpu_s": c}
        for t, m, c in [(steps // 2, final / 2, None if cpu_s is None else cpu_s / 2), (steps, final, cpu_s)]
    ]
    write_rows(run_path(out, "MinAtar/Asterix-v1", algo, seed), rows)


def write_main_minatar_runs(out: Path) -> None:
    """ppo ends at 10 and 12, ppg-e4 at 4 and 6, ppg-detach at 9 and 11; seed 2 of each at 100, outside a 2-seed sweep."""
    for seed, (ppo, e4, detach) in enumerate([(10.0, 4.0, 9.0), (12.0, 6.0, 11.0), (100.0, 100.0, 100.0)]):
        write_minatar_run(out, "ppo", seed, ppo, 100.0)
        write_minatar_run(out, "ppg-e4", seed, e4, 400.0)
        write_minatar_run(out, "ppg-detach", seed, detach, 200.0)


def write_setting_runs(out: Path, name: str, finals: list[float], steps: list[int] | None = None) -> None:
    """A ppg-e4 setting's runs, seeds 0 on, with its setting.json as the sweep writes it."""
    from benchmarks.minatar_sweep import check_setting, sweep_dir, sweep_settings

    folder = sweep_dir(out, "Asterix-v1", name)
    check_setting(folder, "MinAtar/Asterix-v1", "ppg-e4", sweep_settings("ppg-e4")[0][name], write=True)
    for seed, final in enumerate(finals):
        write_minatar_run(folder, "ppg-e4", seed, final, 200.0, (steps or [2_007_040] * len(finals))[seed])


def test_the_minatar_sweep_report_by_hand(tmp_path: Path) -> None:
    from benchmarks.minatar_sweep import main

    write_main_minatar_runs(tmp_path)
    # ppg-e4 is at 4 and 6 (sample std 1.41, population std 1). n_aux_epochs_9 ends 1.2 above it: no. N_pi 32 3
    # above: yes, at half the cost. E_pi 2 is 2 above but its own std (5.66) is the larger: no. beta_clone 3 has one
    # seed of two: its ratios are to seed 0 alone. aux batch 256's seed 1 stopped at 1M steps: it does not count.
    write_setting_runs(tmp_path, "n_aux_epochs_9", [5.9, 6.5])
    write_setting_runs(tmp_path, "n_policy_iterations_32", [8.0, 8.0])
    write_setting_runs(tmp_path, "n_epochs_2", [3.0, 11.0])
    write_setting_runs(tmp_path, "beta_clone_3.0", [7.0])
    write_setting_runs(tmp_path, "aux_batch_size_256", [5.0, 50.0], steps=[2_007_040, 1_000_000])
    assert main(["report", "Asterix-v1", "ppg-e4", "--seeds", "2", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "sweeps" / "MinAtar-Asterix" / "ppg-e4.md").read_text()
    assert "`ppg-e4`: 5.0 ± 1.0; `ppo`: 11.0 ± 1.0" in text
    assert "| n_aux_epochs_9 | 2/2 | 6.2 ± 0.3 | 1.24 | 0.56 | 0.667 | 0.50 | no |" in text
    assert "| n_policy_iterations_32 | 2/2 | 8.0 ± 0.0 | 1.60 | 0.73 |" in text and text.count("| 0.50 | yes |") == 1
    assert "| n_epochs_2 | 2/2 | 7.0 ± 4.0 | 1.40 | 0.64 | 1.000 | 0.50 | no |" in text
    assert "| beta_clone_3.0 | 1/2 | 7.0 ± 0.0 | 1.75 | 0.70 | 1.000 | 0.50 | incomplete |" in text
    assert "| aux_batch_size_256 | 1/2 | 5.0 ± 0.0 | 1.25 | 0.50 | 1.000 | 0.50 | incomplete |" in text
    assert "| arch_shared | 0/2 | not run |" in text and "| n_aux_epochs_2 (`ppg-aux2`) | 0/2 | not run |" in text
    # A main arm that is a setting is shown with its verdict, and never chosen here: steps 1 and 2 weigh it
    assert "| arch_detach (`ppg-detach`) | 2/2 | 10.0 ± 1.0 | 2.00 | 0.91 | 0.333 | 0.50 | yes (steps 1-2) |" in text


def test_the_minatar_sweep_report_refuses_what_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.minatar_sweep import main, report, sweep_dir

    write_main_minatar_runs(tmp_path)
    # Runs without a record of their setting (an older sweep's) are not read as this one's
    write_minatar_run(sweep_dir(tmp_path, "Asterix-v1", "n_aux_epochs_9"), "ppg-e4", 0, 9.0, 200.0)
    assert main(["report", "Asterix-v1", "ppg-e4", "--seeds", "2", "--out", str(tmp_path)]) == 2
    assert "n_aux_epochs_9 holds ppg-e4 runs without a setting.json: move it away to rerun" in capsys.readouterr().err
    assert main(["run", "Asterix-v1", "ppg-e4", "--seeds", "2", "--out", str(tmp_path), "--dry-run"]) == 2
    # Untimed runs give no cost, never nan
    untimed = tmp_path / "untimed"
    for seed in range(2):
        write_minatar_run(untimed, "ppo", seed, 10.0, None)
        write_minatar_run(untimed, "ppg-e4", seed, 5.0, None)
    assert "| arch_detach (`ppg-detach`) | 0/2 | not run |" in report(untimed, "Asterix-v1", "ppg-e4", 2)
    write_minatar_run(untimed, "ppg-detach", 0, 6.0, None)
    row = next(line for line in report(untimed, "Asterix-v1", "ppg-e4", 2).splitlines() if "arch_detach" in line)
    assert row == "| arch_detach (`ppg-detach`) | 1/2 | 6.0 ± 0.0 | 1.20 | 0.60 | 1.000 | n/a | incomplete (steps 1-2) |"
    with pytest.raises(ValueError, match="needs complete ppg-e4 and ppo seeds 0 to 2"):
        report(untimed, "Asterix-v1", "ppg-e4", 3)


def test_the_minatar_sweep_needs_the_main_benchmark_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shlex

    from benchmarks.compare import parse_args
    from benchmarks.configs import minatar_arm_config
    from benchmarks.minatar_sweep import main, sweep_settings

    write_minatar_run(tmp_path, "ppo", 0, 10.0, 100.0)
    write_minatar_run(tmp_path, "ppg-detach", 0, 10.0, 200.0, steps=1_000_000)
    assert main(["run", "Asterix-v1", "ppg-detach", "--seeds", "1", "--out", str(tmp_path)]) == 2
    assert "run the main benchmark's ppg-detach seed 0 on MinAtar/Asterix-v1 first" in capsys.readouterr().err
    write_minatar_run(tmp_path, "ppg-detach", 0, 10.0, 200.0)
    assert main(["run", "Asterix-v1", "ppg-detach", "--seeds", "1", "--out", str(tmp_path), "--dry-run"]) == 0
    commands = capsys.readouterr().out.splitlines()
    assert not (tmp_path / "sweeps").exists()
    # Each printed command, as a shell reads it, trains the arm with exactly its setting's overrides
    settings = sweep_settings("ppg-detach")[0]
    assert len(commands) == len(settings) == 12
    for command, (name, overrides) in zip(commands, settings.items(), strict=True):
        args = parse_args(shlex.split(command)[2:])
        assert (args.env, args.arms, args.seeds, args.timesteps) == ("MinAtar/Asterix-v1", ["ppg-detach"], 1, 2_000_000)
        assert args.out.endswith(f"sweeps/MinAtar-Asterix/{name}") and args.ppg_overrides == overrides
        assert minatar_arm_config("ppg-detach", args.env, args.ppg_overrides) != minatar_arm_config("ppg-detach", args.env)


def test_the_docs_quote_the_minatar_entry_script_over_the_committed_runs() -> None:
    from benchmarks.minatar_entry import entry_report, quote_in_page

    # Regenerate with `python benchmarks/minatar_entry.py --write-docs docs/guide/benchmarks.md` when runs land
    page = (ROOT / "docs" / "guide" / "benchmarks.md").read_text()
    assert quote_in_page(page, entry_report(ROOT / "benchmarks" / "results")) == page


def test_the_minatar_entry_script_replaces_only_its_block_of_a_page() -> None:
    from benchmarks.minatar_entry import DOCS_END, DOCS_START, quote_in_page

    page = f"intro\n{DOCS_START}old\n{DOCS_END}\nafter\n"
    assert quote_in_page(page, "new\n") == f"intro\n{DOCS_START}new\n{DOCS_END}\nafter\n"
    for broken in ("no block\n", page + DOCS_START, f"{DOCS_END}\n{DOCS_START}"):
        with pytest.raises(ValueError, match="the page needs one"):
            quote_in_page(broken, "new\n")


def test_the_committed_minatar_runs_choose_the_packaged_entry() -> None:
    """
    The arm ppg.yml packages for MinAtar (pinned to it in test_configs) is the one the rule picks from the runs once
    its choice is final; while a main arm is still short of seeds, the entry stays an arm chosen from complete runs.
    """
    from benchmarks.configs import MINATAR_ENTRY_ARM, MINATAR_ENVS, MINATAR_PPG_ARMS
    from benchmarks.minatar_entry import choose_entry, is_final

    out = ROOT / "benchmarks" / "results"
    chosen, results, _ = choose_entry({game: read_rows(run_files(out, game)) for game in MINATAR_ENVS})
    if is_final(results, MINATAR_ENVS, list(MINATAR_PPG_ARMS), seeds=5):
        assert chosen == MINATAR_ENTRY_ARM
    else:
        assert is_final(results, MINATAR_ENVS, [MINATAR_ENTRY_ARM], seeds=5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_run_ends_with_the_compare_process_that_started_it(tmp_path: Path) -> None:
    # A stopped queue must not leave its run going on unseen beside the next one, skewing both runs' times
    import os
    import signal
    import time

    parent = f"""
import sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
sys.path.insert(0, {str(ROOT)!r})
from benchmarks.runner import die_with_parent
with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=die_with_parent) as pool:
    print(pool.submit(__import__("os").getpid).result(), flush=True)
    pool.submit(time.sleep, 60)
    time.sleep(60)
"""
    process = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        worker = int(process.stdout.readline())
        os.kill(worker, 0)  # alive
        process.kill()
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # Gone, or a zombie that no init has reaped yet
            stat = Path(f"/proc/{worker}/stat")
            if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
            time.sleep(0.1)
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the pool worker outlived the process that started it")
    finally:
        process.kill()
