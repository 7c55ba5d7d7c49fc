"""Advantages at episode ends: time-limit truncations bootstrap as SB3 does, or end the episode as the paper's code."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_ppg import PPG, MaskablePPG
from sb3_ppg.common.vec_env import VecTruncationAsTermination

GAMMA = 0.9
EPISODE = 3
N_STEPS = 2 * EPISODE


class CountingEnv(gym.Env):
    """Reward 1 at each step; the observation counts the steps. The episode ends after ``EPISODE`` steps, by
    termination or by truncation; its last observation (count ``EPISODE``) is never a rollout state."""

    observation_space = spaces.Box(0.0, EPISODE, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, truncate: bool):
        self.truncate = truncate
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        end = self.t == EPISODE
        return np.array([self.t], np.float32), 1.0, end and not self.truncate, end and self.truncate, {}

    def action_masks(self) -> np.ndarray:
        return np.ones(2, dtype=bool)


def collected(algo: type[PPG], truncate: bool, **kwargs) -> PPG:
    """A model (seed 0) after one rollout of two whole episodes, before any training."""
    env = DummyVecEnv([lambda: CountingEnv(truncate)])
    model = algo("MlpPolicy", env, n_steps=N_STEPS, batch_size=N_STEPS, aux_batch_size=N_STEPS, gamma=GAMMA,
                 gae_lambda=1.0, seed=0, **kwargs)  # fmt: skip
    _, callback = model._setup_learn(N_STEPS)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, N_STEPS)
    return model


def terminal_value(model: PPG) -> float:
    """The critic's V at the episodes' last observation (count ``EPISODE``)."""
    with th.no_grad():
        return float(model.policy.predict_values(th.tensor([[float(EPISODE)]]))[0, 0])


@pytest.mark.parametrize("algo", [PPG, MaskablePPG])
def test_without_timeout_handling_a_truncated_step_is_terminal(algo):
    model = collected(algo, truncate=True, handle_timeout_termination=False)
    buffer = model.rollout_buffer
    values = buffer.values[:, 0]
    assert np.array_equal(buffer.rewards[:, 0], np.ones(N_STEPS))
    # With lambda 1 the advantage is the discounted return to the episode's end minus V: 1 + g + g^2, 1 + g, 1
    returns = np.array([1 + GAMMA + GAMMA**2, 1 + GAMMA, 1.0] * 2)
    np.testing.assert_allclose(buffer.advantages[:, 0], returns - values, rtol=1e-6)
    # Bit for bit what the same model collects when the env terminates instead
    terminating = collected(algo, truncate=False, handle_timeout_termination=False)
    assert np.array_equal(terminating.rollout_buffer.values, buffer.values)
    assert np.array_equal(terminating.rollout_buffer.advantages, buffer.advantages)


@pytest.mark.parametrize("algo", [PPG, MaskablePPG])
def test_by_default_a_truncated_step_bootstraps_as_sb3_does(algo):
    model = collected(algo, truncate=True)
    assert model.handle_timeout_termination
    buffer = model.rollout_buffer
    values = buffer.values[:, 0]
    bootstrap = GAMMA * terminal_value(model)
    assert bootstrap != 0
    # SB3 adds gamma * V(terminal observation) to the reward of the truncated step
    np.testing.assert_allclose(buffer.rewards[:, 0], [1, 1, 1 + bootstrap] * 2, rtol=1e-6)
    returns = np.array([1 + GAMMA + GAMMA**2 * (1 + bootstrap), 1 + GAMMA * (1 + bootstrap), 1 + bootstrap] * 2)
    np.testing.assert_allclose(buffer.advantages[:, 0], returns - values, rtol=1e-5)
    # ... which a terminating env never gets
    terminating = collected(algo, truncate=False)
    assert not np.allclose(terminating.rollout_buffer.advantages, buffer.advantages)


def test_the_wrapper_keeps_the_terminal_observation_and_the_wrapped_infos():
    venv = DummyVecEnv([lambda: CountingEnv(truncate=True)])
    wrapped = VecTruncationAsTermination(venv)
    wrapped.reset()
    for _ in range(EPISODE):
        wrapped.step_async(np.array([0]))
        _, _, dones, infos = wrapped.step_wait()
    assert dones[0] and infos[0]["TimeLimit.truncated"] is False
    assert infos[0]["terminal_observation"][0] == EPISODE
    # The wrapped env still reports the truncation to anything that reads it directly
    venv.reset()
    for _ in range(EPISODE):
        _, _, _, raw_infos = venv.step(np.array([0]))
    assert raw_infos[0]["TimeLimit.truncated"] is True
