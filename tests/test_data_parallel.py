"""
Data-parallel training on torch.distributed: 2 ranks under torchrun, gloo, one torch thread each. Each scenario runs
tests/data_parallel_script.py on both ranks; a timeout turns a hang into a failure.
"""

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.running_mean_std import RunningMeanStd

from sb3_ppg import PPG
from sb3_ppg.common import distributed, distributed_callbacks
from tests import data_parallel_script as script
from tests.conftest import REPO_ROOT, zoo_env

SCRIPT = REPO_ROOT / "tests" / "data_parallel_script.py"
# A hang fails the test after this long; a scenario takes a few seconds
TIMEOUT_S = 120
# The ranks' own collective timeout: a rank left behind by a failed test gives up well before the test's timeout
RANK_TIMEOUT_S = "30"


def torchrun(*args: str, cwd: Path, expect_success: bool = True) -> subprocess.CompletedProcess:
    """Run ``torchrun --standalone --nproc_per_node 2 *args`` with this interpreter, within the timeout."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    env = dict(zoo_env(), **{distributed.TIMEOUT_ENV: RANK_TIMEOUT_S})
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    if expect_success:
        assert result.returncode == 0, f"exit code {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def run_scenario(name: str, out: Path, expect_success: bool = True) -> subprocess.CompletedProcess:
    return torchrun(str(SCRIPT), name, str(out), cwd=out, expect_success=expect_success)


def rank_results(out: Path, folder: str = "results") -> list[dict[str, Any]]:
    return [th.load(out / folder / f"rank{rank}.pt", weights_only=False) for rank in range(2)]


def rank_errors(out: Path) -> list[str]:
    return [(out / "errors" / f"rank{rank}.txt").read_text() for rank in range(2)]


def assert_bitwise_equal(a: Any, b: Any) -> None:
    if isinstance(a, th.Tensor):
        assert th.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_bitwise_equal(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_bitwise_equal(x, y)
    else:
        assert a == b


def assert_same_training_state(first: dict[str, Any], second: dict[str, Any]) -> None:
    """The weights and both optimizers' states of two ranks are bitwise equal."""
    for key in script.TRAINING_STATE:
        assert_bitwise_equal(first[key], second[key])


# ---------------------------------------------------------------------------------------------------------------------
# Single process: every helper is a no-op
# ---------------------------------------------------------------------------------------------------------------------


def test_helpers_are_no_ops_in_a_single_process():
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.setup("auto") == "auto"
    assert distributed.rank_seed(3, 8) == 3
    x = th.randn(50, dtype=th.float32)
    assert th.equal(distributed.standardize(x, correction=1), (x - x.mean()) / (x.std() + 1e-8))
    a = np.random.randn(50)
    assert np.array_equal(distributed.standardize(a, correction=0), (a - a.mean()) / (a.std() + 1e-8))
    scalar = x[0]
    assert distributed.mean_over_ranks(scalar) is scalar
    assert distributed.ranks_where(True) == [0] and distributed.ranks_where(False) == []
    assert distributed.describe_ranks([0]) == ""
    parameter = th.nn.Parameter(th.ones(3))
    parameter.grad = th.full((3,), 2.0)
    distributed.average_gradients([parameter])
    assert th.equal(parameter.grad, th.full((3,), 2.0))


@pytest.mark.parametrize(
    "device,local_world_size,n_gpus,backend",
    [
        ("auto", 2, 0, "gloo"),  # no GPU
        ("auto", 2, 2, "nccl"),
        ("cuda", 2, 2, "nccl"),
        ("cpu", 2, 2, "gloo"),  # a CPU model: NCCL reduces only CUDA tensors
        (th.device("cpu"), 1, 1, "gloo"),
        ("auto", 4, 2, "gloo"),  # more ranks than GPUs: NCCL needs one GPU per rank
        ("cuda:0", 3, 2, "gloo"),
    ],
)
def test_the_backend_is_nccl_only_with_a_gpu_per_rank_and_a_gpu_model(device, local_world_size, n_gpus, backend):
    assert distributed.choose_backend(device, local_world_size, n_gpus) == backend


def test_merge_running_stats_is_the_statistics_of_all_data():
    base = RunningMeanStd(shape=(3,))
    first = np.random.randn(40, 3)
    base.update(first)
    parts = [np.random.randn(30, 3) + 2, np.random.randn(50, 3) * 3]
    ranks = []
    for part in parts:
        rank_stats = RunningMeanStd(shape=(3,))
        rank_stats.mean, rank_stats.var, rank_stats.count = base.mean.copy(), base.var.copy(), base.count
        rank_stats.update(part)
        ranks.append(rank_stats)
    merged = distributed_callbacks.merge_running_stats(base, ranks)
    everything = np.concatenate([first, *parts])
    # base started at mean 0, var 1, count 1e-4: a negligible prior
    assert merged.count == pytest.approx(len(everything) + 1e-4)
    np.testing.assert_allclose(merged.mean, everything.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(merged.var, everything.var(axis=0), rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# 2 ranks
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 2-rank learn() with VecNormalize, 2 aux phases, an EvalCallback, a CheckpointCallback and a save."""
    out = tmp_path_factory.mktemp("learn")
    run_scenario("learn", out)
    return out


def test_ranks_end_with_bitwise_equal_weights_and_optimizers(learned: Path):
    first, second = rank_results(learned)
    assert first["n_aux_phases"] == second["n_aux_phases"] == 2
    # The ranks stepped different envs...
    assert not np.array_equal(first["raw_observations"], second["raw_observations"])
    # ...into the same weights and optimizer states
    assert_same_training_state(first, second)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names come from Linux's /proc")
def test_the_exit_handler_joins_gloo_threads(learned: Path):
    # torch.distributed.nn.functional, imported after init, keeps the group alive past destroy_process_group: its
    # threads would then be torn down at interpreter shutdown, where gloo can abort a rank
    for rank in range(2):
        threads = (learned / "results" / f"threads{rank}.txt").read_text().splitlines()
        assert threads  # the main thread at least
        assert not [name for name in threads if "gloo" in name], threads


def test_maskable_ppg_ranks_end_with_bitwise_equal_weights_and_optimizers(tmp_path: Path):
    run_scenario("learn_masked", tmp_path)
    first, second = rank_results(tmp_path)
    assert first["n_aux_phases"] == second["n_aux_phases"] == 2
    # Both optimizers stepped
    assert first["optimizer"]["state"] and first["aux_optimizer"]["state"]
    assert not np.array_equal(first["observations"], second["observations"])
    assert_same_training_state(first, second)


def test_timesteps_count_the_steps_of_all_ranks(learned: Path):
    for result in rank_results(learned):
        assert result["num_timesteps"] == script.TOTAL_TIMESTEPS
        # Each rank stepped half of them
        assert len(result["rewards"]) * script.N_ENVS == script.TOTAL_TIMESTEPS // 2


def test_only_rank_zero_writes_files(learned: Path):
    files = sorted(str(path.relative_to(learned / "files")) for path in (learned / "files").rglob("*") if path.is_file())
    assert "model.zip" in files
    assert "eval/evaluations.npz" in files
    # One TensorBoard run, one event file; a checkpoint every 64 calls of 128, named by the global count
    assert len([name for name in files if name.startswith("tb/") and "events" in name]) == 1, files
    assert [name for name in files if name.startswith("checkpoints/")] == [
        "checkpoints/rl_model_256_steps.zip",
        "checkpoints/rl_model_512_steps.zip",
    ]


def test_vec_normalize_statistics_are_those_of_the_combined_data(learned: Path):
    results = rank_results(learned)
    for name in ("obs_rms", "ret_rms"):
        assert_bitwise_equal(list(map(np.asarray, results[0][name])), list(map(np.asarray, results[1][name])))
    # Training starts from rank 0's statistics, which hold its reset observations; rank 1's are not counted
    rank_one_steps = results[1]["raw_observations"][script.N_ENVS :]
    observations = np.concatenate([results[0]["raw_observations"], rank_one_steps])
    obs_rms = RunningMeanStd(shape=observations.shape[1:])
    obs_rms.update(observations)
    mean, var, count = results[0]["obs_rms"]
    assert count == pytest.approx(obs_rms.count)
    # float32 observations: RunningMeanStd takes their batch moments in float32
    np.testing.assert_allclose(mean, obs_rms.mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(var, obs_rms.var, rtol=1e-6)
    # The discounted returns VecNormalize normalises rewards with, per rank
    ret_rms = RunningMeanStd(shape=())
    for result in results:
        returns = np.zeros(script.N_ENVS)
        for rewards, dones in zip(result["rewards"], result["dones"], strict=True):
            returns = returns * result["gamma"] + rewards
            ret_rms.update(returns)
            returns[dones] = 0
    mean, var, count = results[0]["ret_rms"]
    assert count == pytest.approx(ret_rms.count)
    np.testing.assert_allclose([mean, var], [ret_rms.mean, ret_rms.var], rtol=1e-6)


def test_a_model_saved_by_rank_zero_loads_in_one_process(learned: Path):
    result = rank_results(learned)[0]
    model = PPG.load(learned / "files" / "model.zip")
    assert_bitwise_equal([p.detach() for p in model.policy.parameters()], result["parameters"])
    np.testing.assert_array_equal(model.predict(result["probe"], deterministic=True)[0], result["actions"])


def test_a_resume_in_the_same_process_is_bitwise_the_uninterrupted_run(tmp_path: Path):
    # Each rank's rollout position comes from its own aux buffer file, not from rank 0's model file
    run_scenario("resume_in_process", tmp_path)
    results = rank_results(tmp_path)
    for result in results:
        assert result["resumed"]["restored"] == [True, True, True]
        assert result["resumed"]["n_aux_phases"] == result["uninterrupted"]["n_aux_phases"] == 2
        assert_same_training_state(result["resumed"], result["uninterrupted"])
    assert_same_training_state(results[0]["resumed"], results[1]["resumed"])
    # Without its own position (no aux buffer loaded), rank 1 resets its envs and says so; rank 0's is in the model
    assert results[0]["unpositioned"] == []
    assert len(results[1]["unpositioned"]) == 1 and "rank 1" in results[1]["unpositioned"][0]


def test_a_stop_on_rank_zero_stops_every_rank(tmp_path: Path):
    run_scenario("stop", tmp_path)
    steps = [result["num_timesteps"] for result in rank_results(tmp_path)]
    # Asked at rank 0's 40th step, honoured at the end of that rollout (the second, of 32 steps), on both ranks
    assert steps == [2 * 32 * script.N_ENVS * 2] * 2


def test_a_target_kl_trip_on_one_rank_stops_the_policy_epochs_of_both(tmp_path: Path):
    run_scenario("target_kl", tmp_path)
    first, second = rank_results(tmp_path)
    # The mean KL trips at the first minibatch of every rollout: no step at all, on either rank
    assert first["steps"] == second["steps"] == 0
    assert_bitwise_equal(first["parameters"], second["parameters"])


def test_a_nan_reward_on_one_rank_stops_both_with_an_error_naming_it(tmp_path: Path):
    result = run_scenario("nan_reward", tmp_path, expect_success=False)
    assert result.returncode != 0
    first, second = rank_errors(tmp_path)
    for error in (first, second):
        assert "rollout of rank(s) 1 is not finite" in error, error


def test_a_nan_loss_on_one_rank_stops_both_before_the_step(tmp_path: Path):
    result = run_scenario("nan_loss", tmp_path, expect_success=False)
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = rank_errors(tmp_path)
    assert "the loss is not finite on rank(s) 1" in first, first
    assert "on rank(s) 1: policy_gradient_loss is nan" in second, second
    first, second = rank_results(tmp_path)
    # No rank stepped on the NaN: the weights are finite and still the same on both
    assert all(th.isfinite(p).all() for p in first["parameters"])
    assert_same_training_state(first, second)


def test_whole_segment_minibatches_and_timeout_bootstrapping_under_two_ranks(tmp_path: Path):
    run_scenario("paper_options", tmp_path)
    first, second = rank_results(tmp_path)
    assert first["n_aux_phases"] == second["n_aux_phases"] == 2
    assert_same_training_state(first, second)


def test_mismatched_n_envs_is_refused_on_every_rank(tmp_path: Path):
    result = run_scenario("mismatched_n_envs", tmp_path, expect_success=False)
    assert result.returncode != 0
    for error in rank_errors(tmp_path):
        assert "n_envs: rank 0 has 2, rank 1 has 3" in error, error


def test_a_setting_that_changes_the_collectives_is_refused_on_every_rank(tmp_path: Path):
    # Aux target normalisation adds collectives: unchecked, the ranks' all-reduces would mismatch in gloo
    result = run_scenario("mismatched_normalize_aux_targets", tmp_path, expect_success=False)
    assert result.returncode != 0
    for error in rank_errors(tmp_path):
        assert "normalize_aux_targets: rank 0 has True, rank 1 has False" in error, error


def test_recurrent_ppg_refuses_several_ranks(tmp_path: Path):
    result = run_scenario("recurrent", tmp_path, expect_success=False)
    assert result.returncode != 0
    for error in rank_errors(tmp_path):
        assert "RecurrentPPG (a recurrent policy) does not support data-parallel training" in error, error


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_killed_rank_ends_the_other_with_an_error(tmp_path: Path):
    # Plain processes, no torchrun agent to tear the run down: the survivor must fail on its own
    env = dict(zoo_env(), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE="2")
    env[distributed.TIMEOUT_ENV] = "20"
    start = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), "sigkill", str(tmp_path)],
            env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    try:
        outputs = [process.communicate(timeout=TIMEOUT_S) for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert processes[1].returncode == -9
    assert processes[0].returncode != 0
    assert time.monotonic() - start < TIMEOUT_S
    # gloo names the lost peer (connection closed) or the timeout
    assert "gloo" in outputs[0][1].lower() or "timed out" in outputs[0][1].lower(), outputs[0][1][-3000:]


@pytest.mark.parametrize(
    "normalize_advantage,epochs",
    [
        (True, (2, 2)),
        ("rollout", (2, 2)),
        (False, (2, 2)),
        # Value-only steps: the actor has no gradients there, which must never be zero-filled (Adam would move it)
        (True, (1, 3)),
    ],
)
def test_two_ranks_of_n_envs_train_as_one_of_2n(tmp_path: Path, normalize_advantage: bool | str, epochs: tuple[int, int]):
    rng = np.random.default_rng(0)
    n_envs, n_steps = 4, 8
    rollouts = [
        dict(
            observations=rng.normal(size=(n_steps, n_envs, 4)).astype(np.float32),
            actions=rng.integers(0, 2, size=(n_steps, n_envs)),
            rewards=rng.normal(size=(n_steps, n_envs)).astype(np.float32),
            episode_starts=(rng.random((n_steps, n_envs)) < 0.1).astype(np.float32),
            last_observations=rng.normal(size=(n_envs, 4)).astype(np.float32),
            dones=(rng.random(n_envs) < 0.1).astype(np.float32),
        )
        for _ in range(2)
    ]
    initial = script.equivalence_model(n_envs, normalize_advantage, None, *epochs).policy.state_dict()
    data = dict(n_envs=n_envs, modes=[normalize_advantage], initial=initial, rollouts=rollouts, epochs=epochs)
    th.save(data, tmp_path / "rollouts.pt")
    single = script.equivalence_model(n_envs, normalize_advantage, initial, *epochs)
    script.train_on_rollouts(single, rollouts, slice(None))
    assert single._n_aux_phases == 1
    single_logs = script.train_logs(single)
    run_scenario("equivalence", tmp_path)
    results = rank_results(tmp_path)
    # Each rank trained on its own half of the envs, not on all of them
    assert [result["columns"] for result in results] == [(0, n_envs // 2), (n_envs // 2, n_envs)]
    for result in results:
        for a, b in zip(single.policy.parameters(), result["parameters"][str(normalize_advantage)], strict=True):
            assert th.allclose(a.detach(), b, rtol=0, atol=1e-6), (a - b).abs().max()
        # Logged losses are means over all ranks' minibatches (each rank's own would be of half the data)
        logged = result["logs"][str(normalize_advantage)]
        assert set(logged) == set(single_logs) and "train/value_loss" in logged and "train/aux_value_loss" in logged
        for key, value in single_logs.items():
            assert np.isclose(logged[key], value, rtol=1e-5, atol=1e-7), (key, logged[key], value)
    # And training moved the weights, so the comparison is not of untouched weights
    assert any(not th.equal(a, b) for a, b in zip(single.policy.state_dict().values(), initial.values(), strict=True))


def test_the_zoo_under_torchrun_writes_one_model_and_one_log(tmp_path: Path):
    hyperparams = ["n_envs:2", "n_steps:32", "batch_size:32", "n_policy_iterations:2", "n_aux_epochs:1", "aux_batch_size:64"]
    torchrun(
        "-m", "sb3_ppg.zoo", "train", "--algo", "ppg", "--env", "CartPole-v1", "-n", "256", "-f", "logs",
        "--seed", "0", "--eval-freq", "-1", "-params", *hyperparams,
        cwd=tmp_path,
    )  # fmt: skip
    runs = sorted(path.name for path in (tmp_path / "logs" / "ppg").iterdir())
    assert runs == ["CartPole-v1_1"]
    run = tmp_path / "logs" / "ppg" / "CartPole-v1_1"
    assert (run / "CartPole-v1.zip").is_file()
    assert sorted(path.name for path in run.glob("*.monitor.csv")) == ["0.monitor.csv", "1.monitor.csv"]
    # One model in the whole tree, and nothing left in the temporary folders of rank 1
    assert len(list(tmp_path.rglob("*.zip"))) == 1
    model = PPG.load(run / "CartPole-v1.zip")
    assert model.num_timesteps == 256


def test_the_zoo_under_torchrun_resumes_each_rank_with_its_own_aux_buffer(tmp_path: Path):
    hyperparams = ["n_envs:2", "n_steps:32", "batch_size:32", "n_policy_iterations:3", "n_aux_epochs:1", "aux_batch_size:64"]
    train = [
        "-m",
        "sb3_ppg.zoo",
        "train",
        "--algo",
        "ppg",
        "--env",
        "CartPole-v1",
        "-f",
        "logs",
        "--seed",
        "0",
        "--eval-freq",
        "-1",
    ]
    # 5 rollouts of 128 steps: 2 into the second aux cycle; --save-freq counts the steps of one rank
    torchrun(*train, "-n", "640", "--save-freq", "320", "--save-aux-buffer", "-params", *hyperparams, cwd=tmp_path)
    run = tmp_path / "logs" / "ppg" / "CartPole-v1_1"
    assert sorted(path.name for path in run.glob("*aux_buffer*")) == [
        "aux_buffer_rank0.npz",
        "aux_buffer_rank1.npz",
        "rl_model_aux_buffer_640_steps_rank0.npz",
        "rl_model_aux_buffer_640_steps_rank1.npz",
    ]
    assert PPG.load(run / "rl_model_640_steps.zip")._n_aux_phases == 1
    result = torchrun(*train, "-n", "128", "-i", str(run / "rl_model_640_steps.zip"), "-params", *hyperparams, cwd=tmp_path)
    assert "Loading the aux buffer" in result.stdout and "rl_model_aux_buffer_640_steps_rank0.npz" in result.stdout
    model = PPG.load(tmp_path / "logs" / "ppg" / "CartPole-v1_2" / "CartPole-v1.zip")
    assert model.num_timesteps == 768
    # The second cycle's aux phase came on schedule, at 768 steps; without the buffers it would come 3 rollouts later
    assert model._n_aux_phases == 2
