"""Squeeze-and-excitation's backward pass in two memory passes on the CPU (``csrc/channel_scale.c``).

SE gates each channel of x by a weight computed from the channel means (``effgen.classifier.layers``).
Autograd's backward runs five full-size kernels for it: the gradient to the gate (a product and
a sum over pixels), to x through the product, to x through the means (a broadcast), and their
sum. Here the gate's gradient is one pass over (x, dy), the two small linear layers are
differentiated by hand on (N, C) tensors, and the input's gradient is one more pass. The forward
pass runs the module's own operations, so its output is the module's bit for bit; gradients
agree to float rounding (``tests/test_fused.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from effgen.kernels import build as cpu_kernels


def squeeze_excite(x: torch.Tensor, reduce: nn.Linear, expand: nn.Linear) -> torch.Tensor | None:
    """SE's gating with its two linear layers, (N, C, H, W) -> (N, C, H, W), with the C backward: the
    forward of ``effgen.classifier.layers.SqueezeExcite``.

    None where it does not apply (no gradient wanted, biases, another device or layout, no kernels):
    the module then runs its own layers.
    """
    if not _fits(reduce, expand) or cpu_kernels.takes(x, reduce.weight, expand.weight) is None:
        return None
    return _SqueezeExcite.apply(x, reduce.weight, expand.weight)


def _fits(reduce: nn.Linear, expand: nn.Linear) -> bool:
    return torch.is_grad_enabled() and reduce.bias is None and expand.bias is None


class _SqueezeExcite(torch.autograd.Function):
    """x (N, C, H, W) channels_last, reduce (C/r, C), expand (C, C/r) -> x * sigmoid(expand(relu(reduce(mean))))."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, reduce: torch.Tensor, expand: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        means = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (N, C)
        hidden = F.linear(means, reduce)  # (N, C/r)
        gate = torch.sigmoid(F.linear(torch.relu(hidden), expand))  # (N, C)
        ctx.save_for_backward(x, means, hidden, gate, reduce, expand)
        return x * gate.view(n, c, 1, 1)  # (N, C, H, W)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, means, hidden, gate, reduce, expand = ctx.saved_tensors
        n, c, h, w = x.shape
        grad_y = grad_y.contiguous(memory_format=torch.channels_last)
        library, threads = cpu_kernels.loaded(), torch.get_num_threads()
        grad_gate = torch.empty(n, c)
        library.channel_scale_gate_grad(x.data_ptr(), grad_y.data_ptr(), grad_gate.data_ptr(), n, h * w, c,
                                        threads)
        grad_logits = grad_gate * gate * (1 - gate)  # through the sigmoid, (N, C)
        grad_expand = grad_logits.t() @ torch.relu(hidden)  # (C, C/r)
        grad_hidden = (grad_logits @ expand) * (hidden > 0)  # through the ReLU, (N, C/r)
        grad_reduce = grad_hidden.t() @ means  # (C/r, C)
        grad_means = (grad_hidden @ reduce).contiguous()  # (N, C)
        grad_x = torch.empty_like(x)
        library.channel_scale_input_grad(grad_y.data_ptr(), gate.data_ptr(), grad_means.data_ptr(),
                                         grad_x.data_ptr(), n, h * w, c, threads)
        return grad_x, grad_reduce, grad_expand
