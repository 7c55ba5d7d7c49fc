"""The checks of PPG's constructor arguments: each bad value raises a ValueError naming the argument and what it allows."""

from collections.abc import Callable
from typing import Any

import numpy as np

ADVANTAGE_NORMALIZATIONS = (True, False, "minibatch", "rollout")


def check_ppg_arguments(
    n_steps: int,
    batch_size: int,
    n_epochs: int,
    n_value_epochs: int,
    n_policy_iterations: int,
    n_aux_epochs: int,
    aux_batch_size: int,
    aux_learning_rate: Any,
    beta_clone: float,
    handle_timeout_termination: bool,
    env_segment_minibatches: bool,
    gamma: float,
    gae_lambda: float,
    clip_range: Any,
    clip_range_vf: Any,
    normalize_advantage: bool | str,
    vf_coef: float,
    max_grad_norm: float | None,
    target_kl: float | None,
) -> None:
    """
    Check PPG's arguments that do not need the env (see :class:`~sb3_ppg.PPG` for their meaning).

    :raises ValueError: naming the first bad argument and the values it allows
    """
    check_at_least("n_epochs", n_epochs, 1)
    check_at_least("n_value_epochs", n_value_epochs, 0)
    check_at_least("n_policy_iterations", n_policy_iterations, 1)
    check_at_least("n_aux_epochs", n_aux_epochs, 0)
    check_at_least("aux_batch_size", aux_batch_size, 1)
    check_at_least("n_steps", n_steps, 1)
    if isinstance(normalize_advantage, str):
        valid_normalization = normalize_advantage in ADVANTAGE_NORMALIZATIONS
    else:  # 1 == True, but normalize_advantage=1 is a mistake
        valid_normalization = isinstance(normalize_advantage, bool)
    if not valid_normalization:
        allowed_values = ", ".join(map(repr, ADVANTAGE_NORMALIZATIONS))
        raise ValueError(f"normalize_advantage must be one of {allowed_values}; got {normalize_advantage!r}")
    check_at_least("batch_size", batch_size, 2 if per_minibatch(normalize_advantage) else 1)
    check_number("beta_clone", beta_clone, ">= 0", _non_negative)
    check_number("gamma", gamma, "between 0 and 1", _in_unit_interval)
    check_number("gae_lambda", gae_lambda, "between 0 and 1", _in_unit_interval)
    check_number("vf_coef", vf_coef, ">= 0", _non_negative)
    check_number("max_grad_norm", max_grad_norm, "> 0, or None for no clipping", _positive, optional=True)
    check_number("clip_range", clip_range, "> 0 or a schedule", _positive, schedule=True)
    no_clipping = "> 0, a schedule, or None to disable value clipping"
    check_number("clip_range_vf", clip_range_vf, no_clipping, _positive, schedule=True, optional=True)
    same_lr = "> 0, a schedule, or None to use learning_rate"
    check_number("aux_learning_rate", aux_learning_rate, same_lr, _positive, schedule=True, optional=True)
    check_number("target_kl", target_kl, "> 0, or None for no limit", _positive, optional=True)
    check_flag("handle_timeout_termination", handle_timeout_termination)
    check_flag("env_segment_minibatches", env_segment_minibatches)


def check_flag(name: str, flag: bool) -> None:
    # Only a bool: "no" or 0.5 would read as True
    if not isinstance(flag, bool):
        raise ValueError(f"{name} must be True or False, got {flag!r}")


def check_at_least(name: str, value: int, minimum: int) -> None:
    # bool is an int subclass, but ``n_epochs=True`` is a mistake, not 1
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_number(
    name: str,
    value: Any,
    allowed: str,
    is_allowed: Callable[[float], bool],
    schedule: bool = False,
    optional: bool = False,
) -> None:
    """Raise a ValueError naming ``name`` and ``allowed`` unless ``value`` is a number that ``is_allowed`` accepts,
    a callable of the progress remaining (with ``schedule``) or None (with ``optional``). NaN is never accepted."""
    if (optional and value is None) or (schedule and callable(value)):
        return
    is_number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if not (is_number and is_allowed(float(value))):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def per_minibatch(normalize_advantage: bool | str) -> bool:
    """Whether advantages are standardised in each minibatch (``True`` or ``"minibatch"``)."""
    return normalize_advantage is True or normalize_advantage == "minibatch"


def _positive(value: float) -> bool:
    return value > 0


def _non_negative(value: float) -> bool:
    return value >= 0


def _in_unit_interval(value: float) -> bool:
    return 0 <= value <= 1
