import json
import os
import stat
import warnings
import zipfile

import numpy as np
import pytest
import torch as th
from sb3_contrib.common.envs import InvalidActionEnvDiscrete
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv, SimpleMultiObsEnv
from stable_baselines3.common.utils import set_random_seed

from sb3_ppg import PPG, MaskablePPG, RecurrentPPG
from sb3_ppg.common import distributed
from sb3_ppg.common.checkpoints import AuxBufferFileError, atomic_path
from sb3_ppg.common.policies import AuxActorCriticCnnPolicy, AuxActorCriticPolicy
from tests import data_parallel_script as script
from tests.conftest import SMALL, aux_phase_recorder
from tests.test_data_parallel import rank_errors, rank_results, run_scenario


def test_aux_buffer_is_not_saved(tmp_path):
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **dict(SMALL, n_policy_iterations=2000, aux_batch_size=64))
    model.learn(3 * 64)
    assert model.aux_buffer.n_samples == 3 * 64
    model.save(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        data = json.loads(archive.read("data"))
        names = archive.namelist()
    assert "aux_buffer" not in data
    assert "policy.aux_optimizer.pth" in names
    # The buffer's arrays (2 MB of observations alone) are not in the file either
    assert model.aux_buffer.observations.nbytes > 2_000_000
    assert (tmp_path / "model.zip").stat().st_size < 300_000


def test_aux_optimizer_state_round_trips(tmp_path):
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    model.learn(2 * 64)
    state = model.policy.aux_optimizer.state_dict()["state"]
    assert len(state) > 0
    model.save(tmp_path / "model")
    loaded = PPG.load(tmp_path / "model", env=model.get_env())
    loaded_state = loaded.policy.aux_optimizer.state_dict()["state"]
    assert loaded_state.keys() == state.keys()
    for key in state:
        assert th.equal(state[key]["exp_avg"], loaded_state[key]["exp_avg"])
    assert loaded._n_aux_phases == 1
    assert loaded._n_aux_updates == model._n_aux_updates
    params = loaded.get_parameters()
    assert set(params) == {"policy", "policy.optimizer", "policy.aux_optimizer"}
    loaded.set_parameters(params)


@pytest.mark.parametrize("share_features_extractor", [False, True])
def test_policy_only_save_load_keeps_the_extractor_layout(tmp_path, share_features_extractor):
    # SB3 does not save share_features_extractor: the reload must not fall back to the class default
    env = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1)
    policy_kwargs = dict(share_features_extractor=share_features_extractor)
    model = PPG("CnnPolicy", env, seed=0, policy_kwargs=policy_kwargs, **SMALL)
    model.policy.save(tmp_path / "policy.pth")
    policy = AuxActorCriticCnnPolicy.load(tmp_path / "policy.pth")
    assert policy.share_features_extractor is share_features_extractor
    assert (policy.pi_features_extractor is policy.vf_features_extractor) is share_features_extractor
    obs = model.observation_space.sample()
    assert np.array_equal(model.policy.predict(obs, deterministic=True)[0], policy.predict(obs, deterministic=True)[0])


def test_load_without_the_saved_env_warns_and_still_predicts(tmp_path):
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    model.env_id = "NoSuchEnv-v0"  # as if the env's package were missing where the model is loaded
    model.save(tmp_path / "model")
    with pytest.warns(UserWarning, match=r"could not make the saved env 'NoSuchEnv-v0'.*predict\(\) works"):
        loaded = PPG.load(tmp_path / "model")
    assert loaded.get_env() is None
    obs = model.observation_space.sample()
    assert loaded.predict(obs, deterministic=True)[0] == model.predict(obs, deterministic=True)[0]


def test_policy_only_save_load_mlp(tmp_path):
    model = PPG("MlpPolicy", "Pendulum-v1", seed=0, **SMALL)
    model.learn(64)
    model.policy.save(tmp_path / "policy.pth")
    policy = AuxActorCriticPolicy.load(tmp_path / "policy.pth")
    for (name, a), b in zip(model.policy.state_dict().items(), policy.state_dict().values(), strict=True):
        assert th.equal(a, b), name


def test_the_readme_example_runs_as_typed(tmp_path, monkeypatch):
    from stable_baselines3.common.evaluation import evaluate_policy

    monkeypatch.chdir(tmp_path)
    model = PPG("MlpPolicy", "LunarLander-v2", **SMALL)
    model.learn(total_timesteps=128, progress_bar=True)
    model.save("ppg_lander")
    model = PPG.load("ppg_lander")
    mean_reward, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=1)
    assert np.isfinite(mean_reward)
    assert model.get_env().envs[0].spec.id == "LunarLander-v2"


def test_the_reference_options_are_saved_and_loaded(tmp_path):
    model = PPG("MlpPolicy", "CartPole-v1", **dict(SMALL, batch_size=64, aux_batch_size=64),
                handle_timeout_termination=False, env_segment_minibatches=True)  # fmt: skip
    model.save(tmp_path / "model.zip")
    loaded = PPG.load(tmp_path / "model.zip")
    assert (loaded.handle_timeout_termination, loaded.env_segment_minibatches) == (False, True)
    loaded.learn(2 * 64)  # an aux phase of whole blocks, as before saving
    assert loaded._n_aux_phases == 1


# --- Resuming with the aux buffer ---------------------------------------------------------------------------------

RESUME = dict(SMALL, n_policy_iterations=3, learning_rate=lambda progress: 1e-3 * progress)


def _run_with_interruption(tmp_path, rollouts_before, interrupt, load_buffer=True, algo=PPG, policy="MlpPolicy"):
    """
    Train ``rollouts_before`` rollouts, then (with ``interrupt``) save and load the model (and its aux buffer) with
    the same env object, reseed, and train one more aux cycle.

    :return: the weights at the end, the aux phases after the interruption, and the aux buffer's states before it
    """
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = algo(policy, env, seed=0, **RESUME)
    rollout = model.n_steps * model.n_envs
    model.learn(rollouts_before * rollout)
    saved_states = np.array(model.aux_buffer.observations[: model.aux_buffer.pos])
    if interrupt:
        model.save(tmp_path / "model.zip")
        model.save_aux_buffer(tmp_path / "aux_buffer.npz")
        model = algo.load(tmp_path / "model.zip", env=env, force_reset=False)
        if load_buffer:
            model.load_aux_buffer(tmp_path / "aux_buffer.npz")
    # SB3 saves no RNG state: both runs start from the same one at the interruption point
    set_random_seed(1)
    phases = aux_phase_recorder(model)
    model.learn(model.n_policy_iterations * rollout, reset_num_timesteps=False)
    weights = th.nn.utils.parameters_to_vector(model.policy.parameters()).detach()
    return weights, phases, saved_states


@pytest.mark.parametrize("k", [1, 2, 0])  # rollouts into the cycle: 1, N_pi - 1 and 0 (after an aux phase)
def test_resumed_run_matches_the_uninterrupted_one(tmp_path, k):
    n_pi = RESUME["n_policy_iterations"]
    rollout_states = RESUME["n_steps"] * 2
    weights, phases, saved = _run_with_interruption(tmp_path, n_pi + k, interrupt=False)
    resumed_weights, resumed_phases, resumed_saved = _run_with_interruption(tmp_path, n_pi + k, interrupt=True)
    assert len(saved) == k * RESUME["n_steps"]
    assert np.array_equal(saved, resumed_saved)
    assert [phase[:2] for phase in resumed_phases] == [phase[:2] for phase in phases]
    # The next aux phase: on schedule, over N_pi full rollouts, the first k of them those saved
    timesteps, n_samples, states = resumed_phases[0]
    assert timesteps == 2 * n_pi * rollout_states
    assert n_samples == n_pi * rollout_states
    assert np.array_equal(states[: len(saved)], saved)
    assert np.array_equal(states, phases[0][2])
    # Nothing PPG needs was lost: the weights come out bitwise equal
    assert th.equal(resumed_weights, weights)


def test_resumed_recurrent_run_matches_the_uninterrupted_one(tmp_path):
    # Interrupted mid-episode (CartPole's first episodes are about 20 steps): the LSTM states must come back too
    weights, _, _ = _run_with_interruption(tmp_path, 4, False, algo=RecurrentPPG, policy="MlpLstmPolicy")
    resumed_weights, _, _ = _run_with_interruption(tmp_path, 4, True, algo=RecurrentPPG, policy="MlpLstmPolicy")
    assert th.equal(resumed_weights, weights)


def test_recurrent_model_and_aux_buffer_files_keep_the_lstm_states_for_a_load_without_reset(tmp_path):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = RecurrentPPG("MlpLstmPolicy", env, seed=0, **SMALL)
    model.learn(3 * model.n_steps * model.n_envs)
    model.save(tmp_path / "model.zip")
    model.save_aux_buffer(tmp_path / "aux_buffer.npz")
    states = model._rollout_memory()
    assert all(np.abs(state).max() > 0 for state in states.values())
    kept = RecurrentPPG.load(tmp_path / "model.zip", env=env, force_reset=False)
    reset = RecurrentPPG.load(tmp_path / "model.zip", env=env)._rollout_memory()
    from_model_file = kept._rollout_memory()
    # The aux buffer file holds this process's own states (in multi-process training, each rank's)
    kept._restore_rollout_memory({})
    kept.load_aux_buffer(tmp_path / "aux_buffer.npz")
    for name, state in states.items():
        assert np.array_equal(from_model_file[name], state), name
        assert np.array_equal(kept._rollout_memory()[name], state), name
        assert not reset[name].any(), name
    # Other envs, without a reset, cannot take the saved states: named, not dropped silently
    with pytest.raises(ValueError, match=r"saved LSTM states .* load with force_reset=True"):
        RecurrentPPG.load(tmp_path / "model.zip", env=make_vec_env("CartPole-v1", n_envs=3), force_reset=False)


def test_resumed_without_the_aux_buffer_warns_once_and_starts_a_fresh_cycle(tmp_path):
    n_pi = RESUME["n_policy_iterations"]
    rollout_states = RESUME["n_steps"] * 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, phases, saved = _run_with_interruption(tmp_path, n_pi + 1, interrupt=True, load_buffer=False)
    not_loaded = [warning for warning in caught if "aux buffer was not loaded" in str(warning.message)]
    messages = [str(warning.message) for warning in not_loaded]
    assert len(messages) == 1
    # Reported at the user's learn() call (here, this file), not inside SB3
    assert not_loaded[0].filename == __file__
    assert "1 of 3 rollouts" in messages[0]
    # A fresh cycle from the rollout after the load: its aux phase comes N_pi rollouts later, over N_pi full rollouts
    timesteps, n_samples, states = phases[0]
    assert timesteps == (n_pi + 1 + n_pi) * rollout_states
    assert n_samples == n_pi * rollout_states
    assert not np.array_equal(states[: len(saved)], saved)


def test_counters_of_the_aux_cycle_are_saved(tmp_path):
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **RESUME)
    model.learn(4 * 64)
    model.save(tmp_path / "model.zip")
    loaded = PPG.load(tmp_path / "model.zip")
    assert (loaded._n_aux_phases, loaded._n_aux_updates) == (1, model._n_aux_updates)
    assert loaded._saved_aux_cycle_steps == model.aux_buffer.pos == 64
    assert loaded._current_progress_remaining == model._current_progress_remaining
    assert loaded._total_timesteps == model._total_timesteps
    for name in ("optimizer", "aux_optimizer"):
        state = getattr(model.policy, name).state_dict()
        loaded_state = getattr(loaded.policy, name).state_dict()
        assert loaded_state["param_groups"] == state["param_groups"]
        for key in state["state"]:
            assert th.equal(loaded_state["state"][key]["exp_avg_sq"], state["state"][key]["exp_avg_sq"])


def _at_point_of(fresh, model):
    """``fresh`` at ``model``'s point of training, as ``load`` of ``model``'s file gives it: a buffer loads only there"""
    fresh.num_timesteps, fresh._n_aux_phases = model.num_timesteps, model._n_aux_phases
    return fresh


def _image_model(n_policy_iterations=3, n_envs=2, n_steps=16, size=36):
    env = make_vec_env(lambda: FakeImageEnv(screen_height=size, screen_width=size, n_channels=1), n_envs=n_envs)
    return PPG("CnnPolicy", env, n_steps=n_steps, batch_size=16, n_policy_iterations=n_policy_iterations, aux_batch_size=32)


def _dict_model():
    env = make_vec_env(SimpleMultiObsEnv, n_envs=2)
    return PPG("MultiInputPolicy", env, n_steps=16, batch_size=32, n_policy_iterations=3, aux_batch_size=32)


def _masked_model(masks=True):
    algo = MaskablePPG if masks else PPG
    env = make_vec_env(lambda: InvalidActionEnvDiscrete(dim=20, n_invalid_actions=10), n_envs=2)
    return algo("MlpPolicy", env, n_steps=16, batch_size=32, n_policy_iterations=3, aux_batch_size=32)


def _device_buffer_like(buffer):
    # Device storage (tensors), here on the CPU
    return type(buffer)(buffer.buffer_size, buffer.observation_space, buffer.action_space, n_envs=2, on_device=True)


def _buffer_arrays(buffer):
    def host(array):
        return array.cpu().numpy() if isinstance(array, th.Tensor) else array

    arrays = {"returns": host(buffer.returns)}
    observations = buffer.observations
    for key, value in observations.items() if isinstance(observations, dict) else [("obs", observations)]:
        arrays[key] = host(value)
    if hasattr(buffer, "action_masks"):
        arrays["action_masks"] = host(buffer.action_masks)
    if hasattr(buffer, "segment_states"):
        arrays["episode_starts"] = buffer.episode_starts
        arrays["segment_states"] = buffer.segment_states
    return arrays


@pytest.mark.parametrize("make_model", [_image_model, _dict_model, _masked_model], ids=["Box", "Dict", "masked"])
@pytest.mark.parametrize("save_on_device,load_on_device", [(False, False), (True, False), (False, True)])
def test_aux_buffer_round_trips_bitwise(tmp_path, make_model, save_on_device, load_on_device):
    model = make_model()
    if save_on_device:
        model.aux_buffer = _device_buffer_like(model.aux_buffer)
    model.learn(2 * 32)
    assert model.aux_buffer.pos == 2 * 16
    model.save_aux_buffer(tmp_path / "aux_buffer.npz")
    saved = _buffer_arrays(model.aux_buffer)

    fresh = _at_point_of(make_model(), model)
    if load_on_device:
        fresh.aux_buffer = _device_buffer_like(fresh.aux_buffer)
    fresh.load_aux_buffer(tmp_path / "aux_buffer.npz")
    assert (fresh.aux_buffer.pos, fresh.aux_buffer.full) == (2 * 16, False)
    loaded = _buffer_arrays(fresh.aux_buffer)
    assert saved.keys() == loaded.keys()
    for key, array in saved.items():
        assert loaded[key].dtype == array.dtype, key
        assert np.array_equal(loaded[key][:32], array[:32]), key
    if "obs" in saved and saved["obs"].dtype == np.uint8:
        assert saved["obs"][:32].any()
        # uint8 images stay uint8 on disk: the file is about the size of the stored states' raw bytes (and those of
        # the envs' last observations, the rollout position)
        raw = sum(array[:32].nbytes for array in saved.values()) + model._last_obs.nbytes
        assert raw <= (tmp_path / "aux_buffer.npz").stat().st_size < raw + 4096


def _recurrent_model():
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    return RecurrentPPG("MlpLstmPolicy", env, n_steps=16, batch_size=32, n_policy_iterations=3, aux_batch_size=32, seed=0)


def test_recurrent_aux_buffer_round_trips_with_its_sequences(tmp_path):
    # Without the episode starts and entering states, a loaded buffer would replay sequences across episode
    # boundaries from zero states, and its snapshot (taken from the same wrong sequences) would hide it
    model = _recurrent_model()
    model.learn(2 * 32)
    buffer = model.aux_buffer
    assert buffer.pos == 2 * 16 and buffer.episode_starts[1:32].any() and buffer.segment_states[1].any()
    model.save_aux_buffer(tmp_path / "aux_buffer.npz")

    fresh = _at_point_of(_recurrent_model(), model)
    fresh.load_aux_buffer(tmp_path / "aux_buffer.npz")
    saved, loaded = _buffer_arrays(buffer), _buffer_arrays(fresh.aux_buffer)
    assert saved.keys() == loaded.keys() and {"episode_starts", "segment_states"} <= saved.keys()
    for key, array in saved.items():
        assert loaded[key].dtype == array.dtype, key
        assert np.array_equal(
            loaded[key][: 32 if key != "segment_states" else 2], array[: 32 if key != "segment_states" else 2]
        ), key
    segments = np.arange(buffer.n_segments)
    expected, actual = buffer._sequences(segments), fresh.aux_buffer._sequences(segments)
    for name in ("observations", "returns", "episode_starts", "mask"):
        assert th.equal(getattr(actual, name), getattr(expected, name)), name
    for states, loaded_states in zip(
        (*expected.lstm_states.pi, *expected.lstm_states.vf), (*actual.lstm_states.pi, *actual.lstm_states.vf), strict=True
    ):
        assert th.equal(loaded_states, states)

    # A feed-forward PPG buffer has no LSTM states to give
    ppg = PPG(
        "MlpPolicy", make_vec_env("CartPole-v1", n_envs=2), n_steps=16, batch_size=32, n_policy_iterations=3, aux_batch_size=32
    )
    ppg.learn(32)
    ppg.save_aux_buffer(tmp_path / "ppg_buffer.npz")
    with pytest.raises(ValueError, match=r"  - LSTM states .*: file None, model \[1, 256\]"):
        fresh.load_aux_buffer(tmp_path / "ppg_buffer.npz")
    assert fresh.aux_buffer.pos == 0


@pytest.mark.parametrize(
    "other_model,mismatch",
    [
        (lambda: _image_model(size=40), "observation space"),
        (lambda: _image_model(n_envs=3), "n_envs"),
        (lambda: _image_model(n_steps=8, n_policy_iterations=6), "n_steps"),
        (lambda: _image_model(n_policy_iterations=4), "n_policy_iterations"),
    ],
)
def test_loading_an_aux_buffer_that_does_not_fit_is_refused(tmp_path, other_model, mismatch):
    model = _image_model()
    model.learn(32)
    model.save_aux_buffer(tmp_path / "aux_buffer.npz")
    other = other_model()
    with pytest.raises(ValueError, match=f"does not fit this model:\n  - {mismatch}"):
        other.load_aux_buffer(tmp_path / "aux_buffer.npz")
    assert other.aux_buffer.pos == 0


def test_a_buffer_saved_by_another_number_of_ranks_is_refused(tmp_path, monkeypatch):
    # Each rank saves its share: loading 2 ranks' files into 1 (or 4) would train on half (or miss) the states
    model = _image_model()
    model.learn(32)
    with monkeypatch.context() as patch:
        patch.setattr(distributed, "world_size", lambda: 2)
        model.save_aux_buffer(tmp_path / "aux_buffer.npz")
    other = _at_point_of(_image_model(), model)
    with pytest.raises(ValueError, match=r"ranks of the run that saved it .*: file 2, model 1"):
        other.load_aux_buffer(tmp_path / "aux_buffer.npz")
    assert other.aux_buffer.pos == 0
    # A file written before the number of ranks was recorded comes from one process
    path = tmp_path / "single.npz"
    model.save_aux_buffer(path)
    assert _drop_layout_keys(path, "world_size") == [1]
    other.load_aux_buffer(path)
    assert other.aux_buffer.pos == model.aux_buffer.pos > 0


def _drop_layout_keys(path, *keys: str) -> list:
    """Rewrite an aux buffer file as one written before ``keys`` were recorded; :return: their values"""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    header = json.loads(entries["layout.json"])
    values = [header["layout"].pop(key) for key in keys]
    entries["layout.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return values


def test_a_buffer_saved_at_another_point_of_training_is_refused(tmp_path):
    # e.g. the final aux_buffer.npz against best_model.zip: the states of another cycle would be distilled
    model = _image_model()
    model.learn(32)
    model.save(tmp_path / "model.zip")
    model.learn(32, reset_num_timesteps=False)
    model.save_aux_buffer(tmp_path / "aux_buffer.npz")
    earlier = PPG.load(tmp_path / "model.zip", env=model.get_env())
    with pytest.raises(ValueError, match=r"num_timesteps of the model it was saved with .*: file 64, model 32"):
        earlier.load_aux_buffer(tmp_path / "aux_buffer.npz")
    assert earlier.aux_buffer.pos == 0
    # A file written before the point was recorded loads as before
    path = tmp_path / "aux_buffer.npz"
    assert _drop_layout_keys(path, "num_timesteps", "n_aux_phases") == [64, 0]
    earlier.load_aux_buffer(path)
    assert earlier.aux_buffer.pos == model.aux_buffer.pos > 0


@pytest.mark.skipif(not hasattr(os, "O_DIRECTORY"), reason="folders are synced on POSIX only")
def test_an_atomic_save_syncs_the_file_then_its_folder_after_the_rename(tmp_path, monkeypatch):
    # Without the folder's sync, a power loss after the rename can lose the new file's entry
    events = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(stat.S_ISDIR(os.fstat(fd).st_mode)), fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda *args: (events.append("rename"), replace(*args)))
    with atomic_path(tmp_path / "file.bin") as temporary:
        temporary.write_bytes(b"data")
    # The file (not a folder), the rename, then the folder
    assert events == [False, "rename", True]
    assert (tmp_path / "file.bin").read_bytes() == b"data"


def test_masks_against_no_masks_are_refused(tmp_path):
    masked = _masked_model()
    masked.learn(32)
    masked.save_aux_buffer(tmp_path / "masked.npz")
    plain = _masked_model(masks=False)
    with pytest.raises(ValueError, match=r"action masks \(MaskablePPG keeps them, PPG does not\): file True, model False"):
        plain.load_aux_buffer(tmp_path / "masked.npz")
    plain.learn(32)
    plain.save_aux_buffer(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match=r"action masks .*: file False, model True"):
        _masked_model().load_aux_buffer(tmp_path / "plain.npz")


@pytest.mark.parametrize("damage", ["truncate", "flip a byte"])
def test_a_damaged_aux_buffer_file_is_refused(tmp_path, damage):
    model = _image_model()
    model.learn(64)
    path = tmp_path / "aux_buffer.npz"
    model.save_aux_buffer(path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF  # in the middle of the observations
    path.write_bytes(bytes(data))
    fresh = _at_point_of(_image_model(), model)
    with pytest.raises(AuxBufferFileError, match="is not a complete aux buffer file"):
        fresh.load_aux_buffer(path)
    # Never a short buffer: it is left empty
    assert (fresh.aux_buffer.pos, fresh.aux_buffer.full) == (0, False)


def test_an_aux_buffer_loads_in_a_new_process(tmp_path):
    # Nothing of the saving process (object ids, pickled classes) is needed to read the file
    model = _image_model()
    model.learn(32)
    model.save_aux_buffer(tmp_path / "aux_buffer.npz")
    with zipfile.ZipFile(tmp_path / "aux_buffer.npz") as archive:
        assert archive.namelist()[:3] == ["layout.json", "observations.npy", "returns.npy"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    observations = np.load(tmp_path / "aux_buffer.npz")["observations"]
    assert observations.dtype == np.uint8 and np.array_equal(observations, model.aux_buffer.observations[:16])


def test_each_rank_saves_and_loads_its_own_aux_buffer(tmp_path):
    """
    2 ranks (torchrun, gloo) train 2 rollouts into an aux cycle of 3; each rank saves its own aux buffer beside a
    checkpoint that rank 0 alone saves. A new run loads each rank's own buffer: its next aux phase comes on schedule,
    over the 2 saved rollouts and the new one. A buffer missing on one rank fails on both.
    """
    run_scenario("checkpoint", tmp_path)
    (tmp_path / "results").rename(tmp_path / "saved")
    saved = rank_results(tmp_path, "saved")
    steps = script.CHECKPOINT_STEPS
    assert [result["num_timesteps"] for result in saved] == [steps, steps]
    assert [result["n_aux_phases"] for result in saved] == [1, 1]
    files = sorted(path.name for path in (tmp_path / "checkpoints").iterdir())
    assert files == [
        f"rl_model_{steps}_steps.zip",
        f"rl_model_aux_buffer_{steps}_steps_rank0.npz",
        f"rl_model_aux_buffer_{steps}_steps_rank1.npz",
    ]
    # Rank 1 was given another folder and saved beside rank 0's checkpoint
    assert not (tmp_path / "elsewhere").exists() or not any((tmp_path / "elsewhere").iterdir())

    run_scenario("resume", tmp_path)
    resumed = rank_results(tmp_path)
    # A buffer file that only rank 0 has: both ranks raise, name rank 1's missing file, and keep an empty buffer
    for error, result in zip(rank_errors(tmp_path), resumed, strict=True):
        assert "load_aux_buffer failed on rank(s) 1, so every rank stops" in error, error
        assert "FileNotFoundError" in error and "partial_rank1.npz" in error, error
        assert result["pos_after_failure"] == 0
    n_steps, n_pi = script.RESUME["n_steps"], script.RESUME["n_policy_iterations"]
    rollouts_saved = script.CHECKPOINT_ROLLOUTS - n_pi
    for before, after in zip(saved, resumed, strict=True):
        assert len(before["states"]) == rollouts_saved * n_steps
        assert np.array_equal(after["loaded"], before["states"])
        # The next aux phase: at the end of the second cycle, over 3 full rollouts, the first 2 of them those saved
        [(timesteps, n_samples, states)] = after["phases"]
        assert timesteps == 2 * n_pi * script.ROLLOUT_STEPS
        assert n_samples == n_pi * n_steps * script.N_ENVS
        assert np.array_equal(states[: len(before["states"])], before["states"])
        assert after["n_aux_phases"] == 2
    # Each rank loaded its own buffer: the ranks' states differ
    assert not np.array_equal(saved[0]["states"], saved[1]["states"])
