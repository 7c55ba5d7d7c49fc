"""Buffers of :class:`~sb3_ppg.RecurrentPPG`: SB3-Contrib's recurrent rollout buffers, and the recurrent aux buffer."""

from collections.abc import Callable, Generator
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.buffers import RecurrentDictRolloutBuffer, RecurrentRolloutBuffer, create_sequencers
from sb3_contrib.common.recurrent.type_aliases import (
    RecurrentDictRolloutBufferSamples,
    RecurrentRolloutBufferSamples,
    RNNStates,
)
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.type_aliases import PyTorchObs, TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ppg.common.buffers import AuxRolloutBuffer, DictAuxRolloutBuffer, Storage

RecurrentSamples = TypeVar("RecurrentSamples", RecurrentRolloutBufferSamples, RecurrentDictRolloutBufferSamples)


def real_steps_only(samples: RecurrentSamples) -> RecurrentSamples:
    """
    A minibatch of SB3-Contrib's recurrent rollout buffer with its per-step targets kept at the real steps only.

    Observations, episode starts and the mask stay padded, as the LSTM reads whole sequences; actions, old values,
    old log-probabilities, advantages and returns lose their padded steps, in the order the policy's ``mask`` selects
    its outputs, so every loss is a plain mean over real steps and padding can never change it.

    :param samples: a padded minibatch
    :return: the same minibatch, its targets packed, its actions float (as SB3's distributions take them, int8
        MultiBinary actions included) and its ``mask`` a bool tensor
    """
    mask = samples.mask > 0.5
    return samples._replace(
        actions=samples.actions[mask].float(),
        old_values=samples.old_values[mask],
        old_log_prob=samples.old_log_prob[mask],
        advantages=samples.advantages[mask],
        returns=samples.returns[mask],
        mask=mask,
    )


class PackedRecurrentRolloutBuffer(RecurrentRolloutBuffer):
    """
    SB3-Contrib's ``RecurrentRolloutBuffer`` whose minibatches keep their targets at the real steps only
    (see :func:`real_steps_only`).

    :param buffer_size: Steps per environment (n_steps)
    :param observation_space: Observation space
    :param action_space: Action space
    :param hidden_state_shape: (n_steps, lstm.num_layers, n_envs, lstm.hidden_size)
    :param device: PyTorch device
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage Estimator
    :param gamma: Discount factor
    :param n_envs: Number of parallel environments
    """

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env_change: np.ndarray, env: VecNormalize | None = None
    ) -> RecurrentRolloutBufferSamples:
        return real_steps_only(super()._get_samples(batch_inds, env_change, env))


class PackedRecurrentDictRolloutBuffer(RecurrentDictRolloutBuffer):
    """
    :class:`PackedRecurrentRolloutBuffer` for ``Dict`` observation spaces: SB3-Contrib's ``RecurrentDictRolloutBuffer``,
    with minibatch targets at the real steps only. Its parameters are :class:`PackedRecurrentRolloutBuffer`'s, with a
    ``Dict`` ``observation_space``.
    """

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env_change: np.ndarray, env: VecNormalize | None = None
    ) -> RecurrentDictRolloutBufferSamples:
        return real_steps_only(super()._get_samples(batch_inds, env_change, env))


class RecurrentAuxBufferSamples(NamedTuple):
    # Padded sequences, flattened: (n_seq * max_length, ...)
    observations: th.Tensor
    # At the real steps only
    returns: th.Tensor
    old_distribution_params: th.Tensor
    lstm_states: RNNStates
    episode_starts: th.Tensor
    mask: th.Tensor


class RecurrentDictAuxBufferSamples(NamedTuple):
    observations: TensorDict
    returns: th.Tensor
    old_distribution_params: th.Tensor
    lstm_states: RNNStates
    episode_starts: th.Tensor
    mask: th.Tensor


# Index of each LSTM state in the stored (4, ...) block
PI_H, PI_C, VF_H, VF_C = range(4)


class RecurrentAuxRolloutBuffer(AuxRolloutBuffer):
    """
    The aux buffer of :class:`~sb3_ppg.RecurrentPPG`. Besides each state's observation and value target it keeps the
    episode-start flags, and the actor's and critic's LSTM states entering each (env, rollout) segment: rollouts are
    appended in time order, so each env's column is one continuous trajectory.

    Minibatches are whole segments (``aux_batch_size // n_steps`` of them, at least one) cut into sequences at
    episode starts, each started from the state stored at its first step (a state that the episode start resets),
    zero-padded to one length with a mask of the real steps. The snapshot runs over the same sequences from the same
    states, so the first aux minibatch starts at KL == 0.

    The stored states were computed by the policy of their rollout, so they go stale as it changes;
    :meth:`recompute_lstm_states` replays each env's history with the current policy to refresh them (all but the
    first segment's, which the buffer has no history for).

    Arrays are kept on the host.

    :param buffer_size: Steps per environment it holds: ``n_policy_iterations * n_steps``
    :param observation_space: Observation space
    :param action_space: Action space
    :param device: PyTorch device for the sampled tensors
    :param n_envs: Number of parallel environments
    :param on_device: must be False or None: the sequences are cut and padded on the host
    :param n_steps: Steps per env of one rollout: the length of a segment
    :param lstm_state_shape: (number of LSTM layers, hidden size)
    """

    _samples_class: type[RecurrentAuxBufferSamples] | type[RecurrentDictAuxBufferSamples] = RecurrentAuxBufferSamples

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        on_device: bool | None = None,
        n_steps: int = 1,
        lstm_state_shape: tuple[int, int] = (1, 1),
    ):
        if on_device:
            raise ValueError("RecurrentAuxRolloutBuffer keeps its arrays on the host: on_device must be False or None")
        if n_steps < 1 or buffer_size % n_steps:
            raise ValueError(f"buffer_size ({buffer_size}) must be a multiple of n_steps ({n_steps})")
        self.n_steps = n_steps
        self.lstm_state_shape = lstm_state_shape
        super().__init__(buffer_size, observation_space, action_space, device, n_envs, on_device=False)
        self.episode_starts = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        n_layers, hidden_size = lstm_state_shape
        # (rollout, pi_h / pi_c / vf_h / vf_c, layer, env, unit)
        self.segment_states = np.zeros((self.buffer_size // n_steps, 4, n_layers, self.n_envs, hidden_size), np.float32)

    def add_rollout(self, rollout_buffer: RolloutBuffer) -> None:
        """
        Copy the observations, value targets, episode starts and the entering LSTM states of one finished rollout.

        :param rollout_buffer: SB3-Contrib's ``RecurrentRolloutBuffer`` (or its Dict variant) of ``n_steps`` steps,
            after ``compute_returns_and_advantage``
        """
        if not isinstance(rollout_buffer, (RecurrentRolloutBuffer, RecurrentDictRolloutBuffer)):
            raise TypeError(f"{type(rollout_buffer).__name__} has no LSTM states: use SB3-Contrib's RecurrentRolloutBuffer")
        if rollout_buffer.buffer_size != self.n_steps:
            raise ValueError(
                f"the rollout has {rollout_buffer.buffer_size} steps per env, the aux buffer's segments {self.n_steps}"
            )
        start = self.pos
        super().add_rollout(rollout_buffer)
        self.episode_starts[start : self.pos] = rollout_buffer.episode_starts
        stored = [rollout_buffer.hidden_states_pi, rollout_buffer.cell_states_pi]
        stored += [rollout_buffer.hidden_states_vf, rollout_buffer.cell_states_vf]
        # The states entering the rollout's first step, (n_layers, n_envs, hidden)
        self.segment_states[start // self.n_steps] = np.stack([states[0] for states in stored])

    def layout(self) -> dict[str, Any]:
        """:return: the base layout, with the shape of the stored LSTM states"""
        return {**super().layout(), "lstm_states": list(self.lstm_state_shape)}

    def saved_arrays(self, pos: int) -> dict[str, tuple[Storage, int]]:
        """:param pos: steps per env stored; the arrays include the episode starts and the segments' entering states"""
        arrays = super().saved_arrays(pos)
        arrays["episode_starts"] = (self.episode_starts, pos)
        arrays["segment_states"] = (self.segment_states, pos // self.n_steps)
        return arrays

    @property
    def n_segments(self) -> int:
        """Number of stored (env, rollout) segments."""
        return self.pos // self.n_steps * self.n_envs

    def segments_per_batch(self, batch_size: int) -> int:
        """
        :param batch_size: states per minibatch wanted (``aux_batch_size``)
        :return: the whole segments in a minibatch of about ``batch_size`` states (at least one)
        """
        return max(1, batch_size // self.n_steps)

    def _states_of_segments(self, segments: np.ndarray) -> np.ndarray:
        # Segment r * n_envs + e is env e's steps of rollout r; flat state index: t * n_envs + e
        rollouts, envs = np.divmod(segments, self.n_envs)
        steps = rollouts[:, None] * self.n_steps + np.arange(self.n_steps)[None]
        return (steps * self.n_envs + envs[:, None]).reshape(-1)

    def _flat(self, storage: np.ndarray) -> np.ndarray:
        return storage.reshape(-1, *storage.shape[2:])

    def _sequences(self, segments: np.ndarray) -> RecurrentAuxBufferSamples | RecurrentDictAuxBufferSamples:
        """The minibatch of whole segments ``segments``, cut at episode starts and padded."""
        inds = self._states_of_segments(segments)
        episode_starts = self._flat(self.episode_starts)[inds]
        segment_change = np.zeros(len(inds), dtype=np.float32)
        segment_change[:: self.n_steps] = 1.0
        seq_starts, pad, pad_and_flatten = create_sequencers(episode_starts, segment_change, self.device)
        # Each sequence enters with its segment's stored state, or (after an episode start, which resets it) zeros
        n_layers, hidden_size = self.lstm_state_shape
        entering = np.zeros((len(inds), 4, n_layers, hidden_size), dtype=np.float32)
        rollouts, envs = np.divmod(segments, self.n_envs)
        entering[:: self.n_steps] = self.segment_states[rollouts, :, :, envs]
        states = th.as_tensor(entering[seq_starts].transpose(1, 2, 0, 3), device=self.device).contiguous()
        mask = pad_and_flatten(np.ones(len(inds), dtype=np.float32)) > 0.5
        observations = self._padded_observations(inds, pad)
        return self._samples_class(
            observations=observations,  # type: ignore[arg-type]
            returns=self.to_torch(self._flat(self.returns)[inds]),  # type: ignore[arg-type]
            old_distribution_params=self.distribution_params[th.as_tensor(inds, device=self.device)],
            lstm_states=RNNStates((states[PI_H], states[PI_C]), (states[VF_H], states[VF_C])),
            episode_starts=pad_and_flatten(episode_starts),
            mask=mask,
        )

    def _padded_observations(self, inds: np.ndarray, pad: Callable[[np.ndarray], th.Tensor]) -> PyTorchObs:
        observations = pad(self._flat(self.observations)[inds])  # type: ignore[arg-type]
        return observations.reshape(-1, *observations.shape[2:])

    def _batches(self, batch_size: int, shuffle: bool) -> Generator[np.ndarray, None, None]:
        order = np.random.permutation(self.n_segments) if shuffle else np.arange(self.n_segments)
        per_batch = self.segments_per_batch(batch_size)
        for start in range(0, self.n_segments, per_batch):
            yield order[start : start + per_batch]

    def get(self, batch_size: int) -> Generator[RecurrentAuxBufferSamples | RecurrentDictAuxBufferSamples, None, None]:  # type: ignore[override]
        """
        One pass over the stored segments in random order.

        :param batch_size: states per minibatch, rounded down to whole segments (at least one)
        :return: minibatches of padded sequences
        """
        for segments in self._batches(batch_size, shuffle=True):
            yield self._sequences(segments)

    def snapshot(  # type: ignore[override]
        self,
        distribution_params_fn: Callable[[RecurrentAuxBufferSamples | RecurrentDictAuxBufferSamples], th.Tensor],
        chunk_size: int,
    ) -> None:
        """
        Record the current policy's distribution at every stored state, over the sequences and from the states the
        aux epochs use, without gradient.

        :param distribution_params_fn: maps a minibatch to flat distribution parameters at its real steps
        :param chunk_size: states per forward pass, rounded down to whole segments
        """
        with th.no_grad():
            for segments in self._batches(chunk_size, shuffle=False):
                inds = th.as_tensor(self._states_of_segments(segments), device=self.device)
                self.distribution_params[inds] = distribution_params_fn(self._sequences(segments))

    def recompute_lstm_states(
        self, states_after: Callable[[PyTorchObs, RNNStates, th.Tensor], RNNStates], chunk_size: int
    ) -> None:
        """
        Replay each env's history once, segment after segment, and store the states the current policy reaches at
        every segment start but the first.

        :param states_after: maps (observations of sequences of ``n_steps`` flattened one after the other, the states
            entering them, their episode starts) to the states after their last step, e.g. the policy's
            ``lstm_states_after``
        :param chunk_size: states per forward pass, rounded down to whole segments (envs), as in :meth:`snapshot`
        """
        envs_per_pass = self.segments_per_batch(chunk_size)
        with th.no_grad():
            for rollout in range(self.pos // self.n_steps - 1):
                for first_env in range(0, self.n_envs, envs_per_pass):
                    envs = np.arange(first_env, min(first_env + envs_per_pass, self.n_envs))
                    inds = self._states_of_segments(rollout * self.n_envs + envs)
                    entering = th.as_tensor(self.segment_states[rollout][:, :, envs], device=self.device)
                    states = RNNStates((entering[PI_H], entering[PI_C]), (entering[VF_H], entering[VF_C]))
                    episode_starts = self.to_torch(self._flat(self.episode_starts)[inds])
                    after = states_after(self._observations(inds), states, episode_starts)
                    self.segment_states[rollout + 1][:, :, envs] = th.stack([*after.pi, *after.vf]).cpu().numpy()


class RecurrentDictAuxRolloutBuffer(RecurrentAuxRolloutBuffer, DictAuxRolloutBuffer):  # type: ignore[misc]
    """
    :class:`RecurrentAuxRolloutBuffer` for ``Dict`` observation spaces; each key keeps its own dtype. Its parameters
    are :class:`RecurrentAuxRolloutBuffer`'s, with a ``Dict`` ``observation_space``.
    """

    _samples_class = RecurrentDictAuxBufferSamples

    def _padded_observations(self, inds: np.ndarray, pad: Callable[[np.ndarray], th.Tensor]) -> PyTorchObs:
        padded = {key: pad(self._flat(observations)[inds]) for key, observations in self.observations.items()}  # type: ignore[arg-type]
        return {key: observations.reshape(-1, *observations.shape[2:]) for key, observations in padded.items()}
