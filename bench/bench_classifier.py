"""Steps per second: effgen's classifier training loop against a plain PyTorch loop, side by side.

Both train the paper's classifier (86,692 parameters) with Adam at batch 64 on the same
random AddNIST-shaped tensors, in one process:

- plain: ``DataLoader(TensorDataset(x, y), shuffle=True, drop_last=True)``, NCHW, fp32, and
  glibc's own memory settings;
- effgen: ``effgen.classifier.train_classifier`` (in-memory batches, channels_last on CPU, freed
  activations kept for reuse (``effgen.runtime.keep_freed_memory``), the C kernels of
  ``effgen.kernels.build`` on CPU, bf16 autocast on CUDA), timed end to end, its one validation
  pass on 64 samples included.

``--kernels`` adds the effgen loop with its C kernels switched off (``effgen.kernels.build.disabled``),
so one run says what they are worth beside everything else the loop does.

Each timed loop runs in a fresh child process: the memory setting is process-wide and glibc's
default (a threshold that adapts) cannot be put back once changed, so sharing a process would
hand the plain loop effgen's setting or a worse one than its own.

``--with-compile`` adds a third loop: the plain loop with its model wrapped in ``torch.compile``
(TorchInductor's fused C++ kernels on the CPU), its compilation done in the warm-up. It is there
to answer whether the compiler would have been the faster route; effgen does not compile.

Usage: ``python bench/bench_classifier.py [--steps 100] [--rounds 3] [--device auto] [--kernels] [--with-compile]``. Prints the
machine (with its load average: on a shared CPU other processes slow both loops), both rates and
their ratio, and on the CPU each step's FLOP rate against the machine's (``bench/roofline.py``).
Each round times both loops after a warm-up, in alternating order; the median round counts.
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from roofline import copy_gbps, dense_gflops, flops_of, rate_line  # bench/ is on sys.path
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

os.environ.setdefault("EFFGEN_PROGRESS", "0")  # no progress bars between the numbers

from effgen.book.provenance import machine_summary
from effgen.classifier import ClassifierConfig, train_classifier
from effgen.classifier.models import PaperClassifier
from effgen.kernels import build as cpu_kernels
from effgen.runtime import describe, pick_device


def fake_addnist(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 28, 28, generator=g), torch.randint(0, 20, (n,), generator=g)


def plain_loop(x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int, device: torch.device,
               compiled: bool = False) -> float:
    """Seconds for ``steps`` Adam steps the textbook way (the forward pass compiled if asked)."""
    torch.manual_seed(0)
    model = _compiled_classifier(device) if compiled else PaperClassifier().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=5.039249e-3, weight_decay=1.1710477e-5)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True)
    started, done = time.perf_counter(), 0
    while done < steps:
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    _sync(device)
    return time.perf_counter() - started


def effgen_loop(x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int, device: torch.device) -> float:
    config = ClassifierConfig(steps=steps, steps_per_epoch=steps, batch_size=batch_size, eval_samples=64)
    started = time.perf_counter()
    train_classifier(config, (x, y), (x[:64], y[:64]), device)
    _sync(device)
    return time.perf_counter() - started


@functools.cache
def _compiled_classifier(device: torch.device) -> nn.Module:
    # One compiled model per process: a new module would be traced again, so the timed call would
    # pay for tracing too. The warm-up call traces and generates the kernels; the timed call reuses
    # them (on the weights the warm-up left, which does not change a step's cost).
    torch.manual_seed(0)
    return torch.compile(PaperClassifier().to(device).train())


def compiled_loop(x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int, device: torch.device) -> float:
    return plain_loop(x, y, steps, batch_size, device, compiled=True)


def effgen_torch_kernels_loop(x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int,
                              device: torch.device) -> float:
    """The effgen loop with its C kernels switched off: what ``effgen.kernels.build`` is worth."""
    with cpu_kernels.disabled():
        return effgen_loop(x, y, steps, batch_size, device)


LOOPS = {"plain": plain_loop, "effgen": effgen_loop, "compiled": compiled_loop,
         "effgen-torch-kernels": effgen_torch_kernels_loop}


def _time_in_child(name: str, args: argparse.Namespace) -> float:
    """Seconds for one timed loop, run after its warm-up in a fresh Python process."""
    command = [sys.executable, __file__, "--only", name, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--batch-size", str(args.batch_size), "--samples", str(args.samples), "--device", args.device]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the {name} loop failed:\n{done.stderr}")
    return float(done.stdout.split()[-1])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="timed steps per loop (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per loop first (default 10)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=10_000, help="training tensor size (default 10,000)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of both loops (default 3)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--with-compile", action="store_true", help="also time the plain loop under torch.compile")
    parser.add_argument("--kernels", action="store_true",
                        help="also time the effgen loop with its C kernels off (effgen.kernels.build)")
    parser.add_argument("--only", choices=sorted(LOOPS), help=argparse.SUPPRESS)  # one timed loop, in a child
    args = parser.parse_args()

    device = pick_device(args.device)
    x, y = fake_addnist(args.samples)
    if args.only:
        LOOPS[args.only](x, y, args.warmup, args.batch_size, device)
        print(LOOPS[args.only](x, y, args.steps, args.batch_size, device))
        return
    load_before = os.getloadavg()[0]
    names = (["plain", "effgen"] + (["effgen-torch-kernels"] if args.kernels else [])
             + (["compiled"] if args.with_compile else []))
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name in (names if round_ % 2 else names[::-1]):
            seconds[name].append(_time_in_child(name, args))
    load_after = os.getloadavg()[0]

    print(f"machine: {machine_summary()}; load average {load_before:.1f} -> {load_after:.1f} during the run; "
          f"device {describe(device)}")
    print(f"paper classifier, batch {args.batch_size}, {args.steps} steps per round after {args.warmup} "
          f"warm-up steps, median of {args.rounds} rounds")
    median = {name: statistics.median(times) for name, times in seconds.items()}
    for name in names:
        rounds = " ".join(f"{1000 * t / args.steps:.0f}" for t in seconds[name])
        print(f"  {name:20s} {args.steps / median[name]:7.2f} steps/s  {1000 * median[name] / args.steps:7.1f} "
              f"ms/step  (rounds, ms/step: {rounds})")
    print(f"  speed-up effgen / plain: {median['plain'] / median['effgen']:.2f}x")
    if "effgen-torch-kernels" in median:
        print(f"  speed-up of effgen's C kernels: {median['effgen-torch-kernels'] / median['effgen']:.2f}x "
              f"(effgen with PyTorch's kernels: {median['plain'] / median['effgen-torch-kernels']:.2f}x plain)")
    if "compiled" in median:
        print(f"  speed-up compiled / plain: {median['plain'] / median['compiled']:.2f}x; "
              f"effgen / compiled: {median['compiled'] / median['effgen']:.2f}x")
    if device.type == "cpu":
        model = PaperClassifier().train()
        xb, yb = x[:args.batch_size], y[:args.batch_size]
        flops = flops_of(lambda: F.cross_entropy(model(xb), yb).backward())
        peak = dense_gflops()
        print(f"this machine, {torch.get_num_threads()} thread(s): dense fp32 matrix multiply {peak:.1f} GFLOP/s, "
              f"memory copy {copy_gbps():.1f} GB/s")
        for name in names:
            print("  " + rate_line(f"{name} step", flops, 1000 * median[name] / args.steps, peak))



if __name__ == "__main__":
    main()
