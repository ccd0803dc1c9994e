"""bench/roofline.py: the FLOP count and the rates the benches print."""
from __future__ import annotations

import pytest
import torch
from roofline import copy_gbps, dense_gflops, flops_of, rate_line


def test_flops_of_counts_a_matrix_multiply_and_its_backward() -> None:
    a = torch.randn(8, 16, requires_grad=True)
    b = torch.randn(16, 4)
    assert flops_of(lambda: a @ b) == 2 * 8 * 16 * 4
    # backward of (a @ b).sum() w.r.t. a only: one more product of the same size
    assert flops_of(lambda: (a @ b).sum().backward()) == 2 * (2 * 8 * 16 * 4)


@pytest.mark.parametrize(("groups", "transposed"), [(32, False), (1, False), (4, True)])
def test_a_grouped_convolution_backward_costs_twice_its_forward(groups: int, transposed: bool) -> None:
    # PyTorch's formula ignores the groups; the bench's counts each gradient as one forward.
    x = torch.randn(4, 32, 8, 8, requires_grad=True)
    w = torch.randn(32, 32 // groups, 3, 3, requires_grad=True)
    conv = torch.nn.functional.conv_transpose2d if transposed else torch.nn.functional.conv2d
    forward = flops_of(lambda: conv(x, w, padding=1, groups=groups))
    assert forward == 2 * 4 * 8 * 8 * w.numel()
    assert flops_of(lambda: conv(x, w, padding=1, groups=groups).sum().backward()) == 3 * forward


def test_the_machine_rates_are_positive_and_the_line_reads_them() -> None:
    assert dense_gflops(size=64, seconds=0.05) > 0 and copy_gbps(megabytes=4, seconds=0.05) > 0
    assert rate_line("step", 2 * 10**9, 100.0, 40.0) == (
        "step: 2.00 GFLOP per step at 100.0 ms = 20.0 GFLOP/s, 50% of the dense matrix-multiply rate")
