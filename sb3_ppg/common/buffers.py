"""The auxiliary buffer: states and value targets of the last ``n_policy_iterations`` rollouts."""

from collections.abc import Callable, Generator
from typing import NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import PyTorchObs, TensorDict

from sb3_ppg.common.distributions import check_action_masks, distribution_params_dim, mask_dims


class AuxBufferSamples(NamedTuple):
    observations: th.Tensor
    returns: th.Tensor
    old_distribution_params: th.Tensor


class DictAuxBufferSamples(NamedTuple):
    observations: TensorDict
    returns: th.Tensor
    old_distribution_params: th.Tensor


class MaskableAuxBufferSamples(NamedTuple):
    observations: th.Tensor
    returns: th.Tensor
    old_distribution_params: th.Tensor
    action_masks: th.Tensor


class MaskableDictAuxBufferSamples(NamedTuple):
    observations: TensorDict
    returns: th.Tensor
    old_distribution_params: th.Tensor
    action_masks: th.Tensor


class AuxRolloutBuffer(BaseBuffer):
    """
    Holds every state of the policy phase with its value target (the GAE return computed at rollout time),
    and, once the aux phase starts, the snapshot of the policy's distribution at that state.

    Memory is allocated once and reused after ``reset()``. Observations keep the observation space's dtype,
    so uint8 images stay uint8: about ``buffer_size * n_envs * prod(obs_shape) * itemsize`` bytes, plus 4 bytes per return and
    4 bytes per distribution parameter.

    :param buffer_size: Steps per environment it holds: ``n_policy_iterations * n_steps``
    :param observation_space: Observation space
    :param action_space: Action space
    :param device: PyTorch device for the sampled tensors
    :param n_envs: Number of parallel environments
    """

    observations: np.ndarray
    returns: np.ndarray
    # On the model's device: the snapshot is written and read there, never copied through the host
    distribution_params: th.Tensor

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
    ):
        super().__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.params_dim = self._distribution_params_dim()
        self._allocate_observations()
        self.returns = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self.distribution_params = th.zeros((self.buffer_size * self.n_envs, self.params_dim), device=self.device)

    def _distribution_params_dim(self) -> int:
        # Floats per state of the snapshot
        return distribution_params_dim(self.action_space)

    def _allocate_observations(self) -> None:
        assert isinstance(self.obs_shape, tuple)
        self.observations = np.zeros((self.buffer_size, self.n_envs, *self.obs_shape), dtype=self.observation_space.dtype)

    def _store_observations(self, rollout_buffer: RolloutBuffer, start: int, end: int) -> None:
        self.observations[start:end] = rollout_buffer.observations

    def _observations(self, flat_indices: np.ndarray | slice) -> PyTorchObs:
        flat = self.observations.reshape(-1, *self.observations.shape[2:])
        return self.to_torch(flat[flat_indices], copy=False)

    @property
    def n_samples(self) -> int:
        """Number of stored states, over all environments."""
        return self.pos * self.n_envs

    def add_rollout(self, rollout_buffer: RolloutBuffer) -> None:
        """
        Copy the observations and value targets of one finished rollout.

        Must run before ``rollout_buffer.get()``, which flattens the rollout buffer in place. The data is copied:
        the rollout buffer's arrays are reallocated by its next ``reset()``.

        :param rollout_buffer: a rollout buffer after ``compute_returns_and_advantage``
        """
        if rollout_buffer.generator_ready:
            raise RuntimeError("the rollout was flattened by RolloutBuffer.get(); copy it into the aux buffer first")
        if rollout_buffer.n_envs != self.n_envs:
            raise ValueError(f"the rollout has {rollout_buffer.n_envs} envs, the aux buffer {self.n_envs}")
        end = self.pos + rollout_buffer.buffer_size
        if end > self.buffer_size:
            raise RuntimeError(
                f"the aux buffer holds {self.buffer_size} steps per env and has {self.pos}; "
                f"a rollout of {rollout_buffer.buffer_size} does not fit: run the aux phase first"
            )
        self._store_observations(rollout_buffer, self.pos, end)
        self.returns[self.pos : end] = rollout_buffer.returns
        self.pos = end
        self.full = end == self.buffer_size

    def snapshot(self, distribution_params_fn: Callable[[PyTorchObs], th.Tensor], chunk_size: int) -> None:
        """
        Record the current policy's distribution at every stored state, in chunks and without gradient.

        :param distribution_params_fn: maps observations to flat distribution parameters
        :param chunk_size: states per forward pass
        """
        with th.no_grad():
            for start in range(0, self.n_samples, chunk_size):
                chunk = slice(start, min(start + chunk_size, self.n_samples))
                self.distribution_params[chunk] = distribution_params_fn(self._observations(chunk))

    def returns_mean_std(self) -> tuple[float, float]:
        """
        :return: mean and standard deviation of the stored value targets
        """
        returns = self.returns[: self.pos]
        return float(returns.mean()), float(returns.std())

    def get(self, batch_size: int) -> Generator[AuxBufferSamples | DictAuxBufferSamples, None, None]:
        """
        One shuffled pass over the stored states.

        :param batch_size: minibatch size; the last minibatch may be smaller
        :return: minibatches
        """
        indices = np.random.permutation(self.n_samples)
        for start in range(0, self.n_samples, batch_size):
            yield self._get_samples(indices[start : start + batch_size])

    def _get_samples(self, batch_inds: np.ndarray, env: None = None) -> AuxBufferSamples:  # type: ignore[override]
        return AuxBufferSamples(
            observations=self._observations(batch_inds),  # type: ignore[arg-type]
            returns=self.to_torch(self.returns.reshape(-1)[batch_inds], copy=False),
            old_distribution_params=self.distribution_params[th.as_tensor(batch_inds, device=self.device)],
        )


class DictAuxRolloutBuffer(AuxRolloutBuffer):
    """
    :class:`AuxRolloutBuffer` for ``Dict`` observation spaces; each key keeps its own dtype.

    :param buffer_size: Steps per environment it holds: ``n_policy_iterations * n_steps``
    :param observation_space: Observation space
    :param action_space: Action space
    :param device: PyTorch device for the sampled tensors
    :param n_envs: Number of parallel environments
    """

    observations: dict[str, np.ndarray]  # type: ignore[assignment]
    observation_space: spaces.Dict

    def _allocate_observations(self) -> None:
        assert isinstance(self.obs_shape, dict)
        self.observations = {
            key: np.zeros((self.buffer_size, self.n_envs, *shape), dtype=self.observation_space[key].dtype)
            for key, shape in self.obs_shape.items()
        }

    def _store_observations(self, rollout_buffer: RolloutBuffer, start: int, end: int) -> None:
        assert isinstance(rollout_buffer, DictRolloutBuffer)
        for key, observations in self.observations.items():
            observations[start:end] = rollout_buffer.observations[key]

    def _observations(self, flat_indices: np.ndarray | slice) -> PyTorchObs:
        return {
            key: self.to_torch(observations.reshape(-1, *observations.shape[2:])[flat_indices], copy=False)
            for key, observations in self.observations.items()
        }

    def _get_samples(self, batch_inds: np.ndarray, env: None = None) -> DictAuxBufferSamples:  # type: ignore[override]
        samples = super()._get_samples(batch_inds)
        return DictAuxBufferSamples(*samples)  # type: ignore[arg-type]


class MaskableAuxRolloutBuffer(AuxRolloutBuffer):
    """
    :class:`AuxRolloutBuffer` that also keeps the action masks of every stored state, as bool (one byte per mask
    entry: SB3-Contrib's rollout buffers hold them as float32), so that the aux phase builds the snapshot and the
    live distribution with the masks the state had. The snapshot holds the policy's unmasked logits; the masks are
    applied to both when a minibatch is drawn.

    :param buffer_size: Steps per environment it holds: ``n_policy_iterations * n_steps``
    :param observation_space: Observation space
    :param action_space: Action space (Discrete, MultiDiscrete or MultiBinary)
    :param device: PyTorch device for the sampled tensors
    :param n_envs: Number of parallel environments
    """

    action_masks: np.ndarray
    _samples_class: type[MaskableAuxBufferSamples] | type[MaskableDictAuxBufferSamples] = MaskableAuxBufferSamples

    def _allocate_observations(self) -> None:
        super()._allocate_observations()
        self.mask_dims = mask_dims(self.action_space)
        self.action_masks = np.ones((self.buffer_size, self.n_envs, self.mask_dims), dtype=bool)

    def _distribution_params_dim(self) -> int:
        # One logit per mask entry: SB3-Contrib's MultiBinary distribution is a categorical over {0, 1} per dimension
        return mask_dims(self.action_space)

    def add_rollout(self, rollout_buffer: RolloutBuffer) -> None:
        """
        Copy the observations, value targets and action masks of one finished rollout.

        :param rollout_buffer: a ``MaskableRolloutBuffer`` or ``MaskableDictRolloutBuffer`` after
            ``compute_returns_and_advantage``
        """
        rollout_masks = getattr(rollout_buffer, "action_masks", None)
        if rollout_masks is None:
            raise TypeError(
                f"{type(rollout_buffer).__name__} has no action_masks: use SB3-Contrib's MaskableRolloutBuffer "
                "or MaskableDictRolloutBuffer"
            )
        # Before anything is stored: a state without a valid action would give an undefined KL in the aux phase
        check_action_masks(rollout_masks, rollout_buffer.buffer_size * rollout_buffer.n_envs, self.action_space)
        start = self.pos
        super().add_rollout(rollout_buffer)
        self.action_masks[start : self.pos] = rollout_masks.reshape(self.pos - start, self.n_envs, self.mask_dims)

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: None = None
    ) -> MaskableAuxBufferSamples | MaskableDictAuxBufferSamples:
        samples = super()._get_samples(batch_inds)
        action_masks = self.to_torch(self.action_masks.reshape(-1, self.mask_dims)[batch_inds], copy=False)
        return self._samples_class(*samples, action_masks=action_masks)  # type: ignore[arg-type]


class MaskableDictAuxRolloutBuffer(MaskableAuxRolloutBuffer, DictAuxRolloutBuffer):  # type: ignore[misc]
    """
    :class:`MaskableAuxRolloutBuffer` for ``Dict`` observation spaces; each key keeps its own dtype.

    :param buffer_size: Steps per environment it holds: ``n_policy_iterations * n_steps``
    :param observation_space: Observation space
    :param action_space: Action space (Discrete, MultiDiscrete or MultiBinary)
    :param device: PyTorch device for the sampled tensors
    :param n_envs: Number of parallel environments
    """

    _samples_class = MaskableDictAuxBufferSamples
