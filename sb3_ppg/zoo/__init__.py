"""
RL Zoo (rl_zoo3) integration: train, tune, replay and record PPG with the zoo's own scripts.

    python -m sb3_ppg.zoo train --algo ppg --env LunarLander-v3
    python -m sb3_ppg.zoo train --algo ppg --env CartPole-v1 -optimize --n-trials 50 --n-jobs 2
    python -m sb3_ppg.zoo enjoy --algo ppg --env LunarLander-v3 -f logs
    python -m sb3_ppg.zoo record_video --algo ppg --env LunarLander-v3 -f logs

``sb3-ppg-zoo`` is the same command. It adds ``ppg``, ``ppg_mask`` (MaskablePPG) and ``ppg_lstm`` (RecurrentPPG) to
the zoo (:func:`register`), then runs the zoo's script with the remaining arguments, so every zoo option works and
every zoo algo (``--algo ppo``, ...) keeps working. ``train --algo ppg`` reads the hyperparameters packaged with sb3_ppg
(``sb3_ppg/hyperparams/ppg.yml``), ``train --algo ppg_mask`` those of ``ppg_mask.yml``, ``--algo ppg_lstm`` those of
``ppg_lstm.yml`` (rl_zoo3's partially observed envs, e.g. ``CartPoleNoVel-v1``), unless
``--conf-file`` is given. ``--conf-file`` also takes the name of another packaged file: ``procgen_replication``
(Procgen at the paper's full 256-env scale) or ``procgen_ppo_reference`` (the paper's PPO baseline, run by PPG).

``train --save-freq N --save-aux-buffer`` saves PPG's aux buffer (and the ``VecNormalize`` statistics, when
normalizing) with every checkpoint, and ``train -i logs/ppg/<env>_1/rl_model_<steps>_steps.zip`` resumes from
that checkpoint with the buffer and statistics found beside it, counting timesteps on (``-n``: the steps to add).
``--save-aux-buffer`` is PPG's name for the zoo's ``--save-replay-buffer``. Under ``torchrun`` each rank saves
and resumes its own buffer, ``..._rank{r}.npz`` beside rank 0's model.

``train`` takes one option of its own: ``--heartbeat-interval SECONDS`` opens the ``--storage`` database with
Optuna's heartbeat, so that the trial of a worker that died is marked failed by the other workers
(:func:`optuna_heartbeat`).

Commands: ``train``, ``enjoy``, ``record_video``, ``record_training`` and the plots
(``plot_train``, ``plot_from_file``, ``all_plots``, which need ``rl_zoo3[plots]``).

Limitations:

- ``record_training`` records each checkpoint in a ``python -m rl_zoo3.record_video`` subprocess, which would not
  know ``ppg``. This command runs ``record_training`` in-process and sends those subprocesses to
  ``sb3_ppg.zoo record_video`` instead (with the current interpreter). It also needs the ``ffmpeg`` program.
- The plain ``rl_zoo3`` / ``python -m rl_zoo3.train`` commands do not know ``ppg``: use this one.
- With ``ppg_mask``, the envs need an ``action_masks()`` method (``InvalidActionEnvDiscrete-v0``, registered by
  sb3_ppg, has one). ``train`` collects rollouts and evaluates (``--eval-freq``) with the masks; ``enjoy``,
  ``record_video`` and ``-optimize``'s trial evaluations call the zoo's own ``predict`` and run without them.
- ``push_to_hub`` and ``load_from_hub`` are not wrapped (the Hugging Face hub has no PPG agents to load).
- ``-optimize`` searches N_pi up to 32 on top of PPO's n_steps up to 4096: the aux buffer holds
  N_pi * n_steps * n_envs observations, too many for image observations. Register your own sampler for those.
"""

import argparse
import contextlib
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from sb3_ppg.zoo.exp_manager import ALGO_CLASSES, HyperparameterError, PPGExperimentManager
from sb3_ppg.zoo.hyperparams_opt import convert_ppg_params, sample_ppg_params

PROG = "sb3-ppg-zoo"

# Path of the packaged hyperparameters: the zoo reads a config from a file
HYPERPARAMS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hyperparams")
PPG_CONFIG_PATH = os.path.join(HYPERPARAMS_DIR, "ppg.yml")
PPG_MASK_CONFIG_PATH = os.path.join(HYPERPARAMS_DIR, "ppg_mask.yml")
PPG_LSTM_CONFIG_PATH = os.path.join(HYPERPARAMS_DIR, "ppg_lstm.yml")
# The config each algo of this package reads unless --conf-file is given
DEFAULT_CONFIGS = {"ppg": PPG_CONFIG_PATH, "ppg_mask": PPG_MASK_CONFIG_PATH, "ppg_lstm": PPG_LSTM_CONFIG_PATH}
CONF_FILE_OPTIONS = ("--conf-file", "-conf")

COMMANDS = (
    "train",
    "enjoy",
    "record_video",
    "record_training",
    "plot_train",
    "plot_from_file",
    "all_plots",
)

# The option of ``train`` that this command handles itself, before the zoo parses the rest
HEARTBEAT_OPTION = "--heartbeat-interval"
# Saves the aux buffer with each --save-freq checkpoint and the final model; -i loads the one beside the model
SAVE_AUX_BUFFER_OPTION = "--save-aux-buffer"
SAVE_REPLAY_BUFFER_OPTION = "--save-replay-buffer"

__all__ = [
    "DEFAULT_CONFIGS",
    "HEARTBEAT_OPTION",
    "PPG_CONFIG_PATH",
    "PPG_LSTM_CONFIG_PATH",
    "PPG_MASK_CONFIG_PATH",
    "HyperparameterError",
    "PPGExperimentManager",
    "convert_ppg_params",
    "main",
    "optuna_heartbeat",
    "packaged_config",
    "register",
    "sample_ppg_params",
    "split_heartbeat_interval",
    "with_default_config",
]


def register() -> None:
    """
    Make ``ppg``, ``ppg_mask`` (MaskablePPG) and ``ppg_lstm`` (RecurrentPPG) algos of the zoo in this process: their
    classes, their Optuna sampler and converter (the same: both take PPG's arguments), and the hyperparameter checks of
    :class:`PPGExperimentManager` for ``rl_zoo3.train``. Safe to call more than once.
    """
    import rl_zoo3.train
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER
    from rl_zoo3.utils import ALGOS

    for algo, algo_class in ALGO_CLASSES.items():
        # The zoo's scripts build their --algo choices from ALGOS when they parse, so this is enough for them
        ALGOS[algo] = algo_class
        HYPERPARAMS_SAMPLER[algo] = sample_ppg_params
        HYPERPARAMS_CONVERTER[algo] = convert_ppg_params
    # train() looks the class up in its module: the subclass only adds checks for ppg
    rl_zoo3.train.ExperimentManager = PPGExperimentManager  # type: ignore[misc]


class _ParseError(Exception):
    pass


class _LenientParser(argparse.ArgumentParser):
    """A parser that raises instead of printing and exiting: the zoo's own parser reports bad arguments."""

    def error(self, message: str) -> NoReturn:
        raise _ParseError(message)


def packaged_config(name: str) -> str | None:
    """
    :param name: a packaged config's name, e.g. ``procgen_ppo_reference`` (with or without ``.yml``)
    :return: its path, or None when no packaged file has that name
    """
    file_name = name if name.endswith(".yml") else f"{name}.yml"
    path = os.path.join(HYPERPARAMS_DIR, file_name)
    return path if os.path.basename(file_name) == file_name and os.path.isfile(path) else None


def with_default_config(train_args: Sequence[str]) -> list[str]:
    """
    Arguments of ``train`` with ``--conf-file <packaged ppg.yml>`` (``ppg_mask.yml``) added when the algo is ppg
    (ppg_mask) and no conf file was given, and a ``--conf-file`` that names a packaged config
    (``procgen_replication``) replaced by its path.

    :param train_args: the arguments of the zoo's ``train`` script
    :return: the arguments to run it with
    """
    parser = _LenientParser(add_help=False)
    # Same option strings as rl_zoo3.train, so the same spellings and abbreviations match
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("-conf", "--conf-file", default=None)
    try:
        known, _ = parser.parse_known_args(list(train_args))
    except _ParseError:
        return list(train_args)
    if known.algo in DEFAULT_CONFIGS and known.conf_file is None:
        # In front: at the end it could land after a "--" and be read as a positional argument
        return ["--conf-file", DEFAULT_CONFIGS[known.algo], *train_args]
    args = list(train_args)
    path = None if known.conf_file is None or os.path.exists(known.conf_file) else packaged_config(known.conf_file)
    if path is not None:
        for index, arg in enumerate(args):
            if arg in CONF_FILE_OPTIONS and index + 1 < len(args) and args[index + 1] == known.conf_file:
                args[index + 1] = path
            elif arg == f"--conf-file={known.conf_file}":
                args[index] = f"--conf-file={path}"
    return args


def split_heartbeat_interval(train_args: Sequence[str]) -> tuple[int | None, list[str]]:
    """
    Take ``--heartbeat-interval SECONDS`` (or ``--heartbeat-interval=SECONDS``) out of the arguments of ``train``:
    the zoo does not know that option.

    :param train_args: the arguments of ``train``
    :return: the interval in seconds (None when the option is not given) and the other arguments, in their order
    :raises ValueError: when the interval is not a positive whole number of seconds, or when the option comes without
        a database ``--storage``: only Optuna's database storages have a heartbeat, its journal file has none
    """
    interval_text = None
    rest: list[str] = []
    args = list(train_args)
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            # Whatever follows is not for a parser of options
            rest.extend(args[index:])
            break
        if arg == HEARTBEAT_OPTION:
            if index + 1 == len(args):
                raise ValueError(f"{HEARTBEAT_OPTION} expects a number of seconds")
            interval_text = args[index + 1]
            index += 2
        elif arg.startswith(f"{HEARTBEAT_OPTION}="):
            interval_text = arg.partition("=")[2]
            index += 1
        else:
            rest.append(arg)
            index += 1
    if interval_text is None:
        return None, rest

    try:
        interval = int(interval_text)
    except ValueError:
        interval = 0
    if interval < 1:
        raise ValueError(f"{HEARTBEAT_OPTION} must be a whole number of seconds >= 1, got {interval_text!r}")
    parser = _LenientParser(add_help=False)
    # Same option string as rl_zoo3.train
    parser.add_argument("--storage", default=None)
    try:
        storage = parser.parse_known_args(rest)[0].storage
    except _ParseError:
        storage = None
    if storage is None or storage.endswith(".log"):
        raise ValueError(
            f"{HEARTBEAT_OPTION} needs a database --storage (sqlite:///..., postgresql://...): "
            + ("the journal file storage (.log) has no heartbeat" if storage else "none was given")
        )
    return interval, rest


@contextlib.contextmanager
def optuna_heartbeat(heartbeat_interval: int) -> Iterator[None]:
    """
    Within this context, Optuna opens a storage given as a database URL (``sqlite:///...``, ``postgresql://...``)
    as an ``optuna.storages.RDBStorage`` with a heartbeat. The zoo passes ``--storage`` to Optuna as a URL, which
    gets no heartbeat otherwise.

    Each running trial then records a heartbeat every ``heartbeat_interval`` seconds. Before each new trial, a
    worker marks ``FAIL`` the running trials whose last heartbeat is older than the grace period, twice the
    interval (Optuna's default): the trials of workers that died. A trial that fails this way no longer counts
    towards ``--max-total-trials``. Storages given as objects (the zoo's journal file) are left as they are.

    :param heartbeat_interval: seconds between two heartbeats of a running trial, at least 1
    :raises ValueError: when ``heartbeat_interval`` is below 1
    """
    import optuna

    if heartbeat_interval < 1:
        raise ValueError(f"heartbeat_interval must be a whole number of seconds >= 1, got {heartbeat_interval}")
    original_get_storage = optuna.storages.get_storage

    def get_storage(storage: Any) -> Any:
        if isinstance(storage, str):
            # What Optuna does with a URL, plus the heartbeat
            storage = optuna.storages.RDBStorage(storage, heartbeat_interval=heartbeat_interval)
        return original_get_storage(storage)

    # create_study and load_study look get_storage up in optuna.storages when they are called
    optuna.storages.get_storage = get_storage
    try:
        yield
    finally:
        optuna.storages.get_storage = original_get_storage


@contextlib.contextmanager
def _record_video_with_sb3_ppg() -> Iterator[None]:
    """Send ``python -m rl_zoo3.record_video ...`` subprocesses to ``sb3_ppg.zoo record_video``, which knows ppg."""
    original_call = subprocess.call

    def call(args: Any, *other_args: Any, **kwargs: Any) -> int:
        if isinstance(args, (list, tuple)) and list(args[1:3]) == ["-m", "rl_zoo3.record_video"]:
            args = [sys.executable, "-m", "sb3_ppg.zoo", "record_video", *args[3:]]
        return original_call(args, *other_args, **kwargs)

    subprocess.call = call  # type: ignore[assignment]
    try:
        yield
    finally:
        subprocess.call = original_call


def _run_script_module(module: str) -> None:
    # These zoo scripts have no function: their code is under `if __name__ == "__main__"`
    runpy.run_module(module, run_name="__main__", alter_sys=False)


def _plot_command(name: str) -> Callable[[], None]:
    try:
        from rl_zoo3 import plots
    except ImportError as error:
        raise SystemExit(
            f"{PROG} {name}: error: the plots need rl_zoo3's plot extra (pip install 'rl_zoo3[plots]'): {error}"
        ) from error
    return getattr(plots, name)


def _run(command: str) -> None:
    if command == "train":
        from rl_zoo3.train import train

        train()
    elif command == "enjoy":
        from rl_zoo3.enjoy import enjoy

        enjoy()
    elif command == "record_training":
        # Else the videos are recorded and only the final ffmpeg steps fail, with a FileNotFoundError
        if shutil.which("ffmpeg") is None:
            raise SystemExit(f"{PROG} record_training: error: it needs the ffmpeg program, which is not on PATH")
        with _record_video_with_sb3_ppg():
            _run_script_module("rl_zoo3.record_training")
    elif command == "record_video":
        _run_script_module("rl_zoo3.record_video")
    else:
        _plot_command(command)()


def _data_parallel_rank(train_args: list[str]) -> tuple[list[str], contextlib.AbstractContextManager]:
    """
    ``train`` as one rank of a torchrun launch: rank 0 runs the command as given; the other ranks train too (the
    model joins the process group) but write their log folder into a temporary folder, deleted at exit, without
    TensorBoard and without stdout, so the run leaves one log folder and one model.

    :param train_args: the arguments of ``train``
    :return: this rank's arguments, and the context to run it in
    """
    if "-optimize" in train_args or "--optimize-hyperparameters" in train_args:
        raise SystemExit(f"{PROG} train: error: -optimize runs one trial per process; do not launch it with torchrun")
    if int(os.environ.get("RANK", "0")) == 0:
        return train_args, contextlib.nullcontext()
    stack = contextlib.ExitStack()
    log_folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="sb3-ppg-rank-"))
    stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
    # The zoo's parser keeps the last value of an option
    return [*train_args, "--log-folder", log_folder, "--tensorboard-log", ""], stack


def _usage() -> str:
    return f"usage: {PROG} {{{','.join(COMMANDS)}}} [arguments of that rl_zoo3 script]\n\n{__doc__}"


def main(argv: Sequence[str] | None = None) -> None:
    """
    Run an RL Zoo script with ``ppg`` registered.

    :param argv: the command and its arguments, ``sys.argv[1:]`` when None
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        raise SystemExit(0 if args else 2)
    command, command_args = args[0], args[1:]
    if command not in COMMANDS:
        print(f"{PROG}: error: unknown command {command!r}, choose from {', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(2)

    heartbeat_interval = None
    if command == "train":
        try:
            heartbeat_interval, command_args = split_heartbeat_interval(command_args)
        except ValueError as error:
            print(f"{PROG} {command}: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        command_args = with_default_config(command_args)
        # PPG's name for the zoo's option; the zoo's own spelling works too
        command_args = [SAVE_REPLAY_BUFFER_OPTION if arg == SAVE_AUX_BUFFER_OPTION else arg for arg in command_args]

    register()
    quiet: contextlib.AbstractContextManager = contextlib.nullcontext()
    if command == "train" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        command_args, quiet = _data_parallel_rank(command_args)
    # The zoo's scripts parse sys.argv
    sys.argv = [f"{PROG} {command}", *command_args]
    heartbeat = contextlib.nullcontext() if heartbeat_interval is None else optuna_heartbeat(heartbeat_interval)
    try:
        with heartbeat, quiet:
            _run(command)
    except HyperparameterError as error:
        # A config mistake: the message is the whole story, a traceback through the zoo would only hide it
        print(f"{PROG} {command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
