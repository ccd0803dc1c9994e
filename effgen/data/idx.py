"""Read the IDX files MNIST and Fashion-MNIST ship in (optionally gzipped) with NumPy alone.

The format is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the raw values. Only unsigned bytes (type 0x08) occur
in these datasets, so that is all this reader accepts.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from effgen.errors import DataError

UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    """The array stored in ``path`` (``.gz`` or plain), as uint8 of the declared shape."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read IDX file ({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != UBYTE:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    if len(shape) != ndim or len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{path}: IDX header promises shape {shape} but the file holds "
                        f"{max(len(raw) - header, 0)} values (truncated?)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_idx_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of ``split`` ("train" or "test") in ``folder``, if present.

    Accepts the original names (``train-images-idx3-ubyte[.gz]``, ``t10k-...``).
    """
    prefix = "train" if split == "train" else "t10k"
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        candidates = [folder / f"{prefix}-{kind}{ext}" for ext in ("", ".gz")]
        existing = [c for c in candidates if c.is_file()]
        if not existing:
            return None
        found.append(existing[0])
    return found[0], found[1]


def read_idx_pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    pair = find_idx_pair(folder, split)
    if pair is None:
        return None
    images, labels = read_idx(pair[0]), read_idx(pair[1])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"{pair[0]} and {pair[1]}: shapes {images.shape} and {labels.shape} do not pair up")
    return images, labels
