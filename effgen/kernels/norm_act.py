"""Batch norm and the activation after it as one CPU kernel in training mode (``csrc/bn_act.c``).

On the CPU a classifier step is memory-bound: batch norm and SiLU on the two widest activations
(64 x 28 x 28 and 256 x 14 x 14 values per image) cost as much as the convolutions around them.
PyTorch runs them as separate kernels, each reading and writing the whole tensor; the fused one
makes 8 passes over memory where they make 13, and keeps no normalised copy for the backward
pass. Its numbers are those of ``activation(norm(x))`` to float rounding (``tests/test_fused.py``
checks values, gradients, running statistics and a short training run).

It applies to a batch norm in training mode with running statistics, on a float32 channels_last
tensor on the CPU, followed by SiLU, ReLU or LeakyReLU; anything else, or no built kernel
(``effgen.kernels.build``), runs the two modules as they are.
"""
from __future__ import annotations

import torch
from torch import nn

from effgen.kernels import build as cpu_kernels

_ACTIVATION_CODES: dict[type[nn.Module], int] = {nn.SiLU: 0, nn.ReLU: 1, nn.LeakyReLU: 2}


def batch_norm_activation(x: torch.Tensor, norm: nn.BatchNorm2d, activation: nn.Module) -> torch.Tensor:
    """``activation(norm(x))``: (N, C, H, W) -> (N, C, H, W), fused where it applies.

    The running statistics are updated as ``norm`` would update them.
    """
    code = _ACTIVATION_CODES.get(type(activation))
    if code is None or not _fits(norm, x) or cpu_kernels.takes(x, norm.weight) is None:
        return activation(norm(x))
    slope = float(getattr(activation, "negative_slope", 0.0))
    y, mean, var_unbiased = _BatchNormActivation.apply(x, norm.weight, norm.bias, norm.eps, code, slope)
    tracked, running_mean, running_var = norm.num_batches_tracked, norm.running_mean, norm.running_var
    momentum = norm.momentum
    # _fits admitted only a norm that tracks running statistics with a momentum
    assert tracked is not None and running_mean is not None and running_var is not None and momentum is not None
    with torch.no_grad():  # batch norm's own update in training mode, with its momentum
        tracked.add_(1)
        running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        running_var.mul_(1 - momentum).add_(var_unbiased, alpha=momentum)
    return y


def _fits(norm: nn.BatchNorm2d, x: torch.Tensor) -> bool:
    # More than one value per channel: the running variance is the unbiased batch variance.
    return (norm.training and norm.track_running_stats and norm.affine and norm.momentum is not None
            and x.numel() > x.shape[1])


class _BatchNormActivation(torch.autograd.Function):
    """x (N, C, H, W) channels_last -> act(BN(x)) (N, C, H, W), batch mean (C,), unbiased variance (C,)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, code: int,
                slope: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        channels = x.shape[1]
        weight, bias = weight.detach().contiguous(), bias.detach().contiguous()
        y = torch.empty_like(x)  # channels_last, as x
        mean, invstd, var_unbiased = (torch.empty(channels) for _ in range(3))
        cpu_kernels.loaded().bn_act_forward(
            x.data_ptr(), y.data_ptr(), x.numel() // channels, channels, weight.data_ptr(), bias.data_ptr(),
            eps, code, slope, mean.data_ptr(), invstd.data_ptr(), var_unbiased.data_ptr(),
            torch.get_num_threads())
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.code, ctx.slope = code, slope
        ctx.mark_non_differentiable(mean, var_unbiased)
        return y, mean, var_unbiased

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor, _grad_mean: torch.Tensor, _grad_var: torch.Tensor):
        x, weight, bias, mean, invstd = ctx.saved_tensors
        grad_y = grad_y.contiguous(memory_format=torch.channels_last)
        channels = x.shape[1]
        grad_x = torch.empty_like(x)
        grad_weight, grad_bias = torch.empty(channels), torch.empty(channels)
        cpu_kernels.loaded().bn_act_backward(
            x.data_ptr(), grad_y.data_ptr(), grad_x.data_ptr(), x.numel() // channels, channels,
            weight.data_ptr(), bias.data_ptr(), mean.data_ptr(), invstd.data_ptr(), ctx.code, ctx.slope,
            grad_weight.data_ptr(), grad_bias.data_ptr(), torch.get_num_threads())
        return grad_x, grad_weight, grad_bias, None, None, None
