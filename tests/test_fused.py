"""The C kernels (effgen.kernels.build): each kernel matches PyTorch's to float32 rounding, and the fallback is clean.

How far a whole training run on PyTorch's kernels stands from one on these: test_faults.py.
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from effgen.classifier.layers import SqueezeExcite
from effgen.classifier.models import PaperClassifier
from effgen.kernels import build as cpu_kernels
from effgen.kernels.depthwise import depthwise_conv
from effgen.kernels.norm_act import batch_norm_activation

CPU = torch.device("cpu")
needs_compiler = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                    reason="no C compiler: the kernels cannot be built here")


def channels_last(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g) + 0.3).contiguous(memory_format=torch.channels_last)


def norm_with_weights(channels: int) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5, generator=g)
        norm.bias.normal_(0, 0.5, generator=g)
    return norm


def bn_act_and_grads(x: torch.Tensor, norm: nn.BatchNorm2d, activation: nn.Module, grad: torch.Tensor,
                     fused: bool) -> list[torch.Tensor]:
    x = x.clone().requires_grad_()
    if fused:
        y = batch_norm_activation(x, norm, activation)
    else:
        with cpu_kernels.disabled():
            y = batch_norm_activation(x, norm, activation)
    y.backward(grad)
    return [y.detach(), x.grad, norm.weight.grad, norm.bias.grad, norm.running_mean.clone(),
            norm.running_var.clone(), norm.num_batches_tracked.clone()]


@needs_compiler
def test_the_kernels_build_here() -> None:
    assert cpu_kernels.library() is not None
    with cpu_kernels.disabled():
        assert cpu_kernels.library() is None
    assert cpu_kernels.library() is not None


@needs_compiler
def test_the_kernels_take_only_float32_channels_last_cpu_tensors() -> None:
    x = channels_last(2, 8, 5, 5)
    weight = torch.ones(8)
    assert cpu_kernels.takes(x, weight) is cpu_kernels.library()
    for inputs, weights in [(x.contiguous(), (weight,)), (x.double(), (weight,)), (x, (weight.double(),)),
                            (x.flatten(2), (weight,)), (x.half(), ())]:
        assert cpu_kernels.takes(inputs, *weights) is None
    with cpu_kernels.disabled():
        assert cpu_kernels.takes(x, weight) is None


@needs_compiler
@pytest.mark.parametrize("activation", [nn.SiLU(), nn.ReLU(), nn.LeakyReLU(0.2)], ids=type)
# Channel counts for every path through the kernel's 64-channel slices of the batch statistics:
# literal widths of one slice (16, 32) and of two (128), and other widths (5; 80, a full slice
# and a part one).
@pytest.mark.parametrize("shape", [(8, 32, 10, 10), (3, 5, 7, 7), (64, 16, 2, 1),
                                   (4, 128, 5, 5), (4, 80, 5, 5)])
def test_batch_norm_activation_matches_the_two_modules(activation: nn.Module, shape: tuple[int, ...]) -> None:
    x = channels_last(*shape, scale=2.0)
    grad = channels_last(*shape, seed=2)
    norm = norm_with_weights(shape[1])
    fused = bn_act_and_grads(x, copy.deepcopy(norm), activation, grad, fused=True)
    reference = bn_act_and_grads(x, copy.deepcopy(norm), activation, grad, fused=False)
    assert fused[0].is_contiguous(memory_format=torch.channels_last)
    for mine, theirs in zip(fused, reference):
        assert mine.shape == theirs.shape
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


@needs_compiler
@pytest.mark.parametrize("stride", [1, 2])
# Channel counts for both weight-gradient loops: 16-channel register slices (16, 48) and
# channel rows (8, 24; 256, above the slices' limit of 128).
@pytest.mark.parametrize("shape", [(4, 24, 14, 14), (3, 8, 5, 5), (2, 16, 7, 6),
                                   (2, 48, 9, 8), (2, 256, 4, 4)])
def test_depthwise_backward_matches_pytorch(stride: int, shape: tuple[int, ...]) -> None:
    conv = nn.Conv2d(shape[1], shape[1], 3, stride, 1, groups=shape[1], bias=False)
    x = channels_last(*shape)
    results = []
    for use_kernels in (True, False):
        layer, inputs = copy.deepcopy(conv), x.clone().requires_grad_()
        with cpu_kernels.disabled() if not use_kernels else torch.enable_grad():
            y = depthwise_conv(inputs, layer)
        grad = channels_last(*y.shape, seed=3)
        y.backward(grad)
        results.append((y.detach(), inputs.grad, layer.weight.grad))
    for mine, theirs in zip(*results):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


@needs_compiler
@pytest.mark.parametrize("shape", [(8, 64, 14, 14), (3, 16, 5, 5), (2, 32, 7, 6)])
def test_squeeze_excite_backward_matches_autograd(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    se = SqueezeExcite(shape[1])
    x, grad = channels_last(*shape), channels_last(*shape, seed=5)
    results = []
    for use_kernels in (True, False):
        module, inputs = copy.deepcopy(se), x.clone().requires_grad_()
        with cpu_kernels.disabled() if not use_kernels else torch.enable_grad():
            y = module(inputs)
        y.backward(grad)
        results.append((y.detach(), inputs.grad, module.reduce.weight.grad, module.expand.weight.grad))
    assert torch.equal(results[0][0], results[1][0])  # the forward pass is the module's own
    for mine, theirs in zip(*results):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


@needs_compiler
def test_two_threads_repeat_bit_for_bit() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x, grad = channels_last(16, 64, 14, 14, scale=2.0), channels_last(16, 64, 14, 14, seed=4)
        runs = [bn_act_and_grads(x, norm_with_weights(64), nn.SiLU(), grad, fused=True) for _ in range(2)]
        conv = nn.Conv2d(64, 64, 3, 2, 1, groups=64, bias=False)
        for _ in range(2):
            layer, inputs = copy.deepcopy(conv), x.clone().requires_grad_()
            depthwise_conv(inputs, layer).sum().backward()
            runs.append([inputs.grad, layer.weight.grad])
    finally:
        torch.set_num_threads(before)
    for first, second in (runs[:2], runs[2:]):
        assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_where_the_kernels_do_not_apply_the_modules_run_as_they_are() -> None:
    x = channels_last(4, 8, 6, 6)
    for inputs, norm, activation in [
        (x.contiguous(), norm_with_weights(8), nn.SiLU()),  # NCHW
        (x, norm_with_weights(8).eval(), nn.SiLU()),  # running statistics, not the batch's
        (x, norm_with_weights(8), nn.Softplus()),  # an activation the kernel does not have
        (x.double(), norm_with_weights(8).double(), nn.SiLU()),
    ]:
        expected = activation(copy.deepcopy(norm)(inputs))
        assert torch.equal(batch_norm_activation(inputs, norm, activation), expected)
    conv = nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=True)  # a bias: PyTorch's path
    assert torch.equal(depthwise_conv(x, conv), conv(x))


@needs_compiler
def test_a_model_trained_with_the_kernels_has_the_usual_state_dict() -> None:
    model = PaperClassifier().to(memory_format=torch.channels_last).train()
    F.cross_entropy(model(channels_last(8, 3, 28, 28)), torch.arange(8)).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert set(model.state_dict()) == set(PaperClassifier().state_dict())
    assert int(model.stem[1].num_batches_tracked) == 1


def test_no_compiler_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EFFGEN_KERNEL_CACHE", str(tmp_path / "kernels"))
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    cpu_kernels._build.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="no C compiler"):
            assert cpu_kernels.library() is None
        x = channels_last(4, 8, 6, 6).requires_grad_()
        norm = norm_with_weights(8)
        expected = F.silu(copy.deepcopy(norm)(x))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once, not at every call
            assert torch.equal(batch_norm_activation(x, norm, nn.SiLU()), expected)
    finally:
        cpu_kernels._build.cache_clear()


@needs_compiler
def test_a_failed_build_falls_back_and_names_the_compiler(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.setenv("EFFGEN_KERNEL_CACHE", str(tmp_path / "kernels"))
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    cpu_kernels._build.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="false"):
            assert cpu_kernels.library() is None
        assert not list((tmp_path / "kernels").glob("*.so"))
    finally:
        cpu_kernels._build.cache_clear()


def test_every_source_is_built_and_declared_once_the_library_loads() -> None:
    assert sorted(p.name for p in cpu_kernels.SOURCE_DIR.glob("*.c")) == sorted(cpu_kernels.SOURCES)
    if cpu_kernels.library() is None:
        pytest.skip("no C compiler here: PyTorch's kernels run and no C source is used")
    assert {Path(f).name for f in cpu_kernels.PACKAGE_FILES_USED} == set(cpu_kernels.SOURCES)


def test_the_environment_switch_turns_the_kernels_off() -> None:
    code = "from effgen.kernels import build; print(build.library() is None)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "EFFGEN_CPU_KERNELS": "0"})
    assert done.stdout.strip() == "True"
