"""
Hyperparameter checks for ``--algo ppg`` in the RL Zoo.

The zoo passes every key of a config entry that it does not consume itself straight to the algorithm's
constructor, so a typo in a config file would surface as a ``TypeError`` deep inside ``PPG.__init__``.
:class:`PPGExperimentManager` checks the keys first and names the offending one.

It also builds EnvPool's Procgen and Atari ids (``StarpilotHard-v0``, ``Pong-v5``) as one
:class:`~sb3_ppg.common.envpool.EnvPoolVecEnv`, for every algo. Importing this module registers those ids in
gymnasium's registry (:func:`~sb3_ppg.common.envpool.register_gymnasium_ids`): the zoo's ``train`` accepts only
registered ids.
"""

import contextlib
import difflib
import functools
import inspect
import os
from collections.abc import Iterator, Mapping
from typing import Any

import rl_zoo3.exp_manager
from rl_zoo3.exp_manager import ExperimentManager
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from rl_zoo3.utils import SimpleLinearSchedule
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecNormalize, VecTransposeImage

from sb3_ppg.common import distributed
from sb3_ppg.common.callbacks import (
    AUX_BUFFER_EXTENSION,
    AUX_BUFFER_PREFIX,
    VECNORMALIZE_PREFIX,
    PPGCheckpointCallback,
    checkpoint_companion,
)
from sb3_ppg.common.envpool import envpool_family, make_envpool_env, register_gymnasium_ids
from sb3_ppg.ppg import PPG
from sb3_ppg.ppg_mask import MaskablePPG
from sb3_ppg.ppg_recurrent import RecurrentPPG

register_gymnasium_ids()

ALGO_NAME = "ppg"
# The aux buffer saved with the final model by --save-aux-buffer
FINAL_AUX_BUFFER = "aux_buffer.npz"
# The zoo's names of this package's algos; their configs get the same checks
ALGO_CLASSES: dict[str, type[PPG]] = {ALGO_NAME: PPG, "ppg_mask": MaskablePPG, "ppg_lstm": RecurrentPPG}

# Keys that rl_zoo3 2.9's ExperimentManager removes from an entry before it calls the constructor
# (``_preprocess_hyperparams``). ``noise_type``/``noise_std`` are not here: they become an ``action_noise``,
# which PPG does not take.
ZOO_KEYS = frozenset(
    {
        "n_envs",
        "n_timesteps",
        "normalize",
        "env_kwargs",
        "monitor_kwargs",
        "frame_stack",
        "env_wrapper",
        "vec_env_wrapper",
        "callback",
    }
)

# Constructor arguments that the zoo passes from its own command line: the same key in a config clashes with them
COMMAND_LINE_KEYS = {
    "env": "--env",
    "seed": "--seed",
    "verbose": "--verbose",
    "device": "--device",
    "tensorboard_log": "--tensorboard-log",
}

# The zoo deletes these unconditionally or PPG has no default for them
REQUIRED_KEYS = ("n_timesteps", "policy")


class HyperparameterError(ValueError):
    """A config entry that the zoo cannot turn into a PPG model: unknown, clashing or missing keys."""


def ppg_hyperparameter_names(algo_class: type[PPG] = PPG) -> frozenset[str]:
    """
    :param algo_class: PPG or one of its subclasses (which take PPG's arguments)
    :return: the ``PPG.__init__`` arguments a config entry may set (with those a subclass adds before its
        ``**kwargs``, which go on to PPG's)
    """
    names: set[str] = set()
    for cls in algo_class.__mro__:
        parameters = inspect.signature(cls.__init__).parameters.values()  # type: ignore[misc]
        names |= {parameter.name for parameter in parameters if parameter.kind is not parameter.VAR_KEYWORD}
        if cls is PPG or not any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
            break
    return frozenset(name for name in names if name != "self" and not name.startswith("_") and name not in COMMAND_LINE_KEYS)


def check_ppg_hyperparams(
    hyperparams: Mapping[str, Any],
    config: str,
    command_line_keys: Mapping[str, Any] | None = None,
    algo_class: type[PPG] = PPG,
) -> None:
    """
    Check the keys of a zoo hyperparameter entry for PPG.

    :param hyperparams: the entry, after the zoo merged the ``--hyperparams`` overrides into it
    :param config: the file (or module) the entry was read from, for the error message
    :param command_line_keys: the ``--hyperparams`` overrides, to say where a bad key came from
    :param algo_class: the algo the entry is for, PPG, MaskablePPG or RecurrentPPG
    :raises HyperparameterError: naming every unknown or clashing key, or the first missing required one
    """
    command_line_keys = command_line_keys or {}
    algo = algo_class.__name__
    allowed = ppg_hyperparameter_names(algo_class) | ZOO_KEYS

    def origin(key: str) -> str:
        return "--hyperparams" if key in command_line_keys else config

    problems = []
    for key in hyperparams:
        if key in COMMAND_LINE_KEYS:
            problems.append(
                f"'{key}' (from {origin(key)}) is set by the zoo's command line: use {COMMAND_LINE_KEYS[key]} instead"
            )
        elif key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f", did you mean '{close[0]}'?" if close else ""
            problems.append(f"unknown hyperparameter '{key}' (from {origin(key)}){hint}")
    if problems:
        raise HyperparameterError(
            f"invalid {algo} hyperparameters:\n"
            + "".join(f"  - {problem}\n" for problem in problems)
            + f"{algo} takes: {', '.join(sorted(ppg_hyperparameter_names(algo_class)))}\n"
            + f"the zoo takes: {', '.join(sorted(ZOO_KEYS))}"
        )
    for key in REQUIRED_KEYS:
        if key not in hyperparams:
            raise HyperparameterError(f"the hyperparameters from {config} have no '{key}', which is required")


class PPGExperimentManager(ExperimentManager):
    """
    rl_zoo3's ``ExperimentManager`` with checks for ``--algo ppg`` and ``--algo ppg_mask``; it behaves exactly as its
    parent for other algos. With ``ppg_mask`` the periodic evaluation (``--eval-freq``) uses the env's action masks.

    For PPG it also reads ``aux_learning_rate: lin_<value>`` as a linear schedule, like the zoo does for
    ``learning_rate``.

    For EnvPool ids (Procgen, Atari), with any algo, the envs are one
    :class:`~sb3_ppg.common.envpool.EnvPoolVecEnv` (``n_envs`` envs in one pool, ``env_kwargs`` as its options,
    seeded with ``--seed``); the zoo's ``normalize``, ``frame_stack`` and ``vec_env_wrapper`` apply on top of it as
    usual, the training episodes go to ``0.monitor.csv`` in the log folder, and evaluation is stochastic, as the
    zoo does for Atari. ``env_wrapper`` (a gymnasium wrapper) cannot wrap EnvPool's envs and is refused.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._envpool_family = envpool_family(self.env_name.gym_id)
        if self._envpool_family is not None:
            # Argmax policies can stall in these games until their time limit
            self.deterministic_eval = False

    def read_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            hyperparams, saved_hyperparams = super().read_hyperparameters()
        except ValueError as error:
            # The zoo's message names the env and the file; say what to do about it
            if self.algo in ALGO_CLASSES and str(error).startswith("Hyperparameters not found"):
                raise HyperparameterError(
                    f"{error}. Write an entry for this env id in a yml file of your own (starting from a similar env's "
                    "entry there) and pass it with --conf-file"
                ) from error
            raise
        if self.algo in ALGO_CLASSES:
            check_ppg_hyperparams(hyperparams, self.config, self.custom_hyperparams, ALGO_CLASSES[self.algo])
        return hyperparams, saved_hyperparams

    def create_callbacks(self) -> None:
        """
        The zoo's callbacks. For ``ppg_mask`` the periodic evaluation is SB3-Contrib's, with the env's masks. For
        ``ppg`` and ``ppg_mask``, ``--save-freq`` checkpoints are :class:`~sb3_ppg.common.callbacks.PPGCheckpointCallback`'s:
        taken at rollout ends, written atomically, with the ``VecNormalize`` statistics (when normalizing) and,
        with ``--save-aux-buffer`` (``--save-replay-buffer``), the aux buffer.
        """
        algo_class = ALGO_CLASSES.get(self.algo)
        with contextlib.ExitStack() as stack:
            # The zoo builds its callbacks by the names it imported; these take the same arguments
            if algo_class is MaskablePPG:
                stack.enter_context(_replaced(rl_zoo3.exp_manager, "EvalCallback", MaskableEvalCallback))
            if algo_class is not None:
                checkpoint_callback = functools.partial(
                    PPGCheckpointCallback, save_replay_buffer=self.save_replay_buffer, save_vecnormalize=bool(self.normalize)
                )
                stack.enter_context(_replaced(rl_zoo3.exp_manager, "CheckpointCallback", checkpoint_callback))
            super().create_callbacks()

    def _resumes_ppg(self) -> bool:
        return self.continue_training and self.algo in ALGO_CLASSES

    def _load_pretrained_agent(self, hyperparams: dict[str, Any], env: VecEnv) -> BaseAlgorithm:
        """
        The zoo's ``-i``; for PPG it also loads the aux buffer found beside the model (:func:`aux_buffer_beside`),
        under torchrun each rank its own. The ranks agree: when no rank finds its buffer, none loads one (a fresh
        aux cycle starts, with a warning); when some do, every rank loads its own, and a missing one fails on every
        rank.
        """
        model = super()._load_pretrained_agent(hyperparams, env)
        if self._resumes_ppg():
            path = aux_buffer_beside(self.trained_agent)
            if distributed.ranks_where(os.path.exists(distributed.rank_path(path))):
                print(f"Loading the aux buffer {distributed.rank_path(path)}")
                model.load_aux_buffer(path)  # type: ignore[attr-defined]
        return model

    def learn(self, model: BaseAlgorithm) -> None:
        """The zoo's ``learn``; a PPG run resumed with ``-i`` goes on counting timesteps, so its aux cycle goes on."""
        if not self._resumes_ppg():
            super().learn(model)
            return
        with _replaced(model, "learn", functools.partial(model.learn, reset_num_timesteps=False)):
            super().learn(model)

    def save_trained_model(self, model: BaseAlgorithm) -> None:
        """
        The zoo's final save; with ``--save-aux-buffer``, PPG's aux buffer goes beside it as ``aux_buffer.npz``, or
        under torchrun as each rank's ``aux_buffer_rank{r}.npz`` beside rank 0's model.
        """
        super().save_trained_model(model)
        if self.save_replay_buffer and hasattr(model, "save_aux_buffer"):
            print("Saving the aux buffer")
            # The other ranks' save_path is a temporary folder
            save_path = distributed.broadcast_object(self.save_path)
            model.save_aux_buffer(os.path.join(save_path, FINAL_AUX_BUFFER))

    @staticmethod
    def _preprocess_schedules(hyperparams: dict[str, Any]) -> dict[str, Any]:
        hyperparams = ExperimentManager._preprocess_schedules(hyperparams)
        aux_learning_rate = hyperparams.get("aux_learning_rate")
        if isinstance(aux_learning_rate, str):
            schedule, _, initial_value = aux_learning_rate.partition("_")
            try:
                if schedule != "lin":
                    raise ValueError(schedule)
                hyperparams["aux_learning_rate"] = SimpleLinearSchedule(float(initial_value))
            except ValueError as error:
                raise HyperparameterError(
                    f"aux_learning_rate must be a number or 'lin_<initial value>', got {aux_learning_rate!r}"
                ) from error
        return hyperparams

    def _preprocess_normalization(self, hyperparams: dict[str, Any]) -> dict[str, Any]:
        """
        The zoo's ``normalize`` handling, except that a ``gamma`` given in the ``normalize`` dict is kept: the zoo
        replaces it with the algorithm's, but the reference Procgen runs normalise rewards with their own 0.99.

        :param hyperparams: the entry
        :return: the entry without ``normalize``
        """
        normalize = hyperparams.get("normalize")
        # The zoo evaluates a string entry the same way
        given = eval(normalize) if isinstance(normalize, str) else normalize
        hyperparams = super()._preprocess_normalization(hyperparams)
        if isinstance(given, dict) and "gamma" in given:
            self.normalize_kwargs["gamma"] = given["gamma"]
        return hyperparams

    def _maybe_normalize(self, env: VecEnv, eval_env: bool) -> VecEnv:
        """
        The zoo's ``VecNormalize`` handling, except that with ``-i`` a checkpoint's own statistics
        (``rl_model_vecnormalize_<steps>_steps.pkl`` beside it) are loaded instead of the run's latest.

        :param env: the env to wrap
        :param eval_env: whether it is the evaluation env (statistics frozen, rewards not normalized)
        :return: the env, wrapped when normalizing
        :raises FileNotFoundError: when the entry normalizes and the checkpoint's own statistics are missing
        """
        path = checkpoint_companion(self.trained_agent, VECNORMALIZE_PREFIX, "pkl") if self.trained_agent else None
        if path is None or not self.normalize:
            return super()._maybe_normalize(env, eval_env)
        if not os.path.exists(path):
            # The run's latest statistics (the zoo's fallback) belong to another point of training
            raise FileNotFoundError(
                f"-i {self.trained_agent}: the entry normalizes (normalize: {self.normalize}), but the checkpoint's "
                f"VecNormalize statistics {path} are missing. Resume from a checkpoint saved with them "
                "(PPGCheckpointCallback saves them before the model), or from the final model and vecnormalize.pkl"
            )
        print(f"Loading the checkpoint's VecNormalize stats {path}")
        vec_normalize = VecNormalize.load(path, env)
        if eval_env:
            vec_normalize.training = False
            vec_normalize.norm_reward = False
        return vec_normalize

    def create_envs(self, n_envs: int, eval_env: bool = False, no_log: bool = False) -> VecEnv:
        """
        The zoo's envs, or for an EnvPool id, an :class:`~sb3_ppg.common.envpool.EnvPoolVecEnv` with the zoo's
        wrappers on top.

        :param n_envs: number of envs
        :param eval_env: whether it is the evaluation env (no monitor file, no reward normalisation)
        :param no_log: write no monitor file (hyperparameter search)
        :return: the vectorized env
        """
        if self._envpool_family is None:
            return super().create_envs(n_envs, eval_env=eval_env, no_log=no_log)
        if self.env_wrapper is not None:
            raise HyperparameterError(
                f"env_wrapper cannot wrap {self.env_name.gym_id}: EnvPool's envs are not gymnasium envs. Remove it; "
                "EnvPool's Atari envs are preprocessed already (frame skip, 84x84 grey, 4 stacked frames)"
            )
        # The zoo's Monitor writes one file per env in the log folder; the pool writes one for all its envs
        monitor_file = None if eval_env or no_log else os.path.join(self.save_path, "0.monitor.csv")
        env_kwargs = self.eval_env_kwargs if eval_env else self.env_kwargs
        env: VecEnv = make_envpool_env(
            self.env_name.gym_id, n_envs=n_envs, seed=self.seed, monitor_file=monitor_file, **(env_kwargs or {})
        )
        if self.vec_env_wrapper is not None:
            env = self.vec_env_wrapper(env)
        env = self._maybe_normalize(env, eval_env)
        if self.frame_stack is not None:
            env = VecFrameStack(env, self.frame_stack)
        # EnvPool's images are channel-first unless channel_first=False was asked for
        space = env.observation_space
        if is_image_space(space) and not is_image_space_channels_first(space):  # type: ignore[arg-type]
            env = VecTransposeImage(env)
        return env


def aux_buffer_beside(model_path: str) -> str:
    """
    :param model_path: a model file given to ``-i``
    :return: where its aux buffer is saved: ``rl_model_aux_buffer_<steps>_steps.npz`` beside a checkpoint
        ``rl_model_<steps>_steps.zip``, else ``aux_buffer.npz`` in its folder (the final save); under torchrun each
        rank's file has ``_rank{r}`` added to that name (:meth:`~sb3_ppg.PPG.load_aux_buffer` adds it)
    """
    beside = checkpoint_companion(model_path, AUX_BUFFER_PREFIX, AUX_BUFFER_EXTENSION)
    return beside if beside is not None else os.path.join(os.path.dirname(model_path), FINAL_AUX_BUFFER)


@contextlib.contextmanager
def _replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Set ``owner.name`` to ``value`` within the context, and back afterwards."""
    had_own = name in vars(owner)
    original = vars(owner).get(name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if had_own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)
