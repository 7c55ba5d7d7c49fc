"""Env-segment minibatches: whole env columns of the rollout in the policy phase, whole (env, rollout) blocks of the
aux buffer in the aux phase, each state once per epoch, time order kept inside each segment."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.buffers import MaskableRolloutBuffer
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_ppg import PPG
from sb3_ppg.common.minibatches import env_segment_minibatches


class StampEnv(gym.Env):
    """Its observation is (env id, steps since the start): every state of a run is told apart from the others."""

    observation_space = spaces.Box(0.0, 1e6, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, env_id: int):
        self.env_id = env_id
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, False, False, {}

    def _obs(self) -> np.ndarray:
        return np.array([self.env_id, self.t], np.float32)


def assert_whole_segments(observations: th.Tensor, length: int) -> list[tuple[int, int]]:
    """
    :param observations: a minibatch of (env id, t) stamps
    :param length: states per segment
    :return: (env id, first t) of each segment of the minibatch, after checking that each is one env's
        ``length`` consecutive steps from a multiple of ``length``, in time order
    """
    stamps = observations.numpy().reshape(-1, length, 2)
    segments = []
    for segment in stamps:
        env_id, first = int(segment[0, 0]), int(segment[0, 1])
        assert (segment[:, 0] == env_id).all()
        assert np.array_equal(segment[:, 1], first + np.arange(length)) and first % length == 0
        segments.append((env_id, first))
    return segments


@pytest.mark.parametrize("buffer_class", [RolloutBuffer, MaskableRolloutBuffer])
def test_policy_minibatches_are_whole_env_columns(buffer_class):
    n_steps, n_envs = 4, 6
    buffer = buffer_class(n_steps, StampEnv.observation_space, StampEnv.action_space, device="cpu", n_envs=n_envs)
    for t in range(n_steps):
        obs = np.array([[env_id, t] for env_id in range(n_envs)], np.float32)
        kwargs = dict(action_masks=np.ones((n_envs, 2))) if buffer_class is MaskableRolloutBuffer else {}
        zeros = np.zeros(n_envs, np.float32)
        buffer.add(obs, zeros[:, None], zeros, np.zeros(n_envs, bool), th.zeros(n_envs), th.zeros(n_envs), **kwargs)
    np.random.seed(0)
    orders = []
    for _ in range(2):  # the second epoch draws from the buffer flattened by the first
        minibatches = list(env_segment_minibatches(buffer, batch_size=2 * n_steps))
        assert [len(batch.observations) for batch in minibatches] == [2 * n_steps] * 3
        segments = [segment for batch in minibatches for segment in assert_whole_segments(batch.observations, n_steps)]
        # One epoch visits every state exactly once: each env's column, whole, once
        assert sorted(segments) == [(env_id, 0) for env_id in range(n_envs)]
        orders.append([env_id for env_id, _ in segments])
        if buffer_class is MaskableRolloutBuffer:
            assert all(batch.action_masks.shape == (2 * n_steps, 2) for batch in minibatches)
    assert orders[0] != orders[1], "the envs are shuffled anew each epoch"


def test_ppg_draws_whole_segments_in_both_phases():
    n_envs, n_steps, n_policy_iterations = 4, 8, 2
    env = DummyVecEnv([lambda env_id=env_id: StampEnv(env_id) for env_id in range(n_envs)])
    model = PPG("MlpPolicy", env, n_steps=n_steps, batch_size=2 * n_steps, n_epochs=2, n_value_epochs=2,
                n_policy_iterations=n_policy_iterations, n_aux_epochs=2, aux_batch_size=2 * n_steps, seed=0,
                env_segment_minibatches=True)  # fmt: skip
    policy_batches, aux_batches = [], []
    evaluate_actions, evaluate_aux = model.policy.evaluate_actions, model.policy.evaluate_aux

    def record_actions(obs, actions, **kwargs):
        policy_batches.append(obs.clone())
        return evaluate_actions(obs, actions, **kwargs)

    def record_aux(obs, **kwargs):
        aux_batches.append(obs.clone())
        return evaluate_aux(obs, **kwargs)

    model.policy.evaluate_actions, model.policy.evaluate_aux = record_actions, record_aux
    model.learn(n_policy_iterations * n_steps * n_envs)
    # Policy phase: 2 rollouts x 2 epochs x 2 minibatches of 2 envs' whole rollout each
    assert len(policy_batches) == 8
    for rollout in range(n_policy_iterations):
        for epoch in range(2):
            batches = policy_batches[4 * rollout + 2 * epoch : 4 * rollout + 2 * epoch + 2]
            segments = [segment for batch in batches for segment in assert_whole_segments(batch, n_steps)]
            assert sorted(segments) == [(env_id, rollout * n_steps) for env_id in range(n_envs)]
    # Aux phase: 2 epochs over 4 envs x 2 rollouts = 8 blocks, 2 blocks per minibatch, time order inside each
    assert len(aux_batches) == 8
    blocks = [(env_id, rollout * n_steps) for env_id in range(n_envs) for rollout in range(n_policy_iterations)]
    for epoch in range(2):
        batches = aux_batches[4 * epoch : 4 * epoch + 4]
        segments = [segment for batch in batches for segment in assert_whole_segments(batch, n_steps)]
        assert sorted(segments) == blocks


def test_aux_blocks_need_whole_segments():
    env = DummyVecEnv([lambda env_id=env_id: StampEnv(env_id) for env_id in range(2)])
    model = PPG("MlpPolicy", env, n_steps=8, batch_size=8, n_policy_iterations=2, aux_batch_size=16, seed=0)
    model.learn(16)
    with pytest.raises(ValueError, match=r"batch_size \(12\) and the stored steps per env \(8\) to be multiples of "
                                         r"segment_length \(8\)"):  # fmt: skip
        next(model.aux_buffer.get(12, segment_length=8))
