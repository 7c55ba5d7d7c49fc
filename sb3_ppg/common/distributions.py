"""
Snapshots of action distributions for behaviour cloning.

SB3 distributions are stateful: ``policy.get_distribution`` returns the policy's own ``action_dist`` object with new
parameters. A snapshot therefore stores detached parameter tensors and rebuilds a *fresh* distribution object from
them, so the cloning target can never alias the live policy.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
)

SUPPORTED_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


@contextmanager
def _default_validation(validate: bool) -> Iterator[None]:
    previous = th.distributions.Distribution._validate_args
    th.distributions.Distribution.set_default_validate_args(validate)
    try:
        yield
    finally:
        th.distributions.Distribution.set_default_validate_args(previous)


def unvalidated(make_distribution: Callable[[], Distribution]) -> Distribution:
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
    inner = distribution.distribution
    # torch reads the class default again at every log_prob unless the instance has its own flag
    for torch_distribution in inner if isinstance(inner, list) else [inner]:
        torch_distribution._validate_args = False
    return distribution


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
