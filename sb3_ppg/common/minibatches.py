"""
Env-segment minibatches, as the PPG paper's code draws them: whole env columns of a rollout in the policy phase,
whole (env, rollout) blocks of the aux buffer in the aux phase, shuffled by segment with time order kept inside.
"""

from collections.abc import Generator

import numpy as np
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.type_aliases import RolloutBufferSamples


def shuffled_segments(starts: np.ndarray, length: int, stride: int) -> np.ndarray:
    """
    Flat indices of whole segments in a random order.

    :param starts: flat index of the first state of each segment
    :param length: states per segment
    :param stride: distance between two consecutive states of a segment in the flat layout
    :return: the indices of all the segments, segment after segment in a shuffled order, each in time order
    """
    order = np.random.permutation(len(starts))
    return (starts[order, None] + stride * np.arange(length)).ravel()


def check_env_segment_minibatches(n_envs: int, n_steps: int, batch_size: int, aux_batch_size: int | None) -> None:
    """
    Raise a ValueError unless both phases can draw minibatches of whole env segments.

    :param n_envs: number of envs
    :param n_steps: steps per env of a rollout
    :param batch_size: minibatch size of the policy phase
    :param aux_batch_size: minibatch size of the aux phase; None: no aux phase
    """
    rollout_size = n_steps * n_envs
    # batch_size > rollout_size leaves a remainder, so the number of minibatches is never 0 past this test
    if rollout_size % batch_size or n_envs % (rollout_size // batch_size):
        raise ValueError(
            f"env_segment_minibatches=True: n_envs ({n_envs}) must be divisible by the number of minibatches per "
            f"epoch n_steps * n_envs / batch_size = {n_steps} * {n_envs} / {batch_size} = {rollout_size / batch_size:g}, "
            "so that each minibatch holds whole env columns of the rollout"
        )
    if aux_batch_size is not None and aux_batch_size % n_steps:
        raise ValueError(
            f"env_segment_minibatches=True: aux_batch_size ({aux_batch_size}) must be a multiple of n_steps "
            f"({n_steps}), so that each aux minibatch holds whole (env, rollout) blocks"
        )


def env_segment_minibatches(rollout_buffer: RolloutBuffer, batch_size: int) -> Generator[RolloutBufferSamples, None, None]:
    """
    One pass over a full rollout buffer (SB3's, SB3-Contrib's or any subclass) in minibatches of whole env columns:
    ``batch_size // n_steps`` envs' full trajectories each, the envs shuffled, time order kept in each column.

    :param rollout_buffer: a full rollout buffer
    :param batch_size: minibatch size, a multiple of the buffer's ``n_steps`` (see
        :func:`check_env_segment_minibatches`)
    :return: minibatches, as ``rollout_buffer.get()`` gives them
    """
    if not rollout_buffer.generator_ready:
        # The buffer's own get() flattens its arrays (each subclass its own set) on the first draw
        next(rollout_buffer.get(batch_size=1))
    n_steps = rollout_buffer.buffer_size
    # After SB3's swap_and_flatten, the state of env e at step t is at e * n_steps + t
    indices = shuffled_segments(np.arange(rollout_buffer.n_envs) * n_steps, n_steps, stride=1)
    for start in range(0, len(indices), batch_size):
        yield rollout_buffer._get_samples(indices[start : start + batch_size])
