"""RecurrentPPG: PPG with LSTM policies, mirroring SB3-Contrib's tests/test_lstm.py plus what PPG's aux phase adds."""

import itertools

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common import envs
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.torch_layers import CombinedExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

import sb3_ppg.ppg.ppg as ppg_module
from sb3_ppg import RecurrentPPG
from sb3_ppg.common.distributions import distribution_from_params, distribution_params
from sb3_ppg.common.policies import AuxActorCriticPolicy
from sb3_ppg.ppg_recurrent.policies import RecurrentAuxActorCriticPolicy

ARCHS = ["dual", "detach", "shared"]


def small(arch: str = "dual", **kwargs) -> dict:
    """Settings under which the aux phase runs every other rollout of 32 steps, on a tiny LSTM."""
    settings = dict(n_steps=32, batch_size=32, n_epochs=2, n_value_epochs=2, n_policy_iterations=2, n_aux_epochs=2)
    settings.update(aux_batch_size=64, seed=0, policy_kwargs=dict(lstm_hidden_size=8, net_arch=[8], arch=arch))
    settings.update(kwargs)
    return settings


def frozen(**kwargs) -> dict:
    # A zero learning rate in both phases (a schedule: a float must be > 0), so the policy never changes
    return small(learning_rate=lambda _: 0.0, **kwargs)


def cartpole(n_envs: int = 2):
    # Random CartPole episodes last about 20 steps: every rollout of 32 has episode starts inside it
    return make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)


def collect_rollouts(model: RecurrentPPG, n_rollouts: int = 1) -> None:
    """Collect rollouts as ``learn`` does, each copied into the aux buffer, without training."""
    _, callback = model._setup_learn(n_rollouts * model.n_steps * model.n_envs, None)
    for _ in range(n_rollouts):
        assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
        model.aux_buffer.add_rollout(model.rollout_buffer)


@pytest.mark.parametrize("arch", ARCHS)
def test_replay_of_a_sequence_minibatch_reproduces_the_rollouts_log_probs_and_values(arch):
    model = RecurrentPPG("MlpLstmPolicy", cartpole(), **small(arch))
    collect_rollouts(model)
    assert model.rollout_buffer.episode_starts[1:].any()
    n_real = 0
    for samples in model.rollout_buffer.get(16):
        with th.no_grad():
            values, log_prob, _ = model.policy.evaluate_actions(
                samples.observations, samples.actions.long().flatten(), **model._evaluation_kwargs(samples)
            )
            only_values = model._minibatch_values(samples)
        assert th.allclose(log_prob, samples.old_log_prob, atol=1e-5)
        assert th.allclose(values.flatten(), samples.old_values, atol=1e-5)
        assert th.allclose(only_values, samples.old_values, atol=1e-5)
        n_real += len(log_prob)
    assert n_real == model.n_steps * model.n_envs


class RolloutRecorder:
    """Keeps, for every rollout the aux buffer takes, its actions, log-probs, entering states and the last states."""

    def __init__(self, model: RecurrentPPG):
        self.actions, self.log_probs, self.entering, self.last = [], [], [], []
        original_add = model.aux_buffer.add_rollout

        def recording_add(rollout_buffer):
            self.actions.append(rollout_buffer.actions.copy())
            self.log_probs.append(rollout_buffer.log_probs.copy())
            self.entering.append([rollout_buffer.hidden_states_pi[0].copy(), rollout_buffer.cell_states_pi[0].copy()])
            # train() runs right after the rollout: these are the states after its last step
            self.last.append([state.cpu().numpy().copy() for state in model._last_lstm_states.pi])
            original_add(rollout_buffer)

        model.aux_buffer.add_rollout = recording_add


def rollout_actions_and_log_probs(model: RecurrentPPG, recorder: RolloutRecorder) -> tuple[th.Tensor, th.Tensor]:
    """The recorded actions and log-probs, flat in the aux buffer's order (step by step, env by env)."""
    actions = th.as_tensor(np.concatenate(recorder.actions))
    # As the rollout buffers give them to train(): Discrete ones a flat long tensor, the others float rows
    discrete = isinstance(model.action_space, spaces.Discrete)
    actions = actions.reshape(-1).long() if discrete else actions.flatten(0, 1).float()
    return actions, th.as_tensor(np.concatenate(recorder.log_probs)).reshape(-1)


def snapshot_log_probs(model: RecurrentPPG, recorder: RolloutRecorder) -> tuple[th.Tensor, th.Tensor]:
    """The snapshot's log-probs of the actions taken, and those recorded at rollout time, state by state."""
    actions, rollout = rollout_actions_and_log_probs(model, recorder)
    params = model.aux_buffer.distribution_params[: len(actions)]
    return distribution_from_params(model.action_space, params).log_prob(actions), rollout


class AuxEpochRecorder:
    """Keeps each aux minibatch's segments, the distributions of the aux epoch and of the snapshot on it, its KL."""

    def __init__(self, model: RecurrentPPG, monkeypatch):
        self.segments, self.params, self.old_params, self.kls = [], [], [], []
        self.latest = None
        original_sequences = model.aux_buffer._sequences
        original_kl = ppg_module.policy_kl

        def recording_sequences(segments):
            self.latest = segments
            return original_sequences(segments)

        def recording_kl(old, new):
            # policy_kl runs on the minibatch the last _sequences call made; the snapshot's calls come before
            self.segments.append(self.latest)
            self.params.append(distribution_params(new))
            self.old_params.append(distribution_params(old))
            kl = original_kl(old, new)
            self.kls.append(kl.detach())
            return kl

        monkeypatch.setattr(model.aux_buffer, "_sequences", recording_sequences)
        monkeypatch.setattr(ppg_module, "policy_kl", recording_kl)

    def log_probs(self, model: RecurrentPPG, recorder: RolloutRecorder) -> tuple[th.Tensor, th.Tensor]:
        """The aux epochs' log-probs of the actions taken, and those recorded at rollout time, state by state."""
        actions, rollout = rollout_actions_and_log_probs(model, recorder)
        epochs, rollouts = [], []
        for segments, params in zip(self.segments, self.params, strict=True):
            inds = th.as_tensor(model.aux_buffer._states_of_segments(segments))
            epochs.append(distribution_from_params(model.action_space, params).log_prob(actions[inds]))
            rollouts.append(rollout[inds])
        return th.cat(epochs), th.cat(rollouts)


@pytest.mark.parametrize("recompute_lstm_states", [False, True])
@pytest.mark.parametrize("arch", ARCHS)
def test_the_first_aux_minibatch_has_kl_zero_and_later_ones_move(monkeypatch, arch, recompute_lstm_states):
    model = RecurrentPPG(
        "MlpLstmPolicy",
        cartpole(),
        recompute_lstm_states=recompute_lstm_states,
        **small(arch, learning_rate=0.01, aux_learning_rate=0.03),
    )
    aux_epochs = AuxEpochRecorder(model, monkeypatch)
    model.learn(2 * 32 * 2)
    # 2 rollouts * 2 envs = 4 segments, 2 per minibatch, 2 epochs
    kls = aux_epochs.kls
    assert len(kls) == 4
    # Up to float32 rounding; and the distributions themselves, as a KL hides small differences (their square)
    assert kls[0].abs().max().item() == pytest.approx(0.0, abs=1e-6)
    assert th.allclose(aux_epochs.params[0], aux_epochs.old_params[0], atol=1e-5)
    assert max(kl.mean().item() for kl in kls[1:]) > 1e-8


def short_segments(**kwargs) -> dict:
    """
    ``frozen`` with segments of 8 steps from a 32-unit LSTM: random CartPole episodes last about 20 steps, so most
    segments enter mid-episode, and a state dropped anywhere changes the log-probs well beyond float32 rounding.
    """
    settings = frozen(n_steps=8, batch_size=16, n_policy_iterations=4, aux_batch_size=16, **kwargs)
    settings["policy_kwargs"].update(lstm_hidden_size=32)
    return settings


def run_short_segments(model: RecurrentPPG, monkeypatch) -> tuple[RolloutRecorder, AuxEpochRecorder]:
    recorder, aux_epochs = RolloutRecorder(model), AuxEpochRecorder(model, monkeypatch)
    model.learn(4 * 8 * 2)
    # 4 rollouts * 2 envs = 8 segments, 2 per minibatch, 2 epochs
    assert len(aux_epochs.params) == 8
    segment_starts = model.aux_buffer.episode_starts[:: model.n_steps]
    assert (segment_starts == 0).sum() >= 4, "too few segments enter mid-episode: the test would check little"
    return recorder, aux_epochs


@pytest.mark.parametrize("arch", ARCHS)
def test_with_a_zero_learning_rate_every_aux_minibatch_is_the_rollouts_policy_state_by_state(monkeypatch, arch):
    model = RecurrentPPG("MlpLstmPolicy", cartpole(), **short_segments(arch=arch))
    recorder, aux_epochs = run_short_segments(model, monkeypatch)
    snapshot, rollout = snapshot_log_probs(model, recorder)
    assert th.allclose(snapshot, rollout, atol=1e-5)
    # Log-probs, not only the KL: the KL of a small change is of its second order and hides it
    epochs, rollout = aux_epochs.log_probs(model, recorder)
    assert len(epochs) == 4 * 8 * 2 * 2
    assert th.allclose(epochs, rollout, atol=1e-5)
    assert max(kl.abs().max().item() for kl in aux_epochs.kls) == pytest.approx(0.0, abs=1e-6)


def test_an_aux_phase_that_dropped_the_hidden_states_would_fail_the_snapshot_check(monkeypatch):
    # The test above compares the snapshot with the rollout's own log-probs: zero the stored states and it must fail
    model = RecurrentPPG("MlpLstmPolicy", cartpole(), **short_segments())
    original_sequences = model.aux_buffer._sequences

    def stateless_sequences(segments):
        samples = original_sequences(segments)
        zeros = tuple(th.zeros_like(state) for state in samples.lstm_states.pi)
        return samples._replace(lstm_states=RNNStates(zeros, zeros))

    monkeypatch.setattr(model.aux_buffer, "_sequences", stateless_sequences)
    recorder, _ = run_short_segments(model, monkeypatch)
    snapshot, rollout = snapshot_log_probs(model, recorder)
    assert not th.allclose(snapshot, rollout, atol=1e-5)


def test_aux_epochs_that_dropped_the_hidden_states_would_fail_the_zero_learning_rate_test(monkeypatch):
    # The snapshot keeps its states: only the minibatches the aux epochs train on lose them
    model = RecurrentPPG("MlpLstmPolicy", cartpole(), **short_segments())
    original_get = model.aux_buffer.get

    def stateless_get(batch_size):
        for samples in original_get(batch_size):
            zeros = tuple(th.zeros_like(state) for state in samples.lstm_states.pi)
            yield samples._replace(lstm_states=RNNStates(zeros, zeros))

    monkeypatch.setattr(model.aux_buffer, "get", stateless_get)
    recorder, aux_epochs = run_short_segments(model, monkeypatch)
    snapshot, rollout = snapshot_log_probs(model, recorder)
    assert th.allclose(snapshot, rollout, atol=1e-5)
    epochs, rollout = aux_epochs.log_probs(model, recorder)
    assert not th.allclose(epochs, rollout, atol=1e-5)


def test_the_state_stored_at_the_start_of_a_rollout_is_the_last_state_of_the_one_before():
    model = RecurrentPPG("MlpLstmPolicy", cartpole(), **small())
    recorder = RolloutRecorder(model)
    model.learn(4 * 32 * 2)
    assert len(recorder.entering) == 4
    for k in range(3):
        for entering, last in zip(recorder.entering[k + 1], recorder.last[k], strict=True):
            assert np.abs(entering).max() > 0
            np.testing.assert_array_equal(entering, last)
    # And the aux buffer stores exactly these entering states
    stored = model.aux_buffer.segment_states
    np.testing.assert_array_equal(stored[1, 0], recorder.entering[3][0])


def test_recomputed_states_equal_the_stored_ones_when_the_weights_did_not_change():
    # aux_batch_size of one segment: the replay runs one env at a time
    model = RecurrentPPG("MlpLstmPolicy", cartpole(), recompute_lstm_states=True, **frozen(aux_batch_size=32))
    buffer = model.aux_buffer
    original_recompute = buffer.recompute_lstm_states
    pairs = []

    def recording_recompute(states_after, chunk_size):
        assert chunk_size == 32
        before = buffer.segment_states.copy()
        original_recompute(states_after, chunk_size)
        pairs.append((before, buffer.segment_states.copy()))

    buffer.recompute_lstm_states = recording_recompute
    model.learn(2 * 32 * 2)
    ((before, after),) = pairs
    assert np.abs(before[1]).max() > 0
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_recomputed_states_follow_the_current_policy_in_passes_of_at_most_chunk_size_states():
    model = RecurrentPPG("MlpLstmPolicy", cartpole(3), **small(learning_rate=0.01))
    collect_rollouts(model, 2)
    buffer = model.aux_buffer
    stored = buffer.segment_states.copy()
    with th.no_grad():
        for param in model.policy.lstm_actor.parameters():
            param.add_(0.1)
    recomputed, pass_sizes = {}, []

    def recording_states_after(obs, lstm_states, episode_starts):
        pass_sizes.append(len(obs))
        return model.policy.lstm_states_after(obs, lstm_states, episode_starts)

    # Chunks of 2 segments (3 envs: passes of 2 and 1 env), of 1, and all 3 envs in one pass
    for chunk_size in [64, 32, 96]:
        buffer.segment_states[:] = stored
        pass_sizes.clear()
        buffer.recompute_lstm_states(recording_states_after, chunk_size)
        assert max(pass_sizes) <= chunk_size and sum(pass_sizes) == 32 * 3
        recomputed[chunk_size] = buffer.segment_states.copy()
    # The first segment's state has no history to replay; the second's is the changed policy's
    np.testing.assert_array_equal(recomputed[64][0], stored[0])
    assert not np.allclose(recomputed[64][1], stored[1], atol=1e-4)
    # Cut in groups of envs or not, the replay is the same
    np.testing.assert_allclose(recomputed[64], recomputed[96], atol=1e-6)
    np.testing.assert_allclose(recomputed[32], recomputed[96], atol=1e-6)


def aux_losses(model: RecurrentPPG, samples) -> list[th.Tensor]:
    distribution, aux_values, values = model.policy.evaluate_aux(samples.observations, **model._evaluation_kwargs(samples))
    kl = ppg_module.policy_kl(model._snapshot_distribution(samples), distribution).mean()
    return [kl, ppg_module.aux_value_loss(aux_values, samples.returns), ppg_module.value_loss(values, samples.returns)]


@pytest.mark.parametrize("arch", ARCHS)
def test_garbage_in_the_padded_steps_changes_no_loss(arch):
    model = RecurrentPPG("MlpLstmPolicy", cartpole(), **small(arch, aux_learning_rate=0.03))
    model.learn(2 * 32 * 2)
    # The aux buffer still holds the last cycle (reset only rewinds it)
    model.aux_buffer.pos = model.aux_buffer.buffer_size
    samples = next(model.aux_buffer.get(64))
    assert (~samples.mask).any(), "no padding in this minibatch: the test would check nothing"
    garbage = samples.observations.clone()
    garbage[~samples.mask] = 1e3 * th.randn_like(garbage[~samples.mask])
    padded_starts = samples.episode_starts.clone()
    padded_starts[~samples.mask] = 1.0
    with th.no_grad():
        clean = aux_losses(model, samples)
        dirty = aux_losses(model, samples._replace(observations=garbage, episode_starts=padded_starts))
    for clean_loss, dirty_loss in zip(clean, dirty, strict=True):
        assert th.isfinite(clean_loss) and clean_loss == dirty_loss

    collect_rollouts(model)
    rollout_samples = next(model.rollout_buffer.get(48))
    mask = rollout_samples.mask
    assert (~mask).any()
    garbage = rollout_samples.observations.clone()
    garbage[~mask] = 1e3
    with th.no_grad():
        clean = model._policy_losses(rollout_samples, 0.2)
        dirty = model._policy_losses(rollout_samples._replace(observations=garbage), 0.2)
    for clean_term, dirty_term in zip(clean, dirty, strict=True):
        assert th.equal(clean_term, dirty_term)


def test_an_episode_start_mid_sequence_is_two_sequences_the_second_from_zero_states():
    policy = RecurrentPPG("MlpLstmPolicy", cartpole(1), **small()).policy
    th.manual_seed(0)
    obs, actions = th.randn(8, 4), th.randint(0, 2, (8,))
    entering = tuple(th.randn(1, 1, 8) for _ in range(2))
    starts = th.zeros(8)
    starts[5] = 1.0
    with th.no_grad():
        one = policy.evaluate_actions(obs, actions, RNNStates(entering, entering), starts)
        zeros = tuple(th.zeros(1, 1, 8) for _ in range(2))
        # Two sequences of one batch: steps 0-4 from the entering state, steps 5-7 from zeros padded by 2 to 5
        padded_obs = th.cat([obs[:5], obs[5:], th.zeros(2, 4)])
        two_states = tuple(th.cat([e, z], dim=1) for e, z in zip(entering, zeros, strict=True))
        mask = th.tensor([True] * 8 + [False] * 2)
        two = policy.evaluate_actions(padded_obs, actions, RNNStates(two_states, two_states), th.zeros(10), mask)
        restarted = policy.evaluate_actions(obs[5:], actions[5:], RNNStates(zeros, zeros), th.zeros(3))
    for from_one, from_two in zip(one, two, strict=True):
        assert th.allclose(from_one, from_two, atol=1e-6)
    assert th.allclose(one[1][5:], restarted[1], atol=1e-6)
    # Without the reset, the second sequence would differ: the entering state matters
    with th.no_grad():
        carried = policy.evaluate_actions(obs, actions, RNNStates(entering, entering), th.zeros(8))
    assert not th.allclose(carried[1][5:], one[1][5:], atol=1e-4)


def grad_reaches(module: th.nn.Module) -> bool:
    return any(param.grad is not None and param.grad.abs().sum() > 0 for param in module.parameters())


@pytest.mark.parametrize("arch", ARCHS)
def test_each_arch_shares_and_trains_the_lstms_as_documented(arch):
    model = RecurrentPPG("MlpLstmPolicy", cartpole(), **small(arch))
    policy = model.policy
    collect_rollouts(model)
    samples = next(model.rollout_buffer.get(64))
    kwargs = model._evaluation_kwargs(samples)
    actor_ids = {id(param) for param in policy.actor_parameters}
    critic_ids = {id(param) for param in policy.critic_parameters}
    assert all(id(param) in actor_ids for param in policy.lstm_actor.parameters())
    assert (policy.lstm_critic is not None) == (arch == "dual")
    if arch == "dual":
        assert all(id(param) in critic_ids for param in policy.lstm_critic.parameters())
        assert policy.pi_features_extractor is not policy.vf_features_extractor
    # Every parameter is in the aux optimizer, the LSTMs included
    aux_ids = {id(param) for group in policy.aux_optimizer.param_groups for param in group["params"]}
    assert aux_ids == {id(param) for param in policy.parameters()}

    policy.zero_grad()
    values, _, _ = policy.evaluate_actions(samples.observations, samples.actions.long().flatten(), **kwargs)
    ((values.flatten() - samples.returns) ** 2).mean().backward()
    # The value loss trains the actor's LSTM only when the trunk is shared
    assert grad_reaches(policy.lstm_actor) == (arch == "shared")
    if arch == "dual":
        assert grad_reaches(policy.lstm_critic)

    policy.zero_grad()
    _, aux_values, _ = policy.evaluate_aux(samples.observations, **kwargs)
    aux_values.pow(2).mean().backward()
    # The aux value head reads the actor's latent after its LSTM: the aux phase trains the actor's memory
    assert grad_reaches(policy.lstm_actor)


ACTION_SPACE_ENVS = pytest.mark.parametrize(
    "env",
    [
        lambda: envs.IdentityEnv(4),
        lambda: envs.IdentityEnvBox(eps=0.5),
        lambda: envs.IdentityEnvMultiDiscrete(3),
        lambda: envs.IdentityEnvMultiBinary(3),
    ],
    ids=["Discrete", "Box", "MultiDiscrete", "MultiBinary"],
)


@ACTION_SPACE_ENVS
def test_action_spaces_replay_state_by_state_through_the_aux_phase(monkeypatch, env):
    # Identity episodes last 100 steps: every segment of 8 after the first enters mid-episode, from a stored state
    model = RecurrentPPG("MlpLstmPolicy", make_vec_env(env, n_envs=2), **short_segments())
    recorder, aux_epochs = RolloutRecorder(model), AuxEpochRecorder(model, monkeypatch)
    model.learn(4 * 8 * 2)
    assert len(aux_epochs.params) == 8
    snapshot, rollout = snapshot_log_probs(model, recorder)
    assert th.allclose(snapshot, rollout, atol=1e-5)
    epochs, rollout = aux_epochs.log_probs(model, recorder)
    assert len(epochs) == 4 * 8 * 2 * 2
    assert th.allclose(epochs, rollout, atol=1e-5)


@ACTION_SPACE_ENVS
def test_action_spaces_train_through_the_aux_phase(monkeypatch, env):
    model = RecurrentPPG("MlpLstmPolicy", make_vec_env(env, n_envs=2), **small(learning_rate=0.01, aux_learning_rate=0.03))
    aux_epochs = AuxEpochRecorder(model, monkeypatch)
    model.learn(2 * 32 * 2)
    assert model._n_aux_phases == 1
    assert aux_epochs.kls[0].abs().max().item() == pytest.approx(0.0, abs=1e-6)
    # Later minibatches see a policy the aux epochs moved, and behaviour cloning pulls it back: a KL above 0
    assert max(kl.mean().item() for kl in aux_epochs.kls[1:]) > 1e-8


def test_envs_in_subprocesses_train_as_envs_in_process():
    # Multi processing: where the envs run changes nothing the model sees or learns
    weights = []
    for vec_env_cls in (DummyVecEnv, SubprocVecEnv):
        env = make_vec_env("CartPole-v1", n_envs=2, seed=0, vec_env_cls=vec_env_cls)
        model = RecurrentPPG("MlpLstmPolicy", env, **small())
        model.learn(2 * 32 * 2)
        env.close()
        assert model._n_aux_phases == 1
        weights.append([p.detach().clone() for p in model.policy.parameters()])
    assert all(th.equal(a, b) for a, b in zip(*weights, strict=True))


def test_image_observations_with_cnn_lstm_policy():
    env = make_vec_env(lambda: envs.FakeImageEnv(screen_height=36, screen_width=36, n_channels=1), n_envs=2)
    settings = small()
    settings["policy_kwargs"].update(features_extractor_kwargs=dict(features_dim=16))
    model = RecurrentPPG("CnnLstmPolicy", env, **settings)
    model.learn(2 * 32 * 2)
    assert model._n_aux_phases == 1
    assert model.aux_buffer.observations.dtype == np.uint8


@pytest.mark.parametrize("arch", ARCHS)
def test_dict_observations_with_multi_input_lstm_policy(arch):
    model = RecurrentPPG("MultiInputLstmPolicy", make_vec_env(envs.SimpleMultiObsEnv, n_envs=2), **small(arch))
    model.learn(2 * 32 * 2)
    assert model._n_aux_phases == 1


def test_dict_observations_with_mlp_lstm_policy_and_a_dict_extractor():
    settings = small()
    settings["policy_kwargs"].update(features_extractor_class=CombinedExtractor)
    model = RecurrentPPG("MlpLstmPolicy", make_vec_env(envs.SimpleMultiObsEnv, n_envs=2), **settings)
    model.learn(2 * 32 * 2)
    assert model._n_aux_phases == 1


def rollout_predictions(model: RecurrentPPG, observations: np.ndarray, starts: np.ndarray) -> list:
    state, actions = None, []
    for obs, start in zip(observations, starts, strict=True):
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        actions.append((action, state))
    return actions


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_keeps_the_policy_and_stateful_predict(tmp_path, arch):
    model = RecurrentPPG("MlpLstmPolicy", cartpole(), **small(arch=arch))
    model.learn(2 * 32 * 2)
    model.save(tmp_path / "model.zip")
    loaded = RecurrentPPG.load(tmp_path / "model.zip", env=cartpole())
    assert loaded.policy.arch == arch and loaded.policy.lstm_actor.hidden_size == 8
    assert (loaded.policy.lstm_critic is not None) == (arch == "dual")
    for name, param in model.policy.state_dict().items():
        assert th.equal(param, loaded.policy.state_dict()[name]), name
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(12, 2, 4)).astype(np.float32)
    starts = np.zeros((12, 2), dtype=bool)
    starts[0] = starts[6, 1] = True
    before = rollout_predictions(model, observations, starts)
    after = rollout_predictions(loaded, observations, starts)
    for (action, state), (loaded_action, loaded_state) in zip(before, after, strict=True):
        np.testing.assert_array_equal(action, loaded_action)
        np.testing.assert_allclose(state[0], loaded_state[0], atol=1e-6)
    # The state is carried: predict from zero states at every step gives other hidden states
    assert not np.allclose(before[-1][1][0], model.predict(observations[-1], deterministic=True)[1][0])
    loaded.learn(64)


def test_evaluate_policy_eval_callback_and_vec_normalize(tmp_path):
    env = VecNormalize(cartpole())
    eval_env = VecNormalize(cartpole(1), training=False)
    callback = EvalCallback(eval_env, eval_freq=32, n_eval_episodes=2, log_path=str(tmp_path))
    model = RecurrentPPG("MlpLstmPolicy", env, **small())
    model.learn(2 * 32 * 2, callback=callback)
    assert callback.evaluations_results and len(callback.evaluations_results[0]) == 2
    # EvalCallback gave the eval env the training env's normalisation
    np.testing.assert_allclose(eval_env.obs_rms.mean, env.obs_rms.mean)
    # evaluate_policy carries the LSTM state: each predict gets the state the previous one returned, and its
    # episodes are the ones a stateful predict loop plays
    calls = []
    predict = model.predict

    def recording_predict(observation, state=None, episode_start=None, deterministic=False):
        action, next_state = predict(observation, state=state, episode_start=episode_start, deterministic=deterministic)
        calls.append((state, next_state))
        return action, next_state

    model.predict = recording_predict
    returns, _ = evaluate_policy(model, cartpole(1), n_eval_episodes=3, return_episode_rewards=True)
    model.predict = predict
    assert len(calls) > 3 and calls[0][0] is None
    assert all(state is previous_next for (_, previous_next), (state, _) in itertools.pairwise(calls))
    play_env, played, length = cartpole(1), [], 0
    observation, state, start = play_env.reset(), None, np.ones(1, dtype=bool)
    while len(played) < 3:
        action, state = model.predict(observation, state=state, episode_start=start, deterministic=True)
        observation, _, start, _ = play_env.step(action)
        length += 1
        if start[0]:
            played, length = [*played, length], 0
    assert returns == played


def test_bad_input_is_refused_naming_the_argument():
    with pytest.raises(ValueError, match="RecurrentAuxActorCriticPolicy"):
        RecurrentPPG(AuxActorCriticPolicy, "CartPole-v1", **small())
    with pytest.raises(ValueError, match="shared_lstm"):
        RecurrentPPG("MlpLstmPolicy", "CartPole-v1", **small(policy_kwargs=dict(arch="shared", shared_lstm=True)))
    with pytest.raises(ValueError, match="enable_critic_lstm"):
        RecurrentPPG("MlpLstmPolicy", "CartPole-v1", **small(policy_kwargs=dict(arch="dual", enable_critic_lstm=False)))
    # SB3-Contrib's own conflicting pair (its test_check): the message names the flag the arch came from
    with pytest.raises(ValueError, match=r"shared_lstm=True, that is arch='detach' contradicts enable_critic_lstm=True"):
        RecurrentPPG("MlpLstmPolicy", "CartPole-v1", **small(policy_kwargs=dict(shared_lstm=True, enable_critic_lstm=True)))
    with pytest.raises(
        ValueError, match=r"shared_lstm=True, that is arch='detach' contradicts share_features_extractor=False"
    ):
        flags = dict(shared_lstm=True, enable_critic_lstm=False, share_features_extractor=False)
        RecurrentPPG("MlpLstmPolicy", "CartPole-v1", **small(policy_kwargs=flags))
    with pytest.raises(
        ValueError, match=r"enable_critic_lstm=True, that is arch='dual' contradicts share_features_extractor=True"
    ):
        flags = dict(enable_critic_lstm=True, share_features_extractor=True)
        RecurrentPPG("MlpLstmPolicy", "CartPole-v1", **small(policy_kwargs=flags))
    with pytest.raises(ValueError, match="rollout_buffer_class"):
        RecurrentPPG("MlpLstmPolicy", "CartPole-v1", **small(rollout_buffer_class=object))
    with pytest.raises(ValueError, match="env_segment_minibatches must be False"):
        RecurrentPPG("MlpLstmPolicy", "CartPole-v1", **small(env_segment_minibatches=True))
    with pytest.raises(ValueError, match="rollout_buffer_kwargs must be empty"):
        RecurrentPPG("MlpLstmPolicy", "CartPole-v1", **small(rollout_buffer_kwargs=dict(gae_lambda=0.9)))
    # A truthy string is not a flag
    with pytest.raises(ValueError, match="recompute_lstm_states must be True or False, got 'no'"):
        RecurrentPPG("MlpLstmPolicy", "CartPole-v1", recompute_lstm_states="no", **small())
    # Their default extractors cannot read a Dict: refused here rather than failing in learn()
    for policy in ["MlpLstmPolicy", "CnnLstmPolicy"]:
        with pytest.raises(ValueError, match=f"MultiInputLstmPolicy` with a Dict observation space, not {policy}"):
            RecurrentPPG(policy, make_vec_env(envs.SimpleMultiObsEnv, n_envs=2), **small())


def test_positional_arguments_are_ppgs():
    # The third positional argument is learning_rate, as in PPG and RecurrentPPO, never a RecurrentPPG option
    model = RecurrentPPG("MlpLstmPolicy", "CartPole-v1", 1e-3, 32, **{k: v for k, v in small().items() if k != "n_steps"})
    assert (model.learning_rate, model.n_steps, model.recompute_lstm_states) == (1e-3, 32, False)


@pytest.mark.parametrize("handle_timeout_termination", [True, False])
def test_truncated_steps_bootstrap_only_with_timeout_handling(handle_timeout_termination):
    """RecurrentPPO's rollout loop goes through PPG's rollout env, so the option holds here too."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from tests.test_gae import EPISODE, N_STEPS, CountingEnv

    env = DummyVecEnv([lambda: CountingEnv(truncate=True)])
    model = RecurrentPPG("MlpLstmPolicy", env, n_steps=N_STEPS, batch_size=N_STEPS, aux_batch_size=N_STEPS, seed=0,
                         handle_timeout_termination=handle_timeout_termination)  # fmt: skip
    _, callback = model._setup_learn(N_STEPS)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, N_STEPS)
    rewards = model.rollout_buffer.rewards[:, 0]
    truncated_steps = np.arange(N_STEPS) % EPISODE == EPISODE - 1
    assert np.array_equal(rewards[~truncated_steps], np.ones((~truncated_steps).sum()))
    # gamma * V(terminal observation) is added to the truncated steps' reward only when timeouts are handled
    assert np.all(rewards[truncated_steps] != 1.0) == handle_timeout_termination
    assert np.all(rewards[truncated_steps] == 1.0) != handle_timeout_termination


def test_sb3_contribs_flags_map_to_the_archs():
    def arch_of(**policy_kwargs) -> str:
        policy = RecurrentPPG("MlpLstmPolicy", "CartPole-v1", **small(policy_kwargs=policy_kwargs)).policy
        assert isinstance(policy, RecurrentAuxActorCriticPolicy)
        return policy.arch

    assert arch_of() == "dual"
    assert arch_of(shared_lstm=True) == "detach"
    assert arch_of(enable_critic_lstm=True) == "dual"
    assert arch_of(shared_lstm=False, enable_critic_lstm=True) == "dual"
    assert arch_of(arch="shared", enable_critic_lstm=False) == "shared"
    assert arch_of(shared_lstm=True, enable_critic_lstm=False) == "detach"
    # SB3-Contrib's critic without an LSTM has no counterpart: refused, not mapped to another arch
    with pytest.raises(ValueError, match="enable_critic_lstm=False without shared_lstm=True"):
        arch_of(enable_critic_lstm=False)
    # SB3's flag: False is RecurrentPPO's separate extractors and LSTMs; True alone would keep RecurrentPPO's critic
    # LSTM there but share the LSTM here, so it needs arch or shared_lstm
    assert arch_of(share_features_extractor=False) == "dual"
    assert arch_of(share_features_extractor=True, arch="shared") == "shared"
    assert arch_of(share_features_extractor=True, shared_lstm=True) == "detach"
    with pytest.raises(ValueError, match=r"share_features_extractor=True alone is ambiguous.*Pass arch instead"):
        arch_of(share_features_extractor=True)


@pytest.mark.parametrize(
    ("arch", "contrib_flags"),
    [
        ("dual", dict(shared_lstm=False, enable_critic_lstm=True, share_features_extractor=False)),
        ("detach", dict(shared_lstm=True, enable_critic_lstm=False)),
        ("shared", dict(shared_lstm=True, enable_critic_lstm=False)),
    ],
)
def test_every_weight_but_the_aux_head_is_recurrent_ppos_from_the_same_seed(arch, contrib_flags):
    # The aux head draws from a forked generator, so the pair starts from the same weights and a comparison is paired
    from sb3_contrib import RecurrentPPO

    kwargs = dict(n_steps=32, batch_size=32, seed=0)
    lstm = dict(lstm_hidden_size=8, net_arch=[8])
    ours = RecurrentPPG("MlpLstmPolicy", cartpole(), policy_kwargs=dict(lstm, arch=arch), **kwargs).policy.state_dict()
    contrib = RecurrentPPO("MlpLstmPolicy", cartpole(), policy_kwargs=dict(lstm, **contrib_flags), **kwargs)
    theirs = contrib.policy.state_dict()
    assert set(ours) - set(theirs) == {"aux_value_net.weight", "aux_value_net.bias"}
    for name, param in theirs.items():
        assert th.equal(ours[name], param), name
