"""The MinAtar env that sb3_ppg registers (sb3_ppg.common.minatar): every seed SB3 takes, and checked options."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env

pytest.importorskip("minatar", reason='MinAtar needs the minatar extra: pip install "sb3-ppg[minatar]"')

from sb3_ppg.common.minatar import MinAtarEnv
from sb3_ppg.common.seeding import UINT32_LIMIT, fold_seed

ENV_ID = "MinAtar/Breakout-v1"


def trajectory(seed: int, steps: int = 200) -> np.ndarray:
    """
    The observations of ``steps`` fixed actions from ``reset(seed=seed)`` of a new env (MinAtar keeps its last
    action, the one a sticky action repeats, across resets). The seeded RandomState drives the sticky actions.
    """
    env = gym.make(ENV_ID)
    frames = [env.reset(seed=seed)[0]]
    for step in range(steps):
        observation, _, terminated, truncated, _ = env.step(step % env.action_space.n)
        frames.append(observation)
        if terminated or truncated:
            frames.append(env.reset()[0])
    env.close()
    return np.array(frames)


def test_registered_ids_make_the_checked_env():
    env = gym.make(ENV_ID)
    assert isinstance(env.unwrapped, MinAtarEnv)
    check_env(env.unwrapped)
    env.close()


def test_every_seed_of_sb3s_range_seeds_minatar():
    small = trajectory(5)
    np.testing.assert_array_equal(trajectory(5), small)
    assert not np.array_equal(trajectory(6), small)
    # Below 2**32 a seed is MinAtar's own: the generator of MinAtar's RandomState(seed)
    env = gym.make(ENV_ID)
    env.unwrapped.seed(UINT32_LIMIT - 1)
    expected = np.random.RandomState(UINT32_LIMIT - 1).get_state()[1]
    np.testing.assert_array_equal(env.unwrapped.game.random.get_state()[1], expected)
    # Past it, the folded seed: deterministic, and not the small seeds' games
    large = trajectory(2**40)
    np.testing.assert_array_equal(trajectory(fold_seed(2**40, UINT32_LIMIT)), large)
    np.testing.assert_array_equal(trajectory(2**40), large)
    assert not np.array_equal(large, small)
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0.*got -1"):
        env.reset(seed=-1)
    env.close()


def test_sb3_seeds_past_2_32_in_a_vec_env():
    # SB3 seeds env i with seed + i: the second env gets 2**32, which MinAtar alone refuses
    env = make_vec_env(ENV_ID, n_envs=2, seed=UINT32_LIMIT - 1)
    observations = env.reset()
    assert observations.shape == (2, 10, 10, 4)
    env.step(np.array([0, 1]))
    env.close()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sticky_action_prob=1.5), r"sticky_action_prob must be a probability in \[0, 1\], got 1.5"),
        (dict(sticky_action_prob=float("nan")), r"sticky_action_prob must be a probability in \[0, 1\], got nan"),
        (dict(sticky_action_prob=True), r"sticky_action_prob must be a probability in \[0, 1\], got True"),
        (dict(difficulty_ramping=1), "difficulty_ramping must be True or False, got 1"),
        (dict(display_time=0), r"display_time must be an integer >= 1, got 0"),
        (dict(render_mode="rgb"), "render_mode must be None or one of human, array, rgb_array, got 'rgb'"),
    ],
)
def test_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make(ENV_ID, **kwargs)


def test_options_reach_minatar():
    env = MinAtarEnv("asterix", sticky_action_prob=0, difficulty_ramping=False)
    assert env.game.sticky_action_prob == 0.0 and env.game.env.ramping is False
    with pytest.raises(ValueError, match="game must be one of MinAtar's games, asterix, breakout"):
        MinAtarEnv("pong")
