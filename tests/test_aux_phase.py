"""Regression tests for the pitfalls other PPG implementations fell into."""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv, IdentityEnvBox
from stable_baselines3.common.utils import LinearSchedule

import sb3_ppg.ppg.ppg as ppg_module
from sb3_ppg import PPG
from tests.conftest import SMALL


def count_aux_phases(model):
    calls = []
    original = model._train_aux_phase

    def wrapped():
        calls.append((model.num_timesteps, model.aux_buffer.n_samples))
        original()

    model._train_aux_phase = wrapped
    return calls


@pytest.mark.parametrize("n_policy_iterations", [1, 3])
def test_aux_phase_once_per_n_pi_rollouts_across_learn_calls(n_policy_iterations):
    kwargs = dict(SMALL, n_policy_iterations=n_policy_iterations)
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **kwargs)
    calls = count_aux_phases(model)
    rollout = 64
    # 4 rollouts, then 5 more in a second call that continues the count
    model.learn(4 * rollout)
    model.learn(5 * rollout, reset_num_timesteps=False)
    expected_steps = [rollout * k for k in range(1, 10) if k % n_policy_iterations == 0]
    assert [steps for steps, _ in calls] == expected_steps
    # Each aux phase sees exactly N_pi * n_steps * n_envs states
    assert {samples for _, samples in calls} == {n_policy_iterations * rollout}


def test_aux_phase_sees_every_stored_state_once_per_epoch():
    model = PPG("MlpPolicy", make_vec_env("CartPole-v1", n_envs=3, seed=0), seed=0, **dict(SMALL, aux_batch_size=50))
    seen = []
    original = model.policy.evaluate_aux

    def evaluate_aux(obs):
        seen.append(len(obs))
        return original(obs)

    model.policy.evaluate_aux = evaluate_aux
    model.learn(2 * 64 * 3)
    n_samples = 2 * 64 * 3
    assert sum(seen) == SMALL["n_aux_epochs"] * n_samples
    assert max(seen) == 50


def test_first_aux_minibatch_has_zero_kl_and_later_ones_do_not(monkeypatch):
    kls = []
    original = ppg_module.policy_kl

    def recording_kl(old, new):
        kl = original(old, new)
        kls.append(kl.mean().item())
        return kl

    monkeypatch.setattr(ppg_module, "policy_kl", recording_kl)
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **dict(SMALL, n_aux_epochs=3))
    model.learn(2 * 64)
    assert len(kls) == 3 * (2 * 64 // 32)
    # The snapshot equals the policy before the first step...
    assert kls[0] == pytest.approx(0.0, abs=1e-7)
    # ...and is not the live policy: once the actor moves, the KL does too
    assert max(kls[1:]) > 1e-8


def test_behaviour_cloning_kl_runs_from_the_snapshot_to_the_live_policy(monkeypatch):
    # KL(pi_old || pi): the first argument is the frozen snapshot, the second the policy being trained
    arguments = []
    original = ppg_module.policy_kl

    def recording_kl(old, new):
        arguments.append((old.distribution.logits.requires_grad, new.distribution.logits.requires_grad))
        return original(old, new)

    monkeypatch.setattr(ppg_module, "policy_kl", recording_kl)
    PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL).learn(2 * 64)
    assert arguments
    assert set(arguments) == {(False, True)}


@pytest.mark.parametrize("normalize_aux_targets", [True, False])
def test_aux_head_fits_standardised_targets_and_the_critic_raw_ones(monkeypatch, normalize_aux_targets):
    aux_targets, critic_targets = [], []
    original_aux, original_value = ppg_module.aux_value_loss, ppg_module.value_loss

    def recording_aux(values, targets):
        aux_targets.append(targets.detach().clone())
        return original_aux(values, targets)

    def recording_value(values, targets, *args):
        critic_targets.append(targets.detach().clone())
        return original_value(values, targets, *args)

    monkeypatch.setattr(ppg_module, "aux_value_loss", recording_aux)
    monkeypatch.setattr(ppg_module, "value_loss", recording_value)
    # No value epochs, so every value loss is the aux phase's critic loss; one aux epoch sees each state once
    kwargs = dict(SMALL, n_value_epochs=0, n_aux_epochs=1, normalize_aux_targets=normalize_aux_targets)
    PPG("MlpPolicy", "CartPole-v1", seed=0, **kwargs).learn(2 * 64)
    aux, raw = th.cat(aux_targets), th.cat(critic_targets)
    assert len(raw) == 2 * 64
    assert raw.std() > 1.5  # CartPole's returns are far from standardised
    if normalize_aux_targets:
        expected = (raw - raw.mean()) / (raw.std(unbiased=False) + 1e-8)
        assert aux.mean().item() == pytest.approx(0.0, abs=1e-5)
    else:
        expected = raw
    assert th.allclose(aux, expected, atol=1e-5)


def parameters(model):
    return {name: param.detach().clone() for name, param in model.policy.named_parameters()}


def test_aux_phase_changes_actor_aux_head_and_critic():
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    states = []
    original = model._train_aux_phase

    def wrapped():
        states.append(parameters(model))
        original()
        states.append(parameters(model))

    model._train_aux_phase = wrapped
    model.learn(2 * 64)
    before, after = states
    for prefix in ("aux_value_net", "mlp_extractor.policy_net", "action_net", "value_net", "mlp_extractor.value_net"):
        changed = [name for name in before if name.startswith(prefix) and not th.equal(before[name], after[name])]
        assert changed, f"the aux phase did not change {prefix}"


def test_n_aux_epochs_zero_skips_the_aux_phase_and_stores_nothing():
    # PPO run through PPG (the paper's baseline) must not hold N_pi rollouts of images for nothing
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **dict(SMALL, n_aux_epochs=0, n_policy_iterations=1000))
    assert model.aux_buffer.observations.nbytes == 0
    model.learn(2 * 64)
    assert model._n_aux_phases == 0
    assert model.aux_buffer.n_samples == 0


def test_aux_buffer_copies_rollouts():
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **dict(SMALL, n_policy_iterations=3))
    model.learn(2 * 64)
    rollout_returns = model.rollout_buffer.returns
    stored = model.aux_buffer.returns[64:128].copy()
    # the policy phase flattened the rollout buffer, the aux buffer kept its own layout and values
    assert not np.shares_memory(model.aux_buffer.returns, rollout_returns)
    assert np.allclose(np.sort(stored.ravel()), np.sort(rollout_returns.ravel()))
    assert not np.allclose(model.aux_buffer.returns[:64], model.aux_buffer.returns[64:128])
    model.rollout_buffer.reset()
    assert np.array_equal(model.aux_buffer.returns[64:128], stored)


def test_aux_buffer_refuses_a_flattened_rollout():
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **dict(SMALL, n_policy_iterations=3))
    model.learn(64)
    with pytest.raises(RuntimeError, match="flattened"):
        model.aux_buffer.add_rollout(model.rollout_buffer)


def test_aux_buffer_keeps_uint8_images():
    env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1)
    model = PPG("CnnPolicy", env, seed=0, **SMALL)
    assert model.aux_buffer.observations.dtype == np.uint8
    assert model.aux_buffer.observations.shape == (2 * 64, 1, 1, 36, 36)
    model.learn(64)
    assert model.aux_buffer.observations[:64].any()


def test_value_targets_keep_truncation_bootstrap():
    # IdentityEnvBox episodes end by truncation only; SB3 adds gamma * V(terminal obs) to those rewards
    model = PPG("MlpPolicy", IdentityEnvBox(ep_length=5), seed=0, **dict(SMALL, n_policy_iterations=3))
    model.learn(64)
    # The stored targets are exactly the rollout buffer's returns, bootstrap included, never recomputed
    assert np.array_equal(model.aux_buffer.returns[:64, 0], model.rollout_buffer.returns.ravel())


def test_aux_learning_rate_follows_its_schedule_and_is_not_zero_at_the_end():
    lrs = []
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, aux_learning_rate=LinearSchedule(1e-3, 0.0, 1.0), **SMALL)
    original = model._train_aux_phase

    def wrapped():
        original()
        lrs.append(model.policy.aux_optimizer.param_groups[0]["lr"])

    model._train_aux_phase = wrapped
    model.learn(4 * 64)
    # Phases after rollouts 2 and 4 use the progress at the start of their last rollout: 3/4 and 1/4 remaining
    assert lrs == pytest.approx([1e-3 * 0.75, 1e-3 * 0.25])
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(3e-4)


def test_a_new_run_starts_with_an_empty_aux_buffer():
    # One rollout of a first run must not count towards the aux phase of the next run, nor be distilled in it
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    model.learn(64)
    assert model.aux_buffer.n_samples == 64
    calls = count_aux_phases(model)
    model.learn(64, reset_num_timesteps=True)
    assert calls == []
    assert model.aux_buffer.n_samples == 64
    # Continuing the same run keeps counting
    model.learn(64, reset_num_timesteps=False)
    assert calls == [(2 * 64, 2 * 64)]


def test_set_env_empties_the_aux_buffer():
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    model.learn(64)
    model.set_env(make_vec_env("CartPole-v1", n_envs=1, seed=1))
    assert model.aux_buffer.n_samples == 0
    calls = count_aux_phases(model)
    model.learn(64, reset_num_timesteps=False)
    assert calls == []
