"""
The callbacks of multi-process ``learn`` (see :mod:`sb3_ppg.common.distributed`): rank 0 alone evaluates, saves and
draws the progress bar, every callback sees the global step count, a stop asked on one rank stops all, and the
``VecNormalize`` statistics of all ranks are merged after each rollout. In a single process they change nothing.
"""

import copy
from typing import Any

import numpy as np
import torch.distributed as dist
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    ConvertCallback,
    EvalCallback,
    ProgressBarCallback,
)
from stable_baselines3.common.running_mean_std import RunningMeanStd

from sb3_ppg.common.distributed import broadcast_object, is_distributed, is_main, ranks_where, world_size

# Callbacks that write files or evaluate: rank 0 alone runs them
RANK_ZERO_CALLBACKS = (EvalCallback, CheckpointCallback, ProgressBarCallback)


def _rank_zero_only(callback: Any) -> bool:
    # A callback with a true ``runs_on_every_rank`` class attribute (PPGCheckpointCallback) saves on every rank
    return isinstance(callback, RANK_ZERO_CALLBACKS) and not getattr(callback, "runs_on_every_rank", False)


def rank_callbacks(callback: Any) -> Any:
    """
    :param callback: the callback(s) given to ``learn``
    :return: the same on rank 0; on other ranks without the evaluation, checkpoint and progress bar callbacks,
        except those with ``runs_on_every_rank = True``
    """
    if is_main():
        return callback
    if _rank_zero_only(callback):
        return None
    if isinstance(callback, CallbackList):
        return CallbackList(rank_callbacks(callback.callbacks))
    if isinstance(callback, list):
        return [rank_callbacks(inner) for inner in callback if not _rank_zero_only(inner)]
    return callback


class GlobalProgressBarCallback(ProgressBarCallback):
    """SB3's progress bar, advanced by the env steps of all ranks."""

    def _on_step(self) -> bool:
        self.pbar.update(self.training_env.num_envs * world_size())
        return True


def _running_stats(model: BaseAlgorithm) -> list[RunningMeanStd]:
    """:return: the running statistics of the model's ``VecNormalize`` that it updates in training"""
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is None or not vec_normalize.training:
        return []
    stats: list[RunningMeanStd] = []
    if vec_normalize.norm_obs:
        obs_rms = vec_normalize.obs_rms
        stats += [obs_rms[key] for key in sorted(obs_rms)] if isinstance(obs_rms, dict) else [obs_rms]
    if vec_normalize.norm_reward:
        stats.append(vec_normalize.ret_rms)
    return stats


def merge_running_stats(base: RunningMeanStd, ranks: list[RunningMeanStd]) -> RunningMeanStd:
    """
    Chan et al.'s parallel variance: each rank's statistics are ``base`` updated with its own data; the merge is
    ``base`` updated with the data of all ranks.

    :param base: the statistics every rank had at the last merge
    :param ranks: each rank's statistics now
    :return: the merged statistics
    """
    extra = len(ranks) - 1  # copies of the base data counted once too many
    count = sum(stats.count for stats in ranks) - extra * base.count
    mean = (sum(stats.count * stats.mean for stats in ranks) - extra * base.count * base.mean) / count
    squares = sum(stats.count * (stats.var + (stats.mean - mean) ** 2) for stats in ranks)
    squares = squares - extra * base.count * (base.var + (base.mean - mean) ** 2)
    merged = RunningMeanStd(shape=np.shape(base.mean))
    merged.mean, merged.var, merged.count = mean, squares / count, count
    return merged


class DataParallelCallback(BaseCallback):
    """
    Wraps the callbacks of a multi-process ``learn``:

    - it counts the env steps of all ranks into ``num_timesteps`` (so ``total_timesteps``, the schedules, the logs
      and the inner callbacks see the global count);
    - a stop asked by a callback on any rank stops every rank together, at the last step of the current rollout;
    - at the end of each rollout it merges the ``VecNormalize`` statistics of all ranks.

    :param callback: the callbacks of ``learn``, initialised already
    """

    def __init__(self, callback: BaseCallback):
        super().__init__()
        self.callback = callback
        self._rollout_step = 0
        self._stop_asked = False
        self._base_stats: list[RunningMeanStd] = []

    def _on_training_start(self) -> None:
        # Start from rank 0's statistics (after a load, or the first learn)
        stats = _running_stats(self.model)
        shared = broadcast_object([(s.mean, s.var, s.count) for s in stats])
        for s, (mean, var, count) in zip(stats, shared, strict=True):
            s.mean, s.var, s.count = np.copy(mean), np.copy(var), count
        self._base_stats = [copy.deepcopy(s) for s in stats]
        self.callback.on_training_start(self.locals, self.globals)

    def _on_rollout_start(self) -> None:
        self._rollout_step = 0
        self.callback.on_rollout_start()

    def _on_step(self) -> bool:
        # SB3 has just added this rank's env steps: add the other ranks' (the same number: n_envs agree)
        self.model.num_timesteps += (world_size() - 1) * self.training_env.num_envs
        self._rollout_step += 1
        if not self._stop_asked:
            self._stop_asked = not self.callback.on_step()
        if self._rollout_step < self.model.n_steps:  # type: ignore[attr-defined]
            return True
        return not ranks_where(self._stop_asked)

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        self.callback.update_locals(locals_)

    def _on_rollout_end(self) -> None:
        stats = _running_stats(self.model)
        gathered: list[Any] = [None] * world_size()
        dist.all_gather_object(gathered, [(s.mean, s.var, s.count) for s in stats])
        for i, (s, base) in enumerate(zip(stats, self._base_stats, strict=True)):
            ranks = []
            for part in gathered:
                rank_stats = RunningMeanStd(shape=np.shape(base.mean))
                rank_stats.mean, rank_stats.var, rank_stats.count = part[i]
                ranks.append(rank_stats)
            merged = merge_running_stats(base, ranks)
            s.mean, s.var, s.count = merged.mean, merged.var, merged.count
        self._base_stats = [copy.deepcopy(s) for s in stats]
        self.callback.on_rollout_end()

    def _on_training_end(self) -> None:
        self.callback.on_training_end()


def prepare_callbacks(callback: Any, progress_bar: bool) -> tuple[Any, bool]:
    """
    :param callback: the callback(s) given to ``learn``
    :param progress_bar: whether the user asked for a progress bar
    :return: the callbacks and ``progress_bar`` for SB3's ``_setup_learn``: unchanged in a single process; else
        without the rank-0 callbacks on other ranks, and with a progress bar of all ranks' steps on rank 0
    """
    if not is_distributed():
        return callback, progress_bar
    callback = rank_callbacks(callback)
    if progress_bar and is_main():
        if callback is None:
            callback = []
        elif not isinstance(callback, list):
            callback = [callback if isinstance(callback, BaseCallback) else ConvertCallback(callback)]
        callback = [*callback, GlobalProgressBarCallback()]
    return callback, False


def wrap_callback(model: BaseAlgorithm, callback: BaseCallback) -> BaseCallback:
    """
    :param model: the algorithm
    :param callback: the initialised callbacks of ``learn``
    :return: ``callback`` in a single process; else it in a :class:`DataParallelCallback`
    """
    if not is_distributed():
        return callback
    wrapped = DataParallelCallback(callback)
    wrapped.init_callback(model)
    return wrapped
