"""Datasets: AddNIST for the classifier, image folders and torchvision sets for the GAN, in-memory batching.

The names below load on first use (PEP 562), so that importing a light submodule, as the
``effgen`` command does to build its ``--help``, does not import torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, tuple[str, str]] = {
    "ADDNIST_SOURCES": ("addnist_recipe", "SOURCES"),
    "build_addnist": ("addnist", "build_addnist"),
    "cache_folder": ("addnist", "cache_folder"),
    "digit_values": ("addnist", "digit_values"),
    "load_addnist": ("addnist", "load_addnist"),
    "verify_recipe": ("addnist", "verify_recipe"),
    "AddNIST": ("addnist_format", "AddNIST"),
    "read_addnist_folder": ("addnist_format", "read_addnist_folder"),
    "write_addnist_folder": ("addnist_format", "write_addnist_folder"),
    "InMemoryBatches": ("batches", "InMemoryBatches"),
    "IMAGE_DATASETS": ("image_sets", "IMAGE_DATASETS"),
    "ImageSet": ("image_sets", "ImageSet"),
    "gan_dataset": ("image_sets", "gan_dataset"),
    "images": ("image_sets", "images"),
}

__all__ = [
    "ADDNIST_SOURCES", "IMAGE_DATASETS", "AddNIST", "ImageSet", "InMemoryBatches", "build_addnist", "cache_folder",
    "digit_values", "gan_dataset", "images", "load_addnist", "read_addnist_folder", "verify_recipe",
    "write_addnist_folder",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
