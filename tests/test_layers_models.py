"""The classifier's blocks and models: exact parameter counts, shapes, and the documented options."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from effgen.budget import CLASSIFIER_LIMITS, count_params
from effgen.classifier.layers import InvertedResidual, SqueezeExcite, make_activation
from effgen.classifier.models import BaselineCNN, PaperClassifier, architecture_table


def test_paper_classifier_has_the_papers_parameter_count() -> None:
    assert count_params(PaperClassifier()) == 86_692


def test_extra_ir_block_has_the_papers_parameter_count() -> None:
    assert count_params(PaperClassifier(extra_block=True)) == 104_804


@pytest.mark.parametrize("activation", ["swish", "relu", "softplus"])
def test_activation_and_dropout_do_not_change_the_count(activation: str) -> None:
    assert count_params(PaperClassifier(activation, dropout=0.3)) == 86_692


def test_baseline_is_within_budget_and_smaller_than_the_paper_model() -> None:
    params = count_params(BaselineCNN())
    assert params < CLASSIFIER_LIMITS.max_params
    assert params < count_params(PaperClassifier())


@pytest.mark.parametrize("model", [PaperClassifier(), PaperClassifier(extra_block=True), BaselineCNN()])
def test_models_map_addnist_images_to_20_logits(model: nn.Module) -> None:
    assert model(torch.randn(5, 3, 28, 28)).shape == (5, 20)


def test_swish_is_torch_silu_not_a_reimplementation() -> None:
    model = PaperClassifier("swish")
    assert isinstance(model.stem[2], nn.SiLU)
    assert isinstance(make_activation("relu"), nn.ReLU)
    assert isinstance(make_activation("softplus"), nn.Softplus)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        make_activation("gelu")


def test_se_keeps_relu_whatever_the_block_activation() -> None:
    block = InvertedResidual(16, 32, 4, 2, activation="softplus")
    assert isinstance(block.expand[2], nn.Softplus)
    assert isinstance(block.se.relu, nn.ReLU)


def test_squeeze_excite_scales_each_channel_by_a_gate_in_0_1() -> None:
    se = SqueezeExcite(8, reduction=4)
    x = torch.ones(2, 8, 5, 5)
    out = se(x)
    assert out.shape == x.shape
    assert ((out > 0) & (out < 1)).all()
    # one gate per channel: constant over the spatial positions
    assert torch.allclose(out, out[:, :, :1, :1].expand_as(out))
    assert count_params(se) == 8 * 2 + 2 * 8  # two bias-free linear layers, C -> C/4 -> C


def test_inverted_residual_shapes_and_skip_rule() -> None:
    down = InvertedResidual(16, 32, 4, 2)
    same = InvertedResidual(32, 32, 4, 1)
    widen = InvertedResidual(32, 64, 8, 1)
    assert down(torch.randn(2, 16, 28, 28)).shape == (2, 32, 14, 14)
    assert same(torch.randn(2, 32, 14, 14)).shape == (2, 32, 14, 14)
    assert (down.use_residual, same.use_residual, widen.use_residual) == (False, True, False)


def test_residual_block_adds_its_input() -> None:
    block = InvertedResidual(8, 8, 2, 1).eval()
    nn.init.zeros_(block.project[1].weight)  # the branch now outputs BN's bias, zero
    x = torch.randn(1, 8, 6, 6)
    assert torch.allclose(block(x), x)


def test_inverted_residual_rejects_bad_stride() -> None:
    with pytest.raises(ValueError, match="stride"):
        InvertedResidual(8, 8, 2, 3)


def test_dropout_is_off_in_the_faithful_model_and_on_when_asked() -> None:
    assert isinstance(PaperClassifier().dropout, nn.Identity)
    assert isinstance(PaperClassifier(dropout=0.25).dropout, nn.Dropout)


def test_channels_last_gives_the_same_logits() -> None:
    torch.manual_seed(0)
    model = PaperClassifier().eval()
    x = torch.randn(4, 3, 28, 28)
    reference = model(x)
    model = model.to(memory_format=torch.channels_last)
    assert torch.allclose(model(x.contiguous(memory_format=torch.channels_last)), reference, atol=1e-5)


def test_architecture_table_accounts_for_every_parameter() -> None:
    model = PaperClassifier()
    rows = architecture_table(model)
    assert sum(row["params"] for row in rows) == 86_692
    assert rows[0]["output shape"] == (16, 28, 28)
    assert rows[-1]["output shape"] == (20,)
    assert model.training  # mode restored


def test_architecture_table_can_pick_modules() -> None:
    rows = architecture_table(PaperClassifier(), ["stem", "blocks.0.se", "blocks.2", "head"])
    assert [r["output shape"] for r in rows] == [(16, 28, 28), (64, 14, 14), (64, 7, 7), (20,)]
    assert rows[1]["params"] == 2 * 64 * 16
    with pytest.raises(ValueError, match="no module named"):
        architecture_table(PaperClassifier(), ["blocks.9"])
