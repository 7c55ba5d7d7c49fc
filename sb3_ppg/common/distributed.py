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
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
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


def choose_backend(device: th.device | str, local_world_size: int, n_gpus: int) -> str:
    """
    :param device: the device the user asked for (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...)
    :param local_world_size: the ranks on this machine
    :param n_gpus: the GPUs this process sees
    :return: ``"nccl"`` when every rank of the machine can have a GPU of its own and the model is not asked to be
        on the CPU, else ``"gloo"`` (NCCL reduces only CUDA tensors, and needs a GPU per rank)
    """
    on_cpu = th.device(device).type == "cpu" if device != "auto" else False
    return "nccl" if n_gpus > 0 and not on_cpu and local_world_size <= n_gpus else "gloo"


def setup(device: th.device | str) -> th.device | str:
    """
    Join torchrun's process group when this process is one of several ranks and no group exists yet (NCCL with one
    GPU per rank, else gloo: see :func:`choose_backend`), and pick this rank's device and threads.

    :param device: the device the user asked for; ``"auto"`` becomes ``cuda:LOCAL_RANK`` under NCCL, and with CUDA
        but fewer GPUs than ranks, ``cuda:{LOCAL_RANK % GPUs}``
    :return: the device this rank trains on
    """
    n_gpus = th.cuda.device_count() if th.cuda.is_available() else 0
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        backend = choose_backend(device, local_world_size, n_gpus)
        if backend == "nccl":
            th.cuda.set_device(local_rank())
        # Its functions take the default group as a default argument when imported, and torch's optimizers import it
        # (through torch._dynamo): imported after init, it would hold the group past destroy_process_group, and
        # gloo's threads, torn down during interpreter shutdown instead, can abort the process there
        import torch.distributed.nn.functional  # noqa: F401

        dist.init_process_group(backend, timeout=timeout())
        # A group still alive when the interpreter exits can abort it ("terminate called without an active exception")
        atexit.register(_destroy_process_group)
    if not is_distributed():
        return device
    if device == "auto" and n_gpus > 0:
        device = f"cuda:{local_rank() % n_gpus}"
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


# Settings that must agree on every rank: those that fix the number of collectives per rollout (a mismatch would
# hang or end in an opaque backend error), and those of the update itself (ranks that step their equal weights
# differently would drift apart)
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
    "normalize_aux_targets",
    "env_segment_minibatches",
    "handle_timeout_termination",
    "lr_schedule",
    "aux_lr_schedule",
    "clip_range",
    "max_grad_norm",
    "beta_clone",
    "vf_coef",
)


def _comparable(value: Any) -> Any:
    """:return: ``value``, or a schedule's value at the start of training (progress remaining 1)"""
    return value(1.0) if callable(value) else value


def check_supported(model: BaseAlgorithm) -> None:
    """
    Refuse, on every rank, a model that data-parallel training does not support: a recurrent policy (RecurrentPPG)
    carries LSTM states across rollouts, whose saving, loading and minibatches per rank are neither implemented nor
    tested.

    :param model: the algorithm, with its policy built
    :raises ValueError: for a recurrent policy
    """
    if isinstance(model.policy, RecurrentActorCriticPolicy):
        raise ValueError(
            f"{type(model).__name__} (a recurrent policy) does not support data-parallel training: run it in one "
            f"process (this run has {world_size()} ranks), or use PPG or MaskablePPG under torchrun"
        )


def synchronize(model: BaseAlgorithm) -> None:
    """
    Check that the model is supported (:func:`check_supported`) and that its settings and parameter shapes agree on
    every rank, then give every rank rank 0's parameters.

    :param model: the algorithm, with its policy built
    """
    if not is_distributed():
        return
    check_supported(model)
    settings = {name: _comparable(getattr(model, name, None)) for name in SHARED_SETTINGS}
    settings["parameter shapes"] = [tuple(parameter.shape) for parameter in model.policy.parameters()]
    check_same_on_all_ranks(settings)
    broadcast_parameters(model.policy)
