import json
import zipfile

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.envs import FakeImageEnv

from sb3_ppg import PPG
from sb3_ppg.common.policies import AuxActorCriticCnnPolicy, AuxActorCriticPolicy
from tests.conftest import SMALL


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
