"""The paper's AddNIST classifier (86,692 parameters) and the plain CNN it grew out of.

``PaperClassifier`` is SPEC §2 exactly: a bias-free 3x3 stem, three inverted-residual blocks
with SE, global average pooling and one linear layer onto the 20 digit sums. Its options are
the ones the paper's ablations need: the activation, a fourth IR block (104,804 parameters)
and a dropout before the head, which the original built but never applied (so it is off here).

``BaselineCNN`` stands in for the paper's "43.2% before SE/IR" model, whose exact layers the
paper does not give: three plain 3x3 conv + BN + activation stages with the same widths and
strides as the paper model, so the SE/IR ablation changes the blocks and nothing else.
"""
from __future__ import annotations

import torch
from torch import nn

from effgen.budget import layer_table
from effgen.classifier.layers import ConvNormActivation, InvertedResidual, make_activation

NUM_CLASSES = 20
IN_CHANNELS = 3
# The IR blocks' hidden widths (input width x expansion), which their SE layers divide by the SE
# reduction; the config checks the reduction against them before a model is built.
SE_CHANNELS: tuple[int, ...] = (16 * 4, 32 * 4, 32 * 8)


class PaperClassifier(nn.Module):
    """AddNIST image (N, 3, 28, 28) -> logits over the 20 digit sums (N, 20)."""

    def __init__(self, activation: str = "swish", extra_block: bool = False, dropout: float = 0.0,
                 se_reduction: int = 4, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = ConvNormActivation(
            nn.Conv2d(IN_CHANNELS, 16, 3, 1, 1, bias=False),  # (N, 3, 28, 28) -> (N, 16, 28, 28)
            nn.BatchNorm2d(16),  # (N, 16, 28, 28)
            make_activation(activation),  # (N, 16, 28, 28)
        )
        blocks = [
            InvertedResidual(16, 32, 4, 2, activation, se_reduction),  # -> (N, 32, 14, 14)
            InvertedResidual(32, 32, 4, 1, activation, se_reduction),  # -> (N, 32, 14, 14), residual
        ]
        if extra_block:  # the paper's scalability test: one more 32 -> 32 block, +18,112 params
            blocks.append(InvertedResidual(32, 32, 4, 1, activation, se_reduction))  # (N, 32, 14, 14)
        blocks.append(InvertedResidual(32, 64, 8, 2, activation, se_reduction))  # -> (N, 64, 7, 7)
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)  # (N, 64, 7, 7) -> (N, 64, 1, 1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # (N, 64)
        self.head = nn.Linear(64, num_classes)  # (N, 64) -> (N, 20)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.blocks(self.stem(x))).flatten(1)  # (N, 64)
        return self.head(self.dropout(features))  # (N, 20)


class BaselineCNN(nn.Module):
    """The plain CNN before SE/IR: (N, 3, 28, 28) -> (N, 20) logits, 24,996 parameters."""

    def __init__(self, activation: str = "swish", dropout: float = 0.0,
                 num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(IN_CHANNELS, 16, 3, 1, 1, bias=False),  # (N, 3, 28, 28) -> (N, 16, 28, 28)
            nn.BatchNorm2d(16),  # (N, 16, 28, 28)
            make_activation(activation),  # (N, 16, 28, 28)
            nn.Conv2d(16, 32, 3, 2, 1, bias=False),  # (N, 16, 28, 28) -> (N, 32, 14, 14)
            nn.BatchNorm2d(32),  # (N, 32, 14, 14)
            make_activation(activation),  # (N, 32, 14, 14)
            nn.Conv2d(32, 64, 3, 2, 1, bias=False),  # (N, 32, 14, 14) -> (N, 64, 7, 7)
            nn.BatchNorm2d(64),  # (N, 64, 7, 7)
            make_activation(activation),  # (N, 64, 7, 7)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)  # (N, 64, 7, 7) -> (N, 64, 1, 1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # (N, 64)
        self.head = nn.Linear(64, num_classes)  # (N, 64) -> (N, 20)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.features(x)).flatten(1)  # (N, 64)
        return self.head(self.dropout(features))  # (N, 20)


def architecture_table(model: nn.Module, names: list[str] | None = None,
                       input_shape: tuple[int, ...] = (1, IN_CHANNELS, 28, 28)) -> list[dict]:
    """:func:`effgen.budget.layer_table` of an AddNIST model, as the classifier chapters tabulate it: the
    module's class name as its ``type`` and the shape under ``output shape``."""
    return [{"layer": row["layer"], "type": row["type"], "output shape": row["output"], "params": row["params"]}
            for row in layer_table(model, input_shape, names, describe=lambda layer: type(layer).__name__)]
