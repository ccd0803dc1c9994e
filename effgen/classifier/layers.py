"""The classifier's building blocks: squeeze-and-excitation and the MobileNetV2 inverted residual.

Both follow the authors' notebook (SPEC §2): SE squeezes with a global average pool and
excites through two bias-free linear layers with a ReLU between them [Hu et al. 2018];
the inverted residual expands with a 1x1 convolution, filters each channel with a 3x3
depthwise convolution, gates the channels with SE and projects back with a linear
(activation-free) 1x1 bottleneck [Sandler et al. 2018].

Swish, ``x * sigmoid(x)`` [Ramachandran et al. 2017], is ``torch.nn.SiLU``; it is not
re-implemented here. Shapes in the comments are for the first IR block of the paper's model
(16 -> 32 channels, expansion 4, stride 2, on a 28x28 input).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from effgen.kernels.depthwise import depthwise_conv
from effgen.kernels.norm_act import batch_norm_activation
from effgen.kernels.squeeze_excite import squeeze_excite

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "swish": nn.SiLU,  # SiLU is Swish with beta = 1, the form the paper uses
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
}


def make_activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


class ConvNormActivation(nn.Sequential):
    """Convolution, batch norm, activation: (N, C_in, H, W) -> (N, C_out, H', W').

    A plain ``nn.Sequential`` of the three (same names, same state dict) that trains faster on the
    CPU: batch norm and the activation run as one kernel (``effgen.kernels.norm_act``), and a 3x3 depthwise
    convolution's backward pass runs in C (``effgen.kernels.depthwise``). Elsewhere it is the sequence.
    """

    def __init__(self, conv: nn.Conv2d, norm: nn.BatchNorm2d, activation: nn.Module) -> None:
        super().__init__(conv, norm, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, norm, activation = self
        assert isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)  # what __init__ took
        return batch_norm_activation(depthwise_conv(x, conv), norm, activation)


class SqueezeExcite(nn.Module):
    """Channel gating: (N, C, H, W) -> (N, C, H, W), each channel scaled by a learned weight in (0, 1)."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        if channels % reduction:
            raise ValueError(f"SE reduction {reduction} does not divide {channels} channels")
        squeezed = channels // reduction
        self.pool = nn.AdaptiveAvgPool2d(1)  # (N, 64, 14, 14) -> (N, 64, 1, 1)
        self.reduce = nn.Linear(channels, squeezed, bias=False)  # (N, 64) -> (N, 16)
        self.relu = nn.ReLU(inplace=True)  # (N, 16); ReLU here whatever the block's activation
        self.expand = nn.Linear(squeezed, channels, bias=False)  # (N, 16) -> (N, 64)
        self.gate = nn.Sigmoid()  # (N, 64) in (0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The same layers with a faster backward (CPU), where it applies.
        if (fast := squeeze_excite(x, self.reduce, self.expand)) is not None:
            return fast
        n, c = x.shape[:2]
        weights = self.pool(x).flatten(1)  # (N, C)
        weights = self.gate(self.expand(self.relu(self.reduce(weights))))  # (N, C)
        return x * weights.view(n, c, 1, 1)  # (N, C, H, W)


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depthwise 3x3 -> SE -> project 1x1; a skip connection when the shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int,
                 activation: str = "swish", se_reduction: int = 4) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand = ConvNormActivation(
            nn.Conv2d(in_channels, hidden, 1, bias=False),  # (N, 16, 28, 28) -> (N, 64, 28, 28)
            nn.BatchNorm2d(hidden),  # (N, 64, 28, 28)
            make_activation(activation),  # (N, 64, 28, 28)
        )
        self.depthwise = ConvNormActivation(
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),  # -> (N, 64, 14, 14)
            nn.BatchNorm2d(hidden),  # (N, 64, 14, 14)
            make_activation(activation),  # (N, 64, 14, 14)
        )
        self.se = SqueezeExcite(hidden, se_reduction)  # (N, 64, 14, 14)
        self.project = nn.Sequential(
            nn.Conv2d(hidden, out_channels, 1, bias=False),  # (N, 64, 14, 14) -> (N, 32, 14, 14)
            nn.BatchNorm2d(out_channels),  # (N, 32, 14, 14); linear bottleneck: no activation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + out if self.use_residual else out
