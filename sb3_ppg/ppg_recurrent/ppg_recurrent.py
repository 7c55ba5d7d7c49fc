from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from sb3_contrib.ppo_recurrent import RecurrentPPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, RolloutBufferSamples
from stable_baselines3.common.vec_env import VecEnv

from sb3_ppg.common.arguments import check_flag
from sb3_ppg.common.buffers import AuxBufferSamples, AuxRolloutBuffer, DictAuxBufferSamples
from sb3_ppg.common.distributions import distribution_params
from sb3_ppg.common.recurrent_buffers import (
    PackedRecurrentDictRolloutBuffer,
    PackedRecurrentRolloutBuffer,
    RecurrentAuxRolloutBuffer,
    RecurrentDictAuxRolloutBuffer,
)
from sb3_ppg.ppg.ppg import PPG
from sb3_ppg.ppg_recurrent.policies import (
    CnnLstmPolicy,
    MlpLstmPolicy,
    MultiInputLstmPolicy,
    RecurrentAuxActorCriticPolicy,
    RecurrentMultiInputAuxActorCriticPolicy,
)

SelfRecurrentPPG = TypeVar("SelfRecurrentPPG", bound="RecurrentPPG")
# The LSTM states a rollout starts from, as saved (actor's hidden and cell state, then the critic's)
LSTM_STATE_NAMES = ("pi_hidden", "pi_cell", "vf_hidden", "vf_cell")


class RecurrentPPG(PPG):
    """
    Phasic Policy Gradient (PPG) with LSTM policies, as SB3-Contrib's ``RecurrentPPO`` is PPO with them.

    Rollouts are collected by ``RecurrentPPO``'s loop into its ``RecurrentRolloutBuffer``, and the policy phase reads
    its minibatches of padded sequences. The aux buffer keeps, for each of the last ``n_policy_iterations`` rollouts,
    the observations, value targets, episode starts and the LSTM states entering each env's segment; the aux phase
    trains on whole (env, rollout) segments cut at episode starts, from those states, and the snapshot runs over the
    same sequences. Every loss, in both phases, is a mean over real steps: padded steps never reach it.

    Takes the arguments of :class:`~sb3_ppg.PPG` (the same names, defaults and checks); the LSTM's own arguments
    (``lstm_hidden_size``, ``n_lstm_layers``, ``lstm_kwargs``, and ``arch`` or SB3-Contrib's ``shared_lstm``/
    ``enable_critic_lstm``) go in ``policy_kwargs``, as with ``RecurrentPPO``. ``batch_size`` counts steps, as in
    ``RecurrentPPO``; ``aux_batch_size`` is rounded down to whole segments of ``n_steps`` steps (at least one).

    :param policy: The policy model to use (MlpLstmPolicy, CnnLstmPolicy, MultiInputLstmPolicy): a subclass of
        :class:`~sb3_ppg.ppg_recurrent.policies.RecurrentAuxActorCriticPolicy`
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param args: the other arguments of :class:`~sb3_ppg.PPG`, in its order (``learning_rate``, ``n_steps``, ...):
        see its parameters for their meaning, defaults and allowed values
    :param recompute_lstm_states: (keyword only) Whether to refresh the stored LSTM states before each aux phase by
        replaying each env's history once with the current policy (about the cost of the snapshot pass); False
        (default) keeps the states the rollouts were collected with, as the paper's code does. Must be a bool
    :param kwargs: the other arguments of :class:`~sb3_ppg.PPG`, by name (see its parameters); ``rollout_buffer_class``
        must stay None, ``rollout_buffer_kwargs`` empty and ``env_segment_minibatches`` False
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpLstmPolicy": MlpLstmPolicy,
        "CnnLstmPolicy": CnnLstmPolicy,
        "MultiInputLstmPolicy": MultiInputLstmPolicy,
    }
    policy: RecurrentAuxActorCriticPolicy  # type: ignore[assignment]
    rollout_buffer: PackedRecurrentRolloutBuffer | PackedRecurrentDictRolloutBuffer  # type: ignore[assignment]
    aux_buffer: RecurrentAuxRolloutBuffer

    def __init__(
        self,
        policy: str | type[RecurrentAuxActorCriticPolicy],
        env: GymEnv | str,
        *args: Any,
        recompute_lstm_states: bool = False,
        **kwargs: Any,
    ):
        check_flag("recompute_lstm_states", recompute_lstm_states)
        self.recompute_lstm_states = recompute_lstm_states
        super().__init__(policy, env, *args, **kwargs)  # type: ignore[arg-type]

    def _check_spaces_and_policy(self) -> None:
        if not (isinstance(self.policy_class, type) and issubclass(self.policy_class, RecurrentAuxActorCriticPolicy)):
            raise ValueError(
                f"RecurrentPPG needs an LSTM policy with an auxiliary value head: a subclass of "
                f"RecurrentAuxActorCriticPolicy (aliases: {', '.join(self.policy_aliases)}); got {self.policy_class}"
            )
        if (
            isinstance(self.observation_space, spaces.Dict)
            and not issubclass(self.policy_class, RecurrentMultiInputAuxActorCriticPolicy)
            and "features_extractor_class" not in self.policy_kwargs
        ):
            # Its default features extractor (flatten or CNN) cannot read a Dict: it would fail only in learn()
            aliases = [alias for alias, policy in self.policy_aliases.items() if policy is self.policy_class]
            name = aliases[0] if aliases else self.policy_class.__name__
            raise ValueError(
                f"policy: you must use `MultiInputLstmPolicy` with a Dict observation space, not {name} (or pass a "
                "features_extractor_class that reads Dict observations in policy_kwargs)"
            )
        if self.env_segment_minibatches:
            raise ValueError(
                "RecurrentPPG: env_segment_minibatches must be False; its minibatches are whole sequences already "
                "(SB3-Contrib's in the policy phase, whole (env, rollout) segments in the aux phase)"
            )
        if self.rollout_buffer_class is not None:
            raise ValueError(
                "RecurrentPPG: rollout_buffer_class must be None; the rollout buffer is SB3-Contrib's "
                f"RecurrentRolloutBuffer, made for the policy's LSTM; got {self.rollout_buffer_class}"
            )
        if self.rollout_buffer_kwargs:
            raise ValueError(
                "RecurrentPPG: rollout_buffer_kwargs must be empty, as in RecurrentPPO; SB3-Contrib's "
                f"RecurrentRolloutBuffer takes only what the model passes it; got {self.rollout_buffer_kwargs}"
            )
        super()._check_spaces_and_policy()

    def _setup_model(self) -> None:
        super()._setup_model()
        lstm = self.policy.lstm_actor
        state_shape = (lstm.num_layers, self.n_envs, lstm.hidden_size)
        self._restore_rollout_memory({})
        dict_observations = isinstance(self.observation_space, spaces.Dict)
        buffer_class = PackedRecurrentDictRolloutBuffer if dict_observations else PackedRecurrentRolloutBuffer
        # Replaces SB3's feed-forward buffer: the LSTM's shape is known only once the policy is built
        self.rollout_buffer_class = buffer_class
        self.rollout_buffer = buffer_class(
            self.n_steps,
            self.observation_space,
            self.action_space,
            (self.n_steps, *state_shape),
            self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
        )

    def _rollout_memory(self) -> dict[str, np.ndarray]:
        states = (*self._last_lstm_states.pi, *self._last_lstm_states.vf)
        return {name: state.detach().cpu().numpy().copy() for name, state in zip(LSTM_STATE_NAMES, states, strict=True)}

    def _restore_rollout_memory(self, memory: dict[str, np.ndarray]) -> None:
        # Saved LSTM states let a run resumed without a reset go on mid-episode with its memory; none: zeros
        lstm = self.policy.lstm_actor
        shape = (lstm.num_layers, self.n_envs, lstm.hidden_size)
        if memory and (set(memory) != set(LSTM_STATE_NAMES) or any(state.shape != shape for state in memory.values())):
            saved = {name: tuple(state.shape) for name, state in memory.items()}
            raise ValueError(
                f"RecurrentPPG: the saved LSTM states {saved} do not fit this model's {shape} for each of "
                f"{', '.join(LSTM_STATE_NAMES)} (n_envs or the LSTM changed); load with force_reset=True"
            )
        states = [
            th.as_tensor(memory[name], device=self.device) if memory else th.zeros(shape, device=self.device)
            for name in LSTM_STATE_NAMES
        ]
        self._last_lstm_states = RNNStates((states[0], states[1]), (states[2], states[3]))

    def _aux_buffer_class(self) -> type[AuxRolloutBuffer]:
        return RecurrentDictAuxRolloutBuffer if isinstance(self.observation_space, spaces.Dict) else RecurrentAuxRolloutBuffer

    def _aux_buffer_kwargs(self) -> dict[str, Any]:
        lstm = self.policy.lstm_actor
        return {"n_steps": self.n_steps, "lstm_state_shape": (lstm.num_layers, lstm.hidden_size), "on_device": False}

    def _evaluation_kwargs(self, samples: RolloutBufferSamples | AuxBufferSamples | DictAuxBufferSamples) -> dict[str, Any]:
        # Both buffers give padded sequences, the states entering them and the mask of their real steps
        return {
            "lstm_states": samples.lstm_states,  # type: ignore[union-attr]
            "episode_starts": samples.episode_starts,  # type: ignore[union-attr]
            "mask": samples.mask,  # type: ignore[union-attr]
        }

    def _minibatch_values(self, rollout_data: RolloutBufferSamples) -> th.Tensor:
        kwargs = self._evaluation_kwargs(rollout_data)
        lstm_states = kwargs.pop("lstm_states")
        return self.policy.predict_values(rollout_data.observations, lstm_states.vf, **kwargs).flatten()

    def _take_snapshot(self) -> None:
        if self.recompute_lstm_states:
            self.aux_buffer.recompute_lstm_states(self.policy.lstm_states_after, self.aux_batch_size)
        self.aux_buffer.snapshot(
            lambda samples: distribution_params(
                self.policy.evaluate_aux(samples.observations, **self._evaluation_kwargs(samples))[0]  # type: ignore[arg-type]
            ),
            self.aux_batch_size,
        )

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """
        Collect a rollout as SB3-Contrib's ``RecurrentPPO`` does: the LSTM states entering each step go into the
        rollout buffer with it, and carry over from one rollout to the next.

        :param env: The training environment
        :param callback: Callback that will be called at each step (and at the beginning and end of the rollout)
        :param rollout_buffer: Buffer to fill with rollouts, a ``RecurrentRolloutBuffer`` or its Dict variant
        :param n_rollout_steps: Number of experiences to collect per environment
        :return: True if function returned with at least ``n_rollout_steps`` collected, False if callback
            terminated rollout prematurely.
        """
        # RecurrentPPO's loop needs only what every on-policy algorithm has, plus an LSTM policy and buffer
        return RecurrentPPO.collect_rollouts(self, self._rollout_env(env), callback, rollout_buffer, n_rollout_steps)  # type: ignore[arg-type]

    def predict(  # type: ignore[override]
        self,
        observation: Any,
        state: tuple[Any, ...] | None = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[Any, tuple[Any, ...] | None]:
        """
        Get the policy action and the next LSTM state from an observation, as SB3-Contrib's ``RecurrentPPO``.

        :param observation: the input observation
        :param state: The last hidden states (None: zeros, for the first step)
        :param episode_start: The last episode starts (their LSTM states are reset); None: no episode starts
        :param deterministic: Whether or not to return deterministic actions.
        :return: the model's action and the next hidden state
        """
        return self.policy.predict(observation, state, episode_start, deterministic)

    def learn(  # type: ignore[override]
        self: SelfRecurrentPPG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "RecurrentPPG",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfRecurrentPPG:
        """
        Train the model as :meth:`PPG.learn <sb3_ppg.PPG.learn>` does.

        :param total_timesteps: Number of env steps to train for
        :param callback: Callback(s) run at every env step, with access to the algorithm's state
        :param log_interval: Rollouts between two log dumps
        :param tb_log_name: Run name in TensorBoard
        :param reset_num_timesteps: Whether to count timesteps from 0 again (False: go on with the previous count)
        :param progress_bar: Whether to show a tqdm/rich progress bar
        :return: the trained model
        """
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    def _excluded_save_params(self) -> list[str]:
        # The buffer class is chosen again at load: SB3 could not make it before the policy exists
        return [*super()._excluded_save_params(), "_last_lstm_states", "rollout_buffer_class"]
