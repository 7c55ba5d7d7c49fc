"""
PPG's losses as small pure functions of tensors.

Each returns a scalar (or, for :func:`policy_kl`, one value per sample) and has no side effect,
so it can be checked against numbers computed by hand.
"""

import torch as th
from sb3_contrib.common.maskable.distributions import MaskableDistribution
from stable_baselines3.common.distributions import (
    Distribution,
    MultiCategoricalDistribution,
    kl_divergence,
    sum_independent_dims,
)

from sb3_ppg.common.distributions import maskable_categoricals


def clipped_surrogate_loss(
    advantages: th.Tensor, log_prob: th.Tensor, old_log_prob: th.Tensor, clip_range: float
) -> th.Tensor:
    """
    PPO's clipped surrogate objective, negated to be minimised. Same as SB3's PPO.

    :param advantages: Advantage estimates (already normalised if wanted), shape (batch,)
    :param log_prob: log pi(a|s) under the current policy, shape (batch,)
    :param old_log_prob: log pi_old(a|s) recorded at rollout time, shape (batch,)
    :param clip_range: epsilon, the ratio is clipped to [1 - epsilon, 1 + epsilon]
    :return: the loss
    """
    # L_clip = -E[min(r A, clip(r, 1 - eps, 1 + eps) A)],  r = exp(log_pi - log_pi_old)
    ratio = th.exp(log_prob - old_log_prob)
    return -th.min(advantages * ratio, advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()


def value_loss(
    values: th.Tensor,
    returns: th.Tensor,
    old_values: th.Tensor | None = None,
    clip_range_vf: float | None = None,
) -> th.Tensor:
    """
    Critic loss on the value targets, optionally with PPO's value clipping. Same as SB3's PPO:
    a mean squared error with no 1/2 factor, ``vf_coef`` scales it.

    :param values: V(s) from the critic, shape (batch,)
    :param returns: value targets V_targ (GAE returns), shape (batch,)
    :param old_values: V(s) recorded at rollout time; needed only with ``clip_range_vf``
    :param clip_range_vf: if given, V(s) may move at most this far from ``old_values``
    :return: the loss
    """
    if clip_range_vf is not None:
        assert old_values is not None, "value clipping needs the values recorded at rollout time"
        # V_clip = V_old + clip(V - V_old, -eps_vf, eps_vf), as SB3 (not the max of both losses)
        values = old_values + th.clamp(values - old_values, -clip_range_vf, clip_range_vf)
    # L_V = E[(V - V_targ)^2]
    return th.mean((returns - values) ** 2)


def aux_value_loss(aux_values: th.Tensor, targets: th.Tensor) -> th.Tensor:
    """
    Loss of the actor's auxiliary value head, the paper's L_aux. Unlike the critic loss it keeps the 1/2
    factor of the paper and has no clipping; gradients flow into the actor's own trunk.

    :param aux_values: V_aux(s) from the aux head, shape (batch,)
    :param targets: value targets, shape (batch,); constants (no gradient)
    :return: the loss
    """
    # L_aux = 0.5 E[(V_aux(s) - V_targ)^2]
    return 0.5 * th.mean((aux_values - targets.detach()) ** 2)


def policy_kl(old: Distribution, new: Distribution) -> th.Tensor:
    """
    KL(pi_old || pi) per sample, summed over independent action dimensions.

    Differs from PPO's ``approx_kl`` (a sample estimate of the reverse direction, for logging only):
    this is the analytic divergence with the snapshot ``old`` first, which SB3's
    ``kl_divergence(dist_true, dist_pred)`` reads as KL(true || pred).

    Maskable distributions (SB3-Contrib's) go to :func:`masked_categorical_kl`, sub-action by sub-action.

    :param old: the policy before the aux phase (a snapshot, no gradient)
    :param new: the current policy
    :return: KL per sample, shape (batch,)
    """
    if isinstance(old, MaskableDistribution) and isinstance(new, MaskableDistribution):
        pairs = zip(maskable_categoricals(old), maskable_categoricals(new), strict=True)
        return th.stack([masked_categorical_kl(o.logits, n.logits, o.masks, n.masks) for o, n in pairs]).sum(dim=0)
    if isinstance(new, MultiCategoricalDistribution):
        # SB3 sums over the sub-actions here already
        return kl_divergence(old, new)
    # KL(old || new) = E_old[log old - log new]
    kl = th.distributions.kl_divergence(old.distribution, new.distribution)  # type: ignore[arg-type]
    # Diagonal Gaussian and Bernoulli give one value per action dimension
    return sum_independent_dims(kl) if kl.dim() > 1 else kl


def masked_categorical_kl(
    old_logits: th.Tensor, new_logits: th.Tensor, old_masks: th.Tensor | None, new_masks: th.Tensor | None
) -> th.Tensor:
    """
    Exact KL(pi_old || pi) per sample between two categoricals with invalid actions masked out.

    SB3-Contrib masks an action by setting its logit to -1e8, so its probability underflows to 0, and torch's
    categorical KL then zeroes its term. This function makes both exact by construction instead: masked actions of
    ``old`` contribute exactly 0, and the log probabilities are used as they are, never ``log(exp(.))``, so a valid
    action with a tiny probability under ``pi`` gives a large finite term where torch's KL gives inf.

    An action valid under ``old`` but masked under ``new`` makes the KL infinite (``inf``), and a state with no
    valid action under ``old`` has no distribution (``nan``): the aux phase stops on either.

    :param old_logits: logits of the snapshot, shape (batch, n_actions); masked or not, any normalisation
    :param new_logits: logits of the current policy, same shape
    :param old_masks: True where the action is valid under the snapshot; None: all valid
    :param new_masks: True where the action is valid under the current policy; None: all valid
    :return: KL per sample, shape (batch,)
    """
    all_valid = th.ones_like(old_logits, dtype=th.bool)
    old_valid = all_valid if old_masks is None else old_masks.bool()
    new_valid = all_valid if new_masks is None else new_masks.bool()
    both_valid = old_valid & new_valid
    # Masked entries are -inf after log_softmax: zeroed before the product, so no inf - inf reaches a value or a grad
    old_log_p = th.where(both_valid, th.log_softmax(old_logits.masked_fill(~old_valid, -th.inf), dim=-1), 0.0)
    new_log_p = th.where(both_valid, th.log_softmax(new_logits.masked_fill(~new_valid, -th.inf), dim=-1), 0.0)
    # KL(old || new) = sum over a valid under old of p_old(a) * (log p_old(a) - log p_new(a))
    kl = th.where(both_valid, old_log_p.exp() * (old_log_p - new_log_p), 0.0).sum(dim=-1)
    kl = th.where((old_valid & ~new_valid).any(dim=-1), th.inf, kl)
    return th.where(old_valid.any(dim=-1), kl, th.nan)


def joint_loss(aux_loss: th.Tensor, kl: th.Tensor, beta_clone: float) -> th.Tensor:
    """
    The actor's objective in the auxiliary phase: fit the aux value head while behaviour cloning keeps the policy
    close to its snapshot.

    :param aux_loss: the aux head's loss, see :func:`aux_value_loss`
    :param kl: mean KL(pi_old || pi) over the batch, see :func:`policy_kl`
    :param beta_clone: weight of the behaviour cloning term
    :return: the loss
    """
    # L_joint = L_aux + beta_clone * E[KL(pi_old || pi)]
    return aux_loss + beta_clone * kl
