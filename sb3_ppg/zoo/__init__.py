"""
RL Zoo (rl_zoo3) integration: train, tune, replay and record PPG with the zoo's own scripts.

    python -m sb3_ppg.zoo train --algo ppg --env LunarLander-v3
    python -m sb3_ppg.zoo train --algo ppg --env CartPole-v1 -optimize --n-trials 50 --n-jobs 2
    python -m sb3_ppg.zoo enjoy --algo ppg --env LunarLander-v3 -f logs
    python -m sb3_ppg.zoo record_video --algo ppg --env LunarLander-v3 -f logs

``sb3-ppg-zoo`` is the same command. It adds ``ppg`` to the zoo (:func:`register`), then runs the zoo's script
with the remaining arguments, so every zoo option works and every zoo algo (``--algo ppo``, ...) keeps working.
``train --algo ppg`` reads the hyperparameters packaged with sb3_ppg (``sb3_ppg/hyperparams/ppg.yml``) unless
``--conf-file`` is given.

Commands: ``train``, ``enjoy``, ``record_video``, ``record_training`` and the plots
(``plot_train``, ``plot_from_file``, ``all_plots``, which need ``rl_zoo3[plots]``).

Limitations:

- ``record_training`` records each checkpoint in a ``python -m rl_zoo3.record_video`` subprocess, which would not
  know ``ppg``. This command runs ``record_training`` in-process and sends those subprocesses to
  ``sb3_ppg.zoo record_video`` instead (with the current interpreter). It also needs the ``ffmpeg`` program.
- The plain ``rl_zoo3`` / ``python -m rl_zoo3.train`` commands do not know ``ppg``: use this one.
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
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from sb3_ppg.zoo.exp_manager import ALGO_NAME, HyperparameterError, PPGExperimentManager
from sb3_ppg.zoo.hyperparams_opt import convert_ppg_params, sample_ppg_params

PROG = "sb3-ppg-zoo"

# Path of the packaged hyperparameters: the zoo reads a config from a file
PPG_CONFIG_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hyperparams", "ppg.yml")

COMMANDS = (
    "train",
    "enjoy",
    "record_video",
    "record_training",
    "plot_train",
    "plot_from_file",
    "all_plots",
)

__all__ = [
    "PPG_CONFIG_PATH",
    "HyperparameterError",
    "PPGExperimentManager",
    "convert_ppg_params",
    "main",
    "register",
    "sample_ppg_params",
    "with_default_config",
]


def register() -> None:
    """
    Make ``ppg`` an algo of the zoo in this process: its class, its Optuna sampler and converter, and the
    hyperparameter checks of :class:`PPGExperimentManager` for ``rl_zoo3.train``. Safe to call more than once.
    """
    import rl_zoo3.train
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER
    from rl_zoo3.utils import ALGOS

    from sb3_ppg.ppg import PPG

    # The zoo's scripts build their --algo choices from ALGOS when they parse, so this is enough for them
    ALGOS[ALGO_NAME] = PPG
    HYPERPARAMS_SAMPLER[ALGO_NAME] = sample_ppg_params
    HYPERPARAMS_CONVERTER[ALGO_NAME] = convert_ppg_params
    # train() looks the class up in its module: the subclass only adds checks for ppg
    rl_zoo3.train.ExperimentManager = PPGExperimentManager  # type: ignore[misc]


class _ParseError(Exception):
    pass


class _LenientParser(argparse.ArgumentParser):
    """A parser that raises instead of printing and exiting: the zoo's own parser reports bad arguments."""

    def error(self, message: str) -> NoReturn:
        raise _ParseError(message)


def with_default_config(train_args: Sequence[str]) -> list[str]:
    """
    Arguments of ``train`` with ``--conf-file <packaged ppg.yml>`` added when the algo is ppg and no conf file
    was given.

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
    if known.algo == ALGO_NAME and known.conf_file is None:
        # In front: at the end it could land after a "--" and be read as a positional argument
        return ["--conf-file", PPG_CONFIG_PATH, *train_args]
    return list(train_args)


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

    register()
    if command == "train":
        command_args = with_default_config(command_args)
    # The zoo's scripts parse sys.argv
    sys.argv = [f"{PROG} {command}", *command_args]
    try:
        _run(command)
    except HyperparameterError as error:
        # A config mistake: the message is the whole story, a traceback through the zoo would only hide it
        print(f"{PROG} {command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
