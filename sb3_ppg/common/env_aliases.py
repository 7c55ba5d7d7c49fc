"""
``LunarLander-v2`` for gymnasium 1.x, which deprecated it and registers only ``LunarLander-v3``.

The alias is registered when :mod:`sb3_ppg` is imported. ``SubprocVecEnv`` workers started with ``spawn`` or
``forkserver`` import the user's main module, so a script that imports ``sb3_ppg`` sees the alias in its
workers too; the forkserver also preloads this module, for sessions without a main script (notebooks, pytest).
Where neither applies, ``"sb3_ppg:LunarLander-v2"`` makes gymnasium import ``sb3_ppg`` first.

It also registers ``InvalidActionEnvDiscrete-v0``, SB3-Contrib's masked identity task, which gymnasium does not
know: the RL Zoo trains only registered ids, and ``--algo ppg_mask`` needs an env with action masks.

Where ``minatar`` is installed, it registers MinAtar's games (``MinAtar/Breakout-v1``, ...) under the ids and
options of MinAtar's own ``register_envs()``: gymnasium 1.x no longer loads MinAtar's plugin, and importing it here
would cost a second. They are made as :class:`sb3_ppg.common.minatar.MinAtarEnv`, MinAtar's env with its seeds
and options checked: it takes every seed gymnasium takes, MinAtar alone only seeds below 2**32.
"""

import importlib.util
import warnings
from multiprocessing import forkserver
from typing import Any

import gymnasium as gym

_warned = False

ALIASES = {
    "LunarLander-v2": "LunarLander-v3",
    "LunarLanderContinuous-v2": "LunarLanderContinuous-v3",
}


def make_lunar_lander(**kwargs: Any) -> gym.Env:
    """
    Build gymnasium's current LunarLander, with a one-time warning that it has v3 dynamics.

    :param kwargs: passed to ``LunarLander`` (``continuous``, ``enable_wind``, ...)
    :return: the environment
    """
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            "LunarLander-v2 is an alias registered by sb3_ppg: gymnasium 1.x only has LunarLander-v3, "
            "and this environment runs v3 dynamics (wind reset on every reset, determinism fix, wider "
            "observation bounds). Results are not comparable with gym's v2.",
            UserWarning,
            stacklevel=2,
        )
    from gymnasium.envs.box2d.lunar_lander import LunarLander

    return LunarLander(**kwargs)


# SB3-Contrib's envs with an ``action_masks()`` method, by id: (entry point, default kwargs)
MASKED_ENVS = {
    "InvalidActionEnvDiscrete-v0": ("sb3_contrib.common.envs:InvalidActionEnvDiscrete", {"dim": 20, "n_invalid_actions": 10}),
}


# MinAtar's games and its ids' versions: v0 with the full action set of 18, v1 with the game's minimal one
MINATAR_GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")
MINATAR_VERSIONS = {"v0": False, "v1": True}


def minatar_env_id(game: str, version: str = "v1") -> str:
    """MinAtar's gymnasium id of a game: ``("space_invaders", "v1")`` -> ``"MinAtar/SpaceInvaders-v1"``."""
    return f"MinAtar/{game.title().replace('_', '')}-{version}"


def _preload_in_forkserver() -> None:
    # Keep what the user set (by default only "__main__"); the forkserver starts lazily, so this is cheap
    server = getattr(forkserver, "_forkserver", None)
    modules = list(getattr(server, "_preload_modules", ["__main__"]))
    if __name__ not in modules:
        forkserver.set_forkserver_preload([*modules, __name__])


def register_aliases() -> None:
    """
    Register the v2 ids that gymnasium no longer has, with the settings of their v3 counterparts, the masked
    envs of ``MASKED_ENVS``, and MinAtar's games where ``minatar`` is installed.
    """
    for alias, target in ALIASES.items():
        if alias in gym.registry:
            continue
        spec = gym.spec(target)
        gym.register(
            id=alias,
            entry_point=f"{__name__}:make_lunar_lander",
            max_episode_steps=spec.max_episode_steps,
            reward_threshold=spec.reward_threshold,
            kwargs=dict(spec.kwargs),
        )
    for env_id, (entry_point, kwargs) in MASKED_ENVS.items():
        if env_id not in gym.registry:
            # The env ends its episodes itself (truncated after ep_length steps)
            gym.register(id=env_id, entry_point=entry_point, kwargs=dict(kwargs))
    if importlib.util.find_spec("minatar") is not None:
        for game in MINATAR_GAMES:
            for version, minimal_actions in MINATAR_VERSIONS.items():
                if minatar_env_id(game, version) not in gym.registry:
                    gym.register(
                        id=minatar_env_id(game, version),
                        entry_point="sb3_ppg.common.minatar:MinAtarEnv",
                        kwargs=dict(game=game, use_minimal_action_set=minimal_actions),
                    )
    _preload_in_forkserver()
