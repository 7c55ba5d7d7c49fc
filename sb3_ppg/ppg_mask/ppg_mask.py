from typing import Any, ClassVar, TypeVar

import numpy as np
from gymnasium import spaces
from sb3_contrib.common.maskable.buffers import MaskableDictRolloutBuffer, MaskableRolloutBuffer
from sb3_contrib.common.maskable.utils import is_masking_supported
from sb3_contrib.ppo_mask import MaskablePPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import MaybeCallback, RolloutBufferSamples
from stable_baselines3.common.vec_env import VecEnv

from sb3_ppg.common.buffers import (
    AuxBufferSamples,
    AuxRolloutBuffer,
    DictAuxBufferSamples,
    MaskableAuxRolloutBuffer,
    MaskableDictAuxRolloutBuffer,
)
from sb3_ppg.common.distributions import (
    MASKABLE_ACTION_SPACES,
    masked_distribution_from_params,
    unsupported_masked_action_space,
)
from sb3_ppg.common.policies import MaskableAuxActorCriticPolicy
from sb3_ppg.ppg.ppg import PPG
from sb3_ppg.ppg_mask.policies import CnnPolicy, ImpalaCnnPolicy, MlpPolicy, MultiInputPolicy

SelfMaskablePPG = TypeVar("SelfMaskablePPG", bound="MaskablePPG")


class MaskablePPG(PPG):
    """
    Phasic Policy Gradient (PPG) with invalid action masking, as SB3-Contrib's ``MaskablePPO`` masks PPO.

    The env gives the masks: a method ``action_masks()`` (or SB3-Contrib's ``ActionMasker`` wrapper) that returns,
    for the current state, True for each valid action (one entry per action of a Discrete space, per value of each
    MultiDiscrete dimension, per 0 and 1 of each MultiBinary dimension). Actions are drawn from the policy renormalised
    over the valid ones, in training and in ``predict(..., action_masks=...)``, and the policy loss is evaluated with
    the masks each state had.

    The aux phase keeps the masks of every stored state. The behaviour cloning term compares the snapshot and the
    live policy, both masked with those masks: KL(pi_old || pi) runs over the valid actions only, exactly (a masked
    action contributes 0). A state whose masks leave a sub-action without any valid choice is refused with a
    ``ValueError`` when it is collected.

    Takes the arguments of :class:`~sb3_ppg.PPG` (the same names, defaults and checks); what differs:

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, ImpalaCnnPolicy, MultiInputPolicy): a subclass
        of :class:`~sb3_ppg.common.policies.MaskableAuxActorCriticPolicy`
    :param env: The environment to learn from (if registered in Gym, can be str), with a Discrete, MultiDiscrete
        or MultiBinary action space
    :param kwargs: the other arguments of :class:`~sb3_ppg.PPG`; ``use_sde`` must stay False, and
        ``rollout_buffer_class`` defaults to SB3-Contrib's ``MaskableRolloutBuffer`` (``MaskableDictRolloutBuffer``
        for Dict observations)
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "ImpalaCnnPolicy": ImpalaCnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: MaskableAuxActorCriticPolicy
    rollout_buffer: MaskableRolloutBuffer
    aux_buffer: MaskableAuxRolloutBuffer

    # Whether the current ``learn`` call collects rollouts with masks
    _use_masking: bool = True

    def _setup_model(self) -> None:
        if self.rollout_buffer_class is None:
            dict_observations = isinstance(self.observation_space, spaces.Dict)
            self.rollout_buffer_class = MaskableDictRolloutBuffer if dict_observations else MaskableRolloutBuffer
        super()._setup_model()

    def _check_spaces_and_policy(self) -> None:
        if not isinstance(self.action_space, MASKABLE_ACTION_SPACES):
            raise unsupported_masked_action_space(self.action_space)
        if not (isinstance(self.policy_class, type) and issubclass(self.policy_class, MaskableAuxActorCriticPolicy)):
            raise ValueError(
                f"MaskablePPG needs a maskable policy with an auxiliary value head: a subclass of "
                f"MaskableAuxActorCriticPolicy (aliases: {', '.join(self.policy_aliases)}); got {self.policy_class}"
            )
        masked_buffers = (MaskableRolloutBuffer, MaskableDictRolloutBuffer)
        if not (isinstance(self.rollout_buffer_class, type) and issubclass(self.rollout_buffer_class, masked_buffers)):
            raise ValueError(
                "MaskablePPG: rollout_buffer_class must store action masks: MaskableRolloutBuffer, "
                f"MaskableDictRolloutBuffer or a subclass; got {self.rollout_buffer_class}"
            )
        super()._check_spaces_and_policy()

    def _aux_buffer_class(self) -> type[AuxRolloutBuffer]:
        dict_observations = isinstance(self.observation_space, spaces.Dict)
        return MaskableDictAuxRolloutBuffer if dict_observations else MaskableAuxRolloutBuffer

    def _evaluation_kwargs(self, samples: RolloutBufferSamples | AuxBufferSamples | DictAuxBufferSamples) -> dict[str, Any]:
        # Both buffers return the masks of each state with it
        return {"action_masks": samples.action_masks}  # type: ignore[union-attr]

    def _snapshot_distribution(self, aux_data: AuxBufferSamples | DictAuxBufferSamples) -> Distribution:
        # The snapshot holds unmasked logits: masked here with the state's own masks, as the live policy is
        masks = aux_data.action_masks  # type: ignore[union-attr]
        return masked_distribution_from_params(self.action_space, aux_data.old_distribution_params, masks)

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
        use_masking: bool | None = None,
    ) -> bool:
        """
        Collect a rollout as SB3-Contrib's ``MaskablePPO`` does: the env's masks at each step go to the policy and
        into the rollout buffer.

        :param env: The training environment
        :param callback: Callback that will be called at each step (and at the beginning and end of the rollout)
        :param rollout_buffer: Buffer to fill with rollouts, a ``MaskableRolloutBuffer`` or ``MaskableDictRolloutBuffer``
        :param n_rollout_steps: Number of experiences to collect per environment
        :param use_masking: Whether to use the env's action masks; None: as the current ``learn`` call says
        :return: True if function returned with at least ``n_rollout_steps`` collected, False if callback
            terminated rollout prematurely.
        """
        use_masking = self._use_masking if use_masking is None else use_masking
        # MaskablePPO's loop needs only what every on-policy algorithm has, plus a maskable policy and buffer
        env = self._rollout_env(env)
        return MaskablePPO.collect_rollouts(self, env, callback, rollout_buffer, n_rollout_steps, use_masking)  # type: ignore[arg-type]

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """
        Get the policy action from an observation, as SB3's ``predict``, masked with ``action_masks``.

        :param observation: the input observation
        :param state: The last hidden states (None: feed-forward policies have none)
        :param episode_start: The last episode starts (unused by feed-forward policies)
        :param deterministic: Whether or not to return deterministic actions.
        :param action_masks: Action masks, one row per observation (e.g. ``get_action_masks(env)``); None: no masking
        :return: the model's action and the next hidden state (used in recurrent policies)
        """
        return self.policy.predict(observation, state, episode_start, deterministic, action_masks=action_masks)  # type: ignore[misc]

    def learn(  # type: ignore[override]
        self: SelfMaskablePPG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "MaskablePPG",
        reset_num_timesteps: bool = True,
        use_masking: bool = True,
        progress_bar: bool = False,
    ) -> SelfMaskablePPG:
        """
        Train the model as :meth:`PPG.learn <sb3_ppg.PPG.learn>` does, taking the env's action masks at every step.

        :param total_timesteps: Number of env steps to train for
        :param callback: Callback(s) run at every env step, with access to the algorithm's state
        :param log_interval: Rollouts between two log dumps
        :param tb_log_name: Run name in TensorBoard
        :param reset_num_timesteps: Whether to count timesteps from 0 again (False: go on with the previous count)
        :param use_masking: Whether to use the env's action masks (its ``action_masks()`` method); False: train
            as PPG, on all actions, with envs that have no masks
        :param progress_bar: Whether to show a tqdm/rich progress bar
        :return: the trained model
        """
        if use_masking and self.env is not None and not is_masking_supported(self.env):
            raise ValueError(
                "MaskablePPG.learn(use_masking=True): the env has no action_masks() method. Give the env one, wrap it "
                "in sb3_contrib.common.wrappers.ActionMasker, or pass use_masking=False"
            )
        self._use_masking = use_masking
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)
