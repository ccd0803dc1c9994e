"""GAN training throughput: effgen's loop (in-memory batches) vs a plain DataLoader loop, side by side.

Both train the paper's DCGAN with the corrected recipe's losses at batch 64 on the same
synthetic images; rounds alternate between the two so machine load hits both alike.
Prints ms per D+G step, the data-only cost per batch, their ratios, and the machine; then each
step's FLOP rate against this machine's dense matrix-multiply rate (``bench/roofline.py``), which
says how much faster a step could still get here, and the fp32 ceiling: the plain loop's time over
effgen's FLOPs run at the dense rate, the largest ratio fp32 arithmetic of this amount allows.
Where the CPU has bf16 units (oneDNN says so), it also times effgen's loop with ``precision="bf16"``: an opt-in that rounds the forward passes
differently, so the paper's runs stay fp32 and this row is not their speed.
Both loops share one process, so effgen's allocator setting (``keep_freed_memory``) serves the
plain loop too; it made no measurable difference to a GAN step, unlike the classifier's
(``bench_classifier.py`` runs its loops apart for that reason).

``--recipes`` times instead one training step of each recipe preset (``RECIPES``), with one
thread and with all of the machine's, rounds alternating between recipes so that load from
other processes hits all alike; it prints ms per step, each recipe's ratio to the corrected
DCGAN's, the speed-up from more threads, and the cost of re-estimating an EMA generator's
BatchNorm statistics (paid once per sample grid, not per step).

    .venv/bin/python bench/bench_gan.py --steps 20 --rounds 3
    .venv/bin/python bench/bench_gan.py --recipes --steps 10 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from roofline import copy_gbps, dense_gflops, flops_of, rate_line  # bench/ is on sys.path
from torch.utils.data import DataLoader, TensorDataset

from effgen.book.provenance import machine_summary
from effgen.data import InMemoryBatches
from effgen.gan import (
    Discriminator,
    Generator,
    check_gan_budget,
    dcgan_init_,
    preset,
    recompute_batchnorm,
)
from effgen.gan.trainer import Trainer
from effgen.runtime import describe


def plain_loop(images: torch.Tensor, seed: int):
    """The textbook loop: a DataLoader over a TensorDataset, one D and one G update per batch."""
    torch.manual_seed(seed)
    g, d = Generator(), Discriminator()
    dcgan_init_(g)
    dcgan_init_(d)
    opt_g = torch.optim.Adam(g.parameters(), 7.508e-4, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), 4.540e-4, betas=(0.5, 0.99))
    loader = DataLoader(TensorDataset(images), batch_size=64, shuffle=True, drop_last=True)
    batches = iter(loader)

    def step() -> None:
        nonlocal batches
        try:
            (real,) = next(batches)
        except StopIteration:
            batches = iter(loader)
            (real,) = next(batches)
        ones, zeros = torch.ones(64), torch.zeros(64)
        fake = g(torch.randn(64, 100, 1, 1))
        loss_d = (F.binary_cross_entropy_with_logits(d(real), ones)
                  + F.binary_cross_entropy_with_logits(d(fake.detach()), zeros))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(d(fake), ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        loss_d.item(), loss_g.item()  # the usual per-step logging

    return step


def timed(step, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n * 1000


RECIPES = ("corrected", "modern", "rebalanced", "sngan_small")


def recipe_steps(images: torch.Tensor, steps: int, rounds: int) -> None:
    """ms per training step of each recipe, one thread and all threads, side by side."""
    all_threads = os.cpu_count() or 1  # not torch's default, which OMP_NUM_THREADS may have lowered
    trainers = {name: Trainer(preset(name), images, torch.device("cpu")) for name in RECIPES}
    counts = {name: check_gan_budget(preset(name)).params for name in RECIPES}
    threads = sorted({1, all_threads})
    median: dict[tuple[str, int], float] = {}
    for n in threads:
        torch.set_num_threads(n)
        for trainer in trainers.values():
            timed(trainer.step, 3)  # warm-up: allocation and kernel choice at this thread count
        results: dict[str, list[float]] = {name: [] for name in RECIPES}
        for _ in range(rounds):
            for name, trainer in trainers.items():
                results[name].append(timed(trainer.step, steps))
        median.update({(name, n): statistics.median(v) for name, v in results.items()})
    torch.set_num_threads(all_threads)
    print(f"machine: {machine_summary()}; device {describe(torch.device('cpu'))}; "
          f"median of {rounds} rounds of {steps} steps, batch 64")
    columns = "".join(f" {f'{n} thr ms':>10} {'ratio':>6}" for n in threads)
    speedup_column = f" {'speed-up':>8}" if len(threads) > 1 else ""
    print(f"{'recipe':>12} {'G + D params':>12}{columns}{speedup_column}")
    for name in RECIPES:
        cells = "".join(f" {median[name, n]:10.1f} {median[name, n] / median['corrected', n]:5.2f}x"
                        for n in threads)
        speedup = (f" {median[name, 1] / median[name, threads[-1]]:7.2f}x"
                   if len(threads) > 1 else "")
        print(f"{name:>12} {counts[name]:12,}{cells}{speedup}")
    for name, trainer in trainers.items():
        if trainer.config.ema_bn_passes:
            started = time.perf_counter()
            recompute_batchnorm(trainer.ema.model, trainer.config.ema_bn_passes, 64, seed=0)
            seconds = time.perf_counter() - started
            print(f"{name}: re-estimating the EMA generator's BatchNorm "
                  f"({trainer.config.ema_bn_passes} passes of 64) takes {seconds:.2f} s with "
                  f"{all_threads} thread(s), once per sample grid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--recipes", action="store_true", help="time each recipe's step instead")
    args = parser.parse_args()
    images = torch.rand(args.images, 3, 32, 32) * 2 - 1
    if args.recipes:
        recipe_steps(images, args.steps, args.rounds)
        return
    ours = Trainer(preset("corrected"), images, torch.device("cpu")).step
    ours_bf16 = (Trainer(preset("corrected", precision="bf16"), images, torch.device("cpu")).step
                 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None)
    plain = plain_loop(images, 0)
    batcher = InMemoryBatches(images, batch_size=64, shuffle=True, seed=0)
    loader = DataLoader(TensorDataset(images), batch_size=64, shuffle=True, drop_last=True)
    loader_iter = iter(loader)

    def loader_next() -> None:
        nonlocal loader_iter
        try:
            next(loader_iter)
        except StopIteration:
            loader_iter = iter(loader)

    steps = {"effgen step": ours, "plain step": plain, **({"effgen bf16 step": ours_bf16} if ours_bf16 else {})}
    for step in steps.values():
        timed(step, 3)  # warm-up
    results: dict[str, list[float]] = {name: [] for name in steps} | {"InMemoryBatches": [], "DataLoader": []}
    for _ in range(args.rounds):
        for name, step in steps.items():
            results[name].append(timed(step, args.steps))
        results["InMemoryBatches"].append(timed(batcher.next, 200))
        results["DataLoader"].append(timed(loader_next, 200))
    median = {k: statistics.median(v) for k, v in results.items()}
    print(f"machine: {machine_summary()}; device {describe(torch.device('cpu'))}")
    for name, value in median.items():
        print(f"{name:>16}: {value:8.2f} ms (median of {args.rounds} rounds: "
              f"{', '.join(f'{v:.2f}' for v in results[name])})")
    print(f"step ratio plain / effgen: {median['plain step'] / median['effgen step']:.2f}x")
    if ours_bf16:
        print(f"step ratio plain / effgen bf16 (opt-in, different rounding): "
              f"{median['plain step'] / median['effgen bf16 step']:.2f}x")
    else:
        print("effgen bf16 step: not timed, oneDNN reports no bf16 support on this CPU")
    print(f"batch ratio DataLoader / InMemoryBatches: {median['DataLoader'] / median['InMemoryBatches']:.1f}x")
    peak = dense_gflops()
    print(f"this machine, {torch.get_num_threads()} thread(s): dense fp32 matrix multiply {peak:.1f} GFLOP/s, "
          f"memory copy {copy_gbps():.1f} GB/s")
    flops = {name: flops_of(step) for name, step in steps.items()}
    for name in steps:
        print("  " + rate_line(name, flops[name], median[name], peak))
    # Were effgen's fp32 step to run at the dense rate, it would take its FLOPs / peak: the most its
    # lead over this run's plain loop can be without doing less (or lower-precision) arithmetic.
    best_ms = flops["effgen step"] / (peak * 1e9) * 1000
    print(f"fp32 ceiling on this machine: plain / (effgen's FLOPs at the dense rate, {best_ms:.1f} ms) = "
          f"{median['plain step'] / best_ms:.2f}x")


if __name__ == "__main__":
    main()
