"""LSTM actor-critic policies with an auxiliary value head, for :class:`~sb3_ppg.RecurrentPPG`."""

from typing import Any, ClassVar

import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import CombinedExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_ppg.common.policies import AuxActorCriticPolicy, _DefaultExtractorPolicy, resolve_arch

LSTMStates = tuple[th.Tensor, ...]


def resolve_recurrent_arch(
    arch: str | None, share_features_extractor: bool | None, shared_lstm: bool | None, enable_critic_lstm: bool | None
) -> str:
    """
    The architecture a recurrent policy gets from ``arch`` and the flags of SB3 and SB3-Contrib.

    SB3-Contrib's ``shared_lstm=True`` feeds the critic the actor's LSTM output *detached*: that is PPG's
    ``"detach"``, not its ``"shared"``. ``enable_critic_lstm=True`` (a second LSTM) is ``"dual"``. A critic
    without any LSTM (``shared_lstm=False, enable_critic_lstm=False`` in SB3-Contrib) has no PPG counterpart, and
    neither has RecurrentPPO's shared features extractor before two LSTMs: ``share_features_extractor=True``
    without ``arch`` or an LSTM flag is refused rather than read as ``"shared"``.

    :param arch: "dual", "shared", "detach" or None
    :param share_features_extractor: SB3's flag (False: "dual"; True: one trunk, with ``arch`` or ``shared_lstm``
        naming the LSTM's sharing), or None
    :param shared_lstm: SB3-Contrib's flag (True: "detach", False: "dual"), or None
    :param enable_critic_lstm: SB3-Contrib's flag (True: "dual", False: "shared" or "detach"), or None
    :return: the architecture; "dual" when all are unset
    """
    if arch is None and enable_critic_lstm is False and not shared_lstm:
        # Not mapped to an arch silently: in SB3-Contrib these flags mean a critic with no LSTM at all
        raise ValueError(
            "enable_critic_lstm=False without shared_lstm=True is SB3-Contrib's critic without an LSTM, which "
            "RecurrentPPG does not offer: pass arch='detach' (the critic reads the actor's LSTM, detached) or "
            "arch='shared' (one LSTM both losses train)"
        )
    if arch is None and share_features_extractor and shared_lstm is None and enable_critic_lstm is None:
        # Not mapped to "shared" silently: in RecurrentPPO this flag (its default) keeps the critic's own LSTM
        raise ValueError(
            "share_features_extractor=True alone is ambiguous: in RecurrentPPO (its default) the critic keeps an LSTM "
            "of its own, while RecurrentPPG's one-trunk archs share the LSTM too. Pass arch instead: 'shared' (one "
            "trunk and LSTM that both losses train), 'detach' (SB3-Contrib's shared_lstm=True) or 'dual' (separate "
            "features extractors and LSTMs)"
        )
    arch_source = "arch"
    if arch is None and shared_lstm is not None:
        arch, arch_source = "detach" if shared_lstm else "dual", f"shared_lstm={shared_lstm}, that is arch"
    if arch is None and enable_critic_lstm is not None:
        arch = "dual" if enable_critic_lstm else "detach"
        arch_source = f"enable_critic_lstm={enable_critic_lstm}, that is arch"
    arch = resolve_arch(arch, share_features_extractor, arch_source)
    if shared_lstm is not None and shared_lstm != (arch == "detach"):
        raise ValueError(
            f"{arch_source}={arch!r} contradicts shared_lstm={shared_lstm}: SB3-Contrib's shared_lstm=True gives the "
            "critic the actor's LSTM output detached, which is arch='detach'; shared_lstm=False is arch='dual'. "
            "For one LSTM that both losses train, pass arch='shared' alone"
        )
    if enable_critic_lstm is not None and enable_critic_lstm != (arch == "dual"):
        raise ValueError(
            f"{arch_source}={arch!r} contradicts enable_critic_lstm={enable_critic_lstm}: the critic has its own LSTM with "
            "arch='dual' only (enable_critic_lstm=True), and reads the actor's with 'shared' and 'detach' "
            "(enable_critic_lstm=False); a critic without an LSTM is not offered. Pass only arch"
        )
    return arch


class RecurrentAuxActorCriticPolicy(AuxActorCriticPolicy, RecurrentActorCriticPolicy):
    """
    SB3-Contrib's ``RecurrentActorCriticPolicy`` (an LSTM after the features extractor, SB3-Contrib's stateful
    ``predict(state=..., episode_start=...)``) with PPG's auxiliary value head. The aux value head reads the actor's
    latent after its LSTM, so the aux phase trains the actor's memory.

    The architectures (``arch``):

    - ``"dual"`` (default): separate features extractors and separate actor and critic LSTMs.
    - ``"detach"``: one features extractor and one LSTM; the critic reads the LSTM's output detached, so only the
      policy loss, the aux value head and the cloning term train them. This is SB3-Contrib's ``shared_lstm=True``.
    - ``"shared"``: one features extractor and one LSTM that both the actor's and the critic's losses train.
      SB3-Contrib has no such mode: its ``shared_lstm`` detaches.

    Evaluation methods take ``lstm_states`` and ``episode_starts`` as SB3-Contrib's do, over sequences padded to one
    length, plus ``mask`` (True at real steps): with it, they return values at the real steps only, so that no loss
    ever sees a padded step.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param arch: "dual", "shared" or "detach" (see above); None follows the flags below, else "dual"
    :param share_features_extractor: SB3's flag: False is ``arch="dual"``; True needs ``arch`` or ``shared_lstm``
        too (see :func:`resolve_recurrent_arch`); None: unset
    :param shared_lstm: SB3-Contrib's flag: True is ``arch="detach"``, False is ``arch="dual"``; None: unset
    :param enable_critic_lstm: SB3-Contrib's flag: True is ``arch="dual"``; None: unset
    :param lstm_hidden_size: Number of hidden units for each LSTM layer
    :param n_lstm_layers: Number of LSTM layers
    :param lstm_kwargs: Additional keyword arguments to pass to the LSTM constructor
    :param kwargs: the other arguments of :class:`~sb3_ppg.common.policies.AuxActorCriticPolicy`
    """

    lstm_critic: nn.LSTM | None

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        arch: str | None = None,
        share_features_extractor: bool | None = None,
        shared_lstm: bool | None = None,
        enable_critic_lstm: bool | None = None,
        lstm_hidden_size: int = 256,
        n_lstm_layers: int = 1,
        lstm_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        arch = resolve_recurrent_arch(arch, share_features_extractor, shared_lstm, enable_critic_lstm)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            arch=arch,
            # For SB3-Contrib: one LSTM (its shared_lstm) unless dual; the detaching is done here, by arch
            shared_lstm=arch != "dual",
            enable_critic_lstm=arch == "dual",
            lstm_hidden_size=lstm_hidden_size,
            n_lstm_layers=n_lstm_layers,
            lstm_kwargs=lstm_kwargs,
            **kwargs,
        )
        # The LSTMs are made after SB3 built the optimizers: both are made again, over all the parameters
        self._build_aux_optimizer(lr_schedule)

    def _build_mlp_extractor(self) -> None:
        # SB3-Contrib's extractor on the LSTM's output (the aux head comes later, in _build, from a forked generator)
        RecurrentActorCriticPolicy._build_mlp_extractor(self)
        # Flattened MultiDiscrete observations give a numpy integer, which nn.LSTM (made next) refuses
        self.features_dim = int(self.features_dim)

    def _critic_modules(self) -> list[nn.Module]:
        modules = super()._critic_modules()
        # None while SB3 builds the first optimizers, before SB3-Contrib makes the LSTMs
        lstm_critic = getattr(self, "lstm_critic", None)
        return modules if lstm_critic is None else [*modules, lstm_critic]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            lstm_hidden_size=self.lstm_output_dim,
            n_lstm_layers=self.lstm_actor.num_layers,
            lstm_kwargs=self.lstm_kwargs,
        )
        return data

    @staticmethod
    def _process_sequence(  # type: ignore[override]  # SB3-Contrib annotates the states it returns as one tensor
        features: th.Tensor, lstm_states: tuple[th.Tensor, th.Tensor], episode_starts: th.Tensor, lstm: nn.LSTM
    ) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor]]:
        n_seq = lstm_states[0].shape[1]
        starts = episode_starts.reshape((n_seq, -1))
        if th.all(starts[:, 1:] == 0.0):
            # Starts only at the first step: resetting the entering state is the same, and lets the LSTM run the
            # whole sequence at once instead of SB3-Contrib's step-by-step loop
            keep = (1.0 - starts[:, 0]).view(1, n_seq, 1)
            lstm_states = (keep * lstm_states[0], keep * lstm_states[1])
            episode_starts = th.zeros_like(episode_starts)
        return RecurrentActorCriticPolicy._process_sequence(features, lstm_states, episode_starts, lstm)  # type: ignore[return-value]

    def _recurrent_latents(
        self, obs: PyTorchObs, lstm_states: RNNStates, episode_starts: th.Tensor, mask: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor, RNNStates]:
        """
        One pass of the trunk(s) and LSTM(s) for both heads.

        :return: the actor's latent, the critic's (at the real steps only, with ``mask``) and the LSTM states after
            the last step
        """
        features = self.extract_features(obs)
        if self.arch == "dual":
            pi_features, vf_features = features
        else:
            pi_features = vf_features = features
        latent_pi, states_pi = self._process_sequence(pi_features, lstm_states.pi, episode_starts, self.lstm_actor)  # type: ignore[arg-type]
        if self.lstm_critic is not None:
            latent_vf, states_vf = self._process_sequence(vf_features, lstm_states.vf, episode_starts, self.lstm_critic)  # type: ignore[arg-type]
        elif self.arch == "detach":
            latent_vf, states_vf = latent_pi.detach(), (states_pi[0].detach(), states_pi[1].detach())
        else:
            latent_vf, states_vf = latent_pi, states_pi
        if mask is not None:
            latent_pi, latent_vf = latent_pi[mask], latent_vf[mask]
        latents = self.mlp_extractor.forward_actor(latent_pi), self.mlp_extractor.forward_critic(latent_vf)
        return *latents, RNNStates(states_pi, states_vf)

    def forward(  # type: ignore[override]
        self, obs: th.Tensor, lstm_states: RNNStates, episode_starts: th.Tensor, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, RNNStates]:
        """
        Forward pass in all the networks (actor and critic), as SB3-Contrib's: one step per env at rollout time.

        :param obs: Observation
        :param lstm_states: the actor's and critic's LSTM states entering the step
        :param episode_starts: Whether each env starts an episode at this step (its LSTM states are reset)
        :param deterministic: Whether to sample or use deterministic actions
        :return: action, value, log probability of the action, and the LSTM states after the step
        """
        latent_pi, latent_vf, states = self._recurrent_latents(obs, lstm_states, episode_starts)
        actions, log_prob = self._act(self._get_action_dist_from_latent(latent_pi), deterministic)
        return actions, self.value_net(latent_vf), log_prob, states

    def _actor_latent(  # type: ignore[override]
        self, obs: PyTorchObs, lstm_states: LSTMStates, episode_starts: th.Tensor, mask: th.Tensor | None = None
    ) -> th.Tensor:
        features = BasePolicy.extract_features(self, obs, self.pi_features_extractor)
        latent_pi, _ = self._process_sequence(features, lstm_states, episode_starts, self.lstm_actor)  # type: ignore[arg-type]
        return self.mlp_extractor.forward_actor(latent_pi if mask is None else latent_pi[mask])

    def predict_values(  # type: ignore[override]
        self, obs: PyTorchObs, lstm_states: LSTMStates, episode_starts: th.Tensor, mask: th.Tensor | None = None
    ) -> th.Tensor:
        """
        :param obs: Observation
        :param lstm_states: the critic's LSTM states entering each sequence (the actor's, unless ``arch="dual"``)
        :param episode_starts: Whether each step starts an episode (its LSTM state is reset)
        :param mask: True at the real steps of padded sequences; None: all steps
        :return: the critic's values, shape (batch, 1)
        """
        features = BasePolicy.extract_features(self, obs, self.vf_features_extractor)
        lstm = self.lstm_actor if self.lstm_critic is None else self.lstm_critic
        latent_vf, _ = self._process_sequence(features, lstm_states, episode_starts, lstm)  # type: ignore[arg-type]
        if self.arch == "detach":
            latent_vf = latent_vf.detach()
        return self.value_net(self.mlp_extractor.forward_critic(latent_vf if mask is None else latent_vf[mask]))

    def evaluate_actions(  # type: ignore[override]
        self,
        obs: PyTorchObs,
        actions: th.Tensor,
        lstm_states: RNNStates,
        episode_starts: th.Tensor,
        mask: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """
        :param obs: Observation, padded sequences flattened
        :param actions: Actions, at the real steps only with ``mask``
        :param lstm_states: LSTM states entering each sequence
        :param episode_starts: Whether each step starts an episode
        :param mask: True at the real steps; None: all steps are real
        :return: estimated value, log likelihood of the actions and entropy of the action distribution
        """
        latent_pi, latent_vf, _ = self._recurrent_latents(obs, lstm_states, episode_starts, mask)
        distribution = self._get_action_dist_from_latent(latent_pi)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()

    def evaluate_policy(  # type: ignore[override]
        self,
        obs: PyTorchObs,
        actions: th.Tensor,
        lstm_states: RNNStates,
        episode_starts: th.Tensor,
        mask: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """
        :meth:`evaluate_actions` without the critic.

        :param obs: Observation, padded sequences flattened
        :param actions: Actions, at the real steps only with ``mask``
        :param lstm_states: LSTM states entering each sequence
        :param episode_starts: Whether each step starts an episode
        :param mask: True at the real steps; None: all steps are real
        :return: log likelihood of the actions and entropy of the action distribution
        """
        latent_pi = self._actor_latent(obs, lstm_states.pi, episode_starts, mask)
        distribution = self._get_action_dist_from_latent(latent_pi)
        return distribution.log_prob(actions), distribution.entropy()

    def evaluate_aux(  # type: ignore[override]
        self, obs: PyTorchObs, lstm_states: RNNStates, episode_starts: th.Tensor, mask: th.Tensor | None = None
    ) -> tuple[Distribution, th.Tensor, th.Tensor]:
        """
        One forward pass for the auxiliary phase.

        :param obs: Observation, padded sequences flattened
        :param lstm_states: LSTM states entering each sequence
        :param episode_starts: Whether each step starts an episode
        :param mask: True at the real steps; None: all steps are real
        :return: the action distribution, V_aux(s) and V(s) (both of shape (batch,)), at the real steps
        """
        latent_pi, latent_vf, _ = self._recurrent_latents(obs, lstm_states, episode_starts, mask)
        distribution = self._get_action_dist_from_latent(latent_pi)
        return distribution, self.aux_value_net(latent_pi).flatten(), self.value_net(latent_vf).flatten()

    def lstm_states_after(self, obs: PyTorchObs, lstm_states: RNNStates, episode_starts: th.Tensor) -> RNNStates:
        """
        :param obs: Observation, sequences of one length flattened
        :param lstm_states: LSTM states entering each sequence
        :param episode_starts: Whether each step starts an episode
        :return: the LSTM states after the last step of each sequence
        """
        return self._recurrent_latents(obs, lstm_states, episode_starts)[2]


class RecurrentAuxActorCriticCnnPolicy(RecurrentAuxActorCriticPolicy, _DefaultExtractorPolicy):
    """
    :class:`RecurrentAuxActorCriticPolicy` for image observations; ``features_extractor_class`` defaults to NatureCNN.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`RecurrentAuxActorCriticPolicy`
    """

    default_kwargs: ClassVar[dict[str, Any]] = {"features_extractor_class": NatureCNN}


class RecurrentMultiInputAuxActorCriticPolicy(RecurrentAuxActorCriticPolicy, _DefaultExtractorPolicy):
    """
    :class:`RecurrentAuxActorCriticPolicy` for ``Dict`` observations; ``features_extractor_class`` defaults to
    CombinedExtractor.

    :param observation_space: Observation space (Dict)
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule (could be constant)
    :param kwargs: the other arguments of :class:`RecurrentAuxActorCriticPolicy`
    """

    default_kwargs: ClassVar[dict[str, Any]] = {"features_extractor_class": CombinedExtractor}


MlpLstmPolicy = RecurrentAuxActorCriticPolicy
CnnLstmPolicy = RecurrentAuxActorCriticCnnPolicy
MultiInputLstmPolicy = RecurrentMultiInputAuxActorCriticPolicy
