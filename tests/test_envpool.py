"""
EnvPool as an SB3 VecEnv (sb3_ppg.common.envpool): the VecEnv contract, episode ends, seeding, training with PPG,
the RL Zoo and the training command, and the errors without envpool or Qt.

Tests that need envpool with a working Procgen skip when it is missing, except under ``CI=true``, where they fail:
CI installs both (``make test``).
"""

import sys
import types
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.monitor import Monitor, load_results
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import VecMonitor

from sb3_ppg import PPG
from sb3_ppg.common.envpool import (
    EnvPoolGymEnv,
    EnvPoolVecEnv,
    envpool_family,
    make_atari_env,
    make_procgen_env,
    procgen_env_id,
    procgen_game_and_mode,
    register_gymnasium_ids,
)
from sb3_ppg.common.seeding import fold_seed

PROCGEN_ID = "StarpilotHard-v0"
QT_MESSAGE = "EnvPool Procgen requires the system Qt 5 runtime on Linux."


# require_envpool (conftest.py) skips without envpool and Qt, and fails under CI=true
needs_envpool = pytest.mark.usefixtures("require_envpool")


def small_cnn_kwargs() -> dict:
    """A small image extractor: ImpalaCNN at a small width when it exists, else a narrow NatureCNN."""
    try:
        from sb3_ppg.common.torch_layers import ImpalaCNN
    except ImportError:
        return dict(features_extractor_kwargs=dict(features_dim=32))
    return dict(features_extractor_class=ImpalaCNN, features_extractor_kwargs=dict(features_dim=32, channels=(4, 8, 8)))


class RecordingWriter(KVWriter):
    """Keeps every value the logger dumps."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def write(self, key_values: dict, key_excluded: dict, step: int = 0) -> None:
        self.records.append(dict(key_values))


# --- The VecEnv contract -----------------------------------------------------------------------------------


@needs_envpool
def test_spaces_shapes_and_dtypes():
    env = make_procgen_env("starpilot", n_envs=3)
    assert env.env_id == PROCGEN_ID
    assert env.observation_space == gym.spaces.Box(0, 255, (3, 64, 64), np.uint8)
    assert env.action_space == gym.spaces.Discrete(15)
    assert is_image_space(env.observation_space) and is_image_space_channels_first(env.observation_space)
    assert env.render_mode is None

    observations = env.reset()
    assert observations.shape == (3, 3, 64, 64) and observations.dtype == np.uint8
    assert [info["elapsed_step"] for info in env.reset_infos] == [0, 0, 0]
    observations, rewards, dones, infos = env.step(np.array([1, 2, 3]))
    assert observations.shape == (3, 3, 64, 64) and observations.dtype == np.uint8
    assert rewards.shape == (3,) and rewards.dtype == np.float32
    assert dones.shape == (3,) and dones.dtype == bool
    assert len(infos) == 3 and all(info["TimeLimit.truncated"] is False for info in infos)
    assert [info["env_id"] for info in infos] == [0, 1, 2]
    assert env.get_attr("render_mode", indices=[0, 2]) == [None, None]
    assert env.env_is_wrapped(Monitor) == [True] * 3 and env.env_is_wrapped(gym.Wrapper) == [False] * 3
    with pytest.raises(NotImplementedError, match="cannot set 'foo'"):
        env.set_attr("foo", 1)
    with pytest.raises(NotImplementedError, match="no Python method 'bar'"):
        env.env_method("bar")
    env.close()


@needs_envpool
def test_terminal_observation_is_the_last_of_the_episode_and_obs_the_first_of_the_next():
    import envpool

    # A reference pool stepped the plain EnvPool way: it resets an env on the step after its episode ended
    reference = envpool.make_gymnasium(PROCGEN_ID, num_envs=1, seed=7)
    env = EnvPoolVecEnv(PROCGEN_ID, n_envs=1, seed=7)
    reference_obs, _ = reference.reset()
    np.testing.assert_array_equal(env.reset(), reference_obs)
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(3000):
        action = rng.integers(0, 15, size=1)
        reference_obs, reference_reward, terminated, truncated, reference_info = reference.step(action)
        obs, reward, done, infos = env.step(action)
        assert reward[0] == reference_reward[0] and done[0] == (terminated[0] or truncated[0])
        if not done[0]:
            np.testing.assert_array_equal(obs, reference_obs)
            assert "terminal_observation" not in infos[0] and "episode" not in infos[0]
            continue
        episodes += 1
        # The terminal observation is what EnvPool returned at the step that ended the episode...
        np.testing.assert_array_equal(infos[0]["terminal_observation"], reference_obs[0])
        assert infos[0]["episode"]["l"] == reference_info["elapsed_step"][0]
        # ...and the returned observation is the first of the next episode: EnvPool's next step, a reset that
        # ignores its action (test_the_reset_step_ignores_its_action), so the step that ended it was the last
        reference_obs, _, _, _, reference_info = reference.step(np.array([0]))
        assert reference_info["elapsed_step"][0] == 0
        np.testing.assert_array_equal(obs[0], reference_obs[0])
        assert not np.array_equal(obs[0], infos[0]["terminal_observation"])
        assert env.reset_infos[0]["elapsed_step"] == 0
        if episodes == 2:
            break
    assert episodes == 2
    # Still in step: no step was lost or added at the episode boundaries
    action = np.array([4])
    np.testing.assert_array_equal(env.step(action)[0], reference.step(action)[0])


@needs_envpool
def test_the_reset_step_ignores_its_action():
    # What the test above relies on: EnvPool's step after an episode's end is a pure reset
    import envpool

    starts = []
    for reset_action in (0, 9):
        pool = envpool.make_gymnasium(PROCGEN_ID, num_envs=1, seed=3)
        pool.reset()
        rng = np.random.default_rng(1)
        while True:
            _, _, terminated, truncated, _ = pool.step(rng.integers(0, 15, size=1))
            if terminated[0] or truncated[0]:
                break
        starts.append(pool.step(np.array([reset_action]))[0][0])
        pool.close()
    np.testing.assert_array_equal(starts[0], starts[1])


@needs_envpool
def test_time_limit_is_a_truncation():
    # A random agent rarely solves a maze: most episodes end at Maze's time limit of 500 steps
    env = make_procgen_env("maze", n_envs=4, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    truncations = 0
    for _ in range(500):
        _, _, dones, infos = env.step(rng.integers(0, 15, size=4))
        for done, info in zip(dones, infos, strict=True):
            if info["TimeLimit.truncated"]:
                assert done and info["episode"]["l"] == 500 and info["terminal_observation"].shape == (3, 64, 64)
                truncations += 1
            elif done:
                assert info["episode"]["l"] < 500
    assert truncations > 0


@needs_envpool
def test_atari_episode_is_a_whole_game():
    env = make_atari_env("breakout", n_envs=1, seed=0, episodic_life=True, reward_clip=True)
    assert env.env_id == "Breakout-v5"
    assert env.observation_space.shape == (4, 84, 84) and is_image_space_channels_first(env.observation_space)
    env.reset()
    rng = np.random.default_rng(0)
    life_losses, steps, score = 0, 0, 0.0
    for _ in range(5000):
        _, _, dones, infos = env.step(rng.integers(0, 4, size=1))
        steps += 1
        score += float(infos[0]["reward"])
        if "episode" in infos[0]:
            break
        if dones[0]:
            life_losses += 1
            # The next life goes on: EnvPool's own reset, not a new game
            assert env.reset_infos[0]["lives"] == infos[0]["lives"] > 0
    else:
        pytest.fail("no game ended in 5000 steps")
    assert life_losses == 4
    assert infos[0]["episode"]["l"] == steps
    assert infos[0]["episode"]["r"] == pytest.approx(score)


@needs_envpool
def test_monitor_file_and_vec_monitor(tmp_path):
    monitor_file = str(tmp_path / "0.monitor.csv")
    env = make_procgen_env(PROCGEN_ID, n_envs=2, seed=0, monitor_file=monitor_file)
    env.reset()
    episodes = []
    while len(episodes) < 3:
        _, _, _, infos = env.step(np.zeros(2, dtype=np.int64))
        episodes += [info["episode"] for info in infos if "episode" in info]
    env.close()
    results = load_results(str(tmp_path))
    assert list(results["l"]) == [episode["l"] for episode in episodes]
    assert list(results["r"]) == pytest.approx([episode["r"] for episode in episodes])
    # VecMonitor on top works, and says that it replaces the pool's own episode statistics
    with pytest.warns(UserWarning, match="already wrapped with a `Monitor`"):
        VecMonitor(make_procgen_env(PROCGEN_ID, n_envs=2, seed=0))


@needs_envpool
def test_seeding_is_reproducible():
    def trajectory(env: EnvPoolVecEnv) -> np.ndarray:
        frames = [env.reset()]
        frames += [env.step(np.full(2, step % 15))[0] for step in range(60)]
        return np.array(frames)

    first = trajectory(make_procgen_env(PROCGEN_ID, n_envs=2, seed=5))
    np.testing.assert_array_equal(trajectory(make_procgen_env(PROCGEN_ID, n_envs=2, seed=5)), first)
    assert not np.array_equal(trajectory(make_procgen_env(PROCGEN_ID, n_envs=2, seed=6)), first)

    # seed() takes effect at the next reset, on a used env too
    env = make_procgen_env(PROCGEN_ID, n_envs=2, seed=6)
    trajectory(env)
    env.seed(5)
    np.testing.assert_array_equal(trajectory(env), first)
    # A fresh pool already built with that seed is kept
    env = make_procgen_env(PROCGEN_ID, n_envs=2, seed=5)
    pool = env.pool
    env.seed(5)
    np.testing.assert_array_equal(trajectory(env), first)
    assert env.pool is pool


@needs_envpool
@pytest.mark.parametrize("seed", [0, 2**31 - 1, 2**31, 3_500_696_360, 2**32 - 1])
def test_every_seed_of_sb3s_range_builds_resets_and_steps(seed):
    # The RL Zoo draws its seeds from [0, 2**32 - 1]; EnvPool takes int32 seeds only
    env = EnvPoolVecEnv(PROCGEN_ID, n_envs=2, seed=seed)
    assert env.pool_seed == (seed if seed < 2**31 else fold_seed(seed, 2**31))
    assert 0 <= env.pool_seed < 2**31 and env.pool.config["seed"] == env.pool_seed
    first = env.reset()
    observations, rewards, _, infos = env.step(np.array([1, 2]))
    assert observations.shape == (2, 3, 64, 64) and rewards.shape == (2,) and len(infos) == 2
    env.close()
    # Same seed, same levels
    again = EnvPoolVecEnv(PROCGEN_ID, n_envs=2, seed=seed)
    np.testing.assert_array_equal(again.reset(), first)
    again.close()


@needs_envpool
def test_seed_method_takes_large_seeds():
    seed = 2**32 - 1
    expected = EnvPoolVecEnv(PROCGEN_ID, n_envs=2, seed=seed).reset()
    env = EnvPoolVecEnv(PROCGEN_ID, n_envs=2, seed=0)
    first = env.reset()
    # SB3's numbering of the envs' seeds, beyond 2**32 for the second env
    assert env.seed(seed) == [seed, seed + 1]
    np.testing.assert_array_equal(env.reset(), expected)
    assert env.pool_seed == fold_seed(seed, 2**31) and not np.array_equal(expected, first)
    # Seeds below 2**31 are EnvPool's own seeds: distinct ones stay distinct
    env.seed(2**31 - 1)
    top = env.reset()
    assert env.pool_seed == 2**31 - 1
    env.seed(2**31 - 2)
    assert not np.array_equal(env.reset(), top)
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0.*got -5"):
        env.seed(-5)
    env.close()


@needs_envpool
def test_int_options_must_fit_envpools_int32():
    with pytest.raises(ValueError, match=r"max_episode_steps must be an integer in \[1, 2147483647\].*got 2147483648"):
        make_atari_env("pong", max_episode_steps=2**31)
    with pytest.raises(
        ValueError, match=r"thread_affinity_offset must be an integer in \[-2147483648, 2147483647\].*got 2147483648"
    ):
        make_atari_env("pong", thread_affinity_offset=2**31)
    with pytest.raises(ValueError, match=r"num_threads must be an integer in \[0, 2147483647\].*got -2"):
        EnvPoolVecEnv("Pong-v5", num_threads=-2)
    # In range they pass to EnvPool as they are
    env = make_procgen_env("starpilot", num_levels=2**31 - 1, num_threads=1)
    assert (env.pool.config["num_levels"], env.pool.config["num_threads"]) == (2**31 - 1, 1)
    env.close()


@needs_envpool
@pytest.mark.parametrize("name", ["stack_num", "frame_skip", "noop_max", "img_height", "img_width", "max_episode_steps"])
@pytest.mark.parametrize("value", [0, -1])
def test_atari_sizes_below_1_are_refused_before_envpool_crashes(name: str, value: int):
    # EnvPool segfaults on stack_num, noop_max (0 too) and aborts on an image size below 1
    with pytest.raises(ValueError, match=rf"{name} must be an integer in \[1, 2147483647\].*got {value}"):
        make_atari_env("pong", **{name: value})


@needs_envpool
@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "0.25"])
def test_sticky_action_probability_must_be_a_probability(value: Any):
    with pytest.raises(ValueError, match=r"repeat_action_probability must be a probability in \[0, 1\]"):
        make_atari_env("pong", repeat_action_probability=value)
    env = make_atari_env("pong", repeat_action_probability=0.25, stack_num=1, noop_max=1)
    assert env.observation_space.shape == (1, 84, 84)
    env.close()


# --- Training --------------------------------------------------------------------------------------------


@needs_envpool
def test_ppg_trains_on_procgen_and_logs_episodes():
    env = make_procgen_env(PROCGEN_ID, n_envs=8, seed=0)
    model = PPG(
        "CnnPolicy",
        env,
        n_steps=64,
        batch_size=256,
        n_epochs=1,
        n_value_epochs=1,
        n_policy_iterations=2,
        n_aux_epochs=1,
        aux_batch_size=256,
        policy_kwargs=small_cnn_kwargs(),
        seed=0,
        device="cpu",
    )
    # Channel-first images go in as they are
    assert model.get_env() is env
    writer = RecordingWriter()
    model.set_logger(Logger(folder=None, output_formats=[writer]))
    model.learn(4 * 8 * 64)
    assert model.num_timesteps == 4 * 8 * 64
    assert model._n_aux_phases == 2
    logged = [record["rollout/ep_rew_mean"] for record in writer.records if "rollout/ep_rew_mean" in record]
    assert logged and all(np.isfinite(logged))
    assert len(model.ep_info_buffer) > 0 and all(info["l"] > 0 for info in model.ep_info_buffer)

    eval_env = make_procgen_env(PROCGEN_ID, n_envs=2, seed=100)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*Monitor.*")
        returns, lengths = evaluate_policy(model, eval_env, n_eval_episodes=2, return_episode_rewards=True)
    assert len(returns) == 2 and all(length > 0 for length in lengths)


@needs_envpool
def test_training_command_builds_envpool_envs(tmp_path, monkeypatch):
    from sb3_ppg import train

    small = dict(n_steps=32, batch_size=64, n_epochs=1, n_value_epochs=1, n_policy_iterations=1, n_aux_epochs=1)
    config = dict(small, aux_batch_size=64, policy_kwargs=small_cnn_kwargs(), env_kwargs=dict(num_levels=5))
    monkeypatch.setattr(train, "load_config", lambda env_id: dict(config))
    made = []
    original = train.make_env
    monkeypatch.setattr(train, "make_env", lambda *args, **kwargs: made.append(original(*args, **kwargs)) or made[-1])
    save_path = str(tmp_path / "model")
    # A seed past EnvPool's int32, as `make train SEED=...` may pass
    seed = 2**32 - 1
    train.main(["--env", PROCGEN_ID, "--timesteps", "64", "--n-envs", "2", "--eval-freq", "100000", "--eval-episodes", "1",
                "--save-path", save_path, "--no-progress-bar", "--seed", str(seed)])  # fmt: skip
    assert [type(env) for env in made] == [EnvPoolVecEnv, EnvPoolVecEnv]
    assert [env.pool_seed for env in made] == [fold_seed(seed, 2**31), fold_seed(seed + 10_000, 2**31)]
    assert [env.num_envs for env in made] == [2, 1]
    assert made[0].pool.config["num_levels"] == 5
    model = PPG.load(save_path, device="cpu")
    assert model.observation_space.shape == (3, 64, 64)


@needs_envpool
@pytest.mark.parametrize("algo", ["ppg", "ppo"])
def test_zoo_trains_through_envpool(tmp_path, algo):
    pytest.importorskip("rl_zoo3", reason="the zoo integration needs the zoo extra: pip install -e '.[zoo]'")
    from tests.conftest import run_zoo

    entry = dict(
        policy="CnnPolicy",
        n_envs=4,
        n_timesteps=512,
        n_steps=32,
        batch_size=64,
        n_epochs=1,
        normalize="dict(norm_obs=False, norm_reward=True)",
        env_kwargs=dict(num_levels=10),
        policy_kwargs="dict(features_extractor_kwargs=dict(features_dim=32))",
    )
    if algo == "ppg":
        entry.update(n_value_epochs=1, n_policy_iterations=2, n_aux_epochs=1, aux_batch_size=64)
    conf_file = tmp_path / "conf.yml"
    conf_file.write_text(yaml.safe_dump({PROCGEN_ID: entry}))
    result = run_zoo(
        "train", "--algo", algo, "--env", PROCGEN_ID, "--conf-file", str(conf_file), "--seed", "0", "-f", "logs",
        "--eval-freq", "256", "--eval-episodes", "1", "--n-eval-envs", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert "Normalization activated" in result.stdout
    run_folder = tmp_path / "logs" / algo / f"{PROCGEN_ID}_1"
    assert (run_folder / PROCGEN_ID / "vecnormalize.pkl").is_file()
    # The training episodes, in the zoo's Monitor format, and the evaluation ran
    # One file for the pool's 4 envs (the zoo's own Monitor would write one per env)
    assert sorted(path.name for path in run_folder.glob("*monitor.csv")) == ["0.monitor.csv"]
    episodes = load_results(str(run_folder))
    assert len(episodes) > 0 and (episodes["l"] > 0).all()
    assert (run_folder / "evaluations.npz").is_file()
    model = PPG.load(run_folder / f"{PROCGEN_ID}.zip", device="cpu") if algo == "ppg" else None
    if model is not None:
        assert model.observation_space.shape == (3, 64, 64) and model.num_timesteps == 512


@needs_envpool
@pytest.mark.parametrize("conf_file, arch", [(None, "dual"), ("procgen_ppo_reference", "shared")])
def test_zoo_trains_the_packaged_procgen_entries(tmp_path, conf_file, arch):
    # The packaged entries as they are (full IMPALA CNN, the paper's options), shrunk only in size
    pytest.importorskip("rl_zoo3", reason="the zoo integration needs the zoo extra: pip install -e '.[zoo]'")
    import pickle

    from tests.conftest import run_zoo

    args = ["train", "--algo", "ppg", "--env", PROCGEN_ID, "--seed", "0", "-f", "logs", "-n", "64", "--eval-freq", "0"]
    args += ["-params", "n_envs:2", "n_steps:16", "batch_size:16", "aux_batch_size:32", "n_policy_iterations:2"]
    if conf_file is not None:
        args += ["--conf-file", conf_file]
    run_zoo(*args, cwd=tmp_path)
    run_folder = tmp_path / "logs" / "ppg" / f"{PROCGEN_ID}_1"
    model = PPG.load(run_folder / f"{PROCGEN_ID}.zip", device="cpu")
    assert model.policy.arch == arch and model.num_timesteps == 64
    assert (model.max_grad_norm, model.normalize_advantage, model.normalize_aux_targets) == (None, "rollout", False)
    assert (model.handle_timeout_termination, model.env_segment_minibatches) == (False, True)
    assert model._n_aux_phases == (1 if conf_file is None else 0)
    with open(run_folder / PROCGEN_ID / "vecnormalize.pkl", "rb") as file:
        vec_normalize = pickle.load(file)
    assert (vec_normalize.gamma, vec_normalize.clip_reward, vec_normalize.norm_obs) == (0.99, 10.0, False)


@needs_envpool
def test_readme_procgen_command_runs_on_the_zoos_own_seed_draw(tmp_path):
    # The README's command, no --seed: the zoo draws one from [0, 2**32 - 1], here one past EnvPool's int32
    pytest.importorskip("rl_zoo3", reason="the zoo integration needs the zoo extra: pip install -e '.[zoo]'")
    from tests.conftest import forced_zoo_seed, run_zoo

    seed = 3_500_696_360
    small = ["n_envs:2", "n_steps:32", "batch_size:64", "n_policy_iterations:2", "n_aux_epochs:1", "aux_batch_size:64"]
    small += ["policy_kwargs:dict(features_extractor_kwargs=dict(features_dim=32, channels=(4, 8, 8)))"]
    result = run_zoo(
        "train", "--algo", "ppg", "--env", PROCGEN_ID, "-f", "logs", "-n", "256", "--hyperparams", *small,
        cwd=tmp_path, prelude=forced_zoo_seed(seed),
    )  # fmt: skip
    assert f"Seed: {seed}" in result.stdout
    model = PPG.load(tmp_path / "logs" / "ppg" / f"{PROCGEN_ID}_1" / f"{PROCGEN_ID}.zip", device="cpu")
    assert model.num_timesteps == 256 and model._n_aux_phases == 2


def test_zoo_keeps_the_gamma_of_normalize():
    pytest.importorskip("rl_zoo3", reason="the zoo integration needs the zoo extra: pip install -e '.[zoo]'")
    from sb3_ppg.zoo import PPGExperimentManager

    manager = PPGExperimentManager.__new__(PPGExperimentManager)
    manager.normalize, manager.normalize_kwargs = False, {}
    left = manager._preprocess_normalization({"normalize": "dict(norm_obs=False, gamma=0.99)", "gamma": 0.999})
    assert left == {"gamma": 0.999}
    assert manager.normalize is True and manager.normalize_kwargs == {"norm_obs": False, "gamma": 0.99}
    # Without its own gamma, the zoo's rule: the algorithm's
    manager.normalize, manager.normalize_kwargs = False, {}
    manager._preprocess_normalization({"normalize": True, "gamma": 0.999})
    assert manager.normalize_kwargs == {"gamma": 0.999}


@needs_envpool
def test_gymnasium_ids_make_single_envs():
    assert PROCGEN_ID in register_gymnasium_ids() or PROCGEN_ID in gym.envs.registry
    assert "Pong-v5" in gym.envs.registry
    env = gym.make(PROCGEN_ID)
    assert isinstance(env.unwrapped, EnvPoolGymEnv)
    obs, _ = env.reset(seed=2**32 - 1)
    assert obs.shape == (3, 64, 64) and env.unwrapped._vec_env.pool_seed == fold_seed(2**32 - 1, 2**31)
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0.*got -1"):
        env.reset(seed=-1)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 64, 64)
    rng = np.random.default_rng(0)
    for _ in range(3000):
        last_obs, _, terminated, truncated, _ = env.step(int(rng.integers(0, 15)))
        if terminated or truncated:
            break
    else:
        pytest.fail("no episode ended in 3000 steps")
    next_obs, info = env.reset()
    assert info["elapsed_step"] == 0 and not np.array_equal(next_obs, last_obs)
    env.close()


# --- Arguments and missing packages ----------------------------------------------------------------------


def test_ids_and_argument_errors():
    assert procgen_env_id("Starpilot") == PROCGEN_ID
    assert procgen_env_id("maze", "memory") == "MazeMemory-v0"
    assert procgen_game_and_mode("MazeMemory-v0") == ("maze", "memory")
    with pytest.raises(ValueError, match=r"env_id must be a Procgen id of EnvPool.*got 'CartPole-v1'"):
        procgen_game_and_mode("CartPole-v1")
    assert envpool_family(PROCGEN_ID) == "procgen"
    assert envpool_family("CartPole-v1") is None
    with pytest.raises(ValueError, match=r"game must be a Procgen game.*did you mean 'starpilot'"):
        make_procgen_env("starpilott")
    with pytest.raises(ValueError, match="distribution_mode of bigfish must be one of easy, hard; got 'extreme'"):
        make_procgen_env("bigfish", distribution_mode="extreme")
    with pytest.raises(ValueError, match="distribution_mode='easy' contradicts the id 'StarpilotHard-v0'"):
        make_procgen_env(PROCGEN_ID, distribution_mode="easy")
    with pytest.raises(ValueError, match=r"num_levels must be an integer in \[0, 2147483647\] \(EnvPool's int32\), got -1"):
        make_procgen_env("starpilot", num_levels=-1)
    with pytest.raises(ValueError, match="max_episode_steps cannot be set for Procgen"):
        make_procgen_env("starpilot", max_episode_steps=100)
    with pytest.raises(ValueError, match=r"n_envs must be an integer in \[1, 2147483647\] \(EnvPool's int32\), got 0"):
        EnvPoolVecEnv(PROCGEN_ID, n_envs=0)
    with pytest.raises(ValueError, match=r"n_envs must be an integer in \[1, 2147483647\].*got 2147483648"):
        EnvPoolVecEnv(PROCGEN_ID, n_envs=2**31)
    # EnvPool aborts the whole process on a negative num_threads
    with pytest.raises(ValueError, match=r"num_threads must be an integer in \[0, 2147483647\].*got -1"):
        make_procgen_env("starpilot", num_threads=-1)
    with pytest.raises(ValueError, match=r"num_levels must be an integer in \[0, 2147483647\].*got 2147483648"):
        make_procgen_env("starpilot", num_levels=2**31)
    with pytest.raises(ValueError, match=r"start_level must be an integer in \[0, 2147483647\].*got 1.5"):
        make_procgen_env("starpilot", start_level=1.5)
    # Levels past int32 would wrap to negative level seeds
    with pytest.raises(
        ValueError, match=r"start_level \+ num_levels must be at most 2\*\*31.*start_level=2147483640 and num_levels=10"
    ):
        make_procgen_env("starpilot", num_levels=10, start_level=2**31 - 8)


@pytest.mark.parametrize("seed", [-1, -(2**40), 2.0, "3", True])
def test_a_seed_that_is_not_an_int_at_least_0_is_refused(seed):
    # Checked before envpool is imported: this runs without it too
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0 \(any non-negative int.*\[0, 2\*\*32 - 1\]"):
        EnvPoolVecEnv(PROCGEN_ID, seed=seed)


@needs_envpool
def test_argument_errors_that_need_envpool():
    with pytest.raises(ValueError, match=r"unknown EnvPool options for StarpilotHard-v0: num_level;.*num_levels"):
        make_procgen_env("starpilot", num_level=3)
    with pytest.raises(ValueError, match=r"unknown EnvPool options.*batch_size.*set by n_envs and seed"):
        make_procgen_env("starpilot", batch_size=2)
    with pytest.raises(ValueError, match=r"game_or_id must be one of EnvPool's .* Atari games.*Pong-v5"):
        make_atari_env("Pongg")
    with pytest.raises(ValueError, match="env_id must be an EnvPool id"):
        EnvPoolVecEnv("NoSuchGame-v0")


def test_missing_envpool_says_what_to_install(monkeypatch):
    # None in sys.modules makes `import envpool` raise ImportError
    monkeypatch.setitem(sys.modules, "envpool", None)
    with pytest.raises(ImportError, match=r'pip install "sb3-ppg\[procgen\]".*apt-get install -y libqt5gui5'):
        make_procgen_env("starpilot")
    with pytest.raises(ImportError, match=r'pip install "sb3-ppg\[procgen\]"'):
        make_atari_env("pong")


def test_missing_qt_says_what_to_install(monkeypatch):
    # EnvPool's Procgen raises this ImportError when it is built without the Qt5 runtime
    def make_spec(env_id: str) -> None:
        raise ImportError(QT_MESSAGE)

    fake_envpool = types.ModuleType("envpool")
    fake_envpool.make_spec = make_spec  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "envpool", fake_envpool)
    with pytest.raises(ImportError, match=r"StarpilotHard-v0 needs the system Qt5 runtime.*apt-get install -y libqt5gui5"):
        make_procgen_env("starpilot")
