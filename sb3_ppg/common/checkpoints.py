"""
Saving and loading the aux buffer, and writing files so that a crash during a save loses nothing.

An aux buffer file is a zip archive (stored, not compressed) of one ``.npy`` array per entry, in the arrays' own
dtypes (uint8 images stay uint8), and a ``layout.json`` entry that describes the model it fits, down to its
``num_timesteps``. Only the filled part of the buffer is written. The file also holds the rollout position of the
process that wrote it (its last observations and episode starts, its recent episodes, and RecurrentPPG's LSTM
states), which SB3 keeps between rollouts: in multi-process training each rank resumes from its own, not from rank
0's in the model file. Arrays are streamed in chunks of about :data:`CHUNK_BYTES`, from host or device storage,
so saving or loading needs only a chunk of extra memory, never a second copy of the buffer.
"""

import contextlib
import dataclasses
import glob
import io
import json
import os
import pathlib
import sys
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np
import torch as th

from sb3_ppg.common.buffers import AuxRolloutBuffer, Storage

FORMAT_NAME = "sb3_ppg.aux_buffer"
FORMAT_VERSION = 1
LAYOUT_ENTRY = "layout.json"
# Bytes copied at a time between the file and the buffer's storage
CHUNK_BYTES = 16 * 1024 * 1024
# Layout keys that must be equal in the file and in the model, with the name a user knows them by
LAYOUT_CHECKS = {
    "observation_space": "observation space",
    "action_space": "action space",
    "n_envs": "n_envs",
    "n_steps": "n_steps",
    "n_policy_iterations": "n_policy_iterations",
    "action_masks": "action masks (MaskablePPG keeps them, PPG does not)",
    "buffer_size": "aux buffer size (n_policy_iterations * n_steps, 0 with n_aux_epochs=0)",
    "world_size": "ranks of the run that saved it (each rank saves its own file: resume with as many ranks)",
    "lstm_states": "LSTM states (layers, hidden size): RecurrentPPG keeps them, PPG does not",
    "num_timesteps": "num_timesteps of the model it was saved with (load the buffer saved with this model file)",
    "n_aux_phases": "aux phases of the model it was saved with (load the buffer saved with this model file)",
}
# What a file written before a key was recorded holds for it
LAYOUT_DEFAULTS: dict[str, Any] = {"world_size": 1, "lstm_states": None}
# Keys a file written before they were recorded lacks, and that are then not checked (their value is unknown)
LAYOUT_UNRECORDED = ("num_timesteps", "n_aux_phases")
# Where the rollout position's arrays are in the archive
ROLLOUT_PREFIX = "rollout/"

PathLike = str | pathlib.Path
Observation = np.ndarray | dict[str, np.ndarray]


@dataclasses.dataclass
class RolloutPosition:
    """
    What SB3 keeps of one process's envs between rollouts, and pickles (from rank 0 alone) into the model file.

    :param last_obs: the observations the next rollout starts from
    :param last_episode_starts: whether each env starts an episode at the next step
    :param last_original_obs: the unnormalized observations, with ``VecNormalize``
    :param ep_info_buffer: the recent episodes' infos (None: not recorded, as infos with values JSON cannot hold)
    :param ep_success_buffer: the recent episodes' successes
    :param memory: the policy's recurrent state entering the next rollout, by name (RecurrentPPG's LSTM states);
        empty for a feed-forward policy
    """

    last_obs: Observation
    last_episode_starts: np.ndarray
    last_original_obs: Observation | None
    ep_info_buffer: list[dict[str, Any]] | None
    ep_success_buffer: list[bool] | None
    memory: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


class AuxBufferFileError(ValueError):
    """An aux buffer file that cannot be read whole: truncated, corrupt, or not an aux buffer file."""


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[pathlib.Path]:
    """
    A temporary path beside ``path`` to write to; once the block ends without an error, the file is flushed to disk
    and renamed to ``path`` in one step (``os.replace``). A process killed while writing leaves ``path`` as it was,
    and its temporary file stays until the next save of ``path`` removes it; an error removes the temporary file.

    :param path: the file's final path
    :return: the temporary path to write (hidden, in the same folder, with the same suffix)
    """
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield temporary
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
        _fsync_folder(path.parent)
        _remove_stale_temporaries(path)
    finally:
        temporary.unlink(missing_ok=True)


def _fsync_folder(folder: pathlib.Path) -> None:
    """Flush ``folder``'s entries, so that a rename into it survives a power loss (POSIX; skipped elsewhere)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:  # some file systems cannot sync a folder: the file itself is synced already
        pass
    finally:
        os.close(descriptor)


def _remove_stale_temporaries(path: pathlib.Path) -> None:
    """Remove the temporary files of ``path`` that processes killed while saving it left (their pid is gone)."""
    for candidate in path.parent.glob(f".{glob.escape(path.stem)}.*.tmp{glob.escape(path.suffix)}"):
        pid = candidate.name[len(path.stem) + 2 : -len(f".tmp{path.suffix}")]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_exists(int(pid)):
            candidate.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        pass  # someone else's process, or a pid this system cannot have: leave its file alone
    return True


def aux_buffer_layout(
    buffer: AuxRolloutBuffer,
    n_steps: int,
    n_policy_iterations: int,
    world_size: int = 1,
    num_timesteps: int = 0,
    n_aux_phases: int = 0,
) -> dict[str, Any]:
    """
    :param buffer: a model's aux buffer
    :param n_steps: the model's ``n_steps``
    :param n_policy_iterations: the model's ``n_policy_iterations``
    :param world_size: the number of ranks training the model (1 in a single process)
    :param num_timesteps: the model's ``num_timesteps``: a buffer loads only into the model point it was saved at
    :param n_aux_phases: the aux phases the model has run (its aux cycle)
    :return: what a buffer file must agree on with the model to be loaded into it
    """
    return {
        **buffer.layout(),
        "n_steps": n_steps,
        "n_policy_iterations": n_policy_iterations,
        "world_size": world_size,
        "num_timesteps": num_timesteps,
        "n_aux_phases": n_aux_phases,
    }


def _numpy_dtype(storage: Storage) -> np.dtype:
    if isinstance(storage, th.Tensor):
        return th.empty(0, dtype=storage.dtype).numpy().dtype
    return storage.dtype


def _rows_per_chunk(storage: Storage) -> int:
    row_bytes = max(1, int(np.prod(storage.shape[1:])) * _numpy_dtype(storage).itemsize)
    return max(1, CHUNK_BYTES // row_bytes)


def save_aux_buffer(
    buffer: AuxRolloutBuffer, layout: dict[str, Any], path: PathLike, rollout_position: RolloutPosition | None = None
) -> None:
    """
    Write the filled part of ``buffer`` to ``path``, atomically (see :func:`atomic_path`).

    :param buffer: the aux buffer, with host (numpy) or device (torch) storage
    :param layout: :func:`aux_buffer_layout` of the model it belongs to
    :param path: the file to write
    :param rollout_position: the writing process's rollout position, or None (before any rollout)
    """
    arrays = buffer.saved_arrays(buffer.pos)
    position_arrays = {} if rollout_position is None else _position_arrays(rollout_position)
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "layout": layout,
        "pos": buffer.pos,
        "arrays": {name: [rows, *storage.shape[1:]] for name, (storage, rows) in arrays.items()},
    }
    if rollout_position is not None:
        header["rollout_position"] = {
            "arrays": sorted(position_arrays),
            "ep_info_buffer": _json_or_none(rollout_position.ep_info_buffer),
            "ep_success_buffer": _json_or_none(rollout_position.ep_success_buffer),
        }
    with atomic_path(path) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr(LAYOUT_ENTRY, json.dumps(header, indent=2))
        for name, (storage, rows) in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as file:
                _write_npy(file, storage, rows)
        for name, array in position_arrays.items():
            with archive.open(f"{ROLLOUT_PREFIX}{name}.npy", "w") as file:
                np.save(file, array, allow_pickle=False)


def _position_arrays(position: RolloutPosition) -> dict[str, np.ndarray]:
    """
    :return: the position's arrays by entry name: ``last_obs``, or ``last_obs/<key>`` for dict observations, and
        ``memory/<name>`` for the recurrent state
    """
    named: dict[str, np.ndarray] = {"last_episode_starts": np.asarray(position.last_episode_starts)}
    named.update({f"memory/{name}": np.asarray(state) for name, state in position.memory.items()})
    for name, obs in (("last_obs", position.last_obs), ("last_original_obs", position.last_original_obs)):
        if isinstance(obs, dict):
            named.update({f"{name}/{key}": np.asarray(value) for key, value in obs.items()})
        elif obs is not None:
            named[name] = np.asarray(obs)
    return named


def _read_position(archive: zipfile.ZipFile, recorded: dict[str, Any], path: PathLike) -> RolloutPosition:
    arrays: dict[str, np.ndarray] = {}
    for name in recorded["arrays"]:
        with archive.open(f"{ROLLOUT_PREFIX}{name}.npy") as file:
            arrays[name] = np.load(file, allow_pickle=False)

    def prefixed(name: str) -> dict[str, np.ndarray]:
        return {entry.split("/", 1)[1]: array for entry, array in arrays.items() if entry.startswith(f"{name}/")}

    def observation(name: str) -> Observation | None:
        return arrays[name] if name in arrays else prefixed(name) or None

    last_obs = observation("last_obs")
    if last_obs is None:
        raise AuxBufferFileError(f"{path}: its rollout position has no last observations")
    return RolloutPosition(
        last_obs=last_obs,
        last_episode_starts=arrays["last_episode_starts"],
        last_original_obs=observation("last_original_obs"),
        ep_info_buffer=recorded["ep_info_buffer"],
        ep_success_buffer=recorded["ep_success_buffer"],
        memory=prefixed("memory"),
    )


def _json_or_none(values: list[Any] | None) -> list[Any] | None:
    """:return: ``values`` as JSON holds them (numpy scalars as Python ones), or None when JSON cannot hold them"""
    if values is None:
        return None

    def builtin(value: Any) -> Any:
        if isinstance(value, np.generic | np.ndarray):
            return value.tolist()
        raise TypeError(type(value).__name__)

    try:
        return json.loads(json.dumps(values, default=builtin))
    except (TypeError, ValueError):
        return None


def _write_npy(file: IO[bytes], storage: Storage, n_rows: int) -> None:
    """Write ``storage[:n_rows]`` in ``.npy`` format, a chunk of rows at a time (device chunks via the host)."""
    header = {"descr": np.lib.format.dtype_to_descr(_numpy_dtype(storage)), "fortran_order": False}
    np.lib.format.write_array_header_2_0(file, dict(header, shape=(n_rows, *storage.shape[1:])))
    step = _rows_per_chunk(storage)
    for start in range(0, n_rows, step):
        chunk = storage[start : min(start + step, n_rows)]
        chunk_array = chunk.cpu().numpy() if isinstance(chunk, th.Tensor) else chunk
        file.write(np.ascontiguousarray(chunk_array).data)


def load_aux_buffer(buffer: AuxRolloutBuffer, layout: dict[str, Any], path: PathLike) -> RolloutPosition | None:
    """
    Fill ``buffer`` from a file written by :func:`save_aux_buffer`, in place, whatever storage (host or device)
    either side uses. On any error the buffer is left empty: never part-filled.

    :param buffer: the model's aux buffer
    :param layout: :func:`aux_buffer_layout` of the model
    :param path: the file to read
    :return: the rollout position of the process that wrote the file, or None when it has none (a file written
        before any rollout, or before positions were recorded)
    :raises ValueError: when the file was saved for a model with another layout, naming each difference
    :raises AuxBufferFileError: when the file is truncated, corrupt, or not an aux buffer file
    """
    buffer.reset()
    try:
        with zipfile.ZipFile(path, "r") as archive:
            header = _read_header(archive, path)
            _check_layout(header["layout"], layout, path)
            pos = int(header["pos"])
            if not 0 <= pos <= buffer.buffer_size:
                raise AuxBufferFileError(f"{path}: its size {pos} does not fit the buffer's {buffer.buffer_size}")
            arrays = buffer.saved_arrays(pos)
            if set(header["arrays"]) != set(arrays):
                raise AuxBufferFileError(f"{path}: its arrays {sorted(header['arrays'])} are not {sorted(arrays)}")
            for name, (storage, rows) in arrays.items():
                with archive.open(f"{name}.npy") as file:
                    _read_npy(file, storage, rows, f"{path}:{name}")
            recorded = header.get("rollout_position")
            position = None if recorded is None else _read_position(archive, recorded, path)
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, OSError) as error:
        buffer.reset()
        if isinstance(error, FileNotFoundError):
            raise
        raise AuxBufferFileError(
            f"{path} is not a complete aux buffer file ({error}). It may have been cut short by a crash during the "
            "save: load an earlier checkpoint's buffer, or resume without one (a fresh aux cycle then starts)"
        ) from error
    except Exception:
        buffer.reset()
        raise
    buffer.pos = pos
    buffer.full = pos == buffer.buffer_size
    return position


def _read_header(archive: zipfile.ZipFile, path: PathLike) -> dict[str, Any]:
    try:
        header = json.loads(archive.read(LAYOUT_ENTRY))
    except (KeyError, json.JSONDecodeError) as error:
        raise AuxBufferFileError(f"{path} is not an aux buffer file written by save_aux_buffer ({error})") from error
    if header.get("format") != FORMAT_NAME or header.get("version") != FORMAT_VERSION:
        raise AuxBufferFileError(
            f"{path}: format {header.get('format')!r} version {header.get('version')!r}; "
            f"this version of sb3_ppg reads {FORMAT_NAME!r} version {FORMAT_VERSION}"
        )
    return header


def _check_layout(saved: dict[str, Any], model: dict[str, Any], path: PathLike) -> None:
    differences = [
        f"{description}: file {saved.get(key, LAYOUT_DEFAULTS.get(key))!r}, model {model[key]!r}"
        for key, description in LAYOUT_CHECKS.items()
        if not (key in LAYOUT_UNRECORDED and key not in saved) and saved.get(key, LAYOUT_DEFAULTS.get(key)) != model[key]
    ]
    if differences:
        raise ValueError(f"the aux buffer in {path} does not fit this model:\n" + "\n".join(f"  - {d}" for d in differences))


def _read_npy(file: IO[bytes], storage: Storage, n_rows: int, name: str) -> None:
    """Read a ``.npy`` entry of ``n_rows`` rows into ``storage[:n_rows]``, checking its shape, dtype and length."""
    if np.lib.format.read_magic(file) != (2, 0):
        raise AuxBufferFileError(f"{name}: not an array written by save_aux_buffer (.npy format 2.0)")
    shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(file)
    expected_shape = (n_rows, *storage.shape[1:])
    if tuple(shape) != expected_shape or fortran_order or dtype != _numpy_dtype(storage):
        raise AuxBufferFileError(
            f"{name}: array of shape {tuple(shape)} and dtype {dtype}, expected {expected_shape} and {_numpy_dtype(storage)}"
        )
    step = _rows_per_chunk(storage)
    row_bytes = int(np.prod(storage.shape[1:])) * dtype.itemsize
    for start in range(0, n_rows, step):
        end = min(start + step, n_rows)
        data = file.read((end - start) * row_bytes)
        if len(data) != (end - start) * row_bytes:
            raise AuxBufferFileError(f"{name}: the array ends after {start} of {n_rows} rows")
        chunk = np.frombuffer(data, dtype=dtype).reshape(end - start, *storage.shape[1:])
        if isinstance(storage, th.Tensor):
            storage[start:end] = th.from_numpy(chunk.copy()).to(storage.device)
        else:
            storage[start:end] = chunk
    # Reading past the end makes zipfile check the entry's CRC
    if file.read(1):
        raise AuxBufferFileError(f"{name}: more data than its header says")


def save_atomically(save: Callable[..., None], path: PathLike | io.BufferedIOBase, **kwargs: Any) -> None:
    """
    Run SB3's ``save`` on a temporary file renamed to ``path`` once written (see :func:`atomic_path`).

    :param save: a ``save(path, **kwargs)`` that writes a zip file, as SB3's ``BaseAlgorithm.save``
    :param path: the file (``.zip`` is added without a suffix, as SB3 does), or a file object, written directly
    :param kwargs: the other arguments of ``save``
    """
    if isinstance(path, io.BufferedIOBase):
        save(path, **kwargs)
        return
    path = pathlib.Path(path)
    if path.suffix == "":
        path = path.with_suffix(".zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        save(temporary, **kwargs)


def warn_aux_buffer_not_loaded(steps: int, n_steps: int, n_policy_iterations: int) -> None:
    """
    Say that a model goes on training without the states of the aux cycle it was saved in.

    :param steps: steps per env of the cycle when the model was saved
    :param n_steps: the model's ``n_steps``
    :param n_policy_iterations: the model's ``n_policy_iterations``
    """
    warnings.warn(
        f"PPG was saved {steps // n_steps} of {n_policy_iterations} rollouts into an aux cycle, and its aux buffer "
        "was not loaded (load_aux_buffer): those states are lost. A fresh aux cycle starts with the next rollout, "
        f"so the next aux phase comes after {n_policy_iterations} more rollouts. To continue the cycle instead, "
        "save the buffer with save_aux_buffer (or PPGCheckpointCallback(save_replay_buffer=True)) and load it "
        "after the model.",
        stacklevel=_user_stacklevel(),
    )


def _user_stacklevel() -> int:
    """:return: the ``stacklevel`` that points a warning at its caller's first frame outside the RL libraries"""
    libraries = ("sb3_ppg", "stable_baselines3", "sb3_contrib")
    frame, level = sys._getframe(1), 1  # the frame that calls ``warnings.warn``
    while frame.f_back is not None and frame.f_globals.get("__name__", "").partition(".")[0] in libraries:
        frame, level = frame.f_back, level + 1
    return level
