import math
import warnings
from collections.abc import Generator
from typing import Any, ClassVar, TypeVar

import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, RolloutBufferSamples, Schedule
from stable_baselines3.common.utils import FloatSchedule, update_learning_rate
from stable_baselines3.common.vec_env import VecEnv

from sb3_ppg.common import checkpoints, distributed, distributed_callbacks
from sb3_ppg.common.arguments import check_ppg_arguments, per_minibatch
from sb3_ppg.common.buffers import AuxBufferSamples, AuxRolloutBuffer, DictAuxBufferSamples, DictAuxRolloutBuffer
from sb3_ppg.common.distributions import (
    SUPPORTED_ACTION_SPACES,
    distribution_from_params,
    distribution_params,
    unsupported_action_space,
)
from sb3_ppg.common.logging import LossLog
from sb3_ppg.common.losses import aux_value_loss, clipped_surrogate_loss, joint_loss, policy_kl, value_loss
from sb3_ppg.common.persistence import AuxBufferPersistence
from sb3_ppg.common.minibatches import check_env_segment_minibatches, env_segment_minibatches
from sb3_ppg.common.policies import AuxActorCriticPolicy
from sb3_ppg.common.vec_env import VecTruncationAsTermination
from sb3_ppg.ppg.policies import CnnPolicy, ImpalaCnnPolicy, MinAtarCnnPolicy, MlpPolicy, MultiInputPolicy

SelfPPG = TypeVar("SelfPPG", bound="PPG")

SUPPORTED_OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


class PPG(AuxBufferPersistence):
    """
    Phasic Policy Gradient (PPG).

    The policy phase is PPO with disjoint actor and critic: each rollout, ``n_epochs`` epochs of the clipped
    surrogate on the actor and ``n_value_epochs`` epochs of the value loss on the critic. Every
    ``n_policy_iterations`` rollouts, the auxiliary phase distils value knowledge into the actor: an aux value
    head on the actor's latent fits the stored value targets while behaviour cloning (KL to a snapshot of the
    policy) keeps the policy where it was, and the critic trains again on all stored states.

    Paper: https://arxiv.org/abs/2009.04416
    Code: https://github.com/openai/phasic-policy-gradient

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, ImpalaCnnPolicy, MinAtarCnnPolicy,
        MultiInputPolicy); it must have an aux value head
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: The learning rate of the policy phase, it can be a function
        of the current progress remaining (from 1 to 0)
    :param n_steps: The number of steps to run for each environment per rollout
        (i.e. rollout buffer size is n_steps * n_envs where n_envs is number of environment copies running in parallel)
    :param batch_size: Minibatch size of the policy phase
    :param n_epochs: E_pi, number of epochs of the policy loss on each rollout
    :param n_value_epochs: E_V, number of epochs of the value loss on each rollout (0: the critic trains only in
        the aux phase)
    :param n_policy_iterations: N_pi, number of rollouts between two auxiliary phases; the aux buffer holds
        n_policy_iterations * n_steps * n_envs states
    :param n_aux_epochs: E_aux, number of epochs over the aux buffer in each auxiliary phase (0: no aux phase)
    :param aux_batch_size: Minibatch size of the auxiliary phase. Above the aux buffer's n_policy_iterations *
        n_steps * n_envs states, each aux epoch is one minibatch of the whole buffer (with a warning, as PPO's
        ``batch_size``)
    :param aux_learning_rate: The learning rate of the aux optimizer, a float or a schedule of the progress
        remaining; None (default) uses ``learning_rate``
    :param beta_clone: Weight of the behaviour cloning term KL(pi_old || pi) in the aux phase
    :param normalize_aux_targets: Whether the aux value head fits value targets standardised over the aux buffer.
        Its loss then has the same scale whatever the reward scale, so it cannot swamp the cloning term;
        the critic always fits the raw targets (with ``share_features_extractor=True`` that loss trains the
        shared extractor too, as in PPO).
    :param handle_timeout_termination: Handle timeout termination (due to timelimit) separately and treat the task
        as infinite horizon task, as SB3 does: the reward of a step flagged ``infos[i]["TimeLimit.truncated"]`` gets
        ``gamma * V(terminal observation)``. False: every episode end is terminal, as in the PPG paper's code.
    :param env_segment_minibatches: False (default): minibatches of independent random states. True: as the PPG
        paper's code, each policy minibatch is the whole trajectories of ``batch_size // n_steps`` envs of the
        rollout, and each aux minibatch ``aux_batch_size // n_steps`` whole (env, rollout) blocks of the aux buffer,
        shuffled by env, in time order inside. Needs n_envs divisible by the number of minibatches
        ``n_steps * n_envs / batch_size``, and ``aux_batch_size`` a multiple of ``n_steps``.
    :param gamma: Discount factor
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage Estimator
    :param clip_range: Clipping parameter, it can be a function of the current progress
        remaining (from 1 to 0).
    :param clip_range_vf: Clipping parameter for the value function in the policy phase,
        it can be a function of the current progress remaining (from 1 to 0).
        None (default): no clipping. IMPORTANT: this clipping depends on the reward scaling.
    :param normalize_advantage: Whether to normalize the advantage: True or "minibatch" (SB3's PPO) standardises
        it in each minibatch, "rollout" once over the whole rollout (the paper's code), False not at all
    :param ent_coef: Entropy coefficient for the loss calculation
    :param vf_coef: Value function coefficient for the loss calculation
    :param max_grad_norm: The maximum value for the gradient clipping, applied to the actor's and the critic's
        gradients separately; None: no clipping (the paper's code)
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE)
        instead of action noise exploration (default: False)
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE
        Default: -1 (only sample at the beginning of the rollout)
    :param rollout_buffer_class: Rollout buffer class to use. If ``None``, it will be automatically selected.
    :param rollout_buffer_kwargs: Keyword arguments to pass to the rollout buffer on creation
    :param target_kl: Limit the KL divergence between updates of the policy phase; past 1.5 * target_kl the
        policy epochs of this rollout stop (the value epochs go on). By default, there is no limit.
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or wrappers used), 2 for
        debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run.
        Setting it to auto, the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "ImpalaCnnPolicy": ImpalaCnnPolicy,
        "MinAtarCnnPolicy": MinAtarCnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: AuxActorCriticPolicy
    aux_buffer: AuxRolloutBuffer

    def __init__(
        self,
        policy: str | type[AuxActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 2048,
        batch_size: int = 64,
        n_epochs: int = 4,
        n_value_epochs: int = 4,
        n_policy_iterations: int = 8,
        n_aux_epochs: int = 6,
        aux_batch_size: int = 256,
        aux_learning_rate: float | Schedule | None = None,
        beta_clone: float = 1.0,
        normalize_aux_targets: bool = True,
        handle_timeout_termination: bool = True,
        env_segment_minibatches: bool = False,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool | str = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float | None = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        check_ppg_arguments(
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            n_value_epochs=n_value_epochs,
            n_policy_iterations=n_policy_iterations,
            n_aux_epochs=n_aux_epochs,
            aux_batch_size=aux_batch_size,
            aux_learning_rate=aux_learning_rate,
            beta_clone=beta_clone,
            handle_timeout_termination=handle_timeout_termination,
            env_segment_minibatches=env_segment_minibatches,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            normalize_advantage=normalize_advantage,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            target_kl=target_kl,
        )
        # Under torchrun (or in an initialised process group): join it, one device and thread per rank
        device = distributed.setup(device)
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,  # type: ignore[arg-type]  # None: no clipping
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=distributed.rank_verbose(verbose),
            device=device,
            seed=seed,
            _init_setup_model=False,
        )
        if self.env is not None:
            rollout_size = self.env.num_envs * n_steps
            if rollout_size == 1 and normalize_advantage:
                # PPO refuses it too: one advantage standardised is 0 (or NaN)
                raise ValueError(
                    f"n_steps * n_envs must be greater than 1 when normalize_advantage is on; got n_steps={n_steps} "
                    f"and n_envs={self.env.num_envs}"
                )
            if rollout_size % batch_size > 0:
                # SB3's PPO's wording, so that filters on it catch PPG's too
                warnings.warn(
                    f"You have specified a mini-batch size of {batch_size},"
                    f" but because the `RolloutBuffer` is of size `n_steps * n_envs = {rollout_size}`,"
                    f" after every {rollout_size // batch_size} untruncated mini-batches,"
                    f" there will be a truncated mini-batch of size {rollout_size % batch_size}\n"
                    f"We recommend using a `batch_size` that is a factor of `n_steps * n_envs`.\n"
                    f"Info: (n_steps={n_steps} and n_envs={self.env.num_envs})"
                )
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.n_value_epochs = n_value_epochs
        self.n_policy_iterations = n_policy_iterations
        self.n_aux_epochs = n_aux_epochs
        self.aux_batch_size = aux_batch_size
        self.aux_learning_rate = aux_learning_rate
        self.beta_clone = beta_clone
        self.normalize_aux_targets = normalize_aux_targets
        self.handle_timeout_termination = handle_timeout_termination
        self.env_segment_minibatches = env_segment_minibatches
        self.clip_range = clip_range
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = normalize_advantage
        self.target_kl = target_kl
        self._n_aux_phases = 0
        self._n_aux_updates = 0
        self._saved_aux_cycle_steps = 0
        self._aux_steps_not_loaded = 0
        # Kept so that ``PPG.load(path)`` can rebuild an env given by its id, as in ``PPG("MlpPolicy", "CartPole-v1")``
        self.env_id = env if isinstance(env, str) else None

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        self._check_spaces_and_policy()
        super()._setup_model()

        self.clip_range = FloatSchedule(self.clip_range)
        if self.clip_range_vf is not None:
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)
        aux_learning_rate = self.learning_rate if self.aux_learning_rate is None else self.aux_learning_rate
        self.aux_lr_schedule = FloatSchedule(aux_learning_rate)

        # Without aux epochs (PPO through PPG, as the paper's baseline) nothing is stored: no memory, no copies
        self.aux_buffer = self._aux_buffer_class()(
            self.n_policy_iterations * self.n_steps if self.n_aux_epochs > 0 else 0,
            self.observation_space,
            self.action_space,
            device=self.device,
            n_envs=self.n_envs,
            **self._aux_buffer_kwargs(),
        )
        aux_capacity = self.aux_buffer.buffer_size * self.n_envs
        if self.n_aux_epochs > 0 and self.aux_batch_size > aux_capacity:
            # As PPO does with a batch_size above its rollout: one (truncated) minibatch, said out loud
            warnings.warn(
                f"You have specified an aux_batch_size of {self.aux_batch_size}, but the aux buffer holds "
                f"n_policy_iterations * n_steps * n_envs = {self.n_policy_iterations} * {self.n_steps} * {self.n_envs} "
                f"= {aux_capacity} states, so every aux epoch is one minibatch of {aux_capacity}. We recommend an "
                f"aux_batch_size of at most {aux_capacity}."
            )
        if self.env_segment_minibatches:
            aux_batch_size = self.aux_batch_size if self.n_aux_epochs > 0 else None
            check_env_segment_minibatches(self.n_envs, self.n_steps, self.batch_size, aux_batch_size)
        distributed.synchronize(self)

    def _aux_buffer_class(self) -> type[AuxRolloutBuffer]:
        """:return: the class of the aux buffer, for this model's observation space"""
        return DictAuxRolloutBuffer if isinstance(self.observation_space, spaces.Dict) else AuxRolloutBuffer

    def _aux_buffer_kwargs(self) -> dict[str, Any]:
        """:return: keyword arguments the aux buffer class takes besides those of :class:`AuxRolloutBuffer`"""
        return {}

    def _evaluation_kwargs(self, samples: RolloutBufferSamples | AuxBufferSamples | DictAuxBufferSamples) -> dict[str, Any]:
        """
        :param samples: a minibatch of the rollout buffer or of the aux buffer
        :return: keyword arguments that the policy's ``evaluate_actions``, ``evaluate_policy`` and ``evaluate_aux``
            take for this minibatch besides observations and actions; none in PPG
        """
        return {}

    def _snapshot_distribution(self, aux_data: AuxBufferSamples | DictAuxBufferSamples) -> Distribution:
        """
        :param aux_data: a minibatch of the aux buffer
        :return: the snapshot pi_old at its states, a new distribution object
        """
        return distribution_from_params(self.action_space, aux_data.old_distribution_params)

    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        return super().collect_rollouts(self._rollout_env(env), callback, rollout_buffer, n_rollout_steps)

    def _rollout_env(self, env: VecEnv) -> VecEnv:
        """:return: the env that ``collect_rollouts`` steps: without ``handle_timeout_termination``, truncations
        read as terminations there, so SB3's rollout loop does not bootstrap them"""
        return env if self.handle_timeout_termination else VecTruncationAsTermination(env)

    def _policy_minibatches(self) -> Generator[RolloutBufferSamples, None, None]:
        """:return: one epoch's minibatches of the rollout buffer"""
        if self.env_segment_minibatches:
            return env_segment_minibatches(self.rollout_buffer, self.batch_size)
        return self.rollout_buffer.get(self.batch_size)

    def _aux_minibatches(self) -> Generator[AuxBufferSamples | DictAuxBufferSamples, None, None]:
        """:return: one aux epoch's minibatches of the aux buffer"""
        if self.env_segment_minibatches:
            return self.aux_buffer.get(self.aux_batch_size, segment_length=self.n_steps)
        return self.aux_buffer.get(self.aux_batch_size)

    def _take_snapshot(self) -> None:
        """Record pi_old at every state of the aux buffer, in the same mode as the aux epochs."""
        self.aux_buffer.snapshot(lambda obs: distribution_params(self.policy.get_distribution(obs)), self.aux_batch_size)

    def _minibatch_values(self, rollout_data: RolloutBufferSamples) -> th.Tensor:
        """:return: the critic's values V(s) at the states of a minibatch of the rollout buffer, shape (batch,)"""
        return self.policy.predict_values(rollout_data.observations).flatten()

    def _maybe_recommend_cpu(self, mlp_class_name: str = AuxActorCriticPolicy.__name__) -> None:
        super()._maybe_recommend_cpu(mlp_class_name)

    def _check_spaces_and_policy(self) -> None:
        if not (isinstance(self.policy_class, type) and issubclass(self.policy_class, AuxActorCriticPolicy)):
            raise ValueError(
                f"PPG needs a policy with an auxiliary value head: a subclass of AuxActorCriticPolicy "
                f"(aliases: {', '.join(self.policy_aliases)}); got {self.policy_class}"
            )
        if not isinstance(self.action_space, SUPPORTED_ACTION_SPACES):
            raise unsupported_action_space(self.action_space)
        observation_spaces = (
            self.observation_space.spaces.values()
            if isinstance(self.observation_space, spaces.Dict)
            else [self.observation_space]
        )
        for observation_space in observation_spaces:
            if not isinstance(observation_space, SUPPORTED_OBSERVATION_SPACES):
                allowed = ", ".join(space.__name__ for space in SUPPORTED_OBSERVATION_SPACES)
                raise ValueError(
                    f"PPG does not support the observation space {observation_space}; "
                    f"the allowed observation spaces are {allowed}, or a Dict of them"
                )

    def train(self) -> None:
        """
        Run the policy phase on the rollout just collected, then the auxiliary phase if this rollout
        completes N_pi of them.
        """
        distributed.check_rollout_finite(self.rollout_buffer.advantages, self.rollout_buffer.returns)
        if self.n_aux_epochs == 0:
            self._train_policy_phase()
            return
        # Copy before the policy phase: RolloutBuffer.get() flattens the buffer in place
        self.aux_buffer.add_rollout(self.rollout_buffer)
        self._train_policy_phase()
        if self.aux_buffer.full:
            self._train_aux_phase()
            self.aux_buffer.reset()

    def _train_policy_phase(self) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        progress = self._current_progress_remaining
        clip_range = self.clip_range(progress)  # type: ignore[operator]
        clip_range_vf = None if self.clip_range_vf is None else self.clip_range_vf(progress)  # type: ignore[operator]
        if self.normalize_advantage == "rollout":
            # Moments over the rollouts of all ranks
            self.rollout_buffer.advantages = distributed.standardize(self.rollout_buffer.advantages, correction=0)

        log = LossLog()
        last_loss: th.Tensor | None = None
        policy_active = True
        for epoch in range(max(self.n_epochs, self.n_value_epochs)):
            policy_active = policy_active and epoch < self.n_epochs
            value_active = epoch < self.n_value_epochs
            if not (policy_active or value_active):
                break
            for rollout_data in self._policy_minibatches():
                terms: dict[str, th.Tensor] = {}
                loss = th.zeros((), device=self.device)
                values = None
                if policy_active:
                    values, pg_loss, entropy_loss, approx_kl_div, clip_fraction = self._policy_losses(
                        rollout_data, clip_range, with_values=value_active
                    )
                    log.add("approx_kl", approx_kl_div)
                    # The only per-minibatch read besides the finiteness check, and only with target_kl
                    # Decided on the mean over ranks, so that every rank stops at the same minibatch
                    stop = self.target_kl is not None and (
                        distributed.mean_over_ranks(approx_kl_div).item() > 1.5 * self.target_kl
                    )
                    if stop:
                        policy_active = False
                        if self.verbose >= 1:
                            print(f"Early stopping of the policy epochs at epoch {epoch}: approx_kl {approx_kl_div:.2f}")
                    else:
                        terms.update(policy_gradient_loss=pg_loss, entropy_loss=entropy_loss)
                        log.add("clip_fraction", clip_fraction)
                        loss = loss + pg_loss + self.ent_coef * entropy_loss
                if value_active:
                    if values is None:
                        values = self._minibatch_values(rollout_data)
                    terms["value_loss"] = value_loss(values, rollout_data.returns, rollout_data.old_values, clip_range_vf)
                    loss = loss + self.vf_coef * terms["value_loss"]
                if loss.requires_grad:
                    for name, term in terms.items():
                        log.add(name, term)
                    self._optimizer_step(self.policy.optimizer, loss, "policy", terms)
                    last_loss = loss
            self._n_updates += 1

        explained_var = distributed.explained_variance(
            self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
        )
        for key, mean in log.means().items():
            self.logger.record(f"train/{key}", mean)
        # The last minibatch's loss, as SB3 logs it: averaged over ranks (the stops are agreed, so all have one)
        self.logger.record(
            "train/loss", float("nan") if last_loss is None else distributed.mean_over_ranks(last_loss.detach()).item()
        )
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)

    def _policy_losses(
        self, rollout_data: RolloutBufferSamples, clip_range: float, with_values: bool = True
    ) -> tuple[th.Tensor | None, th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """
        :param with_values: whether to run the critic too (not in policy-only epochs)
        :return: values (None without ``with_values``), policy gradient loss, entropy loss, approximate KL and
            clip fraction of one minibatch
        """
        actions = rollout_data.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.long().flatten()
        values: th.Tensor | None = None
        kwargs = self._evaluation_kwargs(rollout_data)
        if with_values:
            values, log_prob, entropy = self.policy.evaluate_actions(rollout_data.observations, actions, **kwargs)
            values = values.flatten()
        else:
            log_prob, entropy = self.policy.evaluate_policy(rollout_data.observations, actions, **kwargs)
        advantages = rollout_data.advantages
        if per_minibatch(self.normalize_advantage) and len(advantages) > 1:
            advantages = distributed.standardize(advantages, correction=1)
        pg_loss = clipped_surrogate_loss(advantages, log_prob, rollout_data.old_log_prob, clip_range)
        # Without an analytic entropy, estimate it from the log probabilities
        entropy_loss = -th.mean(-log_prob) if entropy is None else -th.mean(entropy)
        with th.no_grad():
            # Schulman's estimator of KL(old || new), for early stopping and logging only
            log_ratio = log_prob - rollout_data.old_log_prob
            approx_kl_div = th.mean(th.exp(log_ratio) - 1 - log_ratio)
            clip_fraction = th.mean((th.abs(th.exp(log_ratio) - 1) > clip_range).float())
        return values, pg_loss, entropy_loss, approx_kl_div, clip_fraction

    def _train_aux_phase(self) -> None:
        self.policy.set_training_mode(True)
        # Progress at the start of the last rollout: with the progress after it, a schedule that ends at 0
        # would give the final aux phase of a run a learning rate of 0
        rollout_size = self.n_steps * self.n_envs * distributed.world_size()
        progress = min(1.0, self._current_progress_remaining + rollout_size / max(self._total_timesteps, 1))
        aux_learning_rate = self.aux_lr_schedule(progress)
        update_learning_rate(self.policy.aux_optimizer, aux_learning_rate)
        # Snapshot in the same mode as the aux epochs, so the first minibatch starts at KL == 0
        self._take_snapshot()
        target_mean, target_std = self.aux_buffer.returns_mean_std() if self.normalize_aux_targets else (0.0, 1.0)

        log = LossLog()
        for _ in range(self.n_aux_epochs):
            for aux_data in self._aux_minibatches():
                kwargs = self._evaluation_kwargs(aux_data)
                distribution, aux_values, values = self.policy.evaluate_aux(aux_data.observations, **kwargs)
                old_distribution = self._snapshot_distribution(aux_data)
                terms = {
                    "aux_kl": policy_kl(old_distribution, distribution).mean(),
                    "aux_value_loss": aux_value_loss(aux_values, (aux_data.returns - target_mean) / (target_std + 1e-8)),
                    "aux_critic_loss": value_loss(values, aux_data.returns),
                }
                loss = joint_loss(terms["aux_value_loss"], terms["aux_kl"], self.beta_clone)
                loss = loss + self.vf_coef * terms["aux_critic_loss"]
                for name, term in terms.items():
                    log.add(name, term)
                self._optimizer_step(self.policy.aux_optimizer, loss, "aux", terms)
                self._n_aux_updates += 1
        self._n_aux_phases += 1

        self.logger.record("train/aux_learning_rate", aux_learning_rate)
        for key, mean in log.means().items():
            self.logger.record(f"train/{key}", mean)
        self.logger.record("train/aux_n_updates", self._n_aux_updates, exclude="tensorboard")
        self.logger.record("train/n_aux_phases", self._n_aux_phases, exclude="tensorboard")

    def _optimizer_step(self, optimizer: th.optim.Optimizer, loss: th.Tensor, phase: str, terms: dict[str, th.Tensor]) -> None:
        """
        One step on ``loss``, unless it is NaN or inf on some rank: then training stops before the step, naming the
        term that made it so (see :meth:`_raise_not_finite`).
        """
        # One read of the scalar: on the CPU ``math.isfinite(loss.item())`` costs 0.14 us against 3.9 us for
        # ``bool(th.isfinite(loss))``, which launches a kernel first; on a GPU both are one sync
        finite = math.isfinite(loss.item())
        optimizer.zero_grad()
        loss.backward()
        # Mean over ranks before clipping, so every rank clips and steps the same gradient; the same collective tells
        # every rank where the loss was not finite
        bad_ranks = distributed.average_gradients(self.policy.parameters(), not finite)
        if bad_ranks:
            self._raise_not_finite(phase, loss, terms, bad_ranks)
        if self.max_grad_norm is not None:
            # Clip actor and critic apart, so a large value gradient cannot shrink the policy's step
            th.nn.utils.clip_grad_norm_(self.policy.actor_parameters, self.max_grad_norm)
            th.nn.utils.clip_grad_norm_(self.policy.critic_parameters, self.max_grad_norm)
        optimizer.step()

    @staticmethod
    def _raise_not_finite(phase: str, loss: th.Tensor, terms: dict[str, th.Tensor], bad_ranks: list[int]) -> None:
        """
        Stop training before the optimizer step when the loss is NaN or inf, naming the term that made it so.
        A non-finite term always makes the sum non-finite (0 * nan is nan), so one host sync per minibatch suffices.
        In multi-process training every rank stops, and the error names the ranks where the loss was not finite.
        """
        where = distributed.describe_ranks(bad_ranks)
        if math.isfinite(loss.item()):
            raise RuntimeError(
                f"PPG {phase} phase: the loss is not finite{where}. Training stopped on every rank before the "
                "optimizer step; see that rank's error for the term and the cause."
            )
        name, value = next(((name, term) for name, term in terms.items() if not th.isfinite(term)), ("loss", loss))
        raise RuntimeError(
            f"PPG {phase} phase{where}: {name} is {value.item()}. Training stopped before the optimizer step, "
            "so the weights are still finite. Check the rewards and observations for NaN/inf, "
            "or lower the learning rate."
        )

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        if reset_num_timesteps:
            # A new run starts a new aux cycle: states of an earlier run must not be distilled into this one
            self.aux_buffer.reset()
        elif self._aux_steps_not_loaded > 0:
            checkpoints.warn_aux_buffer_not_loaded(self._aux_steps_not_loaded, self.n_steps, self.n_policy_iterations)
        self._aux_steps_not_loaded = 0
        self._drop_foreign_rollout_position()
        # Multi-process: rank 0 alone logs and evaluates, the others join every collective
        distributed.silence_logger(self)
        callback, progress_bar = distributed_callbacks.prepare_callbacks(callback, progress_bar)
        total_timesteps, callback = super()._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        distributed.synchronize(self)
        return total_timesteps, distributed_callbacks.wrap_callback(self, callback)

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        """
        Set a new environment, as SB3's ``set_env``, and empty the aux buffer: states of the old env must not be
        distilled into the policy for the new one.

        :param env: The environment for learning a policy
        :param force_reset: Force call to ``reset()`` before training to avoid unexpected behavior.
        """
        super().set_env(env, force_reset)
        if hasattr(self, "aux_buffer"):
            self.aux_buffer.reset()

    def learn(
        self: SelfPPG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "PPG",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfPPG:
        """
        Train the model, as SB3's ``learn``; the aux phase runs after every ``n_policy_iterations``-th rollout,
        counted across calls when ``reset_num_timesteps=False``.

        :param total_timesteps: The total number of samples (env steps) to train on
        :param callback: callback(s) called at every step with state of the algorithm.
        :param log_interval: The number of rollouts before logging.
        :param tb_log_name: the name of the run for TensorBoard logging
        :param reset_num_timesteps: whether or not to reset the current timestep number (used in logging)
        :param progress_bar: Display a progress bar using tqdm and rich.
        :return: the trained model
        """
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def set_random_seed(self, seed: int | None = None) -> None:
        """
        Seed the generators and the envs, as SB3's; in multi-process training rank r uses ``seed + r * n_envs``.

        :param seed: the seed
        """
        super().set_random_seed(distributed.rank_seed(seed, getattr(self, "n_envs", 1)))

    def dump_logs(self, iteration: int = 0) -> None:
        """
        Write the logs, as SB3's; the episode statistics are over the envs of all ranks.

        :param iteration: Current logging iteration
        """
        with distributed.all_episode_infos(self):
            super().dump_logs(iteration)
