"""Actor-critic policies with an auxiliary value head on the actor."""

import copy
from functools import partial
from typing import Any, ClassVar

import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableDistribution, MaybeMasks, make_masked_proba_distribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_ppg.common.distributions import check_action_masks, mask_dims, maskable_categoricals, unvalidated
from sb3_ppg.common.torch_layers import ImpalaCNN, MinAtarCNN, normed_init_

ARCHS = ("dual", "shared", "detach")


def resolve_arch(arch: str | None, share_features_extractor: bool | None, arch_source: str = "arch") -> str:
    """
    The architecture a policy gets from its ``arch`` and SB3's ``share_features_extractor`` arguments.

    :param arch: "dual", "shared", "detach" or None
    :param share_features_extractor: SB3's flag; False means "dual", True means "shared" (or "detach"), None: unset
    :param arch_source: what the error messages call ``arch``: the argument, or the flag it was read from
    :return: the architecture; "dual" when both are unset
    """
    if arch is None:
        return "shared" if share_features_extractor else "dual"
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(repr(name) for name in ARCHS)}; got {arch!r}")
    if share_features_extractor is not None and share_features_extractor != (arch != "dual"):
        raise ValueError(
            f"{arch_source}={arch!r} contradicts share_features_extractor={share_features_extractor}: "
            f"'dual' has disjoint trunks (share_features_extractor=False), 'shared' and 'detach' one trunk "
            "(share_features_extractor=True); pass only one of the two"
        )
    return arch


class AuxActorCriticPolicy(ActorCriticPolicy):
    """
    Actor-critic policy for PPG: SB3's ``ActorCriticPolicy`` with disjoint actor and critic by default, plus an
    auxiliary value head on the actor's latent, read only by :meth:`evaluate_aux`. ``predict``, ``evaluate_actions``,
    ``get_distribution`` and ``predict_values`` keep SB3's signatures and meaning.

    The three architectures of the PPG paper's code (its ``--arch`` flag), chosen with ``arch``:

    - ``"dual"`` (default): disjoint actor and critic trunks (features extractors).
    - ``"shared"``: one trunk; the critic reads it, so the value loss trains it, as in PPO.
    - ``"detach"``: one trunk; the critic reads its features detached, in both phases, so only the policy loss,
      the aux value head and the cloning term train it.

    The aux value head always reads the actor's latent, not detached. It also owns ``aux_optimizer``, the persistent
    optimizer of the auxiliary phase.

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
    :param share_features_extractor: SB3's flag: False is ``arch="dual"``, True is ``arch="shared"``.
        Unset (None) by default; a value that contradicts ``arch`` raises a ``ValueError``.
    :param normalize_images: Whether to normalize images or not,
         dividing by 255.0 (True by default)
    :param optimizer_class: The optimizer to use, ``th.optim.Adam`` by default;
        the aux optimizer is of the same class
    :param optimizer_kwargs: Additional keyword arguments,
        excluding the learning rate, to pass to both optimizers
    :param arch: "dual", "shared" or "detach" (see above); None follows ``share_features_extractor``, else "dual"
    :param head_init_scale: None: SB3's init of the heads (orthogonal with ``ortho_init``). A float: the action,
        value and aux value heads are initialised as the paper code's normed linear layers, each output row at
        this L2 norm with zero bias (0.1 in the paper's code)
    :param kwargs: passed on to the next base class (the LSTM arguments of SB3-Contrib's recurrent policy, in
        :class:`~sb3_ppg.ppg_recurrent.policies.RecurrentAuxActorCriticPolicy`)
    """

    # The layers head_init_scale re-initialises
    head_names: ClassVar[tuple[str, ...]] = ("action_net", "value_net", "aux_value_net")

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
        share_features_extractor: bool | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        arch: str | None = None,
        head_init_scale: float | None = None,
        **kwargs: Any,
    ):
        self.arch = resolve_arch(arch, share_features_extractor)
        if head_init_scale is not None and not head_init_scale > 0:
            raise ValueError(f"head_init_scale must be > 0, or None for SB3's init; got {head_init_scale!r}")
        self.head_init_scale = head_init_scale
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
            share_features_extractor=self.arch != "dual",
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            **kwargs,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        # The aux head comes after SB3's layers and from a forked generator, so every other weight, and every random
        # draw after construction, is what SB3's PPO gets from the same seed
        with th.random.fork_rng(devices=[]):
            self.aux_value_net = nn.Linear(self.mlp_extractor.latent_dim_pi, 1)
            if self.ortho_init:
                self.aux_value_net.apply(partial(self.init_weights, gain=1))
        # SB3's optimizer, rebuilt to take the head too: its parameters come last, the others in PPO's order
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
        if self.head_init_scale is not None:
            for name in self.head_names:
                normed_init_(getattr(self, name), self.head_init_scale)
        self._build_aux_optimizer(lr_schedule)

    def _build_aux_optimizer(self, lr_schedule: Schedule) -> None:
        """Split the parameters into actor and critic, and make the aux optimizer over all of them."""
        self._split_parameters()
        self.aux_optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        # SB3 leaves share_features_extractor out, so a policy saved alone would reload with a shared extractor
        data.update(arch=self.arch, head_init_scale=self.head_init_scale)
        return data

    def _critic_modules(self) -> list[nn.Module]:
        """The modules only the value losses train."""
        critic_modules: list[nn.Module] = [self.mlp_extractor.value_net, self.value_net]
        if not self.share_features_extractor:
            critic_modules.append(self.vf_features_extractor)
        return critic_modules

    def _split_parameters(self) -> None:
        critic_ids = {id(param) for module in self._critic_modules() for param in module.parameters()}
        # Parameters the policy loss and the aux joint loss train (a shared extractor included)
        self.actor_parameters = [param for param in self.parameters() if id(param) not in critic_ids]
        # Parameters only the value losses train
        self.critic_parameters = [param for param in self.parameters() if id(param) in critic_ids]

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> Distribution:
        return unvalidated(lambda: super(AuxActorCriticPolicy, self)._get_action_dist_from_latent(latent_pi))

    def _actor_latent(self, obs: PyTorchObs) -> th.Tensor:
        return self.mlp_extractor.forward_actor(BasePolicy.extract_features(self, obs, self.pi_features_extractor))

    def _critic_latent(self, features: th.Tensor) -> th.Tensor:
        # "detach" stops the value loss at the trunk, in the policy and the aux phase alike
        return self.mlp_extractor.forward_critic(features.detach() if self.arch == "detach" else features)

    def _latents(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """One pass of the trunk(s) for both heads: the actor's latent and the critic's."""
        if self.arch == "dual":
            pi_features, vf_features = self.extract_features(obs)
            return self.mlp_extractor.forward_actor(pi_features), self._critic_latent(vf_features)
        features = self.extract_features(obs)
        assert isinstance(features, th.Tensor)
        return self.mlp_extractor.forward_actor(features), self._critic_latent(features)

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        latent_pi, latent_vf = self._latents(obs)
        actions, log_prob = self._act(self._get_action_dist_from_latent(latent_pi), deterministic)
        return actions, self.value_net(latent_vf), log_prob

    def _act(self, distribution: Distribution, deterministic: bool) -> tuple[th.Tensor, th.Tensor]:
        """Actions drawn from ``distribution``, in the action space's shape, and their log probability."""
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), log_prob  # type: ignore[misc]

    def evaluate_actions(self, obs: PyTorchObs, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        latent_pi, latent_vf = self._latents(obs)
        distribution = self._get_action_dist_from_latent(latent_pi)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()

    def evaluate_policy(self, obs: PyTorchObs, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor | None]:
        """
        :meth:`evaluate_actions` without the critic, for policy epochs that train no value loss.

        :param obs: Observation
        :param actions: Actions
        :return: log likelihood of the actions and entropy of the action distribution
        """
        distribution = self._get_action_dist_from_latent(self._actor_latent(obs))
        return distribution.log_prob(actions), distribution.entropy()

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        return self.value_net(self._critic_latent(BasePolicy.extract_features(self, obs, self.vf_features_extractor)))

    def evaluate_aux(self, obs: PyTorchObs) -> tuple[Distribution, th.Tensor, th.Tensor]:
        """
        One forward pass for the auxiliary phase.

        :param obs: Observation
        :return: the action distribution, the aux head's value V_aux(s) and the critic's value V(s),
            both of shape (batch,)
        """
        latent_pi, latent_vf = self._latents(obs)
        distribution = self._get_action_dist_from_latent(latent_pi)
        return distribution, self.aux_value_net(latent_pi).flatten(), self.value_net(latent_vf).flatten()


class _DefaultExtractorPolicy(AuxActorCriticPolicy):
    """
    :class:`AuxActorCriticPolicy` whose keyword arguments default to the class's ``default_kwargs`` (a features
    extractor, and a ``net_arch`` where the heads sit straight on its features); the user's own win.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`AuxActorCriticPolicy`
    """

    default_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any):
        for key, value in self.default_kwargs.items():
            # A copy, so that no policy can change the default of the next one
            kwargs.setdefault(key, copy.copy(value))
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


class AuxActorCriticCnnPolicy(_DefaultExtractorPolicy):
    """
    :class:`AuxActorCriticPolicy` for image observations: one NatureCNN for the actor and one for the critic.
    Takes the same arguments; ``features_extractor_class`` defaults to ``NatureCNN``.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`AuxActorCriticPolicy`
    """

    default_kwargs: ClassVar[dict[str, Any]] = {"features_extractor_class": NatureCNN}


class AuxActorCriticImpalaCnnPolicy(_DefaultExtractorPolicy):
    """
    :class:`AuxActorCriticPolicy` as the PPG paper's code builds it for images: the :class:`ImpalaCNN` encoder with
    the heads straight on its features (``net_arch=[]``). Takes the same arguments; ``features_extractor_class``
    defaults to ``ImpalaCNN`` and ``net_arch`` to ``[]``.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`AuxActorCriticPolicy`
    """

    default_kwargs: ClassVar[dict[str, Any]] = {"features_extractor_class": ImpalaCNN, "net_arch": []}


class AuxActorCriticMinAtarCnnPolicy(_DefaultExtractorPolicy):
    """
    :class:`AuxActorCriticPolicy` for MinAtar's games as their reference agents are built: :class:`MinAtarCNN` with
    the heads straight on its features (``net_arch=[]``). Takes the same arguments; ``features_extractor_class``
    defaults to ``MinAtarCNN`` and ``net_arch`` to ``[]``.

    :param observation_space: Observation space (MinAtar's channel-last 0/1 planes)
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`AuxActorCriticPolicy`
    """

    default_kwargs: ClassVar[dict[str, Any]] = {"features_extractor_class": MinAtarCNN, "net_arch": []}


class MultiInputAuxActorCriticPolicy(_DefaultExtractorPolicy):
    """
    :class:`AuxActorCriticPolicy` for ``Dict`` observations. Takes the same arguments;
    ``features_extractor_class`` defaults to ``CombinedExtractor``.

    :param observation_space: Observation space (Dict)
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`AuxActorCriticPolicy`
    """

    default_kwargs: ClassVar[dict[str, Any]] = {"features_extractor_class": CombinedExtractor}


class MaskableAuxActorCriticPolicy(AuxActorCriticPolicy):
    """
    :class:`AuxActorCriticPolicy` with invalid-action masking, for :class:`~sb3_ppg.MaskablePPG`: the action
    distribution is SB3-Contrib's maskable one, and every method that builds it takes ``action_masks`` as
    SB3-Contrib's ``MaskableActorCriticPolicy`` does (True or 1 where the action is valid; None: no masking).
    The architectures (``arch``), the aux value head and the aux optimizer are those of :class:`AuxActorCriticPolicy`.

    Masks given as NumPy arrays or lists (from an env, or to ``predict``) are checked: their size must fit the batch
    and each state needs a valid choice in every sub-action. Masks given as tensors (the rollout and aux buffers',
    already checked when collected) are checked for their size only, so no minibatch waits for the device.

    :param observation_space: Observation space
    :param action_space: Action space: Discrete, MultiDiscrete or (one-dimensional) MultiBinary
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`AuxActorCriticPolicy`; ``use_sde`` must be False
    """

    action_dist: MaskableDistribution  # type: ignore[assignment]

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any):
        # Raises for Box and the other spaces masks cannot apply to, naming the allowed ones
        mask_dims(action_space)
        if kwargs.get("use_sde"):
            raise ValueError("use_sde must be False with action masks: gSDE is for continuous (Box) actions")
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        # SB3's _build makes the action head for its own distribution classes only; a categorical over as many logits
        # as the maskable distribution has gets the same head, nn.Linear(latent_dim_pi, mask_dims)
        self.action_dist = CategoricalDistribution(mask_dims(self.action_space))  # type: ignore[assignment]
        super()._build(lr_schedule)
        self.action_dist = make_masked_proba_distribution(self.action_space)

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> MaskableDistribution:
        return unvalidated(lambda: self.action_dist.proba_distribution(self.action_net(latent_pi)))

    def _masked_dist(self, latent_pi: th.Tensor, action_masks: MaybeMasks) -> MaskableDistribution:
        distribution = self._get_action_dist_from_latent(latent_pi)
        if action_masks is not None:
            n_states = len(maskable_categoricals(distribution)[0].logits)
            check_action_masks(action_masks, n_states, self.action_space, check_values=not isinstance(action_masks, th.Tensor))
            distribution.apply_masking(action_masks)
        return distribution

    def forward(  # type: ignore[override]
        self, obs: th.Tensor, deterministic: bool = False, action_masks: MaybeMasks = None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        latent_pi, latent_vf = self._latents(obs)
        actions, log_prob = self._act(self._masked_dist(latent_pi, action_masks), deterministic)
        return actions, self.value_net(latent_vf), log_prob

    def get_distribution(self, obs: PyTorchObs, action_masks: MaybeMasks = None) -> MaskableDistribution:  # type: ignore[override]
        """
        :param obs: Observation
        :param action_masks: Action masks to apply to the action distribution
        :return: the action distribution
        """
        return self._masked_dist(self._actor_latent(obs), action_masks)

    def evaluate_actions(  # type: ignore[override]
        self, obs: PyTorchObs, actions: th.Tensor, action_masks: MaybeMasks = None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """
        :param obs: Observation
        :param actions: Actions
        :param action_masks: Action masks to apply to the action distribution
        :return: estimated value, log likelihood of the actions and entropy of the action distribution
        """
        latent_pi, latent_vf = self._latents(obs)
        masked = self._masked_dist(latent_pi, action_masks)
        return self.value_net(latent_vf), masked.log_prob(actions), masked.entropy()

    def evaluate_policy(  # type: ignore[override]
        self, obs: PyTorchObs, actions: th.Tensor, action_masks: MaybeMasks = None
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """
        :meth:`evaluate_actions` without the critic.

        :param obs: Observation
        :param actions: Actions
        :param action_masks: Action masks to apply to the action distribution
        :return: log likelihood of the actions and entropy of the action distribution
        """
        masked = self.get_distribution(obs, action_masks)
        return masked.log_prob(actions), masked.entropy()

    def evaluate_aux(  # type: ignore[override]
        self, obs: PyTorchObs, action_masks: MaybeMasks = None
    ) -> tuple[Distribution, th.Tensor, th.Tensor]:
        """
        One forward pass for the auxiliary phase.

        :param obs: Observation
        :param action_masks: Action masks to apply to the action distribution
        :return: the masked action distribution, V_aux(s) and V(s), both of shape (batch,)
        """
        latent_pi, latent_vf = self._latents(obs)
        values = self.value_net(latent_vf).flatten()
        return self._masked_dist(latent_pi, action_masks), self.aux_value_net(latent_pi).flatten(), values

    def _predict(  # type: ignore[override]
        self, observation: PyTorchObs, deterministic: bool = False, action_masks: MaybeMasks = None
    ) -> th.Tensor:
        return self.get_distribution(observation, action_masks).get_actions(deterministic=deterministic)

    # SB3-Contrib's predict is SB3's with the masks passed on to _predict: reused as it is
    predict = MaskableActorCriticPolicy.predict  # type: ignore[assignment]


class MaskableAuxActorCriticCnnPolicy(MaskableAuxActorCriticPolicy, AuxActorCriticCnnPolicy):
    """
    :class:`MaskableAuxActorCriticPolicy` for image observations (NatureCNN by default).

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`AuxActorCriticPolicy`
    """


class MaskableAuxActorCriticImpalaCnnPolicy(MaskableAuxActorCriticPolicy, AuxActorCriticImpalaCnnPolicy):
    """
    :class:`MaskableAuxActorCriticPolicy` with the :class:`ImpalaCNN` encoder and ``net_arch=[]`` by default.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`AuxActorCriticPolicy`
    """


class MaskableMultiInputAuxActorCriticPolicy(MaskableAuxActorCriticPolicy, MultiInputAuxActorCriticPolicy):
    """
    :class:`MaskableAuxActorCriticPolicy` for ``Dict`` observations (CombinedExtractor by default).

    :param observation_space: Observation space (Dict)
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`AuxActorCriticPolicy`
    """
