"""
Does RecurrentPPG need ``recompute_lstm_states``? A memory task where the states stored in the aux buffer matter.

    python benchmarks/cue_recall.py --delay 20 --seeds 8 --timesteps 131072

The task (``CueRecallEnv``): a cue, one of two, shows at step 0, then ``--delay`` blank observations, then a query
flag; naming the cue at the query earns 1 and ends the episode. With a delay near the rollout's 32 steps, many
episodes cross a segment boundary, so the LSTM state stored at the segment start is what carries the cue into the
aux phase's sequences; those states were computed by the policy of their rollout and go stale as it learns.

Arms, all with the same settings: RecurrentPPG with ``stored`` (the states stored at collection, the default),
``recompute`` (``recompute_lstm_states=True``: each env's history replayed before each aux phase) and ``no-aux``
(``n_aux_epochs=0``: no aux phase, the policy phase alone); and ``feed-forward``, PPG with ``MlpPolicy`` and the same
hidden layer, which has no memory and so can only guess the cue (the control that the task needs memory). Each
(arm, seed) is evaluated on 200 deterministic episodes every ``--eval-freq`` steps and at the end; the return is the
share of cues named. Runs are one at a time, one thread, and resume from their run files, as in ``compare.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

# Run as a script: the repository root holds the benchmarks package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.curves import format_p, mann_whitney_p
from benchmarks.files import Row, group_runs, run_missing, run_path, write_rows
from benchmarks.report import per_seed_table, steps_to_threshold, write_reports
from benchmarks.runner import learn_with_evaluations

ARMS = ("stored", "recompute", "no-aux", "feed-forward")
# The learning test's settings (tests/test_learning.py) at a constant learning rate
SETTINGS: dict[str, Any] = dict(
    n_steps=32,
    batch_size=64,
    n_epochs=4,
    n_value_epochs=4,
    n_policy_iterations=4,
    n_aux_epochs=2,
    aux_batch_size=128,
    learning_rate=1e-3,
    gamma=0.9,
    ent_coef=0.0,
)
ARM_KWARGS: dict[str, dict[str, Any]] = {
    "stored": {},
    "recompute": dict(recompute_lstm_states=True),
    "no-aux": dict(n_aux_epochs=0),
}
FEED_FORWARD = "feed-forward"
N_ENVS = 8
POLICY_KWARGS = dict(net_arch=[16], lstm_hidden_size=16)
EVAL_EPISODES = 200
# A seed counts as solved when it names at least this share of the cues
SOLVED = 0.95


class CueRecallEnv(gym.Env):
    """
    A cue (one of ``n_cues``, one-hot) shows at step 0, then ``delay`` blank observations, then a query flag: the
    action at the query step earns 1 if it names the cue, and ends the episode. Other actions do nothing. Without
    memory the query step looks the same whatever the cue, so the best a policy can do is guess.

    :param n_cues: Number of cues (and actions)
    :param delay: Blank steps between the cue and the query
    """

    def __init__(self, n_cues: int = 2, delay: int = 5):
        self.n_cues, self.delay = n_cues, delay
        self.observation_space = spaces.Box(0.0, 1.0, (n_cues + 1,), np.float32)
        self.action_space = spaces.Discrete(n_cues)
        self.t = self.cue = 0

    def _observation(self) -> np.ndarray:
        observation = np.zeros(self.n_cues + 1, np.float32)
        if self.t == 0:
            observation[self.cue] = 1.0
        if self.t == self.delay + 1:
            observation[-1] = 1.0
        return observation

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t, self.cue = 0, int(self.np_random.integers(self.n_cues))
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        query = self.t == self.delay + 1
        reward = float(query and int(action) == self.cue)
        self.t += 1
        return self._observation(), reward, query, False, {}


def task_name(delay: int) -> str:
    """The name of the task in the result files."""
    return f"CueRecall-delay{delay}"


def run_one(arm: str, delay: int, seed: int, timesteps: int, eval_freq: int, out: Path) -> None:
    """Train one (arm, seed), evaluating every ``eval_freq`` steps and at the end, then write its run file."""
    import torch
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    from sb3_ppg import PPG, RecurrentPPG

    torch.set_num_threads(1)
    env = make_vec_env(CueRecallEnv, n_envs=N_ENVS, seed=seed, env_kwargs=dict(delay=delay))
    eval_env = make_vec_env(CueRecallEnv, n_envs=1, seed=123, env_kwargs=dict(delay=delay))
    model: PPG | RecurrentPPG
    if arm == FEED_FORWARD:
        model = PPG("MlpPolicy", env, seed=seed, policy_kwargs=dict(net_arch=POLICY_KWARGS["net_arch"]), **SETTINGS)
    else:
        model = RecurrentPPG("MlpLstmPolicy", env, seed=seed, policy_kwargs=POLICY_KWARGS, **{**SETTINGS, **ARM_KWARGS[arm]})

    def evaluate_once() -> tuple[float, float]:
        return evaluate_policy(model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True)  # type: ignore[return-value]

    rows = learn_with_evaluations(model, timesteps, eval_freq, evaluate_once, arm, seed, task_name(delay))
    write_rows(run_path(out, task_name(delay), arm, seed), rows)


def render_markdown(name: str, rows: list[Row], args: argparse.Namespace) -> str:
    """The report: per arm, the final share of cues named, seeds solved, steps to solve, CPU time and p."""
    runs = group_runs(rows)
    finals = {arm: [seeds[k][-1]["eval_mean"] for k in sorted(seeds)] for arm, seeds in runs.items()}
    lines = [
        f"# {name}: RecurrentPPG with stored or recomputed LSTM states, and feed-forward PPG",
        "",
        f"`CueRecallEnv(delay={args.delay})`, {N_ENVS} envs, {args.timesteps:,} steps a run. Settings of every arm: "
        f"`{SETTINGS}`, `policy_kwargs={POLICY_KWARGS}`; "
        + "; ".join(f"{arm}: `{kwargs}`" for arm, kwargs in ARM_KWARGS.items())
        + f"; {FEED_FORWARD}: PPG, `MlpPolicy`, `net_arch={POLICY_KWARGS['net_arch']}`"
        + f". Final: the share of {EVAL_EPISODES} deterministic episodes whose cue was named, at the end of each "
        f"seed's run. Solved: final at least {SOLVED}. p: two-sided Mann-Whitney U test of the finals against "
        "`stored`'s. CPU s: training only, one thread.",
        "",
        "| arm | seeds | final | solved | median steps to solve | p, final vs stored | CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in [arm for arm in ARMS if arm in runs]:
        seeds = runs[arm]
        steps = [steps_to_threshold(seeds[k], SOLVED)[0] for k in sorted(seeds)]
        solved = sum(final >= SOLVED for final in finals[arm])
        p_value = "" if arm == "stored" or "stored" not in finals else format_p(mann_whitney_p(finals[arm], finals["stored"]))
        cpu_s = statistics.fmean(seeds[k][-1]["cpu_s"] for k in seeds)
        lines.append(
            f"| {arm} | {len(seeds)} | {statistics.fmean(finals[arm]):.3f} ± {statistics.pstdev(finals[arm]):.3f} "
            f"| {solved}/{len(seeds)} | {statistics.median(steps):,.0f} | {p_value} | {cpu_s:.0f} |"
        )
    n_seeds = max(max(seeds) + 1 for seeds in runs.values())
    ordered = {arm: runs[arm] for arm in ARMS if arm in runs}
    lines += per_seed_table("Final share per seed:", ordered, n_seeds, lambda run: f"{run[-1]['eval_mean']:.3f}")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=int, default=20, help="blank steps between the cue and the query")
    parser.add_argument("--seeds", type=int, default=8, help="seeds 0 to N-1")
    parser.add_argument("--timesteps", type=int, default=131_072, help="env steps per run")
    parser.add_argument("--eval-freq", type=int, default=32_768, help="env steps between evaluations")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    for name in ("delay", "seeds", "timesteps", "eval_freq"):
        if getattr(args, name) < (0 if name == "delay" else 1):
            parser.error(f"--{name.replace('_', '-')} must be at least {0 if name == 'delay' else 1}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the missing (arm, seed) runs one after the other, then rebuild the reports."""
    args = parse_args(argv)
    out = Path(args.out)
    name = task_name(args.delay)

    def run(arm: str, seed: int) -> None:
        run_one(arm, args.delay, seed, args.timesteps, args.eval_freq, out)

    rows = run_missing(out, name, args.arms, args.seeds, args.timesteps, run)
    if rows:
        write_reports(out, name, rows, render_markdown(name, rows, args))
        print(f"Wrote {out / name}.csv, .png and .md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
