"""A 3x3 depthwise convolution whose backward pass runs in ``csrc/depthwise.c`` on the CPU.

The forward pass is PyTorch's. Its CPU backward takes 3-5x as long as the forward; the C kernel
walks each image once in channels_last order for both gradients and takes about half that
(``bench/bench_classifier.py --kernels``). The input gradient is the same sum of the same products;
the weight gradient is summed in another order, so it agrees to float rounding
(``tests/test_fused.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from effgen.kernels import build as cpu_kernels


def depthwise_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)``: (N, C, H, W) -> (N, C, H / stride, W / stride), the C kernel's backward where it applies."""
    if not _fits(conv) or cpu_kernels.takes(x, conv.weight) is None:
        return conv(x)
    return _Depthwise3x3.apply(x, conv.weight, conv.stride[0])


def _fits(conv: nn.Conv2d) -> bool:
    return (conv.groups == conv.in_channels == conv.out_channels and conv.kernel_size == (3, 3)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.stride in ((1, 1), (2, 2))
            and conv.bias is None and conv.padding_mode == "zeros" and torch.is_grad_enabled())


class _Depthwise3x3(torch.autograd.Function):
    """x (N, C, H, W) channels_last, weight (C, 1, 3, 3) -> (N, C, H', W'), padding 1."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride = stride
        return F.conv2d(x, weight, None, stride, 1, 1, x.shape[1])

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, weight = ctx.saved_tensors
        n, c, h, w = x.shape
        grad_y = grad_y.contiguous(memory_format=torch.channels_last)
        taps = weight.detach().reshape(c, 9).t().contiguous()  # (9, C): one row of C weights per tap
        grad_x, grad_taps = torch.empty_like(x), torch.empty(9, c)
        cpu_kernels.loaded().depthwise3x3_backward(
            x.data_ptr(), grad_y.data_ptr(), taps.data_ptr(), grad_x.data_ptr(), grad_taps.data_ptr(),
            n, h, w, c, ctx.stride, torch.get_num_threads())
        return grad_x, grad_taps.t().reshape(c, 1, 3, 3), None
