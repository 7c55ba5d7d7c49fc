import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)

from sb3_ppg import PPG
from tests.conftest import SMALL


class TupleObsEnv(gym.Env):
    observation_space = spaces.Tuple([spaces.Discrete(2), spaces.Discrete(3)])
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return (0, 0), {}

    def step(self, action):
        return (0, 0), 0.0, True, False, {}


class TupleActionEnv(gym.Env):
    observation_space = spaces.Box(-1, 1, shape=(2,), dtype=np.float32)
    action_space = spaces.Tuple([spaces.Discrete(2), spaces.Discrete(3)])

    def reset(self, *, seed=None, options=None):
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), 0.0, True, False, {}


CASES = {
    "discrete": ("MlpPolicy", lambda: IdentityEnv(4)),
    "box": ("MlpPolicy", lambda: IdentityEnvBox(ep_length=20)),
    "multidiscrete": ("MlpPolicy", lambda: IdentityEnvMultiDiscrete(3)),
    "multibinary": ("MlpPolicy", lambda: IdentityEnvMultiBinary(3)),
    "discrete-obs": ("MlpPolicy", lambda: gym.make("FrozenLake-v1")),
    "image": ("CnnPolicy", lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True)),
    "image-box-action": ("CnnPolicy", lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=3, discrete=False)),
    "dict": ("MultiInputPolicy", lambda: SimpleMultiObsEnv(random_start=True)),
}


@pytest.mark.parametrize("case", CASES)
def test_spaces(case, tmp_path):
    policy, make_env = CASES[case]
    model = PPG(policy, make_env(), seed=0, **SMALL)
    model.learn(4 * 64)
    assert model._n_aux_phases == 2

    env = model.get_env()
    obs = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action[0])

    model.save(tmp_path / "model")
    loaded = PPG.load(tmp_path / "model", env=make_env())
    loaded_action, _ = loaded.predict(obs, deterministic=True)
    assert np.array_equal(action, loaded_action)
    loaded.learn(2 * 64, reset_num_timesteps=False)
    assert loaded.num_timesteps == 6 * 64
    assert loaded._n_aux_phases == 3


def test_dict_aux_buffer_keeps_each_key_dtype():
    model = PPG("MultiInputPolicy", SimpleMultiObsEnv(random_start=True), seed=0, **SMALL)
    for key, subspace in model.observation_space.spaces.items():
        assert model.aux_buffer.observations[key].dtype == subspace.dtype


@pytest.mark.parametrize(
    "env, message",
    [
        (TupleObsEnv(), "observation space Tuple.*allowed observation spaces are Box, Discrete, MultiDiscrete, MultiBinary"),
        (TupleActionEnv(), "action space Tuple.*allowed action spaces are Box, Discrete, MultiDiscrete, MultiBinary"),
    ],
)
def test_unsupported_spaces_are_refused_by_name(env, message):
    with pytest.raises(ValueError, match=message):
        PPG("MlpPolicy", env)
