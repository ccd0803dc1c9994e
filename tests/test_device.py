"""The per-device speed settings: freed host memory kept for reuse."""
from __future__ import annotations

import resource

import pytest
import torch

from effgen.device import keep_freed_memory


def _cycle() -> None:
    """Allocate, touch and free a 16 MiB activation, as every training step does."""
    activation = torch.empty(4 << 20)
    activation.fill_(1.0)
    del activation


def _page_faults_per_cycle(warm_up: int = 10, cycles: int = 8) -> float:
    """Minor page faults per cycle once the heap has settled (glibc takes a few cycles to)."""
    for _ in range(warm_up):
        _cycle()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cycles):
        _cycle()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / cycles


def test_kept_memory_is_reused_without_faulting_its_pages_in_again() -> None:
    if not keep_freed_memory(False):
        pytest.skip("the C library here is not glibc")
    try:
        handed_back = _page_faults_per_cycle()
        keep_freed_memory(True)
        kept = _page_faults_per_cycle()
    finally:
        keep_freed_memory(True)
    assert handed_back > 2000  # 16 MiB = 4,096 pages, mapped afresh each time
    assert kept < 100
