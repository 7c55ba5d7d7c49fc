import json
import zipfile

import numpy as np
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


def test_policy_only_save_load_keeps_separate_cnn_extractors(tmp_path):
    model = PPG("CnnPolicy", FakeImageEnv(screen_height=36, screen_width=36, n_channels=1), seed=0, **SMALL)
    assert model.policy.pi_features_extractor is not model.policy.vf_features_extractor
    model.policy.save(tmp_path / "policy.pth")
    policy = AuxActorCriticCnnPolicy.load(tmp_path / "policy.pth")
    assert not policy.share_features_extractor
    assert policy.pi_features_extractor is not policy.vf_features_extractor
    obs = model.observation_space.sample()
    assert np.array_equal(model.policy.predict(obs, deterministic=True)[0], policy.predict(obs, deterministic=True)[0])


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
