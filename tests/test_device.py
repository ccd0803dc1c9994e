"""The per-device speed settings: freed host memory kept for reuse."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Run in a fresh interpreter: the heap of a process that has run other tests is fragmented, and
# a freed block in its middle is reused whatever the setting, so nothing would be measured.
_MEASURE = """
import json, resource, torch
from effgen.runtime import keep_freed_memory

def cycle():  # allocate, touch and free a 16 MiB activation, as every training step does
    activation = torch.empty(4 << 20)
    activation.fill_(1.0)
    del activation

def faults_per_cycle(warm_up=10, cycles=8):  # glibc's heap takes a few cycles to settle
    for _ in range(warm_up):
        cycle()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cycles):
        cycle()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / cycles

applies = keep_freed_memory(False)
handed_back = faults_per_cycle()
keep_freed_memory(True)
print(json.dumps({"applies": applies, "handed_back": handed_back, "kept": faults_per_cycle()}))
"""


def test_kept_memory_is_reused_without_faulting_its_pages_in_again() -> None:
    done = subprocess.run([sys.executable, "-c", _MEASURE], capture_output=True, text=True, check=True)
    faults = json.loads(done.stdout.splitlines()[-1])
    if not faults["applies"]:
        pytest.skip("the C library here is not glibc")
    assert faults["handed_back"] > 2000  # 16 MiB = 4,096 pages, mapped afresh each time
    assert faults["kept"] < 100
