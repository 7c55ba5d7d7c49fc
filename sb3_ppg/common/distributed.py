"""
Data-parallel training with ``torch.distributed``: K processes (ranks) each step their own envs, and every
optimizer step averages the gradients of all ranks, as the paper's reference code did with MPI.

Opt-in is automatic, as with any ``torchrun`` script: a model created in a process that ``torchrun`` started with
more than one rank (``WORLD_SIZE > 1``) joins the process group, or uses the one the script initialised itself with
``torch.distributed.init_process_group``. In a single process every helper here is a no-op, so training is bitwise
what it is without this module.

The process-group timeout (how long a rank waits for a dead or stuck peer before it raises) is the ``timeout`` of
``init_process_group`` when the script initialises the group itself, else ``SB3_PPG_DIST_TIMEOUT`` seconds
(default: :data:`DEFAULT_TIMEOUT_S`).
"""

import contextlib
import copy
import atexit
import datetime
import os
import pathlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
import torch as th
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
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.utils import explained_variance as sb3_explained_variance

TIMEOUT_ENV = "SB3_PPG_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0

Array = TypeVar("Array", np.ndarray, th.Tensor)
T = TypeVar("T")


def is_distributed() -> bool:
    """:return: whether this process is one rank of a process group of several"""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """:return: this process's rank, 0 in a single process"""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """:return: the number of ranks, 1 in a single process"""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """:return: whether this process writes logs and saves models (rank 0, or a single process)"""
    return rank() == 0


def local_rank() -> int:
    """:return: this process's rank on its machine, as torchrun sets it"""
    return int(os.environ.get("LOCAL_RANK", "0"))


def timeout() -> datetime.timedelta:
    """:return: the process-group timeout: ``SB3_PPG_DIST_TIMEOUT`` seconds, or :data:`DEFAULT_TIMEOUT_S`"""
    value = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds > 0, got {value!r}")
    return datetime.timedelta(seconds=seconds)


def setup(device: th.device | str) -> th.device | str:
    """
    Join torchrun's process group when this process is one of several ranks and no group exists yet (gloo on CPU,
    NCCL with one GPU per rank), and pick this rank's device and threads.

    :param device: the device the user asked for; ``"auto"`` becomes ``cuda:LOCAL_RANK`` when CUDA is there
    :return: the device this rank trains on
    """
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        cuda = th.cuda.is_available()
        if cuda:
            th.cuda.set_device(local_rank())
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout())
        # A group still alive when the interpreter exits can abort it ("terminate called without an active exception")
        atexit.register(_destroy_process_group)
    if not is_distributed():
        return device
    if device == "auto" and th.cuda.is_available():
        device = f"cuda:{local_rank()}"
    # Ranks share the machine's cores: one thread each unless the user set OMP_NUM_THREADS (torchrun sets 1)
    if "OMP_NUM_THREADS" not in os.environ:
        th.set_num_threads(1)
    return device


# How long a rank waits at exit for the others to finish their own last work (rank 0 saves the model)
EXIT_BARRIER_TIMEOUT = datetime.timedelta(seconds=60)


def _destroy_process_group() -> None:
    if not dist.is_initialized():
        return
    try:
        # A rank that closes its connections while another is still at work makes gloo abort that one ("terminate
        # called without an active exception"); a rank that died fails the monitored barrier at once
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=min(EXIT_BARRIER_TIMEOUT, timeout()))
        else:
            dist.barrier()
    except Exception:  # exiting anyway: the failure that ended the run is reported elsewhere
        pass
    dist.destroy_process_group()


def rank_path(path: str | os.PathLike[str]) -> str:
    """
    The file of this rank, for what each rank saves its own of (the aux buffer).

    :param path: the file's name, the same on every rank
    :return: ``path`` in a single process; in multi-process training ``path`` with ``_rank{r}`` added to its stem:
        ``aux_buffer.npz`` becomes ``aux_buffer_rank0.npz`` on rank 0, ``aux_buffer_rank1.npz`` on rank 1, ...
    """
    if not is_distributed():
        return os.fspath(path)
    named = pathlib.Path(path)
    return str(named.with_name(f"{named.stem}_rank{rank()}{named.suffix}"))


def broadcast_object(value: T) -> T:
    """
    :param value: a picklable value on this rank
    :return: rank 0's value, on every rank (``value`` itself in a single process)
    """
    if not is_distributed():
        return value
    shared: list[Any] = [value]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def run_agreed(action: Callable[[], T], what: str) -> T:
    """
    Run ``action`` on this rank, then agree on the outcome with the other ranks, so that a failure on one rank never
    leaves the others waiting in their next collective: when it raised on any rank, every rank raises.

    :param action: what this rank does (a no-op on ranks with nothing to do: every rank must call this)
    :param what: what it is, for the error message
    :return: what ``action`` returned
    :raises RuntimeError: in multi-process training, on every rank, naming each rank where ``action`` raised and its
        error (chained from this rank's own); in a single process ``action``'s own error is raised as it is
    """
    if not is_distributed():
        return action()
    try:
        result, error = action(), None
    except Exception as raised:
        result, error = None, raised
    errors: list[str | None] = [None] * world_size()
    dist.all_gather_object(errors, None if error is None else f"{type(error).__name__}: {error}")
    failed = [(r, message) for r, message in enumerate(errors) if message is not None]
    if failed:
        raise RuntimeError(
            f"{what} failed on rank(s) {', '.join(str(r) for r, _ in failed)}, so every rank stops:\n"
            + "\n".join(f"  rank {r}: {message}" for r, message in failed)
        ) from error
    return result  # type: ignore[return-value]


def rank_seed(seed: int | None, n_envs: int) -> int | None:
    """
    :param seed: the seed of the run
    :param n_envs: envs per rank
    :return: this rank's seed, ``seed + rank * n_envs``: the envs of one rank take seeds seed + i, so no two envs of
        the run share a seed
    """
    return None if seed is None else seed + rank() * n_envs


def rank_verbose(verbose: int) -> int:
    """:return: ``verbose`` on rank 0, 0 on the other ranks (only rank 0 writes to stdout)"""
    return verbose if is_main() else 0


def _comm_device() -> th.device:
    # NCCL reduces only CUDA tensors; gloo takes CPU ones
    return th.device("cuda", th.cuda.current_device()) if dist.get_backend() == "nccl" else th.device("cpu")


def _all_reduce(tensor: th.Tensor) -> th.Tensor:
    """Sum ``tensor`` over ranks, into a copy on the communication device."""
    reduced = tensor.detach().to(_comm_device(), copy=True)
    dist.all_reduce(reduced)
    return reduced


def average_gradients(parameters: Iterable[th.nn.Parameter], flag: bool = False) -> list[int]:
    """
    Replace each gradient with its mean over ranks, in one flat all-reduce that also carries ``flag``, so a step
    costs one collective. Parameters without a gradient are left so (never zero-filled: Adam would move them); they
    are the same on every rank, as the graph is.

    :param parameters: the parameters of the model
    :param flag: a condition on this rank (e.g. a loss that is not finite)
    :return: the ranks where ``flag`` holds, the same list on every rank
    """
    if not is_distributed():
        return [0] if flag else []
    grads = [parameter.grad for parameter in parameters if parameter.grad is not None]
    flags = th.zeros(world_size(), dtype=grads[0].dtype if grads else th.float32, device=grads[0].device if grads else None)
    flags[rank()] = float(flag)
    flat = _all_reduce(th.cat([*(grad.reshape(-1) for grad in grads), flags]))
    n_grads = flat.numel() - world_size()
    flat[:n_grads] /= world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()
    return [int(r) for r in th.nonzero(flat[n_grads:]).flatten().tolist()]


def broadcast_parameters(module: th.nn.Module) -> None:
    """
    Give every rank rank 0's parameters and buffers, in one flat broadcast.

    :param module: the policy
    """
    if not is_distributed():
        return
    tensors = [*module.parameters(), *module.buffers()]
    if not tensors:
        return
    with th.no_grad():
        flat = th.cat([tensor.reshape(-1).to(_comm_device(), th.float64) for tensor in tensors])
        dist.broadcast(flat, src=0)
        offset = 0
        for tensor in tensors:
            tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
            offset += tensor.numel()


def check_same_on_all_ranks(settings: dict[str, Any]) -> None:
    """
    Raise the same ValueError on every rank when a setting differs between ranks: ranks with different buffer or
    batch sizes would run different numbers of collectives and wait for each other forever.

    :param settings: name -> value on this rank
    """
    if not is_distributed():
        return
    gathered: list[dict[str, Any] | None] = [None] * world_size()
    dist.all_gather_object(gathered, settings)
    differing = [name for name in settings if any(other is None or other.get(name) != settings[name] for other in gathered)]
    if differing:
        lines = [
            f"{name}: " + ", ".join(f"rank {r} has {other.get(name) if other else None!r}" for r, other in enumerate(gathered))
            for name in differing
        ]
        raise ValueError("Data-parallel training needs the same settings on every rank; these differ:\n" + "\n".join(lines))


def mean_over_ranks(value: th.Tensor) -> th.Tensor:
    """
    :param value: a scalar on this rank
    :return: its mean over ranks (``value`` itself in a single process)
    """
    if not is_distributed():
        return value
    return _all_reduce(value.double()) / world_size()


def ranks_where(flag: bool) -> list[int]:
    """
    :param flag: a condition on this rank
    :return: the ranks where it holds, the same list on every rank
    """
    if not is_distributed():
        return [0] if flag else []
    flags = th.zeros(world_size(), dtype=th.float64)
    flags[rank()] = float(flag)
    return [int(r) for r in th.nonzero(_all_reduce(flags)).flatten().tolist()]


def describe_ranks(ranks: list[int]) -> str:
    """:return: ``" on rank(s) ..."`` in multi-process training, ``""`` in a single process"""
    return f" on rank(s) {', '.join(map(str, ranks))}" if is_distributed() else ""


def check_rollout_finite(advantages: np.ndarray, returns: np.ndarray) -> None:
    """
    Stop every rank when the rollout of one is not finite, naming it: the global moments would spread its NaN to
    the others, and the loss check would then blame every rank.

    :param advantages: this rank's advantages
    :param returns: this rank's value targets
    """
    if not is_distributed():
        return
    bad_ranks = ranks_where(not (np.isfinite(advantages).all() and np.isfinite(returns).all()))
    if bad_ranks:
        raise RuntimeError(
            f"PPG: the rollout of rank(s) {', '.join(map(str, bad_ranks))} is not finite (advantages or value "
            "targets). Training stopped on every rank before the update. Check that rank's rewards and observations "
            "for NaN/inf (SB3's VecCheckNan finds the step)."
        )


def mean_std(values: np.ndarray | th.Tensor, correction: int) -> tuple[Any, Any]:
    """
    :param values: this rank's values
    :param correction: the degrees of freedom subtracted from the count (0: population std)
    :return: mean and standard deviation over the values of all ranks, of the type each library's own ``mean()``
        and ``std()`` return
    """
    if not is_distributed():
        if isinstance(values, th.Tensor):
            return values.mean(), values.std(correction=correction)
        return values.mean(), values.std(ddof=correction)
    local = th.as_tensor(values).to(_comm_device(), th.float64)
    # One collective: each rank's count, mean and sum of squared deviations from that mean, merged exactly (Chan et
    # al.'s parallel variance), so there is no cancellation in E[x^2] - E[x]^2
    local_mean = local.mean()
    moments = th.zeros(world_size(), 3, dtype=th.float64, device=local.device)
    moments[rank()] = th.stack(
        [th.tensor(float(local.numel()), dtype=th.float64), local_mean.cpu(), ((local - local_mean) ** 2).sum().cpu()]
    )
    counts, means, squares = _all_reduce(moments).unbind(dim=1)
    count = counts.sum()
    mean = (counts * means).sum() / count
    std = th.sqrt((squares.sum() + (counts * (means - mean) ** 2).sum()) / (count - correction))
    if isinstance(values, th.Tensor):
        return mean.to(values.device, values.dtype), std.to(values.device, values.dtype)
    return np.float64(mean.item()), np.float64(std.item())


def standardize(values: Array, correction: int) -> Array:
    """
    :param values: this rank's values
    :param correction: the std's degrees of freedom, as :func:`mean_std`
    :return: the values standardised with the moments over all ranks
    """
    mean, std = mean_std(values, correction)
    return (values - mean) / (std + 1e-8)


def explained_variance(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """
    :return: SB3's explained variance ``1 - Var[y_true - y_pred] / Var[y_true]``, over the data of all ranks
    """
    if not is_distributed():
        return sb3_explained_variance(y_pred, y_true)
    var_y = mean_std(y_true, 0)[1] ** 2
    return float("nan") if var_y == 0 else float(1 - mean_std(y_true - y_pred, 0)[1] ** 2 / var_y)


@contextlib.contextmanager
def all_episode_infos(model: BaseAlgorithm) -> Iterator[None]:
    """
    Within the block, the model's episode and success buffers hold those of every rank, so the logged episode
    returns are over all ranks' envs.

    :param model: the algorithm
    """
    if not is_distributed():
        yield
        return
    local = (list(model.ep_info_buffer or []), list(model.ep_success_buffer or []))
    gathered: list[tuple[list, list] | None] = [None] * world_size()
    dist.all_gather_object(gathered, local)
    saved = model.ep_info_buffer, model.ep_success_buffer
    model.ep_info_buffer = deque(info for part in gathered if part for info in part[0])
    model.ep_success_buffer = deque(success for part in gathered if part for success in part[1])
    try:
        yield
    finally:
        model.ep_info_buffer, model.ep_success_buffer = saved


def silence_logger(model: BaseAlgorithm) -> None:
    """
    Give ranks other than 0 a logger without outputs: rank 0 alone writes stdout, TensorBoard and CSV.

    :param model: the algorithm, before ``_setup_learn`` configures its logger
    """
    if not is_main():
        model.set_logger(Logger(folder=None, output_formats=[]))


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


# Settings that fix the number of collectives per rollout: they must agree on every rank
SHARED_SETTINGS = (
    "n_envs",
    "n_steps",
    "batch_size",
    "n_epochs",
    "n_value_epochs",
    "n_policy_iterations",
    "n_aux_epochs",
    "aux_batch_size",
    "target_kl",
    "normalize_advantage",
)


def synchronize(model: BaseAlgorithm) -> None:
    """
    Check that the settings and parameter shapes agree on every rank, then give every rank rank 0's parameters.

    :param model: the algorithm, with its policy built
    """
    if not is_distributed():
        return
    settings = {name: getattr(model, name, None) for name in SHARED_SETTINGS}
    settings["parameter shapes"] = [tuple(parameter.shape) for parameter in model.policy.parameters()]
    check_same_on_all_ranks(settings)
    broadcast_parameters(model.policy)
