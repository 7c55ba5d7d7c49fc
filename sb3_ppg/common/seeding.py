"""
Seeds and integer options for libraries with a narrower range than SB3's.

SB3 and gymnasium take any non-negative int as a seed, and the RL Zoo draws its default seed from
[0, 2**32 - 1]; SB3 then seeds env ``i`` of a ``VecEnv`` with ``seed + i``. Some libraries take less: EnvPool takes
int32 seeds, numpy's legacy ``RandomState`` (MinAtar's) takes seeds below 2**32. :func:`fold_seed` maps every
seed into such a range: the seeds the library takes pass as they are, larger ones are hashed into the range.
"""

from typing import Any

import numpy as np

__all__ = ["INT32_LIMIT", "UINT32_LIMIT", "check_int", "check_seed", "fold_seed"]

# EnvPool's integers (seeds and options) are C++ int32: they must be below this
INT32_LIMIT = 2**31
# numpy's legacy seeding (``np.random.seed``, ``RandomState``) takes seeds below this
UINT32_LIMIT = 2**32


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None, why: str = "") -> int:
    """
    Check that ``value`` is an int (a Python or numpy integer, not a bool) in ``[minimum, maximum]``.

    :param name: the argument's name, for the error message
    :param value: the value to check
    :param minimum: the smallest value allowed
    :param maximum: the largest value allowed; None for no bound
    :param why: said after the range in the error message, e.g. ``" (EnvPool's int32)"``
    :return: the value as a Python int
    :raises ValueError: naming the argument and the allowed range
    """
    # bool is an int subclass, but ``n_envs=True`` is a mistake, not 1
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not (is_int and value >= minimum and (maximum is None or value <= maximum)):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an integer {allowed}{why}, got {value!r}")
    return int(value)


def check_seed(seed: Any, name: str = "seed") -> int:
    """
    Check a seed as gymnasium does: any non-negative int.

    :param seed: the seed
    :param name: the argument's name, for the error message
    :return: the seed as a Python int
    :raises ValueError: naming the argument and the allowed range
    """
    return check_int(name, seed, 0, why=" (any non-negative int, e.g. from [0, 2**32 - 1] as SB3 and RL Zoo draw them)")


def fold_seed(seed: Any, limit: int) -> int:
    """
    Map any non-negative int seed into ``[0, limit)``, for a library that takes no larger seed.

    A seed below ``limit`` is itself, so distinct seeds there stay distinct and keep the results they always gave.
    A seed at or above ``limit`` becomes the first 64-bit word of numpy's ``SeedSequence(seed)`` modulo ``limit``:
    the same seed always gives the same value, on every platform, and large seeds rarely land on the small seeds
    people pick by hand (``seed % limit`` would send ``limit`` to 0).

    :param seed: a non-negative int
    :param limit: the library's bound, e.g. :data:`INT32_LIMIT`
    :return: the seed to hand to the library
    :raises ValueError: when ``seed`` is not a non-negative int
    """
    seed = check_seed(seed)
    if seed < limit:
        return seed
    return int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0]) % limit
