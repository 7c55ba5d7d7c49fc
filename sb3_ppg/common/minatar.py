"""
MinAtar's games as sb3_ppg registers them (``MinAtar/Breakout-v1``, ...): MinAtar's own gymnasium env with its
seeds and options checked.

MinAtar seeds numpy's legacy ``RandomState``, which takes seeds below 2**32 only, while SB3 seeds env ``i`` of a
``VecEnv`` with ``seed + i`` and the RL Zoo draws its seed from [0, 2**32 - 1]: a seed near 2**32 with two envs
would stop the run. MinAtar also takes any ``sticky_action_prob`` without a word.

Importing this module imports ``minatar`` (``pip install "sb3-ppg[minatar]"``); gymnasium imports it when it makes
one of those ids.
"""

import math
from typing import Any

from minatar.gym import BaseEnv

from sb3_ppg.common.env_aliases import MINATAR_GAMES
from sb3_ppg.common.seeding import UINT32_LIMIT, check_int, fold_seed

__all__ = ["MinAtarEnv"]


class MinAtarEnv(BaseEnv):
    """
    MinAtar's ``minatar.gym.BaseEnv``, which takes every seed that gymnasium takes and checks its options.

    A seed below 2**32 seeds MinAtar as it is; a larger one is folded into [0, 2**32 - 1] by
    :func:`~sb3_ppg.common.seeding.fold_seed` (the same seed always gives the same games).

    :param game: one of MinAtar's games: asterix, breakout, freeway, seaquest, space_invaders
    :param render_mode: None, ``"human"``, ``"array"`` or ``"rgb_array"``
    :param display_time: milliseconds each frame shows with ``render_mode="human"``
    :param use_minimal_action_set: the game's own actions only (the ``-v1`` ids) rather than all 6
    :param sticky_action_prob: probability that the previous action repeats instead of the one chosen
    :param difficulty_ramping: whether the game speeds up as it goes on
    """

    def __init__(
        self,
        game: str,
        render_mode: str | None = None,
        display_time: int = 50,
        use_minimal_action_set: bool = False,
        sticky_action_prob: float = 0.1,
        difficulty_ramping: bool = True,
    ):
        if game not in MINATAR_GAMES:
            raise ValueError(f"game must be one of MinAtar's games, {', '.join(MINATAR_GAMES)}; got {game!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {', '.join(self.metadata['render_modes'])}, got {render_mode!r}"
            )
        check_int("display_time", display_time, 1)
        is_number = isinstance(sticky_action_prob, (int, float)) and not isinstance(sticky_action_prob, bool)
        if not (is_number and math.isfinite(sticky_action_prob) and 0 <= sticky_action_prob <= 1):
            raise ValueError(f"sticky_action_prob must be a probability in [0, 1], got {sticky_action_prob!r}")
        for name, flag in (("use_minimal_action_set", use_minimal_action_set), ("difficulty_ramping", difficulty_ramping)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        super().__init__(
            game,
            render_mode=render_mode,
            display_time=display_time,
            use_minimal_action_set=use_minimal_action_set,
            sticky_action_prob=float(sticky_action_prob),
            difficulty_ramping=difficulty_ramping,
        )

    def seed(self, seed: Any = None) -> None:
        """
        Seed the game (``reset(seed=...)`` calls this).

        :param seed: any int >= 0; None leaves the game's generator as it is
        :raises ValueError: when ``seed`` is not an int >= 0
        """
        if seed is not None:
            self.game.seed(fold_seed(seed, UINT32_LIMIT))
