"""Batches indexed straight from in-memory tensors: no per-sample ``__getitem__`` on the hot path.

A whole small dataset sits on the training device as one tensor; each batch is one
``index_select`` with a slice of a seeded permutation. The sampler's state (epoch, position,
RNG) is a small dict, so a resumed run continues with exactly the batches it would have seen.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


class InMemoryBatches:
    """Endless, seeded, drop-last batches over tensors that share their first dimension.

    ``shuffle=False`` walks the data in stored order, as the original GAN notebook did.
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True) -> None:
        if not tensors:
            raise ValueError("InMemoryBatches needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError("all tensors must have the same number of rows")
        if batch_size < 1 or (drop_last and batch_size > n):
            raise ValueError(f"batch_size {batch_size} does not fit a dataset of {n} rows")
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.n = n
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.position = 0
        self._order = self._new_order()

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def _new_order(self) -> torch.Tensor:
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        return order.to(self.tensors[0].device)

    def next(self) -> tuple[torch.Tensor, ...]:
        if self.position >= self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
            self._order = self._new_order()
        start = self.position * self.batch_size
        index = self._order[start:start + self.batch_size]
        self.position += 1
        return tuple(t.index_select(0, index) for t in self.tensors)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        while True:
            yield self.next()

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "order": self._order.cpu(),
            "rng": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._order = state["order"].to(self.tensors[0].device)
        self.generator.set_state(state["rng"].cpu())  # a CPU generator takes CPU ByteTensors only
