"""
Snapshots of action distributions for behaviour cloning.

SB3 distributions are stateful: ``policy.get_distribution`` returns the policy's own ``action_dist`` object with new
parameters. A snapshot therefore stores detached parameter tensors and rebuilds a *fresh* distribution object from
them, so the cloning target can never alias the live policy.
"""

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import (
    MaskableCategorical,
    MaskableCategoricalDistribution,
    MaskableDistribution,
    MaskableMultiCategoricalDistribution,
    MaybeMasks,
    make_masked_proba_distribution,
)
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
)

SUPPORTED_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
# What SB3-Contrib's maskable distributions cover
MASKABLE_ACTION_SPACES = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)

DistributionT = TypeVar("DistributionT", bound=Distribution)


@contextmanager
def _default_validation(validate: bool) -> Iterator[None]:
    previous = th.distributions.Distribution._validate_args
    th.distributions.Distribution.set_default_validate_args(validate)
    try:
        yield
    finally:
        th.distributions.Distribution.set_default_validate_args(previous)


def unvalidated(make_distribution: Callable[[], DistributionT]) -> DistributionT:
    """
    Build an SB3 distribution whose torch distributions skip argument validation, leaving the global default as it
    was for the user's own distributions.

    Validation checks every parameter and sample with a host sync, on every minibatch and every env step. Here the
    parameters come from our own networks and the samples from the distribution itself, and a non-finite loss is
    caught before the optimizer step anyway.

    :param make_distribution: builds the distribution, e.g. ``lambda: dist.proba_distribution(logits)``
    :return: the distribution
    """
    with _default_validation(False):
        distribution = make_distribution()
    # torch reads the class default again at every log_prob unless the instance has its own flag
    for torch_distribution in torch_distributions(distribution):
        torch_distribution._validate_args = False
    return distribution


def torch_distributions(distribution: Distribution) -> list[th.distributions.Distribution]:
    """
    :param distribution: an SB3 or SB3-Contrib maskable distribution after ``proba_distribution``
    :return: its torch distributions, one per independent sub-action for the multi-categorical ones
    """
    if isinstance(distribution, MaskableDistribution):
        return list(maskable_categoricals(distribution))
    inner = distribution.distribution
    return list(inner) if isinstance(inner, list) else [inner]


def maskable_categoricals(distribution: MaskableDistribution) -> list[MaskableCategorical]:
    """
    :param distribution: an SB3-Contrib maskable distribution after ``proba_distribution``
    :return: its masked categoricals, one per independent sub-action
    """
    if isinstance(distribution, MaskableMultiCategoricalDistribution):
        return list(distribution.distributions)
    assert isinstance(distribution, MaskableCategoricalDistribution)
    return [distribution.distribution]


def unsupported_action_space(action_space: spaces.Space) -> ValueError:
    """
    The error for an action space PPG cannot handle.

    :param action_space: the offending space
    :return: an error naming it and the allowed ones
    """
    allowed = ", ".join(space.__name__ for space in SUPPORTED_ACTION_SPACES)
    return ValueError(f"PPG does not support the action space {action_space}; the allowed action spaces are {allowed}")


def distribution_params_dim(action_space: spaces.Space) -> int:
    """
    Width of the flat parameter vector that :func:`distribution_params` returns for one state.

    :param action_space: the action space
    :return: number of floats per state
    """
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, spaces.MultiBinary):
        return int(np.prod(action_space.shape))
    if isinstance(action_space, spaces.Box):
        # mean and log std for each action dimension
        return 2 * int(np.prod(action_space.shape))
    raise unsupported_action_space(action_space)


def distribution_params(distribution: Distribution) -> th.Tensor:
    """
    Flat parameters of a distribution, shape (batch, :func:`distribution_params_dim`).

    :param distribution: a distribution after ``proba_distribution`` was called
    :return: detached logits, or Gaussian mean and log std
    """
    if isinstance(distribution, (DiagGaussianDistribution, StateDependentNoiseDistribution)):
        # gSDE's state-dependent std is captured per state too
        normal = distribution.distribution
        return th.cat([normal.loc, normal.scale.log().expand_as(normal.loc)], dim=-1).detach()
    if isinstance(distribution, MaskableDistribution):
        # Unmasked, these are the policy's own logits: the masks are applied when the snapshot is rebuilt
        return th.cat([categorical.logits for categorical in maskable_categoricals(distribution)], dim=-1).detach()
    if isinstance(distribution, MultiCategoricalDistribution):
        return th.cat([categorical.logits for categorical in distribution.distribution], dim=-1).detach()
    if isinstance(distribution, (CategoricalDistribution, BernoulliDistribution)):
        return distribution.distribution.logits.detach()
    raise ValueError(f"cannot snapshot a distribution of type {type(distribution).__name__}")


def distribution_from_params(action_space: spaces.Space, params: th.Tensor) -> Distribution:
    """
    A new distribution object built from :func:`distribution_params` output.

    :param action_space: the action space the parameters belong to
    :param params: tensor of shape (batch, :func:`distribution_params_dim`)
    :return: a fresh distribution (never the policy's own ``action_dist``)
    """
    return unvalidated(lambda: _distribution_from_params(action_space, params))


def _distribution_from_params(action_space: spaces.Space, params: th.Tensor) -> Distribution:
    if isinstance(action_space, spaces.Box):
        action_dim = int(np.prod(action_space.shape))
        mean, log_std = params[:, :action_dim], params[:, action_dim:]
        return DiagGaussianDistribution(action_dim).proba_distribution(mean, log_std)
    if isinstance(action_space, spaces.Discrete):
        return CategoricalDistribution(int(action_space.n)).proba_distribution(params)
    if isinstance(action_space, spaces.MultiDiscrete):
        return MultiCategoricalDistribution(list(action_space.nvec)).proba_distribution(params)
    if isinstance(action_space, spaces.MultiBinary):
        return BernoulliDistribution(int(np.prod(action_space.shape))).proba_distribution(params)
    raise unsupported_action_space(action_space)


def unsupported_masked_action_space(action_space: spaces.Space) -> ValueError:
    """
    The error for an action space that invalid-action masking cannot handle.

    :param action_space: the offending space
    :return: an error naming it and the allowed ones
    """
    allowed = ", ".join(space.__name__ for space in MASKABLE_ACTION_SPACES)
    return ValueError(
        f"MaskablePPG does not support the action space {action_space}; action masks need one of {allowed} "
        "(a one-dimensional MultiBinary)"
    )


def mask_dims(action_space: spaces.Space) -> int:
    """
    Number of mask entries per state, as SB3-Contrib counts them: one per action, per sub-action value of a
    MultiDiscrete, and two (0 and 1) per MultiBinary dimension. It is also the number of logits of the maskable
    distribution.

    :param action_space: the action space
    :return: mask entries per state
    """
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, spaces.MultiBinary) and isinstance(action_space.n, (int, np.integer)):
        return 2 * int(action_space.n)
    raise unsupported_masked_action_space(action_space)


def action_dims(action_space: spaces.Space) -> list[int]:
    """
    :param action_space: a maskable action space
    :return: the number of choices of each independent sub-action (one entry for Discrete)
    """
    if isinstance(action_space, spaces.Discrete):
        return [int(action_space.n)]
    if isinstance(action_space, spaces.MultiDiscrete):
        return [int(n) for n in action_space.nvec]
    return [2] * (mask_dims(action_space) // 2)


def check_action_masks(action_masks: MaybeMasks, n_states: int, action_space: spaces.Space, check_values: bool = True) -> None:
    """
    Raise a ValueError unless ``action_masks`` holds ``n_states`` masks for ``action_space`` that leave every
    state at least one valid choice in each sub-action. A sub-action with no valid choice has no distribution:
    SB3-Contrib's masking would silently make it uniform over the invalid choices.

    :param action_masks: masks as an env's ``action_masks()`` gives them (bool or 0/1), or None (nothing to check)
    :param n_states: number of states they are for
    :param action_space: the action space
    :param check_values: also check the values (a host transfer for tensors on an accelerator), not only the shape
    """
    if action_masks is None:
        return
    dims = mask_dims(action_space)
    shape = tuple(action_masks.shape) if isinstance(action_masks, th.Tensor) else np.shape(action_masks)
    if int(np.prod(shape)) != n_states * dims:
        raise ValueError(
            f"action_masks of shape {shape} do not fit {n_states} state(s) of the action space {action_space}: "
            f"expected {n_states} x {dims} mask entries, shape ({n_states}, {dims})"
        )
    if not check_values:
        return
    masks = action_masks.detach().cpu().numpy() if isinstance(action_masks, th.Tensor) else np.asarray(action_masks)
    masks = masks.reshape(n_states, dims).astype(bool)
    bounds = np.cumsum([0, *action_dims(action_space)])
    for start, end in itertools.pairwise(bounds):
        empty = ~masks[:, start:end].any(axis=1)
        if empty.any():
            raise ValueError(
                f"action_masks leave state {int(np.argmax(empty))} (of {n_states}) without a valid action among "
                f"mask entries {start} to {end - 1}: every state needs a valid choice in each sub-action, else its "
                "action distribution, and the aux phase's KL, is undefined"
            )


def masked_distribution_from_params(
    action_space: spaces.Space, params: th.Tensor, action_masks: th.Tensor
) -> MaskableDistribution:
    """
    A new maskable distribution built from :func:`distribution_params` output and masked with ``action_masks``.

    :param action_space: the action space the parameters belong to
    :param params: logits, shape (batch, :func:`mask_dims`)
    :param action_masks: masks, shape (batch, :func:`mask_dims`); True where the action is valid
    :return: a fresh distribution (never the policy's own ``action_dist``)
    """

    def make() -> MaskableDistribution:
        distribution = make_masked_proba_distribution(action_space).proba_distribution(params)
        distribution.apply_masking(action_masks)
        return distribution

    return unvalidated(make)
