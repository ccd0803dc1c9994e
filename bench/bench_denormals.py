"""What subnormal weights cost a classifier, with and without ``effgen.runtime.flush_denormals``.

Some of chapter 01's high-learning-rate runs ended with many weights in the subnormal range (below
1.2e-38 in float32), where x86 CPUs take a slow path for every operation that reads or makes such a
value; their last epochs took up to seven times as long as their first. This bench loads the
weights of such a run from the frozen run store (by default the ReLU run at lr 1e-2 of chapter 01's
learning-rate picks, 47 % of its values subnormal) and times, on one thread, a training step (forward,
backward, Adam with lr 0 so that the weights stay as loaded) at batch 64 and a scoring pass over 512
images, four ways: a freshly initialised model of the same configuration or the trained weights,
PyTorch's default arithmetic or flushed. The rounds alternate the four; the median round counts.

Usage: ``python bench/bench_denormals.py [--weights PATH] [--rounds 5] [--threads 1]``.
Prints the machine (with its load average) and each time with its ratio to the fresh default.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from effgen.book.provenance import machine_summary
from effgen.classifier import load_classifier
from effgen.classifier.config import build_model
from effgen.runtime import flush_denormals

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = ROOT / "_freeze/paper/store/classifier/seed0-2c5dba4d/weights.pt"
SMALLEST_NORMAL = torch.finfo(torch.float32).tiny  # 1.1755e-38


def subnormal_count(model: torch.nn.Module) -> tuple[int, int]:
    values = [t for t in model.state_dict().values() if t.is_floating_point()]
    tiny = sum(int(((t != 0) & (t.abs() < SMALLEST_NORMAL)).sum()) for t in values)
    return tiny, sum(t.numel() for t in values)


def time_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
              y: torch.Tensor) -> float:
    model.train()
    started = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    return time.perf_counter() - started


def time_scoring(model: torch.nn.Module, x: torch.Tensor) -> float:
    model.eval()
    started = time.perf_counter()
    with torch.no_grad():
        model(x)
    return time.perf_counter() - started


def one_round(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor],
              scored: torch.Tensor) -> tuple[float, float]:
    time_step(model, optimizer, *batch)  # warm-up: the first step allocates
    return time_step(model, optimizer, *batch), time_scoring(model, scored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="the paper runs train on one thread each")
    args = parser.parse_args()
    if not args.weights.is_file():
        sys.exit(f"bench_denormals: no weights at {args.weights}; pass --weights with a classifier's weights.pt")
    torch.set_num_threads(args.threads)
    trained, config = load_classifier(args.weights)
    torch.manual_seed(0)
    models = {"fresh": build_model(config), "trained": trained}
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=0.0) for name, model in models.items()}
    for model in models.values():
        model.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(64, 3, 28, 28, generator=g).contiguous(memory_format=torch.channels_last),
             torch.randint(0, 20, (64,), generator=g))
    scored = torch.randn(512, 3, 28, 28, generator=g).contiguous(memory_format=torch.channels_last)

    print(machine_summary())
    tiny, total = subnormal_count(trained)
    print(f"{args.weights}: {config.model} model, {config.activation}, lr {config.lr:g}, weight decay "
          f"{config.weight_decay:g}; {tiny:,} of {total:,} values subnormal. {args.rounds} rounds, median")
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for name, model in models.items():
            times.setdefault((name, "default"), []).append(one_round(model, optimizers[name], batch, scored))
            with flush_denormals():
                times.setdefault((name, "flushed"), []).append(one_round(model, optimizers[name], batch, scored))
    base = [statistics.median(p[i] for p in times[("fresh", "default")]) for i in (0, 1)]
    print(f"{'weights':<8} {'arithmetic':<10} {'step (ms)':>10} {'x fresh':>8} {'512 scored (ms)':>16} {'x fresh':>8}")
    for (name, arithmetic), pairs in times.items():
        step, score = (statistics.median(p[i] for p in pairs) for i in (0, 1))
        print(f"{name:<8} {arithmetic:<10} {1000 * step:>10.1f} {step / base[0]:>8.2f} "
              f"{1000 * score:>16.1f} {score / base[1]:>8.2f}")


if __name__ == "__main__":
    main()
