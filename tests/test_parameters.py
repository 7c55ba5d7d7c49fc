"""Bad input gets a clear error naming the argument and the allowed values."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import LinearSchedule

from sb3_ppg import PPG
from tests.conftest import SMALL


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_policy_iterations=0), "n_policy_iterations must be an integer >= 1, got 0"),
        (dict(n_policy_iterations=2.5), "n_policy_iterations must be an integer >= 1, got 2.5"),
        (dict(n_epochs=0), "n_epochs must be an integer >= 1, got 0"),
        (dict(n_value_epochs=-1), "n_value_epochs must be an integer >= 0, got -1"),
        (dict(n_aux_epochs=-1), "n_aux_epochs must be an integer >= 0, got -1"),
        (dict(aux_batch_size=0), "aux_batch_size must be an integer >= 1, got 0"),
        (dict(beta_clone=-0.1), "beta_clone must be >= 0, got -0.1"),
        (dict(beta_clone=float("nan")), "beta_clone must be >= 0, got nan"),
        (dict(batch_size=1), "batch_size must be an integer >= 2"),
        (dict(beta_clone="1.0"), "beta_clone must be >= 0, got '1.0'"),
        (dict(n_epochs=True), "n_epochs must be an integer >= 1, got True"),
        (dict(gamma=1.5), "gamma must be between 0 and 1, got 1.5"),
        (dict(gae_lambda=-0.1), "gae_lambda must be between 0 and 1, got -0.1"),
        (dict(vf_coef=-1.0), "vf_coef must be >= 0, got -1.0"),
        (dict(max_grad_norm=0.0), "max_grad_norm must be > 0, or None for no clipping, got 0.0"),
        (dict(clip_range=-0.2), "clip_range must be > 0 or a schedule, got -0.2"),
        (dict(clip_range="0.2"), "clip_range must be > 0 or a schedule, got '0.2'"),
        (dict(clip_range_vf=0.0), "clip_range_vf must be > 0, a schedule, or None to disable value clipping, got 0.0"),
        (dict(aux_learning_rate=-1e-4), "aux_learning_rate must be > 0, a schedule, or None to use learning_rate"),
        (dict(target_kl=0.0), "target_kl must be > 0, or None for no limit, got 0.0"),
        (dict(handle_timeout_termination=1), "handle_timeout_termination must be True or False, got 1"),
        (dict(env_segment_minibatches="yes"), "env_segment_minibatches must be True or False, got 'yes'"),
        (
            dict(env_segment_minibatches=True),
            r"n_envs \(1\) must be divisible by the number of minibatches per epoch "
            r"n_steps \* n_envs / batch_size = 64 \* 1 / 32 = 2,",
        ),
        (
            dict(env_segment_minibatches=True, batch_size=48),
            r"n_envs \(1\) must be divisible by the number of minibatches per epoch "
            r"n_steps \* n_envs / batch_size = 64 \* 1 / 48 = 1.33333,",
        ),
        (
            dict(env_segment_minibatches=True, batch_size=64),
            r"aux_batch_size \(32\) must be a multiple of n_steps \(64\)",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PPG("MlpPolicy", "CartPole-v1", **{**SMALL, **kwargs})


def test_aux_batch_size_above_the_aux_buffer_warns_and_uses_it_whole():
    # As PPO with a batch_size above n_steps * n_envs: a warning, then one minibatch per aux epoch
    with pytest.warns(UserWarning, match=r"aux_batch_size of 129.*2 \* 64 \* 1 = 128 states.*one minibatch of 128"):
        model = PPG("MlpPolicy", "CartPole-v1", **{**SMALL, "aux_batch_size": 129})
    model.learn(2 * 64)
    assert model._n_aux_phases == 1
    assert model._n_aux_updates == model.n_aux_epochs


def test_schedules_are_accepted_where_documented():
    schedule = LinearSchedule(0.2, 0.1, 1.0)
    model = PPG("MlpPolicy", "CartPole-v1", clip_range=schedule, clip_range_vf=schedule, aux_learning_rate=schedule, **SMALL)
    assert model.clip_range(1.0) == pytest.approx(0.2)
    assert model.clip_range_vf(0.0) == pytest.approx(0.1)
    assert model.aux_lr_schedule(1.0) == pytest.approx(0.2)


def test_policy_without_aux_head_is_refused():
    with pytest.raises(ValueError, match=r"auxiliary value head.*AuxActorCriticPolicy.*MlpPolicy"):
        PPG(ActorCriticPolicy, "CartPole-v1", **SMALL)


class NaNRewardEnv(gym.Wrapper):
    def step(self, action):
        obs, _reward, terminated, truncated, info = self.env.step(action)
        return obs, float("nan"), terminated, truncated, info


def test_non_finite_loss_stops_training_before_the_weights_break():
    model = PPG("MlpPolicy", NaNRewardEnv(gym.make("CartPole-v1")), seed=0, **SMALL)
    with pytest.raises(RuntimeError, match=r"PPG policy phase: .* is nan"):
        model.learn(64)
    for param in model.policy.parameters():
        assert th.isfinite(param).all()


def test_non_finite_aux_loss_names_the_aux_phase():
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    model.learn(64)
    # Corrupt one stored value target: only the aux phase reads it
    model.aux_buffer.returns[:] = np.nan
    with pytest.raises(RuntimeError, match="PPG aux phase: aux_value_loss is nan"):
        model.learn(64, reset_num_timesteps=False)
    for param in model.policy.parameters():
        assert th.isfinite(param).all()


def test_env_segment_minibatches_accept_whole_columns_and_ignore_an_unused_aux_batch_size():
    env = make_vec_env("CartPole-v1", n_envs=4)
    PPG("MlpPolicy", env, **{**SMALL, "batch_size": 128, "aux_batch_size": 128}, env_segment_minibatches=True)
    # Without an aux phase, aux_batch_size is never used, so it need not be whole segments
    PPG("MlpPolicy", env, **{**SMALL, "batch_size": 128, "n_aux_epochs": 0}, env_segment_minibatches=True)


def test_truncated_minibatch_warns_as_ppo_does():
    # SB3's test_ppo_warnings matches this sentence
    with pytest.warns(UserWarning, match="there will be a truncated mini-batch of size 1"):
        PPG("MlpPolicy", "CartPole-v1", **{**SMALL, "batch_size": 63})


@pytest.mark.parametrize("normalize_advantage", [True, "minibatch", "rollout"])
def test_a_one_state_rollout_is_refused_when_advantages_are_standardised(normalize_advantage):
    # As PPO: one standardised advantage carries no signal
    with pytest.raises(ValueError, match=r"n_steps \* n_envs must be greater than 1 .*got n_steps=1 and n_envs=1"):
        PPG("MlpPolicy", "Pendulum-v1", **{**SMALL, "n_steps": 1, "batch_size": 2}, normalize_advantage=normalize_advantage)
    PPG("MlpPolicy", "Pendulum-v1", **{**SMALL, "n_steps": 1, "batch_size": 1}, normalize_advantage=False)
