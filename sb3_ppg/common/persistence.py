"""Saving and loading of PPG's models and aux buffers: atomic files, and the aux cycle continued after a load."""

import io
import pathlib
import warnings
from collections import deque
from collections.abc import Iterable
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.type_aliases import GymEnv

from sb3_ppg.common import checkpoints, distributed
from sb3_ppg.common.buffers import AuxRolloutBuffer

SelfAuxBufferPersistence = TypeVar("SelfAuxBufferPersistence", bound="AuxBufferPersistence")


class AuxBufferPersistence(OnPolicyAlgorithm):
    """
    The save and load methods of an on-policy algorithm with an aux buffer (PPG's base): the model file leaves the
    buffer out, :meth:`save_aux_buffer` and :meth:`load_aux_buffer` write and read it, as SB3's replay-buffer pair.
    """

    aux_buffer: AuxRolloutBuffer
    n_policy_iterations: int
    env_id: str | None
    _n_aux_phases: int = 0
    # Steps per env of the current aux cycle when the model was saved; those lost by a load without the buffer
    _saved_aux_cycle_steps: int = 0
    _aux_steps_not_loaded: int = 0
    # A loaded model's rollout position is rank 0's (the model file's) until load_aux_buffer gives this rank its own
    _rollout_position_pending: bool = False
    # The policy's recurrent state when the model was saved (see _rollout_memory), for a load without a reset
    _saved_rollout_memory: dict[str, np.ndarray] | None = None

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfAuxBufferPersistence],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfAuxBufferPersistence:
        """
        Load the model from a zip-file, as SB3's ``load``. One difference: a model that was created from an env id
        (``PPG("MlpPolicy", "LunarLander-v2")``) and is loaded without ``env`` gets a new env of that id, so
        ``model.get_env()`` works straight after loading.

        :param path: path to the file (or a file-like) where to load the agent from
        :param env: the new environment to run the loaded model on (can be None if you only need prediction
            from a trained model, or if the model was created from an env id)
        :param device: Device on which the code should run.
        :param custom_objects: Dictionary of objects to replace upon loading.
        :param print_system_info: Whether to print system info from the saved model
        :param force_reset: Force call to ``reset()`` before training to avoid unexpected behavior.
        :param kwargs: extra arguments to change the model when loading
        :return: new model instance with loaded parameters
        """
        model = super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)
        # The buffer is not in the file: until load_aux_buffer, the states of the saved cycle are missing
        model._aux_steps_not_loaded = model._saved_aux_cycle_steps
        distributed.broadcast_parameters(model.policy)
        env_id = getattr(model, "env_id", None)
        if env is None and env_id is not None and model.n_envs == 1:
            try:
                new_env = make_vec_env(env_id, n_envs=1)
            except (gym.error.Error, ImportError) as error:  # e.g. box2d missing: the model can still predict
                warnings.warn(
                    f"PPG.load: could not make the saved env {env_id!r} ({error!r}); the model has no env. "
                    "Pass env= to train or evaluate it; predict() works without one."
                )
            else:
                model.set_env(new_env, force_reset=force_reset)
        # Without a reset, the position is rank 0's (from the file); SB3's _setup_model cleared the recurrent state
        model._rollout_position_pending = model._last_obs is not None
        if model._last_obs is not None:
            model._restore_rollout_memory(model._saved_rollout_memory or {})
        return model

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """
        Save the model, as SB3's ``save``, without the aux buffer (see :meth:`save_aux_buffer`). A file path is
        written to a temporary file renamed into place, so a crash during the save leaves the previous file whole.
        In multi-process training only rank 0 writes (the ranks' weights are equal).

        :param path: path to the file where the model should be saved (``.zip`` added without a suffix), or a file
        :param exclude: names of parameters that should be excluded in addition to the default ones
        :param include: names of parameters that might be excluded but should be included anyway
        """
        self._saved_aux_cycle_steps = self.aux_buffer.pos
        self._saved_rollout_memory = self._rollout_memory()
        if distributed.is_main():
            checkpoints.save_atomically(super().save, path, exclude=exclude, include=include)

    def save_aux_buffer(self, path: str | pathlib.Path) -> None:
        """
        Save the aux buffer's states of the current cycle, as SB3's ``save_replay_buffer`` saves a replay buffer:
        with :meth:`load_aux_buffer` after ``load``, training continues the cycle where it stopped. The file is
        written atomically, array by array, in the arrays' own dtypes (see :mod:`sb3_ppg.common.checkpoints`).

        In multi-process training each rank saves its own buffer, to ``path`` with ``_rank{r}`` added to its name
        (``aux_buffer.npz`` becomes ``aux_buffer_rank0.npz``, ``aux_buffer_rank1.npz``, ...; a single process writes
        ``path`` itself). Call it on every rank with the same ``path``: a failure on one rank raises on every rank.
        The file also holds this rank's rollout position (last observations, episode starts, recent episodes),
        which the model file holds of rank 0 alone.

        :param path: path to the file where the aux buffer should be saved
        """
        rank_path = distributed.rank_path(path)
        position = self._rollout_position()
        distributed.run_agreed(
            lambda: checkpoints.save_aux_buffer(self.aux_buffer, self._aux_buffer_layout(), rank_path, position),
            "save_aux_buffer",
        )

    def load_aux_buffer(self, path: str | pathlib.Path) -> None:
        """
        Load an aux buffer saved by :meth:`save_aux_buffer`, as SB3's ``load_replay_buffer``; continue training
        with ``learn(..., reset_num_timesteps=False)``, which keeps it. The buffer must have been saved at the
        model's point: with the same ``num_timesteps`` and number of aux phases. A model loaded with
        ``force_reset=False`` also takes the rollout position saved in the file (its rank's own).

        In multi-process training each rank loads its own buffer, ``path`` with ``_rank{r}`` added to its name (as
        :meth:`save_aux_buffer` wrote it). Call it on every rank with the same ``path``: when a rank's file is
        missing or does not fit, every rank raises, and each leaves its buffer empty.

        :param path: path to the saved aux buffer (the name given to :meth:`save_aux_buffer`)
        :raises ValueError: when the buffer was saved by a model with another observation space, action space,
            ``n_envs``, ``n_steps``, ``n_policy_iterations``, masks, LSTM states, number of ranks, ``num_timesteps``
            or number of aux phases, naming each difference with the file's and the model's values
        :raises ~sb3_ppg.common.checkpoints.AuxBufferFileError: when the file is truncated or corrupt
        :raises RuntimeError: in multi-process training, instead of the errors above, on every rank, naming each
            rank whose load failed and why
        """
        rank_path = distributed.rank_path(path)
        try:
            position = distributed.run_agreed(
                lambda: checkpoints.load_aux_buffer(self.aux_buffer, self._aux_buffer_layout(), rank_path), "load_aux_buffer"
            )
        except Exception:
            # A rank whose own load succeeded must not keep a buffer the others lack
            self.aux_buffer.reset()
            raise
        self._aux_steps_not_loaded = 0
        # Only a loaded model that was not reset since (set_env with force_reset) continues from a saved position
        if self._rollout_position_pending and self._last_obs is not None and position is not None:
            self._restore_rollout_position(position)
            self._rollout_position_pending = False

    def _aux_buffer_layout(self) -> dict[str, Any]:
        return checkpoints.aux_buffer_layout(
            self.aux_buffer,
            self.n_steps,
            self.n_policy_iterations,
            distributed.world_size(),
            self.num_timesteps,
            self._n_aux_phases,
        )

    def _rollout_position(self) -> checkpoints.RolloutPosition | None:
        """:return: this process's rollout position, or None before the first rollout"""
        if self._last_obs is None or self._last_episode_starts is None:
            return None
        return checkpoints.RolloutPosition(
            last_obs=self._last_obs,
            last_episode_starts=self._last_episode_starts,
            last_original_obs=self._last_original_obs,
            ep_info_buffer=None if self.ep_info_buffer is None else list(self.ep_info_buffer),
            ep_success_buffer=None if self.ep_success_buffer is None else list(self.ep_success_buffer),
            memory=self._rollout_memory(),
        )

    def _rollout_memory(self) -> dict[str, np.ndarray]:
        """:return: the policy's recurrent state entering the next rollout, by name: none for a feed-forward policy"""
        return {}

    def _restore_rollout_memory(self, memory: dict[str, np.ndarray]) -> None:
        """Set the recurrent state that :meth:`_rollout_memory` returned (empty: a fresh one); feed-forward: nothing."""

    def _restore_rollout_position(self, position: checkpoints.RolloutPosition) -> None:
        self._last_obs = position.last_obs  # type: ignore[assignment]
        self._last_episode_starts = position.last_episode_starts
        self._last_original_obs = position.last_original_obs  # type: ignore[assignment]
        # Episodes JSON could not hold are dropped: never another rank's
        self.ep_info_buffer = deque(position.ep_info_buffer or [], maxlen=self._stats_window_size)
        self.ep_success_buffer = deque(position.ep_success_buffer or [], maxlen=self._stats_window_size)
        self._restore_rollout_memory(position.memory)

    def _drop_foreign_rollout_position(self) -> None:
        """
        Before ``learn``: a rank other than 0 of a model loaded with ``force_reset=False`` holds rank 0's rollout
        position (the model file's) unless :meth:`load_aux_buffer` gave it its own; its envs then start afresh.
        """
        if self._rollout_position_pending and distributed.rank() > 0 and self._last_obs is not None:
            # The model file holds rank 0's envs' position: this rank's envs start afresh instead
            warnings.warn(
                f"PPG: rank {distributed.rank()} resumes from a model loaded with force_reset=False, but its own "
                "rollout position was not loaded (load_aux_buffer with a buffer saved at this model's point "
                "gives it), and the model file holds rank 0's. This rank's envs are reset instead, so the run is "
                "not the one it would have been without the interruption."
            )
            self._last_obs = None
            self.ep_info_buffer = self.ep_success_buffer = None  # type: ignore[assignment]
            self._restore_rollout_memory({})
        self._rollout_position_pending = False

    def _excluded_save_params(self) -> list[str]:
        # The aux buffer can hold millions of states: never pickle it into a save
        return [*super()._excluded_save_params(), "aux_buffer", "_aux_steps_not_loaded", "_rollout_position_pending"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.optimizer", "policy.aux_optimizer"], []
