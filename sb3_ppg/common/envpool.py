"""
EnvPool environments (Procgen, Atari) as a Stable-Baselines3 ``VecEnv``.

`EnvPool <https://github.com/sail-sg/envpool>`_ steps a batch of C++ environments in its own threads and returns
batched arrays. :class:`EnvPoolVecEnv` gives such a pool SB3's ``VecEnv`` conventions: automatic resets with the
last observation of an episode in ``infos[i]["terminal_observation"]``, ``infos[i]["TimeLimit.truncated"]``, and
``infos[i]["episode"]`` at the end of each episode (what SB3's ``Monitor`` writes), so that ``rollout/ep_rew_mean``
is logged and ``evaluate_policy`` counts whole episodes.

Install: ``pip install "sb3-ppg[procgen]"``. On Linux, EnvPool's Procgen also needs the system Qt5 runtime:
``apt-get install -y libqt5gui5`` on Debian or Ubuntu.
"""

import difflib
import importlib.util
import os
import time
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor, ResultsWriter
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from sb3_ppg.common.arguments import check_number
from sb3_ppg.common.seeding import INT32_LIMIT, check_int, check_seed, fold_seed

__all__ = [
    "ATARI_VERSION",
    "PROCGEN_DISTRIBUTION_MODES",
    "PROCGEN_GAMES",
    "EnvPoolGymEnv",
    "EnvPoolVecEnv",
    "envpool_family",
    "make_atari_env",
    "make_envpool_env",
    "make_procgen_env",
    "procgen_env_id",
    "procgen_game_and_mode",
    "register_gymnasium_ids",
]

INSTALL_ENVPOOL = 'pip install "sb3-ppg[procgen]"'
INSTALL_QT = "apt-get install -y libqt5gui5"

# Procgen's distribution modes, as they appear in EnvPool's ids (``StarpilotHard-v0``)
PROCGEN_DISTRIBUTION_MODES = ("easy", "hard", "extreme", "memory", "exploration")

# The 16 Procgen games and the distribution modes each of them has
PROCGEN_GAMES: dict[str, tuple[str, ...]] = {
    "bigfish": ("easy", "hard"),
    "bossfight": ("easy", "hard"),
    "caveflyer": ("easy", "hard", "memory", "exploration"),
    "chaser": ("easy", "hard", "extreme"),
    "climber": ("easy", "hard", "exploration"),
    "coinrun": ("easy", "hard", "exploration"),
    "dodgeball": ("easy", "hard", "extreme", "memory"),
    "fruitbot": ("easy", "hard"),
    "heist": ("easy", "hard", "memory", "exploration"),
    "jumper": ("easy", "hard", "memory", "exploration"),
    "leaper": ("easy", "hard", "extreme", "exploration"),
    "maze": ("easy", "hard", "memory", "exploration"),
    "miner": ("easy", "hard", "memory"),
    "ninja": ("easy", "hard", "exploration"),
    "plunder": ("easy", "hard"),
    "starpilot": ("easy", "hard", "extreme"),
}

# EnvPool's Atari ids end with this version (``Pong-v5``)
ATARI_VERSION = "-v5"

# Config keys that EnvPoolVecEnv sets itself: the batch is always the whole pool (synchronous stepping)
_RESERVED_KEYS = frozenset({"num_envs", "batch_size", "seed", "env_seed", "max_num_players", "gym_reset_return_info"})

# Options that EnvPool takes as int32 but that mean nothing below 0 (a negative num_threads aborts the process)
_NON_NEGATIVE_OPTIONS = ("num_threads", "num_levels", "start_level")
_INT32 = " (EnvPool's int32)"
# Options that mean nothing below 1: there EnvPool's Atari crashes the process (stack_num, noop_max, img_height,
# img_width: a segfault or an OpenCV abort, noop_max=0 included) or runs without them (frame_skip, max_episode_steps)
_POSITIVE_OPTIONS = ("stack_num", "frame_skip", "noop_max", "img_height", "img_width", "max_episode_steps")
_PROBABILITY_OPTIONS = ("repeat_action_probability",)

_PROCGEN_IDS = {
    f"{game.capitalize()}{mode.capitalize()}-v0": (game, mode) for game, modes in PROCGEN_GAMES.items() for mode in modes
}


def _import_envpool() -> ModuleType:
    """:return: the ``envpool`` module, or an ImportError that says how to install it"""
    try:
        import envpool
    except ImportError as error:
        raise ImportError(
            f"EnvPool environments need the envpool package: {INSTALL_ENVPOOL} "
            f"(on Linux its Procgen also needs the Qt5 runtime: {INSTALL_QT}). Import error: {error}"
        ) from error
    return envpool


def _explain_import_error(error: ImportError, env_id: str) -> ImportError:
    """The ImportError to raise for one that EnvPool raised while loading an env's C++ module."""
    if "qt" in str(error).lower():
        return ImportError(
            f"EnvPool's {env_id} needs the system Qt5 runtime, which is missing: on Debian or Ubuntu, {INSTALL_QT} "
            f"(elsewhere, install Qt5's Core and Gui libraries). EnvPool said: {error}"
        )
    return ImportError(f"EnvPool could not load {env_id}: {error}. Reinstall it with {INSTALL_ENVPOOL}")


def _atari_ids() -> set[str]:
    """:return: EnvPool's Atari ids, or an empty set without envpool"""
    if importlib.util.find_spec("envpool") is None:
        return set()
    registry = _import_envpool().registration.registry
    return {env_id for env_id, (import_path, *_) in registry.specs.items() if import_path == "envpool.atari"}


def envpool_family(env_id: str) -> str | None:
    """
    Which EnvPool family an id belongs to.

    Procgen ids are known without envpool (so that a missing envpool gives an error saying what to install);
    Atari ids are EnvPool's own, so they are known only when envpool is installed.

    :param env_id: an environment id
    :return: ``"procgen"`` for an EnvPool Procgen id (``StarpilotHard-v0``), ``"atari"`` for an EnvPool Atari id
        (``Pong-v5``), None otherwise
    """
    if env_id in _PROCGEN_IDS:
        return "procgen"
    if env_id.endswith(ATARI_VERSION) and "/" not in env_id and env_id in _atari_ids():
        return "atari"
    return None


def procgen_env_id(game: str, distribution_mode: str = "hard") -> str:
    """
    EnvPool's id of a Procgen game in a distribution mode.

    :param game: a Procgen game, e.g. ``"starpilot"`` (any case)
    :param distribution_mode: one of the game's modes among ``easy``, ``hard``, ``extreme``, ``memory`` and
        ``exploration``
    :return: the id, e.g. ``"StarpilotHard-v0"``
    :raises ValueError: naming the allowed games or modes
    """
    name = game.lower()
    if name not in PROCGEN_GAMES:
        close = difflib.get_close_matches(name, PROCGEN_GAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"game must be a Procgen game, one of {', '.join(PROCGEN_GAMES)}; got {game!r}{hint}")
    modes = PROCGEN_GAMES[name]
    if distribution_mode not in modes:
        raise ValueError(f"distribution_mode of {name} must be one of {', '.join(modes)}; got {distribution_mode!r}")
    return f"{name.capitalize()}{distribution_mode.capitalize()}-v0"


def procgen_game_and_mode(env_id: str) -> tuple[str, str]:
    """
    The inverse of :func:`procgen_env_id`.

    :param env_id: EnvPool's id of a Procgen game, e.g. ``"StarpilotHard-v0"``
    :return: the game and its distribution mode, e.g. ``("starpilot", "hard")``
    :raises ValueError: when the id is not a Procgen id
    """
    if env_id not in _PROCGEN_IDS:
        raise ValueError(f"env_id must be a Procgen id of EnvPool, such as 'StarpilotHard-v0'; got {env_id!r}")
    return _PROCGEN_IDS[env_id]


def _check_options(options: dict[str, Any]) -> None:
    """
    Check the options whose range is known without envpool: the counts, Atari's frame and image sizes, the sticky
    action probability, and Procgen's level range.
    """
    for name in _NON_NEGATIVE_OPTIONS:
        if name in options:
            check_int(name, options[name], 0, INT32_LIMIT - 1, _INT32)
    for name in _POSITIVE_OPTIONS:
        if name in options:
            check_int(name, options[name], 1, INT32_LIMIT - 1, _INT32)
    for name in _PROBABILITY_OPTIONS:
        if name in options:
            check_number(name, options[name], "a probability in [0, 1]", lambda value: 0.0 <= value <= 1.0)
    num_levels, start_level = options.get("num_levels", 0), options.get("start_level", 0)
    # Procgen's levels are seeds start_level .. start_level + num_levels - 1: past int32 they wrap to negative seeds
    if num_levels > 0 and start_level + num_levels > INT32_LIMIT:
        raise ValueError(
            f"start_level + num_levels must be at most 2**31 = {INT32_LIMIT} (Procgen's level seeds are int32), "
            f"got start_level={start_level} and num_levels={num_levels}"
        )


class EnvPoolVecEnv(VecEnv):
    """
    An EnvPool environment pool as a Stable-Baselines3 ``VecEnv``.

    EnvPool resets an env on the step *after* the one that ended its episode (that step ignores its action and
    returns the first observation of the next episode). SB3 expects the reset within the same ``step()``: the
    returned observation is the first of the next episode and ``infos[i]["terminal_observation"]`` the last of
    the ended one. So after each step, the envs that finished are stepped once more, alone, to run EnvPool's own
    reset (an Atari life loss with ``episodic_life=True`` goes on with the next life, as in EnvPool).

    ``infos[i]`` holds EnvPool's per-env infos (``env_id``, ``elapsed_step``, ``level_seed``, ``lives``, ...),
    ``TimeLimit.truncated`` (EnvPool's ``truncated`` when not ``terminated``), and at the end of an episode
    ``episode = {"r": return, "l": length, "t": seconds since creation}`` as SB3's ``Monitor`` writes it.
    For Atari, an episode is a whole game: with ``episodic_life=True`` a life loss ends the algorithm's episode
    (``done``) but not the logged one, and its return is the game score before ``reward_clip``.

    Seeding: ``seed(seed)`` makes the next ``reset()`` rebuild the pool with that seed (EnvPool seeds its envs
    when the pool is built; each env gets its own stream derived from the pool's seed). A pool that is still
    fresh, with that seed already, is kept.

    Every non-negative int is a seed, as in SB3 and gymnasium (the RL Zoo draws its default from [0, 2**32 - 1]),
    but EnvPool takes only int32 seeds. So the pool is built with
    :func:`fold_seed(seed, 2**31) <sb3_ppg.common.seeding.fold_seed>` (:attr:`pool_seed`): a seed below 2**31 is
    itself, a larger one is hashed into [0, 2**31 - 1] by numpy's ``SeedSequence``. The same seed always gives the
    same pool seed, hence the same levels, and distinct seeds below 2**31 give distinct pools.

    :param env_id: an EnvPool id, e.g. ``"StarpilotHard-v0"`` or ``"Pong-v5"``
    :param n_envs: number of environments in the pool
    :param seed: seed of the pool, any int >= 0 (see Seeding above); None draws one
    :param monitor_file: where to write the episodes as a Monitor CSV (SB3's ``load_results`` reads it): a folder
        (``monitor.csv`` in it) or a file name; None writes nothing
    :param envpool_kwargs: options of the EnvPool env (``envpool.make_spec(env_id).config``, e.g. ``num_levels``
        for Procgen, ``episodic_life`` for Atari, ``num_threads``) and ``render_mode`` (None or ``"rgb_array"``).
        Integer options must fit EnvPool's int32; ``num_threads`` (0: EnvPool's default), ``num_levels`` and
        ``start_level`` must be >= 0, and Procgen's levels ``start_level + num_levels - 1`` below 2**31
    """

    def __init__(
        self,
        env_id: str,
        n_envs: int = 1,
        seed: int | None = 0,
        monitor_file: str | None = None,
        **envpool_kwargs: Any,
    ):
        check_int("n_envs", n_envs, 1, INT32_LIMIT - 1, _INT32)
        self._seed = fold_seed(self._draw_seed() if seed is None else seed, INT32_LIMIT)
        self.env_id = env_id
        self._envpool_kwargs = dict(envpool_kwargs)
        _check_options(self._envpool_kwargs)
        self._check_kwargs()
        self._pool = self._make_pool(n_envs, self._seed)
        # A pool not reset or stepped since it was built: seed() with its own seed keeps it
        self._fresh = True
        observation_space = self._pool.observation_space
        if not isinstance(observation_space, spaces.Box):
            raise NotImplementedError(f"EnvPoolVecEnv supports array (Box) observations; {env_id} has {observation_space}")
        super().__init__(n_envs, observation_space, self._pool.action_space)
        self._all_env_ids = np.arange(n_envs, dtype=np.int32)
        self._actions = np.zeros(0)
        self._episode_returns = np.zeros(n_envs, dtype=np.float64)
        self._episode_lengths = np.zeros(n_envs, dtype=np.int64)
        self._t_start = time.time()
        self._results_writer: ResultsWriter | None = None
        if monitor_file is not None:
            folder = monitor_file if os.path.isdir(monitor_file) else os.path.dirname(monitor_file)
            if folder:
                os.makedirs(folder, exist_ok=True)
            self._results_writer = ResultsWriter(monitor_file, header={"t_start": self._t_start, "env_id": env_id})

    @staticmethod
    def _draw_seed() -> int:
        return int(np.random.randint(0, 2**31 - 1))

    def _check_kwargs(self) -> None:
        envpool = _import_envpool()
        try:
            config = envpool.make_spec(self.env_id).config
            config_keys = set(config._fields)
        except ImportError as error:
            raise _explain_import_error(error, self.env_id) from error
        except (KeyError, AssertionError) as error:
            raise ValueError(f"env_id must be an EnvPool id (envpool.list_all_envs()), got {self.env_id!r}") from error
        allowed = (config_keys - _RESERVED_KEYS) | {"render_mode"}
        unknown = sorted(set(self._envpool_kwargs) - allowed)
        if unknown:
            reserved = sorted(set(unknown) & _RESERVED_KEYS)
            hint = f" ({', '.join(reserved)} are set by n_envs and seed)" if reserved else ""
            raise ValueError(
                f"unknown EnvPool options for {self.env_id}: {', '.join(unknown)}{hint}; allowed: {', '.join(sorted(allowed))}"
            )
        for key, value in self._envpool_kwargs.items():
            default = getattr(config, key, None)
            # EnvPool would refuse a larger int with a long pybind11 TypeError
            if isinstance(default, int) and not isinstance(default, bool):
                check_int(key, value, -INT32_LIMIT, INT32_LIMIT - 1, _INT32)
        render_mode = self._envpool_kwargs.get("render_mode")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")

    def _make_pool(self, n_envs: int, seed: int) -> Any:
        envpool = _import_envpool()
        try:
            # batch_size == num_envs: every step waits for the whole pool, as SB3 expects
            return envpool.make_gymnasium(self.env_id, num_envs=n_envs, batch_size=n_envs, seed=seed, **self._envpool_kwargs)
        except ImportError as error:
            raise _explain_import_error(error, self.env_id) from error

    @property
    def pool(self) -> Any:
        """The EnvPool object (``envpool.make_gymnasium(...)``) behind this VecEnv."""
        return self._pool

    @property
    def pool_seed(self) -> int:
        """The seed EnvPool built the current pool with: the seed given, folded into int32 (see Seeding)."""
        return self._seed

    def seed(self, seed: int | None = None) -> list[int | None]:
        """
        Seed the envs at the next ``reset()``, which rebuilds the pool with ``seed`` unless it is still fresh and
        built with that seed.

        :param seed: seed of the pool, any int >= 0: EnvPool gets ``fold_seed(seed, 2**31)`` (see the class
            docstring); None draws one
        :return: the seeds of the envs as SB3 numbers them (``seed + index``); EnvPool derives its own from the
            pool's seed
        :raises ValueError: when ``seed`` is not an int >= 0
        """
        seed = self._draw_seed() if seed is None else check_seed(seed)
        self._seeds = [seed + index for index in range(self.num_envs)]
        return list(self._seeds)

    def reset(self) -> VecEnvObs:
        if any(self._options):
            raise NotImplementedError("EnvPool envs take no reset options (set_options)")
        seed = self._seeds[0]
        pool_seed = None if seed is None else fold_seed(seed, INT32_LIMIT)
        if pool_seed is not None and not (self._fresh and pool_seed == self._seed):
            self._pool.close()
            self._seed = pool_seed
            self._pool = self._make_pool(self.num_envs, pool_seed)
        self._reset_seeds()
        self._reset_options()
        self._fresh = False
        observations, info = self._pool.reset()
        self.reset_infos = self._split_infos(info, len(observations))
        self._episode_returns[:] = 0
        self._episode_lengths[:] = 0
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        self._fresh = False
        observations, rewards, terminated, truncated, info = self._pool.step(self._actions)
        dones = terminated | truncated
        infos = self._split_infos(info, self.num_envs)
        for env_info, is_truncated in zip(infos, truncated & ~terminated, strict=True):
            env_info["TimeLimit.truncated"] = bool(is_truncated)

        # Atari's info["reward"] is the score before reward_clip, and info["terminated"] the end of the game
        self._episode_returns += info["reward"] if "reward" in info else rewards
        self._episode_lengths += 1
        episode_ends = dones
        if "lives" in info and "terminated" in info:
            episode_ends = truncated | (terminated & info["terminated"].astype(bool))

        done_ids = np.flatnonzero(dones).astype(np.int32)
        if done_ids.size > 0:
            # Copies: the rows of `observations` are overwritten with the first observations of the next episodes
            terminal_observations = observations[done_ids].copy()
            # EnvPool's reset of a finished env is its next step, whose action it ignores
            reset_observations, _, _, _, reset_info = self._pool.step(self._actions[done_ids], done_ids)
            order = np.argsort(reset_info["env_id"])
            observations[done_ids] = reset_observations[order]
            reset_infos = self._split_infos(reset_info, len(done_ids))
            for row, env_index in enumerate(done_ids.tolist()):
                infos[env_index]["terminal_observation"] = terminal_observations[row]
                self.reset_infos[env_index] = reset_infos[order[row]]

        for env_index in np.flatnonzero(episode_ends).tolist():
            episode = {
                "r": round(float(self._episode_returns[env_index]), 6),
                "l": int(self._episode_lengths[env_index]),
                "t": round(time.time() - self._t_start, 6),
            }
            infos[env_index]["episode"] = episode
            self._episode_returns[env_index] = 0
            self._episode_lengths[env_index] = 0
            if self._results_writer is not None:
                self._results_writer.write_row(episode)
        return observations, rewards.astype(np.float32, copy=False), dones, infos

    @staticmethod
    def _split_infos(info: dict[str, Any], n_rows: int) -> list[dict[str, Any]]:
        """EnvPool's batched info as one dict per env (nested entries such as ``players`` are left out)."""
        columns = [
            (key, value)
            for key, value in info.items()
            if isinstance(value, np.ndarray) and value.ndim > 0 and len(value) == n_rows
        ]
        return [{key: value[row] for key, value in columns} for row in range(n_rows)]

    def close(self) -> None:
        self._pool.close()
        if self._results_writer is not None:
            self._results_writer.close()

    def get_images(self) -> list[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            raise ValueError(f"get_images needs render_mode='rgb_array' when the env is made, not {self.render_mode!r}")
        return list(self._pool.render(env_ids=self._all_env_ids))

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, (int, np.integer)):
            return [int(indices)]
        return [int(index) for index in indices]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """
        An attribute of the pool (``render_mode``, ``config``, ``spec``, ...), once per requested env: EnvPool's
        envs live in C++ and have no Python attributes of their own.
        """
        value = getattr(self._pool, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise NotImplementedError(
            f"EnvPool's envs live in C++: cannot set {attr_name!r}; make a new EnvPoolVecEnv with other options instead"
        )

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        raise NotImplementedError(f"EnvPool's envs live in C++: they have no Python method {method_name!r} to call")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """
        No gymnasium wrapper can wrap EnvPool's envs, but this VecEnv writes ``info["episode"]`` as ``Monitor``
        does, so it answers True for ``Monitor`` (then ``evaluate_policy`` counts whole episodes from it).
        """
        return [wrapper_class is Monitor for _ in self._indices(indices)]


def make_procgen_env(
    game_or_id: str,
    n_envs: int = 1,
    num_levels: int = 0,
    start_level: int = 0,
    distribution_mode: str | None = None,
    seed: int | None = 0,
    **kwargs: Any,
) -> EnvPoolVecEnv:
    """
    A Procgen game through EnvPool: uint8 observations of shape (3, 64, 64), channel-first, 15 discrete actions.

    Episodes end when the game ends them, at its own time limit at the latest (``TimeLimit.truncated``).
    EnvPool's ``max_episode_steps`` is refused: for Procgen it only relabels the game's own ends.

    :param game_or_id: a game (``"starpilot"``) or an EnvPool Procgen id (``"StarpilotHard-v0"``)
    :param n_envs: number of environments
    :param num_levels: number of distinct levels to draw from; 0 means all levels (the paper's setting)
    :param start_level: the first level's seed; the levels ``start_level`` .. ``start_level + num_levels - 1``
        must stay below 2**31 (Procgen's level seeds are int32)
    :param distribution_mode: ``easy``, ``hard``, ``extreme``, ``memory`` or ``exploration`` (modes vary by
        game); None means the id's mode, or ``hard`` for a game name
    :param seed: seed of the pool, any int >= 0 (folded into EnvPool's int32 as :class:`EnvPoolVecEnv` says);
        None draws one
    :param kwargs: other options of :class:`EnvPoolVecEnv` and of EnvPool's Procgen (``use_sequential_levels``,
        ``paint_vel_info``, ``render_mode``, ``monitor_file``, ...)
    :return: the environments
    """
    if game_or_id in _PROCGEN_IDS:
        _, id_mode = _PROCGEN_IDS[game_or_id]
        if distribution_mode is not None and distribution_mode != id_mode:
            raise ValueError(
                f"distribution_mode={distribution_mode!r} contradicts the id {game_or_id!r} (mode {id_mode!r}): "
                "pass the game name instead, or leave distribution_mode out"
            )
        env_id = game_or_id
    else:
        env_id = procgen_env_id(game_or_id, "hard" if distribution_mode is None else distribution_mode)
    if "max_episode_steps" in kwargs:
        raise ValueError(
            "max_episode_steps cannot be set for Procgen: the game ends its episodes itself (each game has its own time "
            "limit), and EnvPool's option only marks the ends after that many steps as truncations"
        )
    return EnvPoolVecEnv(env_id, n_envs=n_envs, seed=seed, num_levels=num_levels, start_level=start_level, **kwargs)


def make_atari_env(
    game_or_id: str,
    n_envs: int = 1,
    seed: int | None = 0,
    **kwargs: Any,
) -> EnvPoolVecEnv:
    """
    An Atari game through EnvPool, preprocessed by EnvPool itself: 4 stacked grey 84x84 frames, channel-first
    (uint8, shape (4, 84, 84)), a frame skip of 4, up to 30 no-op starts and FIRE at reset, sticky actions off.
    Do not add SB3's ``AtariWrapper`` or a ``VecFrameStack``: that is done already.

    EnvPool's defaults keep rewards unclipped and a life loss does not end the episode; SB3's ``AtariWrapper``
    defaults are ``reward_clip=True, episodic_life=True``. The logged episodes are whole games either way.

    :param game_or_id: an EnvPool Atari id (``"Pong-v5"``) or a game name (``"pong"``, ``"SpaceInvaders"``)
    :param n_envs: number of environments
    :param seed: seed of the pool, any int >= 0 (folded into EnvPool's int32 as :class:`EnvPoolVecEnv` says);
        None draws one
    :param kwargs: other options of :class:`EnvPoolVecEnv` and of EnvPool's Atari envs (``episodic_life``,
        ``reward_clip``, ``stack_num``, ``frame_skip``, ``noop_max``, ``repeat_action_probability``,
        ``max_episode_steps``, ``img_height``, ``img_width``, ``gray_scale``, ``monitor_file``, ...)
    :return: the environments
    """
    _import_envpool()
    atari_ids = _atari_ids()
    by_name = {env_id[: -len(ATARI_VERSION)].lower(): env_id for env_id in atari_ids}
    key = game_or_id[: -len(ATARI_VERSION)] if game_or_id.endswith(ATARI_VERSION) else game_or_id
    key = key.replace("_", "").replace("-", "").lower()
    if key not in by_name:
        close = difflib.get_close_matches(key, by_name, n=3)
        hint = f"; close matches: {', '.join(by_name[name] for name in close)}" if close else ""
        raise ValueError(
            f"game_or_id must be one of EnvPool's {len(atari_ids)} Atari games, as an id ('Pong-v5') or a name "
            f"('pong'); got {game_or_id!r}{hint}"
        )
    return EnvPoolVecEnv(by_name[key], n_envs=n_envs, seed=seed, **kwargs)


def make_envpool_env(env_id: str, n_envs: int = 1, seed: int | None = 0, **kwargs: Any) -> EnvPoolVecEnv:
    """
    :func:`make_procgen_env` for a Procgen id, :func:`make_atari_env` for an Atari id, else :class:`EnvPoolVecEnv`.

    :param env_id: an EnvPool id
    :param n_envs: number of environments
    :param seed: seed of the pool, any int >= 0 (see :class:`EnvPoolVecEnv`); None draws one
    :param kwargs: options of the env (see those functions)
    :return: the environments
    """
    family = envpool_family(env_id)
    if family == "procgen":
        return make_procgen_env(env_id, n_envs=n_envs, seed=seed, **kwargs)
    if family == "atari":
        return make_atari_env(env_id, n_envs=n_envs, seed=seed, **kwargs)
    return EnvPoolVecEnv(env_id, n_envs=n_envs, seed=seed, **kwargs)


class EnvPoolGymEnv(gym.Env):
    """
    One EnvPool env as a plain ``gymnasium.Env``, for code that makes envs one at a time (``gym.make`` of the ids
    :func:`register_gymnasium_ids` registers, the RL Zoo's ``enjoy``). Train with :class:`EnvPoolVecEnv`: it is
    much faster.

    :param env_id: an EnvPool id
    :param render_mode: None or ``"rgb_array"``
    :param kwargs: options of the EnvPool env (see :class:`EnvPoolVecEnv`)
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}  # noqa: RUF012

    def __init__(self, env_id: str, render_mode: str | None = None, **kwargs: Any):
        self._vec_env = make_envpool_env(env_id, n_envs=1, seed=None, render_mode=render_mode, **kwargs)
        self.observation_space = self._vec_env.observation_space
        self.action_space = self._vec_env.action_space
        self.render_mode = render_mode
        # The first observation of the next episode, when the last step ended one: EnvPool has started it already
        self._next_start: tuple[np.ndarray, dict[str, Any]] | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """
        Start an episode. After an episode's end, without a seed, it is the episode EnvPool started already.

        :param seed: seed of the env, any int >= 0 (rebuilds its pool, see :class:`EnvPoolVecEnv`); None keeps the
            current one
        :param options: not supported, must be empty
        :return: the first observation and its info
        """
        if seed is not None:
            check_seed(seed)
        super().reset(seed=seed)
        if options:
            raise NotImplementedError("EnvPool envs take no reset options")
        if seed is None and self._next_start is not None:
            # Keeps EnvPool's own reset, e.g. the next life after an Atari life loss with episodic_life=True
            start, self._next_start = self._next_start, None
            return start
        self._next_start = None
        if seed is not None:
            self._vec_env.seed(seed)
        observations = np.asarray(self._vec_env.reset())
        return observations[0], self._vec_env.reset_infos[0]

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """
        :param action: an action of the action space
        :return: observation, reward, terminated, truncated and info, as gymnasium's ``step``
        """
        step_observations, rewards, dones, infos = self._vec_env.step(np.asarray([action]))
        observations = np.asarray(step_observations)
        info = infos[0]
        truncated = info["TimeLimit.truncated"]
        if not dones[0]:
            return observations[0], float(rewards[0]), False, False, info
        self._next_start = (observations[0], self._vec_env.reset_infos[0])
        return info.pop("terminal_observation"), float(rewards[0]), not truncated, truncated, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """:return: the current frame with ``render_mode="rgb_array"``, else None"""
        return self._vec_env.get_images()[0] if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        """Close the pool."""
        self._vec_env.close()


def register_gymnasium_ids() -> list[str]:
    """
    Register EnvPool's Procgen ids and, when envpool is installed, its Atari ids in gymnasium's registry, as
    :class:`EnvPoolGymEnv`: so that tools that check ids against the registry (the RL Zoo) accept them. Ids that
    gymnasium already knows are left alone. Safe to call more than once.

    :return: the ids registered by this call
    """
    registered = []
    for env_id in sorted(_PROCGEN_IDS.keys() | _atari_ids()):
        if env_id not in gym.envs.registry:
            gym.register(env_id, entry_point=f"{__name__}:EnvPoolGymEnv", kwargs={"env_id": env_id})
            registered.append(env_id)
    return registered
