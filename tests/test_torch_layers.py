"""The IMPALA CNN and MinAtar's network: the reference layouts, input handling, and use by PPG and SB3's PPO."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.envs import FakeImageEnv

from sb3_ppg import PPG
from sb3_ppg.common.torch_layers import ImpalaCNN, MinAtarCNN, normed_init_


def conv_params(in_channels: int, out_channels: int) -> int:
    return 3 * 3 * in_channels * out_channels + out_channels


def reference_param_count(in_channels: int, height: int, width: int, channels=(16, 32, 32), features_dim=256) -> int:
    """Each stack: a conv from the previous width, 2 residual blocks of 2 convs, a pool halving (rounding up)."""
    total = 0
    for out_channels in channels:
        total += conv_params(in_channels, out_channels) + 4 * conv_params(out_channels, out_channels)
        in_channels, height, width = out_channels, (height + 1) // 2, (width + 1) // 2
    return total + in_channels * height * width * features_dim + features_dim


def image_space(shape: tuple[int, ...]) -> spaces.Box:
    return spaces.Box(0, 255, shape, dtype=np.uint8)


def test_parameter_count_matches_the_reference_layout():
    cnn = ImpalaCNN(image_space((3, 64, 64)))
    n_params = sum(param.numel() for param in cnn.parameters())
    assert n_params == reference_param_count(3, 64, 64) == 622_144
    # An odd size rounds up at each pool: 84 -> 42 -> 21 -> 11
    assert sum(param.numel() for param in ImpalaCNN(image_space((4, 84, 84))).parameters()) == reference_param_count(4, 84, 84)


def test_output_shape_and_range():
    cnn = ImpalaCNN(image_space((3, 64, 64)), features_dim=256)
    features = cnn(th.rand(5, 3, 64, 64))
    assert features.shape == (5, 256)
    assert (features >= 0).all() and (features > 0).any()


def test_channel_last_images_give_the_same_features_as_channel_first():
    first = ImpalaCNN(image_space((3, 16, 16)), features_dim=8)
    last = ImpalaCNN(image_space((16, 16, 3)), features_dim=8)
    assert first.channels_first and not last.channels_first
    last.load_state_dict(first.state_dict())
    images = th.rand(4, 3, 16, 16)
    assert th.allclose(first(images), last(images.permute(0, 2, 3, 1)), atol=1e-6)


def test_layers_start_at_the_reference_norms():
    cnn = ImpalaCNN(image_space((3, 64, 64)))
    dense_rows = cnn.linear.weight.norm(dim=1)
    assert th.allclose(dense_rows, th.full_like(dense_rows, 1.4), atol=1e-5)
    # Residual convs: sqrt(scale / sqrt(n_blocks)) with the per-stack scale 1 / sqrt(3)
    block_conv = cnn.stacks[0].blocks[0].conv0
    filter_norms = block_conv.weight.reshape(block_conv.weight.shape[0], -1).norm(dim=1)
    expected = np.sqrt(1 / np.sqrt(3) / np.sqrt(2))
    assert th.allclose(filter_norms, th.full_like(filter_norms, expected), atol=1e-5)
    assert th.count_nonzero(block_conv.bias) == 0


def test_normed_init_sets_each_row_norm_and_zero_bias():
    layer = th.nn.Linear(5, 3)
    normed_init_(layer, 0.1)
    assert th.allclose(layer.weight.norm(dim=1), th.full((3,), 0.1), atol=1e-6)
    assert th.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize(
    "space, message",
    [
        (spaces.Box(0, 1, (8,), dtype=np.float32), "3-dimensional Box"),
        (spaces.Box(0, 1, (3, 8, 8), dtype=np.float32), "uint8 image"),
    ],
)
def test_non_image_spaces_are_refused(space, message):
    with pytest.raises(ValueError, match=message):
        ImpalaCNN(space)


def test_bad_widths_are_refused():
    with pytest.raises(ValueError, match="features_dim=0"):
        ImpalaCNN(image_space((3, 8, 8)), features_dim=0)


@pytest.mark.parametrize("channel_first", [True, False])
@pytest.mark.parametrize("algo", [PPG, PPO])
def test_ppg_and_ppo_train_with_it(algo, channel_first):
    env = FakeImageEnv(screen_height=16, screen_width=16, n_channels=3, channel_first=channel_first)
    policy_kwargs = dict(features_extractor_class=ImpalaCNN, features_extractor_kwargs=dict(features_dim=16, channels=(4, 8)))
    kwargs = dict(n_policy_iterations=2, n_aux_epochs=1, aux_batch_size=32) if algo is PPG else {}
    model = algo("CnnPolicy", env, n_steps=32, batch_size=16, n_epochs=1, policy_kwargs=policy_kwargs, seed=0, **kwargs)
    before = [param.detach().clone() for param in model.policy.features_extractor.parameters()]
    model.learn(64)
    extractor = model.policy.features_extractor
    assert isinstance(extractor, ImpalaCNN)
    assert any(not th.equal(a, b) for a, b in zip(before, extractor.parameters(), strict=True))


def minatar_space(channels: int, dtype=bool) -> spaces.Box:
    """MinAtar's observation space: channel-last 10x10 planes of 0/1."""
    return spaces.Box(0, 1, (10, 10, channels), dtype=dtype)


@pytest.mark.parametrize("channels, expected", [(4, 131_792), (6, 132_080)])
def test_minatar_cnn_parameter_count(channels, expected):
    # conv: 3 * 3 * C * 16 weights + 16 biases; dense: 16 * 8 * 8 (3x3 without padding: 10 -> 8) * 128 + 128
    assert expected == 9 * channels * 16 + 16 + 16 * 8 * 8 * 128 + 128
    cnn = MinAtarCNN(minatar_space(channels))
    assert sum(param.numel() for param in cnn.parameters()) == expected
    assert cnn.features_dim == 128


@pytest.mark.parametrize("dtype", [bool, np.uint8])
def test_minatar_cnn_output_shape_and_channel_order(dtype):
    cnn = MinAtarCNN(minatar_space(4, dtype), features_dim=32)
    planes = th.rand(5, 10, 10, 4) > 0.5
    features = cnn(planes.to(th.bool if dtype is bool else th.uint8))
    assert features.shape == (5, 32)
    assert (features >= 0).all()
    # The channels are the last axis: only the first plane set, seen from the conv's first input channel
    one_plane = th.zeros(1, 10, 10, 4)
    one_plane[..., 0] = 1.0
    with th.no_grad():
        cnn.conv.weight[:, 1:].zero_()
        cnn.conv.bias.zero_()
        cnn.conv.weight[:, :1].fill_(1.0)
        hidden = th.relu(cnn.conv(one_plane.permute(0, 3, 1, 2)))
    assert th.allclose(hidden, th.full_like(hidden, 9.0))
    assert th.allclose(cnn(one_plane), th.relu(cnn.linear(hidden.flatten(1))))


@pytest.mark.parametrize(
    "space, message",
    [
        (spaces.Box(0, 1, (40,), dtype=np.float32), "Box observation space"),
        (spaces.Box(0, 255, (10, 10, 4), dtype=np.uint8), "not a \\[0, 255\\] image"),
        (spaces.Box(0, 1, (2, 10, 4), dtype=bool), "at least 3x3"),
    ],
)
def test_minatar_cnn_refuses_other_spaces(space, message):
    with pytest.raises(ValueError, match=message):
        MinAtarCNN(space)


@pytest.mark.parametrize("algo", [PPG, PPO])
def test_ppg_and_ppo_train_with_minatar_cnn(algo):
    from stable_baselines3.common.env_util import make_vec_env

    # Registered by sb3_ppg, as minatar is installed
    env = make_vec_env("MinAtar/Breakout-v1", n_envs=2, seed=0)
    policy_kwargs: dict = dict(features_extractor_class=MinAtarCNN, net_arch=[])
    kwargs: dict = dict(n_policy_iterations=2, n_aux_epochs=1, aux_batch_size=32) if algo is PPG else {}
    if algo is PPG:
        policy_kwargs["arch"] = "detach"
    else:
        policy_kwargs["share_features_extractor"] = True
    model = algo("MlpPolicy", env, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs=policy_kwargs, seed=0, **kwargs)
    before = [param.detach().clone() for param in model.policy.features_extractor.parameters()]
    model.learn(128)
    extractor = model.policy.features_extractor
    assert isinstance(extractor, MinAtarCNN)
    assert model.num_timesteps == 128
    assert any(not th.equal(a, b) for a, b in zip(before, extractor.parameters(), strict=True))


def test_minatar_cnn_policy_is_minatars_reference_network():
    """``MinAtarCnnPolicy``: MinAtarCNN with the heads on its features, on an id sb3_ppg registers itself."""
    model = PPG("MinAtarCnnPolicy", "MinAtar/SpaceInvaders-v1", n_steps=32, batch_size=32, policy_kwargs=dict(arch="detach"))
    policy = model.policy
    assert isinstance(policy.features_extractor, MinAtarCNN) and policy.features_extractor.features_dim == 128
    assert policy.action_net.in_features == policy.value_net.in_features == 128  # net_arch=[]: no hidden layers
    assert policy.arch == "detach"
    # The user's own values win over the alias's defaults
    small = PPG(
        "MinAtarCnnPolicy",
        "MinAtar/Breakout-v1",
        policy_kwargs=dict(net_arch=[8], features_extractor_kwargs=dict(features_dim=16)),
    )
    assert small.policy.features_extractor.features_dim == 16 and small.policy.action_net.in_features == 8
    assert PPG("MinAtarCnnPolicy", "MinAtar/Breakout-v1").policy.net_arch == []
