"""The aux buffers kept on the device: the same samples as on the host, and the rule that decides where they live.

No GPU runs here: the device path is exercised with tensors on the CPU, which is the same code."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib.common.envs import InvalidActionEnvDiscrete
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.utils import set_random_seed

import sb3_ppg.common.buffers as buffers_module
from sb3_ppg import PPG, MaskablePPG
from sb3_ppg.common.buffers import AuxRolloutBuffer, keeps_on_device
from tests.conftest import SMALL


def test_keeps_on_device_only_a_gpu_with_room_for_it_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not keeps_on_device(1, th.device("cpu"))
    monkeypatch.setattr(th.cuda, "mem_get_info", lambda device=None: (1_000, 80_000))
    assert keeps_on_device(500, th.device("cuda"))
    assert not keeps_on_device(501, th.device("cuda"))


def test_nbytes_needed_counts_every_array() -> None:
    obs_space = spaces.Box(0, 255, (3, 8, 8), np.uint8)
    buffer = AuxRolloutBuffer(10, obs_space, spaces.Discrete(5), device="cpu", n_envs=2)
    actual = buffer.observations.nbytes + buffer.returns.nbytes + buffer.distribution_params.nbytes
    assert buffer.nbytes_needed() == actual == 10 * 2 * (3 * 8 * 8 + 4 + 4 * 5)
    assert not buffer.on_device and isinstance(buffer.observations, np.ndarray)


def filled_models(model_class: type, make_env, monkeypatch: pytest.MonkeyPatch, **kwargs):
    """One model whose aux buffer holds numpy arrays and one whose buffer holds tensors, after the same rollouts."""
    # SimpleMultiObsEnv draws its images from the global generator when built
    set_random_seed(0)
    env = make_env()
    policy = "MultiInputPolicy" if isinstance(env.observation_space, spaces.Dict) else "MlpPolicy"
    # Each model seeds the global generators when built: learn with one before building the other
    host = model_class(policy, env, seed=0, **kwargs)
    host.learn(64)
    monkeypatch.setattr(buffers_module, "keeps_on_device", lambda nbytes, device: True)
    set_random_seed(0)
    device = model_class(policy, make_env(), seed=0, **kwargs)
    monkeypatch.undo()
    device.learn(64)
    return host.aux_buffer, device.aux_buffer


@pytest.mark.parametrize(
    "model_class, make_env",
    [
        (PPG, lambda: make_vec_env("CartPole-v1", n_envs=2, seed=0)),
        (PPG, lambda: make_vec_env(SimpleMultiObsEnv, n_envs=2, seed=0)),
        (
            MaskablePPG,
            lambda: make_vec_env(InvalidActionEnvDiscrete, n_envs=2, seed=0, env_kwargs=dict(dim=6, n_invalid_actions=3)),
        ),
    ],
    ids=["box", "dict", "masked"],
)
def test_the_device_buffer_gives_the_host_buffers_samples(model_class, make_env, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = dict(SMALL, n_steps=32, n_policy_iterations=3)
    host, device = filled_models(model_class, make_env, monkeypatch, **kwargs)
    assert not host.on_device and device.on_device
    stored = device.observations.values() if isinstance(device.observations, dict) else [device.observations]
    assert all(isinstance(array, th.Tensor) for array in [*stored, device.returns])
    assert device.n_samples == host.n_samples == 64  # one rollout of 32 steps x 2 envs, of 3
    # The same rollouts (same seed) were stored; the same indices give the same samples
    indices = np.array([63, 0, 17, 5, 40])
    host.distribution_params.copy_(th.randn_like(host.distribution_params))
    device.distribution_params.copy_(host.distribution_params)
    host_samples = host._get_samples(indices)
    device_samples = device._get_samples(th.as_tensor(indices))
    for host_field, device_field in zip(host_samples, device_samples, strict=True):
        if isinstance(host_field, dict):
            for key in host_field:
                assert th.equal(host_field[key], device_field[key])
        else:
            assert th.equal(host_field, device_field)
    assert device.returns_mean_std() == pytest.approx(host.returns_mean_std())
    # One pass draws every stored state once, with indices where the arrays are
    drawn = [len(batch.returns) for batch in device.get(batch_size=24)]
    assert drawn == [24, 24, 16]


def test_ppg_trains_with_its_aux_buffer_on_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffers_module, "keeps_on_device", lambda nbytes, device: True)
    model = PPG("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    assert model.aux_buffer.on_device
    before = [param.detach().clone() for param in model.policy.aux_value_net.parameters()]
    model.learn(2 * 64)
    assert model._n_aux_phases == 1
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.aux_value_net.parameters(), strict=True))
