"""A seconds-long classifier run on random AddNIST-shaped data, shared by the run-store tests."""
from __future__ import annotations

import torch

from effgen.classifier import ClassifierConfig

PROFILE = "smoke"
CPU = torch.device("cpu")
CONFIG = ClassifierConfig.from_dict({"model": "baseline", "steps": 4, "steps_per_epoch": 2, "batch_size": 16,
                                     "eval_samples": 20, "lr": 1e-2})


class TinySplits:
    """Three random AddNIST-shaped splits (``experiments.Splits`` is a protocol)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.train, self.valid, self.test = [
            (torch.randn(n, 3, 28, 28, generator=g), torch.randint(0, 20, (n,), generator=g)) for n in (64, 32, 32)]


DATA = TinySplits()
