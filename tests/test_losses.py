"""Each loss against numbers computed by hand; the KL direction is tested, not assumed."""

import math

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    MultiCategoricalDistribution,
)

from sb3_ppg.common.distributions import distribution_from_params, distribution_params, distribution_params_dim
from sb3_ppg.common.losses import aux_value_loss, clipped_surrogate_loss, joint_loss, policy_kl, value_loss


def test_clipped_surrogate_loss():
    advantages = th.tensor([1.0, -1.0, 2.0])
    log_prob = th.log(th.tensor([1.5, 0.5, 1.1]))
    old_log_prob = th.zeros(3)
    # ratios 1.5, 0.5, 1.1 with eps 0.2: min(1.5, 1.2) = 1.2; min(-0.5, -0.8) = -0.8; min(2.2, 2.2) = 2.2
    expected = -(1.2 - 0.8 + 2.2) / 3
    assert clipped_surrogate_loss(advantages, log_prob, old_log_prob, 0.2).item() == pytest.approx(expected, abs=1e-6)


def test_value_loss_unclipped_and_clipped():
    values, returns, old_values = th.tensor([1.0, 2.0]), th.tensor([0.0, 4.0]), th.zeros(2)
    # (1^2 + 2^2) / 2
    assert value_loss(values, returns).item() == pytest.approx(2.5)
    # values clipped to old +- 0.5 = 0.5, 0.5: (0.5^2 + 3.5^2) / 2
    assert value_loss(values, returns, old_values, clip_range_vf=0.5).item() == pytest.approx(6.25)
    # a wide clip range changes nothing
    assert value_loss(values, returns, old_values, clip_range_vf=10.0).item() == pytest.approx(2.5)


def test_aux_value_loss_and_joint_loss():
    aux_values, targets = th.tensor([1.0, 3.0], requires_grad=True), th.tensor([0.0, 0.0])
    # 0.5 * (1 + 9) / 2
    aux_loss = aux_value_loss(aux_values, targets)
    assert aux_loss.item() == pytest.approx(2.5)
    assert joint_loss(aux_loss, th.tensor(0.4), beta_clone=2.0).item() == pytest.approx(2.5 + 0.8)
    aux_loss.backward()
    # d/dv 0.5 * mean((v - t)^2) = (v - t) / n
    assert aux_values.grad.tolist() == pytest.approx([0.5, 1.5])


def categorical(probs):
    return CategoricalDistribution(len(probs)).proba_distribution(th.log(th.tensor([probs])))


def test_kl_categorical_direction():
    old, new = categorical([0.5, 0.5]), categorical([0.9, 0.1])
    forward = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    reverse = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert policy_kl(old, new).item() == pytest.approx(forward, abs=1e-6)
    assert policy_kl(new, old).item() == pytest.approx(reverse, abs=1e-6)
    assert abs(forward - reverse) > 0.1


def test_kl_diag_gaussian_is_summed_over_action_dims():
    old = DiagGaussianDistribution(2).proba_distribution(th.zeros(1, 2), th.zeros(2))
    new = DiagGaussianDistribution(2).proba_distribution(th.tensor([[1.0, 0.0]]), th.log(th.tensor([2.0, 1.0])))
    # dim 1: ln(2/1) + (1 + 1) / (2 * 4) - 1/2; dim 2: identical Gaussians, 0
    forward = math.log(2.0) + 2.0 / 8.0 - 0.5
    reverse = math.log(0.5) + (4.0 + 1.0) / 2.0 - 0.5
    kl = policy_kl(old, new)
    assert kl.shape == (1,)
    assert kl.item() == pytest.approx(forward, abs=1e-6)
    assert policy_kl(new, old).item() == pytest.approx(reverse, abs=1e-6)


def test_kl_multi_categorical():
    logits = th.log(th.tensor([[0.5, 0.5, 1 / 3, 1 / 3, 1 / 3]]))
    new_logits = th.log(th.tensor([[0.9, 0.1, 0.5, 0.25, 0.25]]))
    old = MultiCategoricalDistribution([2, 3]).proba_distribution(logits)
    new = MultiCategoricalDistribution([2, 3]).proba_distribution(new_logits)
    first = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    second = (math.log((1 / 3) / 0.5) + 2 * math.log((1 / 3) / 0.25)) / 3
    assert policy_kl(old, new).item() == pytest.approx(first + second, abs=1e-6)


def test_kl_bernoulli_is_summed_over_action_dims():
    old = BernoulliDistribution(2).proba_distribution(th.zeros(1, 2))
    new = BernoulliDistribution(2).proba_distribution(th.tensor([[math.log(0.8 / 0.2), 0.0]]))
    forward = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    reverse = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)
    assert policy_kl(old, new).item() == pytest.approx(forward, abs=1e-6)
    assert policy_kl(new, old).item() == pytest.approx(reverse, abs=1e-6)


@pytest.mark.parametrize(
    "action_space",
    [
        spaces.Discrete(3),
        spaces.MultiDiscrete([2, 3]),
        spaces.MultiBinary(4),
        spaces.Box(-1, 1, shape=(2,), dtype=np.float32),
    ],
)
def test_snapshot_round_trip_is_a_fresh_object(action_space):
    params = th.randn(5, distribution_params_dim(action_space))
    rebuilt = distribution_from_params(action_space, params)
    again = distribution_from_params(action_space, distribution_params(rebuilt))
    assert again is not rebuilt
    assert th.allclose(policy_kl(rebuilt, again), th.zeros(5), atol=1e-6)


def test_unsupported_action_space_is_named():
    with pytest.raises(ValueError, match=r"Tuple.*allowed action spaces are Box, Discrete, MultiDiscrete, MultiBinary"):
        distribution_params_dim(spaces.Tuple([spaces.Discrete(2)]))
