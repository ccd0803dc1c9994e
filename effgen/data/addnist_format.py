"""The one AddNIST file format, its writer and its (validating) reader.

A folder holds the official six files, ``{train,valid,test}_{x,y}.npy`` (x float32
(N, 3, 28, 28), y int64 (N,); labels of any integer type are read and cast to int64), and ``provenance.json``: where the data came from, the size
and sha256 of every file, and for rebuilt sets the digit indices behind every image.
Every source writes this format, so this module is the only reader.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from effgen.checkpoints import atomic_folder, atomic_write
from effgen.data.addnist_recipe import N_CLASSES
from effgen.data.download import file_digest, verify_file
from effgen.errors import DataError

SPLITS: tuple[str, str, str] = ("train", "valid", "test")
FILE_NAMES: tuple[str, ...] = tuple(f"{split}_{part}.npy" for split in SPLITS for part in ("x", "y"))
PROVENANCE_FILE = "provenance.json"
IMAGE_SHAPE = (3, 28, 28)
# Normalised MNIST spans about [-0.42, 2.82]; anything far outside is not AddNIST as published.
VALUE_RANGE = (-1.0, 3.5)
# Keys of the full record that stay in provenance.json and out of the summary dict.
BULKY_KEYS = ("digit_indices", "files")

Split = tuple[torch.Tensor, torch.Tensor]


@dataclass
class AddNIST:
    train: Split  # x float32 (N, 3, 28, 28), y int64 (N,)
    valid: Split
    test: Split
    folder: Path
    provenance: dict[str, Any]  # the data provenance dict (DEVELOPING.md) plus source, seed, sizes
    digit_indices: dict[str, np.ndarray] | None = field(default=None, repr=False)  # split -> (N, 3)

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ValueError(f"AddNIST split must be one of {SPLITS}, not {name!r}")
        return getattr(self, name)

    @property
    def sizes(self) -> dict[str, int]:
        return {name: int(self.split(name)[1].shape[0]) for name in SPLITS}


def load_npy(path: Path) -> np.ndarray:
    """``np.load`` that never unpickles and names the file in every failure."""
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise DataError(f"{path}: not a readable .npy file, truncated or corrupt ({err})") from err


def validate_split(split: str, x: np.ndarray, y: np.ndarray, folder: Path) -> None:
    """Raise ``DataError`` naming the offending file on any deviation from the official format."""
    x_file, y_file = folder / f"{split}_x.npy", folder / f"{split}_y.npy"
    if x.dtype != np.float32:
        raise DataError(f"{x_file}: dtype {x.dtype}, expected float32")
    if x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{x_file}: shape {x.shape}, expected (N, 3, 28, 28)")
    if not np.issubdtype(y.dtype, np.integer):  # any width or signedness; readers cast to int64
        raise DataError(f"{y_file}: dtype {y.dtype}, expected integer labels (int64 in the official release)")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DataError(f"{y_file}: shape {y.shape}, expected ({x.shape[0]},) to match {x_file.name}")
    if x.shape[0] == 0:
        raise DataError(f"{x_file}: holds no images")
    if not np.isfinite(x).all():
        raise DataError(f"{x_file}: contains NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if low < VALUE_RANGE[0] or high > VALUE_RANGE[1]:
        raise DataError(f"{x_file}: values span [{low:.3g}, {high:.3g}], outside normalised MNIST "
                        f"{VALUE_RANGE}; were the digits normalised (mean 0.1307, std 0.3081)?")
    if y.min() < 0 or y.max() >= N_CLASSES:
        raise DataError(f"{y_file}: labels span {int(y.min())}..{int(y.max())}, expected 0..{N_CLASSES - 1}")
    _check_balance(y.astype(np.int64), y_file)  # in range now, so the cast is exact (bincount refuses uint64)


def _check_balance(y: np.ndarray, y_file: Path) -> None:
    counts = np.bincount(y, minlength=N_CLASSES)
    expected = len(y) / N_CLASSES
    if len(y) >= 10 * N_CLASSES and (counts.min() < 0.5 * expected or counts.max() > 1.5 * expected):
        raise DataError(f"{y_file}: class counts {counts.min()}..{counts.max()} are far from balanced "
                        f"(expected about {expected:.0f} per class)")


def read_provenance(folder: Path) -> dict[str, Any] | None:
    path = folder / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(record, dict):
        raise DataError(f"{path}: expected a JSON object")
    return record


def read_addnist_folder(folder: Path, verify_checksums: bool = True) -> AddNIST:
    """Load and validate an AddNIST folder; every defect raises ``DataError`` naming its file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such AddNIST folder")
    missing = [name for name in FILE_NAMES if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)}")
    record = read_provenance(folder)
    if record is not None and verify_checksums:
        for name, entry in (record.get("files") or {}).items():
            verify_file(folder / name, size=entry.get("size"), sha256=entry.get("sha256"))
    tensors: dict[str, Split] = {}
    for split in SPLITS:
        x, y = load_npy(folder / f"{split}_x.npy"), load_npy(folder / f"{split}_y.npy")
        validate_split(split, x, y, folder)
        tensors[split] = (torch.from_numpy(x), torch.from_numpy(y.astype(np.int64, copy=False)))
    record = record if record is not None else _unrecorded(folder)
    digits = record.get("digit_indices")
    indices = None
    if digits:
        indices = {split: np.asarray(digits[split], dtype=np.int64).reshape(-1, 3) for split in SPLITS}
        for split in SPLITS:
            if len(indices[split]) != len(tensors[split][1]):
                raise DataError(f"{folder / PROVENANCE_FILE}: digit indices for {split} do not match "
                                f"{split}_y.npy ({len(indices[split])} vs {len(tensors[split][1])})")
    summary = {key: value for key, value in record.items() if key not in BULKY_KEYS}
    summary["sizes"] = {split: int(tensors[split][1].shape[0]) for split in SPLITS}
    return AddNIST(**tensors, folder=folder, provenance=summary, digit_indices=indices)


def _unrecorded(folder: Path) -> dict[str, Any]:
    """Six files dropped in by hand: assumed to be the official release, and said so."""
    return {"dataset": "AddNIST (official)", "requested": "AddNIST (official)", "stand_in": False,
            "reason": "", "source": "official",
            "detail": f"files in {folder}, no provenance.json (assumed to be the official release)"}


def write_addnist_folder(folder: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]],
                         provenance: dict[str, Any]) -> Path:
    """Write the six files and ``provenance.json`` so that ``folder`` appears complete or not at all.

    Everything is written into a temporary sibling folder, validated, and then renamed into
    place; an existing ``folder`` is replaced only after the new one is whole.
    """
    def build(staging: Path) -> Path:
        files: dict[str, dict[str, Any]] = {}
        for split in SPLITS:
            x, y = splits[split]
            validate_split(split, x, y, staging)
            y = y.astype(np.int64, copy=False)  # what every effgen-written folder stores
            for part, array in (("x", x), ("y", y)):
                path = staging / f"{split}_{part}.npy"
                np.save(path, array, allow_pickle=False)
                files[path.name] = {"size": path.stat().st_size, "sha256": file_digest(path)}
        record = {**provenance, "files": files}
        (staging / PROVENANCE_FILE).write_text(json.dumps(record, separators=(",", ":")))
        return staging

    return atomic_folder(folder, build)


def record_checksums(folder: Path) -> None:
    """Add sizes and sha256s to a folder's provenance (for official files placed by hand)."""
    record = read_provenance(folder) or _unrecorded(folder)
    record["files"] = {name: {"size": (folder / name).stat().st_size, "sha256": file_digest(folder / name)}
                       for name in FILE_NAMES}
    text = json.dumps(record, separators=(",", ":"))
    atomic_write(folder / PROVENANCE_FILE, lambda tmp: tmp.write_text(text))


def export_addnist_folder(data: AddNIST, out: Path) -> Path:
    """Copy ``data``'s folder to ``out`` (atomically), with its current provenance summary merged in."""
    out = Path(out)
    if out.resolve() == data.folder.resolve():
        return out

    def build(staging: Path) -> Path:
        for name in FILE_NAMES:
            shutil.copyfile(data.folder / name, staging / name)
        record = read_provenance(data.folder) or {}
        record.update({k: v for k, v in data.provenance.items() if k != "sizes"})
        (staging / PROVENANCE_FILE).write_text(json.dumps(record, separators=(",", ":")))
        if "files" not in record:
            record_checksums(staging)
        return staging

    return atomic_folder(out, build)
