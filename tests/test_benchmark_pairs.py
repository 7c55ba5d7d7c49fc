"""Tests of benchmarks/pairs.py: arms from different result folders, and the committed sweep report it wrote."""

from pathlib import Path

import pytest

from benchmarks.files import Row, run_path, write_rows
from benchmarks.pairs import compare_arms, main, parse_arm

ROOT = Path(__file__).resolve().parents[1]
ENV = "CartPole-v1"


def write_run(out: Path, arm: str, seed: int, points: list[tuple[int, float, float]]) -> None:
    """One run file of (timesteps, eval mean, CPU seconds) points."""
    rows: list[Row] = [
        {"algo": arm, "seed": seed, "timesteps": t, "eval_mean": m, "eval_std": 0.0, "wall_s": 2 * c, "cpu_s": c}
        for t, m, c in points
    ]
    path = run_path(out, ENV, arm, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_rows(path, rows)


def test_arms_from_two_folders_by_hand(tmp_path: Path) -> None:
    main_out, sweep_out = tmp_path / "main", tmp_path / "sweep"
    for seed, (a, b) in enumerate([(1.0, 3.0), (2.0, 4.0), (0.0, 2.0)]):
        write_run(main_out, "ppo", seed, [(100, a, 10.0), (200, b, 20.0)])
        # The same arm's name in the sweep's folder: only the label tells them apart
        write_run(sweep_out, "ppo", seed, [(100, a + 10, 5.0), (200, b + 10, 10.0)])
    markdown = compare_arms(ENV, [f"{main_out}:ppo", f"{sweep_out}:ppo=ppo, swept"])
    # Final returns 3, 4, 2 against 13, 14, 12; areas 2, 3, 1 against 12, 13, 11. The budget is the sweep's mean CPU
    # time, 10 s, when the main folder's runs were at their first evaluations (1, 2, 0): a ratio of 13 / 1
    assert "| ppo | 3 | 3.0 ± 0.8 | 2.0 ± 0.8 |  | 20 | 1.00 | 1.0 ± 0.8 | 1.00 |" in markdown
    assert "| ppo, swept | 3 | 13.0 ± 0.8 | 12.0 ± 0.8 | 0.100 | 10 | 0.50 | 13.0 ± 0.8 | 13.00 |" in markdown
    # Fully separated 3 against 3, on all three values: exact p = 2 / C(6, 3)
    assert "| ppo | ppo, swept | 0.100 | 0.100 | 0.100 |" in markdown
    assert f"- ppo, swept: `{sweep_out}`, arm `ppo`" in markdown


def test_every_pair_is_tested_once(tmp_path: Path) -> None:
    for arm, returns in (("ppo", [1.0, 2.0]), ("ppg", [3.0, 4.0]), ("ppg-detach", [3.5, 1.5])):
        for seed, value in enumerate(returns):
            write_run(tmp_path, arm, seed, [(100, value, 1.0)])
    markdown = compare_arms(ENV, [f"{tmp_path}:{arm}" for arm in ("ppo", "ppg", "ppg-detach")])
    pairs = [line for line in markdown.splitlines() if line.count("|") == 6 and not line.startswith("| arm")]
    expected = [["| ppo", "ppg"], ["| ppo", "ppg-detach"], ["| ppg", "ppg-detach"]]
    assert [line.split(" | ")[:2] for line in pairs[1:]] == expected
    # 2 against 2 fully separated: p = 2 / C(4, 2); 1 and 2 against 3.5 and 1.5: U = 1 of 4, p = 2 * 2 / 6
    assert "| ppo | ppg | 0.333 | 0.333 | 0.333 |" in markdown
    assert "| ppo | ppg-detach | 0.667 | 0.667 | 0.667 |" in markdown


def test_bad_arms_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_arm("a/b:ppo=x") == (Path("a/b"), "ppo", "x")
    assert parse_arm("a:ppo") == (Path("a"), "ppo", "ppo")
    for spec in ("ppo", ":ppo", "a:"):
        with pytest.raises(ValueError, match="FOLDER:ARM"):
            parse_arm(spec)
    write_run(tmp_path, "ppo", 0, [(100, 1.0, 1.0)])
    with pytest.raises(ValueError, match="different labels"):
        compare_arms(ENV, [f"{tmp_path}:ppo", f"{tmp_path}:ppo"])
    with pytest.raises(SystemExit):
        main(["--env", ENV, f"{tmp_path}:ppo", f"{tmp_path}:ppg"])
    assert "No run files of 'ppg'" in capsys.readouterr().err


SWEEP = "benchmarks/results/sweeps/LunarLanderNoVel-v3"
MAIN_ARMS = ["benchmarks/results:ppo-lstm", "benchmarks/results:ppg-lstm", "benchmarks/results:ppo-lstm-ppg-epochs"]
SWEPT = f"{SWEEP}/n_epochs_10:ppg-lstm=ppg-lstm, E_pi 10"
FRESH = f"{SWEEP}/n_epochs_10_seeds_5_to_8:ppg-lstm=ppg-lstm, E_pi 10, seeds 5 to 8"


@pytest.mark.parametrize(
    ("report", "specs", "rows"),
    [
        ("comparison.md", [*MAIN_ARMS, SWEPT], ["| ppg-lstm, E_pi 10 | 5 |"]),
        ("comparison_seeds_5_to_8.md", [*MAIN_ARMS, SWEPT, FRESH], ["| ppg-lstm, E_pi 10, seeds 5 to 8 | 4 |"]),
    ],
)
def test_the_committed_lunarlander_novel_sweep_reports_are_what_their_runs_give(
    report: str, specs: list[str], rows: list[str]
) -> None:
    """The reports quoted in the docs, rebuilt from the committed run files with the commands they name."""
    committed = (ROOT / SWEEP / report).read_text()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        assert compare_arms("LunarLanderNoVel-v3", specs) == committed
    for row in rows:
        assert row in committed
