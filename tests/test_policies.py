"""The dual / shared / detach architectures: which losses train which trunk, save/load, and bad input."""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.envs import FakeImageEnv

from sb3_ppg import PPG
from sb3_ppg.common.policies import AuxActorCriticCnnPolicy
from sb3_ppg.common.torch_layers import ImpalaCNN
from tests.conftest import SMALL

ARCHS = ("dual", "shared", "detach")


def image_env() -> FakeImageEnv:
    return FakeImageEnv(screen_height=16, screen_width=16, n_channels=3, channel_first=True)


def image_model(arch: str | None = None, **policy_kwargs) -> PPG:
    policy_kwargs.update(features_extractor_class=ImpalaCNN, features_extractor_kwargs=dict(features_dim=16, channels=(4,)))
    if arch is not None:
        policy_kwargs["arch"] = arch
    return PPG("CnnPolicy", image_env(), seed=0, policy_kwargs=policy_kwargs, **SMALL)


def observations(model: PPG, n: int = 8) -> th.Tensor:
    obs = np.stack([model.observation_space.sample() for _ in range(n)])
    return model.policy.obs_to_tensor(obs)[0]


def trunk_gradients(module: th.nn.Module) -> list[th.Tensor]:
    return [th.zeros_like(param) if param.grad is None else param.grad for param in module.parameters()]


def value_backward(model: PPG, value_fn: str) -> None:
    model.policy.zero_grad(set_to_none=True)
    obs = observations(model)
    if value_fn == "predict_values":
        values = model.policy.predict_values(obs)
    elif value_fn == "evaluate_actions":
        values = model.policy.evaluate_actions(obs, th.zeros(len(obs), dtype=th.long))[0]
    else:
        values = model.policy.evaluate_aux(obs)[2]
    (values**2).mean().backward()


@pytest.mark.parametrize("value_fn", ["predict_values", "evaluate_actions", "evaluate_aux"])
def test_detach_keeps_the_value_loss_out_of_the_trunk(value_fn):
    model = image_model("detach")
    value_backward(model, value_fn)
    assert model.policy.pi_features_extractor is model.policy.vf_features_extractor
    assert all(th.count_nonzero(grad) == 0 for grad in trunk_gradients(model.policy.features_extractor))
    # The critic's own layers still learn
    assert th.count_nonzero(model.policy.value_net.weight.grad) > 0


@pytest.mark.parametrize("value_fn", ["predict_values", "evaluate_actions", "evaluate_aux"])
def test_shared_lets_the_value_loss_train_the_trunk(value_fn):
    model = image_model("shared")
    value_backward(model, value_fn)
    assert any(th.count_nonzero(grad) > 0 for grad in trunk_gradients(model.policy.features_extractor))


@pytest.mark.parametrize("value_fn", ["predict_values", "evaluate_actions", "evaluate_aux"])
def test_dual_keeps_the_value_loss_out_of_the_actor_trunk(value_fn):
    model = image_model("dual")
    value_backward(model, value_fn)
    assert model.policy.pi_features_extractor is not model.policy.vf_features_extractor
    assert all(th.count_nonzero(grad) == 0 for grad in trunk_gradients(model.policy.pi_features_extractor))
    assert any(th.count_nonzero(grad) > 0 for grad in trunk_gradients(model.policy.vf_features_extractor))


def test_the_aux_phase_trains_the_detached_trunk(monkeypatch):
    model = image_model("detach")
    # Only the aux phase trains: whatever moves the trunk is the aux value head or the cloning term
    monkeypatch.setattr(model, "_train_policy_phase", lambda: None)
    trunk = [param.detach().clone() for param in model.policy.features_extractor.parameters()]
    model.learn(SMALL["n_steps"] * SMALL["n_policy_iterations"])
    assert model._n_aux_phases == 1
    assert any(not th.equal(a, b) for a, b in zip(trunk, model.policy.features_extractor.parameters(), strict=True))


def test_one_trunk_archs_have_about_half_the_parameters():
    counts = {arch: sum(param.numel() for param in image_model(arch).policy.parameters()) for arch in ARCHS}
    extractor = sum(param.numel() for param in image_model("shared").policy.features_extractor.parameters())
    assert counts["shared"] == counts["detach"] == counts["dual"] - extractor


@pytest.mark.parametrize(
    "share, arch",
    [(None, "dual"), (False, "dual"), (True, "shared")],
)
def test_share_features_extractor_maps_to_an_arch(share, arch):
    model = image_model() if share is None else image_model(share_features_extractor=share)
    assert model.policy.arch == arch
    assert model.policy.share_features_extractor == (arch != "dual")


@pytest.mark.parametrize(
    "policy_kwargs, message",
    [
        (dict(arch="single"), r"arch must be one of 'dual', 'shared', 'detach'; got 'single'"),
        (dict(arch="dual", share_features_extractor=True), r"arch='dual' contradicts share_features_extractor=True"),
        (dict(arch="shared", share_features_extractor=False), r"arch='shared' contradicts share_features_extractor=False"),
        (dict(arch="detach", share_features_extractor=False), r"arch='detach' contradicts share_features_extractor=False"),
        (dict(head_init_scale=0.0), r"head_init_scale must be > 0, or None"),
    ],
)
def test_bad_policy_arguments(policy_kwargs, message):
    with pytest.raises(ValueError, match=message):
        PPG("MlpPolicy", "CartPole-v1", policy_kwargs=policy_kwargs, **SMALL)


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_keeps_the_arch_and_the_actions(tmp_path, arch):
    model = image_model(arch)
    model.learn(SMALL["n_steps"] * SMALL["n_policy_iterations"])
    obs = np.stack([model.observation_space.sample() for _ in range(6)])
    actions, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model")
    loaded = PPG.load(tmp_path / "model", env=image_env())
    assert loaded.policy.arch == arch
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], actions)
    # The policy saved alone too
    model.policy.save(tmp_path / "policy")
    policy = AuxActorCriticCnnPolicy.load(tmp_path / "policy")
    assert policy.arch == arch
    np.testing.assert_array_equal(policy.predict(obs, deterministic=True)[0], actions)


def test_head_init_scale_gives_the_reference_normed_heads():
    model = PPG("MlpPolicy", "CartPole-v1", policy_kwargs=dict(head_init_scale=0.1), **SMALL)
    for name in ("action_net", "value_net", "aux_value_net"):
        layer = getattr(model.policy, name)
        assert th.allclose(layer.weight.norm(dim=1), th.full((layer.out_features,), 0.1), atol=1e-6), name
        assert th.count_nonzero(layer.bias) == 0, name
