"""Tests of the Procgen arms of benchmarks/compare.py: the packaged entries, the training-return rows, and the
report that sets them beside the paper's curves."""

import math
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from benchmarks.compare import arm_config, parse_args
from benchmarks.configs import PROCGEN_ARMS, arms_for, baseline_arm
from benchmarks.files import read_rows, run_path
from benchmarks.report import Anchor, build_reports, mean_at_steps, procgen_game, read_anchors, render_anchors
from benchmarks.runner import build_model, run_one, training_return
from tests.test_envpool import needs_envpool, small_cnn_kwargs

ENV = "StarpilotHard-v0"


def test_procgen_arms_are_the_packaged_entries() -> None:
    args = parse_args(["--env", ENV])
    assert tuple(args.arms) == arms_for(ENV) == PROCGEN_ARMS == ("ppg", "ppg-detach", "ppo-reference")
    assert baseline_arm(ENV) == "ppo-reference" and baseline_arm("MinAtar/Breakout-v1") == "ppo"
    configs = {arm: arm_config(arm, ENV) for arm in PROCGEN_ARMS}
    for config in configs.values():
        assert config["algo"] == "PPG" and config["policy"] == "ImpalaCnnPolicy" and config["n_envs"] == 64
        assert config["normalize"] == {"norm_obs": False, "norm_reward": True, "gamma": 0.99, "clip_reward": 10.0}
        assert config["hyperparams"]["gamma"] == 0.999 and config["hyperparams"]["n_steps"] == 256
    archs = {arm: config["hyperparams"]["policy_kwargs"]["arch"] for arm, config in configs.items()}
    assert archs == {"ppg": "dual", "ppg-detach": "detach", "ppo-reference": "shared"}
    assert configs["ppg"]["hyperparams"]["n_aux_epochs"] == configs["ppg-detach"]["hyperparams"]["n_aux_epochs"] == 6
    reference = configs["ppo-reference"]["hyperparams"]
    assert (reference["n_aux_epochs"], reference["n_epochs"], reference["n_value_epochs"]) == (0, 3, 3)
    # Overrides are for PPG's own sweeps: the paper's PPO baseline stays as packaged
    overridden = {arm: arm_config(arm, ENV, {"n_aux_epochs": 2})["hyperparams"]["n_aux_epochs"] for arm in PROCGEN_ARMS}
    assert overridden == {"ppg": 2, "ppg-detach": 2, "ppo-reference": 0}
    with pytest.raises(SystemExit):
        parse_args(["--env", ENV, "--arms", "ppo"])
    with pytest.raises(ValueError, match="expected one of ppg, ppg-detach, ppo-reference"):
        arm_config("ppo-matched", ENV)


@needs_envpool
def test_the_reward_normalisation_keeps_its_own_gamma() -> None:
    """Procgen's entries discount the normalised return with 0.99, not the algorithm's 0.999."""
    config = arm_config("ppg-detach", ENV)
    # Two envs cannot be cut into the entry's 8 env-segment minibatches: states suffice here
    config["n_envs"] = 2
    config["hyperparams"]["env_segment_minibatches"] = False
    model = build_model(config, ENV, seed=0)
    assert model.gamma == 0.999 and model.get_env().gamma == 0.99 and model.get_env().clip_reward == 10.0
    # Without a gamma of its own, the normalisation takes the algorithm's, as the RL Zoo does
    lunar = arm_config("ppg", "LunarLander-v3")
    assert build_model(lunar, "LunarLander-v3", seed=0).get_env().gamma == lunar["hyperparams"]["gamma"] == 0.999


def test_training_return_is_the_mean_of_the_last_episodes() -> None:
    model = SimpleNamespace(ep_info_buffer=deque([{"r": 1.0, "l": 5}, {"r": 3.0, "l": 7}], maxlen=100))
    assert training_return(model) == (2.0, 1.0)
    mean, std = training_return(SimpleNamespace(ep_info_buffer=deque(maxlen=100)))
    assert math.isnan(mean) and math.isnan(std)


def test_procgen_game_and_the_anchors_file() -> None:
    assert procgen_game("StarpilotHard-v0") == "starpilot" and procgen_game("BigfishEasy-v0") == "bigfish"
    anchors = read_anchors("starpilot")
    assert {anchor.arm for anchor in anchors} == {"ppg", "ppgsingle", "ppo"}
    by_key = {(anchor.arm, anchor.env_steps): anchor.mean for anchor in anchors}
    # The values of the paper's curves at 10M steps, as quoted when they were first committed
    assert by_key[("ppg", 10027008)] == pytest.approx(10.02) and by_key[("ppo", 10027008)] == pytest.approx(7.05)


def rows_of(arm: str, seed: int, points: list[tuple[int, float]]) -> list[dict[str, Any]]:
    return [
        dict(algo=arm, seed=seed, timesteps=steps, eval_mean=value, eval_std=0.0, wall_s=float(steps))
        for steps, value in points
    ]


def test_mean_at_steps_takes_each_seeds_first_row_past_the_mark() -> None:
    runs = [rows_of("ppg", 0, [(500, 1.0), (1000, 2.0), (1500, 4.0)]), rows_of("ppg", 1, [(1200, 6.0)])]
    assert mean_at_steps(runs, 1000) == pytest.approx((2.0 + 6.0) / 2)
    assert math.isnan(mean_at_steps(runs, 1300))  # seed 1 stops short of it


def test_anchors_are_compared_only_at_the_marks_every_run_reached() -> None:
    anchors = [Anchor("ppg", 1000, 1.5), Anchor("ppo", 1000, 1.6), Anchor("ppg", 2000, 9.0), Anchor("ppo", 2000, 8.0)]
    rows = rows_of("ppg", 0, [(1100, 2.0), (2100, 3.0)]) + rows_of("ppo-reference", 0, [(1100, 1.0), (1900, 1.2)])
    markdown = render_anchors(rows, anchors)
    assert "| ppg | ppg | 1,000 | 2.00 | 1.50 |" in markdown
    assert "| ppo-reference | ppo | 1,000 | 1.00 | 1.60 |" in markdown
    assert "2,000" not in markdown  # ppo-reference stopped at 1,900
    short = render_anchors(rows_of("ppg", 0, [(600, 0.5)]), anchors)
    assert "Every run stopped by 600 env steps, before the paper's first mark (1,000): nothing is compared." in short


@needs_envpool
def test_procgen_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shrunk ``ppg`` arm: rows of the training return at each mark, and a report beside the paper's curves."""
    import benchmarks.runner

    def small_config(arm: str, env_id: str, ppg_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        config = arm_config(arm, env_id, ppg_overrides)
        config["n_envs"] = 4
        small = dict(n_steps=64, batch_size=128, n_policy_iterations=2, aux_batch_size=128)
        policy_kwargs = dict(config["hyperparams"]["policy_kwargs"], **small_cnn_kwargs())
        config["hyperparams"].update(small, policy_kwargs=policy_kwargs)
        return config

    monkeypatch.setattr(benchmarks.runner, "arm_config", small_config)
    assert run_one("ppg", ENV, seed=0, timesteps=1024, eval_freq=256, eval_episodes=1, out=str(tmp_path)) == 4
    rows = read_rows([run_path(tmp_path, ENV, "ppg", 0)])
    assert [row["timesteps"] for row in rows] == [256, 512, 768, 1024]
    # Starpilot's episodes under a fresh policy last well under 256 steps: every row has finished episodes
    assert all(math.isfinite(row["eval_mean"]) and row["eval_mean"] >= 0 for row in rows)
    build_reports(tmp_path, ENV, threshold=10.0)
    markdown = (tmp_path / f"{ENV}.md").read_text()
    assert "mean return of the last 100 training episodes" in markdown
    assert "before the paper's first mark (983,040): nothing is compared." in markdown
