"""Actor-critic policies with an auxiliary value head on the actor."""

from functools import partial
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn


class AuxActorCriticPolicy(ActorCriticPolicy):
    """
    Actor-critic policy for PPG: SB3's ``ActorCriticPolicy`` with disjoint actor and critic by default, plus an
    auxiliary value head on the actor's latent. ``predict``, ``evaluate_actions``, ``get_distribution`` and
    ``predict_values`` are SB3's own; the aux head is read only by :meth:`evaluate_aux`.

    It also owns ``aux_optimizer``, the persistent optimizer of the auxiliary phase.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param net_arch: The specification of the policy and value networks.
    :param activation_fn: Activation function
    :param ortho_init: Whether to use or not orthogonal initialization
    :param use_sde: Whether to use State Dependent Exploration or not
    :param log_std_init: Initial value for the log standard deviation
    :param full_std: Whether to use (n_features x n_actions) parameters
        for the std instead of only (n_features,) when using gSDE
    :param use_expln: Use ``expln()`` function instead of ``exp()`` to ensure
        a positive standard deviation (cf paper).
    :param squash_output: Whether to squash the output using a tanh function,
        this allows to ensure boundaries when using gSDE.
    :param features_extractor_class: Features extractor to use.
    :param features_extractor_kwargs: Keyword arguments
        to pass to the features extractor.
    :param share_features_extractor: If True, the features extractor is shared between the policy and value networks.
        False by default (PPG's disjoint networks); with True, the aux phase trains the shared trunk through both
        the aux value head and the critic.
    :param normalize_images: Whether to normalize images or not,
         dividing by 255.0 (True by default)
    :param optimizer_class: The optimizer to use, ``th.optim.Adam`` by default;
        the aux optimizer is of the same class
    :param optimizer_kwargs: Additional keyword arguments,
        excluding the learning rate, to pass to both optimizers
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = False,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            ortho_init=ortho_init,
            use_sde=use_sde,
            log_std_init=log_std_init,
            full_std=full_std,
            use_expln=use_expln,
            squash_output=squash_output,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            share_features_extractor=share_features_extractor,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    def _build_mlp_extractor(self) -> None:
        super()._build_mlp_extractor()
        # Built here, before SB3 creates the optimizer, so the head is in ``self.optimizer`` too
        self.aux_value_net = nn.Linear(self.mlp_extractor.latent_dim_pi, 1)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        if self.ortho_init:
            self.aux_value_net.apply(partial(self.init_weights, gain=1))
        self._split_parameters()
        self.aux_optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        # SB3 leaves it out, so a policy saved alone would reload with a shared extractor
        data.update(share_features_extractor=self.share_features_extractor)
        return data

    def _split_parameters(self) -> None:
        critic_modules: list[nn.Module] = [self.mlp_extractor.value_net, self.value_net]
        if not self.share_features_extractor:
            critic_modules.append(self.vf_features_extractor)
        critic_ids = {id(param) for module in critic_modules for param in module.parameters()}
        # Parameters the policy loss and the aux joint loss train (a shared extractor included)
        self.actor_parameters = [param for param in self.parameters() if id(param) not in critic_ids]
        # Parameters only the value losses train
        self.critic_parameters = [param for param in self.parameters() if id(param) in critic_ids]

    def evaluate_aux(self, obs: PyTorchObs) -> tuple[Distribution, th.Tensor, th.Tensor]:
        """
        One forward pass for the auxiliary phase.

        :param obs: Observation
        :return: the action distribution, the aux head's value V_aux(s) and the critic's value V(s),
            both of shape (batch,)
        """
        features = self.extract_features(obs)
        if self.share_features_extractor:
            latent_pi, latent_vf = self.mlp_extractor(features)
        else:
            pi_features, vf_features = features
            latent_pi = self.mlp_extractor.forward_actor(pi_features)
            latent_vf = self.mlp_extractor.forward_critic(vf_features)
        distribution = self._get_action_dist_from_latent(latent_pi)
        return distribution, self.aux_value_net(latent_pi).flatten(), self.value_net(latent_vf).flatten()


class AuxActorCriticCnnPolicy(AuxActorCriticPolicy):
    """
    :class:`AuxActorCriticPolicy` for image observations: one NatureCNN for the actor and one for the critic.
    Takes the same arguments; ``features_extractor_class`` defaults to ``NatureCNN``.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`AuxActorCriticPolicy`
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", NatureCNN)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


class MultiInputAuxActorCriticPolicy(AuxActorCriticPolicy):
    """
    :class:`AuxActorCriticPolicy` for ``Dict`` observations. Takes the same arguments;
    ``features_extractor_class`` defaults to ``CombinedExtractor``.

    :param observation_space: Observation space (Dict)
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`AuxActorCriticPolicy`
    """

    def __init__(self, observation_space: spaces.Dict, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
