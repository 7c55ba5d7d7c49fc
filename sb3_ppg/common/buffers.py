"""The auxiliary buffer: states and value targets of the last ``n_policy_iterations`` rollouts."""

from collections.abc import Callable, Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import PyTorchObs, TensorDict

from sb3_ppg.common import distributed
from sb3_ppg.common.distributions import check_action_masks, distribution_params_dim, mask_dims
from sb3_ppg.common.minibatches import shuffled_segments

# An array of the buffer: on the host, or on the device when the buffer is kept there
Storage = np.ndarray | th.Tensor
# Minibatch indices: on the host for host storage, on the device for device storage
Indices = np.ndarray | th.Tensor


def keeps_on_device(nbytes: int, device: th.device) -> bool:
    """
    Whether an aux buffer of ``nbytes`` is kept on ``device``: only a CUDA device, and only with room for it twice
    over, so that the other half of the free memory is left to the minibatches' activations.

    :param nbytes: the buffer's size in bytes
    :param device: the model's device
    :return: True to keep the buffer's arrays on the device
    """
    if device.type != "cuda":
        return False
    free_bytes, _ = th.cuda.mem_get_info(device)
    return 2 * nbytes <= free_bytes


def _zeros(shape: tuple[int, ...], dtype: np.dtype | type, device: th.device | None) -> Storage:
    # On the host, numpy's zeros commit pages only as rollouts fill them
    if device is None:
        return np.zeros(shape, dtype=dtype)
    return th.zeros(shape, dtype=th.from_numpy(np.zeros(0, dtype=dtype)).dtype, device=device)


def _put(storage: Storage, start: int, end: int, values: np.ndarray) -> None:
    if isinstance(storage, th.Tensor):
        # One host-to-device copy per rollout instead of one per minibatch
        storage[start:end] = th.as_tensor(values).to(storage.device)
    else:
        storage[start:end] = values


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

    On a GPU with room for it twice over, the whole buffer lives on the device (``on_device``): each rollout is
    copied there once, and minibatches are gathered there, without a host-to-device copy per minibatch. Otherwise
    its arrays are numpy arrays in host memory.

    :param buffer_size: Steps per environment it holds: ``n_policy_iterations * n_steps``
    :param observation_space: Observation space
    :param action_space: Action space
    :param device: PyTorch device for the sampled tensors
    :param n_envs: Number of parallel environments
    :param on_device: keep the arrays on ``device`` as tensors (True) or on the host as numpy arrays (False);
        None chooses with :func:`keeps_on_device`: on a CUDA device when it has room for the buffer twice over
    """

    observations: Storage
    returns: Storage
    # On the model's device: the snapshot is written and read there, never copied through the host
    distribution_params: th.Tensor

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        on_device: bool | None = None,
    ):
        super().__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.params_dim = self._distribution_params_dim()
        if on_device is None:
            on_device = keeps_on_device(self.nbytes_needed(), self.device)
        self.on_device = on_device
        self._storage_device = self.device if on_device else None
        self._allocate_observations()
        self.returns = _zeros((self.buffer_size, self.n_envs), np.float32, self._storage_device)
        self.distribution_params = th.zeros((self.buffer_size * self.n_envs, self.params_dim), device=self.device)

    def nbytes_needed(self) -> int:
        """Bytes of the buffer's arrays: observations, returns, snapshot parameters (and masks, if any)."""
        space = self.observation_space
        obs_spaces = list(space.spaces.values()) if isinstance(space, spaces.Dict) else [space]
        per_state = 4 + 4 * self.params_dim + self._extra_bytes_per_state()
        for obs_space in obs_spaces:
            assert obs_space.shape is not None and obs_space.dtype is not None
            per_state += int(np.prod(obs_space.shape)) * np.dtype(obs_space.dtype).itemsize
        return self.buffer_size * self.n_envs * per_state

    def _extra_bytes_per_state(self) -> int:
        return 0

    def _distribution_params_dim(self) -> int:
        # Floats per state of the snapshot
        return distribution_params_dim(self.action_space)

    def _allocate_observations(self) -> None:
        assert isinstance(self.obs_shape, tuple)
        shape = (self.buffer_size, self.n_envs, *self.obs_shape)
        self.observations = _zeros(shape, self.observation_space.dtype, self._storage_device)  # type: ignore[arg-type]

    def _store_observations(self, rollout_buffer: RolloutBuffer, start: int, end: int) -> None:
        _put(self.observations, start, end, rollout_buffer.observations)

    def _take(self, storage: Storage, flat_indices: Indices | slice) -> th.Tensor:
        """The rows of a (buffer_size, n_envs, ...) array at flat state indices, as a tensor on the device."""
        flat = storage.reshape(-1, *storage.shape[2:])
        if isinstance(flat, th.Tensor):
            return flat[flat_indices]
        return self.to_torch(flat[flat_indices], copy=False)

    def _observations(self, flat_indices: Indices | slice) -> PyTorchObs:
        return self._take(self.observations, flat_indices)  # type: ignore[arg-type]

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
        _put(self.returns, self.pos, end, rollout_buffer.returns)
        self.pos = end
        self.full = end == self.buffer_size

    def layout(self) -> dict[str, Any]:
        """
        What a saved buffer file must agree on with this buffer to be loaded into it (see
        :func:`sb3_ppg.common.checkpoints.aux_buffer_layout`): every kind of buffer gives every key, so that a file
        of one kind is refused by another, naming the key.
        """
        return {
            "observation_space": repr(self.observation_space),
            "action_space": repr(self.action_space),
            "n_envs": self.n_envs,
            "buffer_size": self.buffer_size,
            "action_masks": False,
            "lstm_states": None,
        }

    def saved_arrays(self, pos: int) -> dict[str, tuple[Storage, int]]:
        """
        What a saved buffer holds (see :mod:`sb3_ppg.common.checkpoints`): each array by entry name, with the number
        of its rows that hold data when ``pos`` steps per env are stored. The snapshot is not saved: the aux phase
        takes it again.

        :param pos: steps per env stored
        """
        observations = self.observations
        arrays = (
            {f"observations/{key}": (value, pos) for key, value in observations.items()}
            if isinstance(observations, dict)
            else {"observations": (observations, pos)}
        )
        arrays["returns"] = (self.returns, pos)
        return arrays

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
        # Over the aux buffers of all ranks in multi-process training: every rank fits the same targets
        mean, std = distributed.mean_std(self.returns[: self.pos], correction=0)
        return float(mean), float(std)

    def get(
        self, batch_size: int, segment_length: int | None = None
    ) -> Generator[AuxBufferSamples | DictAuxBufferSamples, None, None]:
        """
        One shuffled pass over the stored states.

        :param batch_size: minibatch size; the last minibatch may be smaller
        :param segment_length: None: minibatches of independent random states. An int: minibatches of whole
            (env, segment) blocks of that many consecutive steps (the rollouts' ``n_steps``), the blocks shuffled and
            time order kept inside each; ``batch_size`` must then be a multiple of it
        :return: minibatches
        """
        indices: Indices
        if segment_length is None:
            # Indices where the arrays are: a shuffle on the device when they live there
            indices = (
                th.randperm(self.n_samples, device=self.device) if self.on_device else np.random.permutation(self.n_samples)
            )
        else:
            indices = self._segment_indices(batch_size, segment_length)
        for start in range(0, self.n_samples, batch_size):
            yield self._get_samples(indices[start : start + batch_size])

    def _segment_indices(self, batch_size: int, segment_length: int) -> Indices:
        if batch_size % segment_length or self.pos % segment_length:
            raise ValueError(
                f"segment minibatches need batch_size ({batch_size}) and the stored steps per env ({self.pos}) to be "
                f"multiples of segment_length ({segment_length})"
            )
        # The state of env e at stored step t is at t * n_envs + e: a block starts at (k * segment_length) * n_envs + e
        block_starts = np.arange(0, self.pos, segment_length)[:, None] * self.n_envs + np.arange(self.n_envs)
        indices = shuffled_segments(block_starts.ravel(), segment_length, stride=self.n_envs)
        return th.as_tensor(indices, device=self.device) if self.on_device else indices

    def _get_samples(self, batch_inds: Indices, env: None = None) -> AuxBufferSamples:  # type: ignore[override]
        return AuxBufferSamples(
            observations=self._observations(batch_inds),  # type: ignore[arg-type]
            returns=self._take(self.returns[..., None], batch_inds).flatten(),
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

    observations: dict[str, Storage]  # type: ignore[assignment]
    observation_space: spaces.Dict

    def _allocate_observations(self) -> None:
        assert isinstance(self.obs_shape, dict)
        self.observations = {
            key: _zeros((self.buffer_size, self.n_envs, *shape), self.observation_space[key].dtype, self._storage_device)  # type: ignore[arg-type]
            for key, shape in self.obs_shape.items()
        }

    def _store_observations(self, rollout_buffer: RolloutBuffer, start: int, end: int) -> None:
        assert isinstance(rollout_buffer, DictRolloutBuffer)
        for key, observations in self.observations.items():
            _put(observations, start, end, rollout_buffer.observations[key])

    def _observations(self, flat_indices: Indices | slice) -> PyTorchObs:
        return {key: self._take(observations, flat_indices) for key, observations in self.observations.items()}

    def _get_samples(self, batch_inds: Indices, env: None = None) -> DictAuxBufferSamples:  # type: ignore[override]
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

    action_masks: Storage
    _samples_class: type[MaskableAuxBufferSamples] | type[MaskableDictAuxBufferSamples] = MaskableAuxBufferSamples

    def _allocate_observations(self) -> None:
        super()._allocate_observations()
        self.mask_dims = mask_dims(self.action_space)
        self.action_masks = _zeros((self.buffer_size, self.n_envs, self.mask_dims), bool, self._storage_device)
        self.action_masks[...] = True

    def _extra_bytes_per_state(self) -> int:
        return mask_dims(self.action_space)

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
        _put(self.action_masks, start, self.pos, rollout_masks.reshape(self.pos - start, self.n_envs, self.mask_dims))

    def layout(self) -> dict[str, Any]:
        """:return: the base layout, with action masks"""
        return {**super().layout(), "action_masks": True}

    def saved_arrays(self, pos: int) -> dict[str, tuple[Storage, int]]:
        """:param pos: steps per env stored; the arrays include the action masks"""
        return {**super().saved_arrays(pos), "action_masks": (self.action_masks, pos)}

    def _get_samples(  # type: ignore[override]
        self, batch_inds: Indices, env: None = None
    ) -> MaskableAuxBufferSamples | MaskableDictAuxBufferSamples:
        samples = super()._get_samples(batch_inds)
        action_masks = self._take(self.action_masks, batch_inds)
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
