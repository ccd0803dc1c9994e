"""How close a training step runs to this machine's limits: its FLOP rate against dense matrix multiply.

A step that already runs near the rate of a large single-precision matrix multiply is bound by
arithmetic, and no reordering of its memory traffic makes it much faster; one far below it is
bound by memory traffic or by per-operation overhead, where fusing operations pays. The benches
print both numbers so a speed target can be judged against the hardware it runs on.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape=None) -> int:
    # PyTorch's own formula counts a grouped convolution's gradients as if it were dense, e.g.
    # 258x the forward for a 256-channel depthwise convolution. Each gradient (input, weight)
    # costs exactly the forward's multiply-adds: batch x output positions x weight entries,
    # the weight's shape already divided by the groups.
    positions = x_shape[2:] if transposed else grad_out_shape[2:]
    forward = 2 * grad_out_shape[0] * math.prod(positions) * math.prod(w_shape)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def flops_of(step: Callable[[], object]) -> int:
    """Floating-point operations one call of ``step`` performs (multiply-add = 2), counted by PyTorch."""
    fixed = {torch.ops.aten.convolution_backward: _conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=fixed) as counter:
        step()
    return counter.get_total_flops()


def dense_gflops(size: int = 1024, seconds: float = 1.0) -> float:
    """GFLOP/s of a ``size`` x ``size`` fp32 matrix multiply with the current thread count: a practical peak."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # warm-up
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(a, b, out=out)
        calls += 1
    return 2 * size**3 * calls / (time.perf_counter() - started) / 1e9


def copy_gbps(megabytes: int = 64, seconds: float = 0.5) -> float:
    """GB/s moved (read + write) copying a buffer far larger than the caches: the memory-bound ceiling."""
    source = torch.randn(megabytes * 2**20 // 4)
    dest = torch.empty_like(source)
    dest.copy_(source)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        dest.copy_(source)
        calls += 1
    return 2 * source.numel() * 4 * calls / (time.perf_counter() - started) / 1e9


def rate_line(name: str, flops: int, ms_per_step: float, peak_gflops: float) -> str:
    rate = flops / (ms_per_step / 1000) / 1e9
    return (f"{name}: {flops / 1e9:.2f} GFLOP per step at {ms_per_step:.1f} ms = {rate:.1f} GFLOP/s, "
            f"{100 * rate / peak_gflops:.0f}% of the dense matrix-multiply rate")
