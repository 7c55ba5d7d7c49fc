"""Features extractors for image observations: the IMPALA CNN of the PPG paper, and MinAtar's reference network."""

import math
from collections.abc import Sequence

import gymnasium as gym
import torch as th
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


def normed_init_(layer: nn.Linear | nn.Conv2d, scale: float) -> None:
    """
    Initialise a layer as the reference code's ``NormedLinear`` / ``NormedConv2d``: each output unit's weights
    (a row, or a filter) have L2 norm ``scale``, and the bias is zero.

    :param layer: the layer to initialise in place
    :param scale: the norm of each output unit's weights
    """
    with th.no_grad():
        weight = layer.weight
        norms = weight.reshape(weight.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (weight.dim() - 1)))
        weight.mul_(scale / norms)
        if layer.bias is not None:
            layer.bias.zero_()


class ImpalaResidualBlock(nn.Module):
    """
    ``x + conv(relu(conv(relu(x))))``, both convolutions 3x3 with padding 1 and ``channels`` channels.

    :param channels: input and output channels
    :param scale: init norm of each convolution's filters (reference: ``sqrt(stack scale / n_blocks)``)
    """

    def __init__(self, channels: int, scale: float = 1.0):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        for conv in (self.conv0, self.conv1):
            normed_init_(conv, math.sqrt(scale))

    def forward(self, x: th.Tensor) -> th.Tensor:
        return x + self.conv1(th.relu(self.conv0(th.relu(x))))


class ImpalaStack(nn.Module):
    """
    One stack of the IMPALA CNN: a 3x3 convolution, a 3x3 max-pool with stride 2, then residual blocks.

    :param in_channels: input channels
    :param out_channels: output channels
    :param n_blocks: residual blocks after the pool
    :param scale: init scale of the stack (reference: ``1 / sqrt(number of stacks)``)
    """

    def __init__(self, in_channels: int, out_channels: int, n_blocks: int = 2, scale: float = 1.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        normed_init_(self.conv, 1.0)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.blocks = nn.Sequential(*(ImpalaResidualBlock(out_channels, scale / math.sqrt(n_blocks)) for _ in range(n_blocks)))

    def forward(self, x: th.Tensor) -> th.Tensor:
        return self.blocks(self.pool(self.conv(x)))


class ImpalaCNN(BaseFeaturesExtractor):
    """
    The IMPALA CNN encoder (Espeholt et al. 2018) as the PPG paper's code builds it: stacks of 16, 32 and 32
    channels, each a 3x3 conv, a 3x3 max-pool with stride 2 and two residual blocks; then ReLU, flatten, a dense
    layer to ``features_dim`` and ReLU. At 64x64x3 it has 622,144 parameters.

    Layers are initialised as the reference's normed layers (each filter or row at a fixed norm, zero bias).
    ``ortho_init=True`` in the policy (SB3's default) replaces that with SB3's orthogonal init; the Procgen
    replication configs set ``ortho_init: False`` to keep it.

    Channel-first and channel-last images both work. SB3 scales uint8 images to [0, 1] before the extractor
    (``normalize_images=True``, the default).

    :param observation_space: an image observation space
    :param features_dim: width of the dense layer and of the output (256 in the paper)
    :param channels: channels of each stack
    :param n_blocks: residual blocks in each stack
    :param normalized_image: whether the observations are already in [0, 1] (as SB3's ``NatureCNN`` takes it):
        it relaxes the check that the space is a uint8 image
    """

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 256,
        channels: Sequence[int] = (16, 32, 32),
        n_blocks: int = 2,
        normalized_image: bool = False,
    ):
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 3:
            raise ValueError(f"ImpalaCNN needs an image observation space (a 3-dimensional Box), got {observation_space}")
        if not is_image_space(observation_space, check_channels=False, normalized_image=normalized_image):
            raise ValueError(
                f"ImpalaCNN needs a uint8 image observation space with values in [0, 255], got {observation_space}; "
                "pass features_extractor_kwargs=dict(normalized_image=True) for float images already in [0, 1]"
            )
        if features_dim < 1 or not channels or min(channels) < 1 or n_blocks < 0:
            raise ValueError(
                f"ImpalaCNN needs features_dim >= 1, non-empty channels all >= 1 and n_blocks >= 0; "
                f"got features_dim={features_dim}, channels={tuple(channels)}, n_blocks={n_blocks}"
            )
        super().__init__(observation_space, features_dim)
        self.channels_first = is_image_space_channels_first(observation_space)
        shape = observation_space.shape
        in_channels, height, width = shape if self.channels_first else (shape[2], shape[0], shape[1])
        stack_scale = 1 / math.sqrt(len(channels))
        stacks = []
        for out_channels in channels:
            stacks.append(ImpalaStack(in_channels, out_channels, n_blocks, stack_scale))
            in_channels = out_channels
            # 3x3 max-pool, stride 2, padding 1
            height, width = (height + 1) // 2, (width + 1) // 2
        self.stacks = nn.Sequential(*stacks)
        self.linear = nn.Linear(in_channels * height * width, features_dim)
        normed_init_(self.linear, 1.4)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        if not self.channels_first:
            observations = observations.permute(0, 3, 1, 2)
        hidden = th.relu(th.flatten(self.stacks(observations), start_dim=1))
        return th.relu(self.linear(hidden))


class MinAtarCNN(BaseFeaturesExtractor):
    """
    MinAtar's reference network (Young & Tian 2019): one 3x3 convolution of 16 channels (stride 1, no padding),
    ReLU, flatten, a dense layer to ``features_dim`` and ReLU. At 10x10x4 (Breakout) it has 131,792 parameters.

    MinAtar's observations are channel-last ``(10, 10, C)`` arrays of bool. Use it with ``MlpPolicy``: SB3's image
    checks refuse images this small, and a bool (or uint8 0/1) space is neither transposed nor scaled by SB3, so
    the extractor gets 0/1 floats and moves the channels first itself.

    :param observation_space: a channel-last ``(height, width, channels)`` Box of bool, or of uint8 with high 1
    :param features_dim: width of the dense layer and of the output (128 in MinAtar's reference)
    :param n_filters: output channels of the convolution (16 in MinAtar's reference)
    """

    def __init__(self, observation_space: gym.Space, features_dim: int = 128, n_filters: int = 16):
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 3:
            raise ValueError(f"MinAtarCNN needs a (height, width, channels) Box observation space, got {observation_space}")
        if is_image_space(observation_space, check_channels=False):
            # SB3 would move the channels first and divide by 255: MinAtar's 0/1 planes need neither
            raise ValueError(
                f"MinAtarCNN takes MinAtar's 0/1 planes (a bool Box, or uint8 with high 1), not a [0, 255] image: "
                f"got {observation_space}"
            )
        height, width, in_channels = observation_space.shape
        if height < 3 or width < 3 or features_dim < 1 or n_filters < 1:
            raise ValueError(
                f"MinAtarCNN needs images of at least 3x3, features_dim >= 1 and n_filters >= 1; got "
                f"{observation_space.shape}, features_dim={features_dim}, n_filters={n_filters}"
            )
        super().__init__(observation_space, features_dim)
        self.conv = nn.Conv2d(in_channels, n_filters, kernel_size=3, stride=1)
        self.linear = nn.Linear(n_filters * (height - 2) * (width - 2), features_dim)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        hidden = th.relu(self.conv(observations.float().permute(0, 3, 1, 2)))
        return th.relu(self.linear(th.flatten(hidden, start_dim=1)))
