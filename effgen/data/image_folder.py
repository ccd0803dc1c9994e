"""Image-folder trees (``<split>/<class>/*.png|jpg``) decoded once into a cached uint8 array.

Decoding 50,000 JPEGs with PIL takes a while on two cores, so the decoded (N, 3, 32, 32)
uint8 array and its labels are cached as ``.npy`` beside the tree, together with a
fingerprint of the files (names, sizes, modification times) that invalidates the cache
when the tree changes. Images that are not 32x32 are centre-cropped and resized.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from effgen.checkpoints import atomic_write
from effgen.errors import DataError
from effgen.runtime import progress

EXTENSIONS = (".png", ".jpg", ".jpeg")
SIDE = 32


@dataclass(frozen=True)
class DecodedTree:
    images: np.ndarray  # uint8 (N, 3, 32, 32)
    labels: np.ndarray  # int64 (N,), index into classes
    classes: list[str]
    cached: bool        # True when read from the cache rather than decoded now
    formats: tuple[str, ...] = ()  # the files' suffixes, e.g. (".jpg",): JPEG pixels are lossy


def list_tree(folder: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """The image files under ``folder`` in a stable order, their class indices and class names.

    Sub-folders are classes; images directly in ``folder`` form a single unnamed class.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such image folder")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    groups = [(c, sorted(_images_in(folder / c))) for c in classes]
    groups = [(c, files) for c, files in groups if files]
    if not groups:
        groups = [(folder.name, sorted(_images_in(folder)))]
    files = [f for _, f_list in groups for f in f_list]
    if not files:
        raise DataError(f"{folder}: holds no {'/'.join(EXTENSIONS)} images (expected {folder}/<class>/*.jpg)")
    labels = np.concatenate([np.full(len(f_list), i, dtype=np.int64) for i, (_, f_list) in enumerate(groups)])
    return files, labels, [c for c, _ in groups]


def _images_in(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")]


def decode_image(path: Path) -> np.ndarray:
    """One file -> uint8 (3, 32, 32)."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
            if image.size != (SIDE, SIDE):
                image = ImageOps.fit(image, (SIDE, SIDE), method=Image.Resampling.BICUBIC)
            return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{path}: cannot decode image ({err})") from err


def _fingerprint(files: list[Path], folder: Path) -> str:
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def load_tree(folder: Path, cache_dir: Path | None = None, cache_name: str = "tree") -> DecodedTree:
    """Decode ``folder`` (or reuse ``cache_dir/.cache-<cache_name>.npy`` when it matches the files)."""
    folder = Path(folder)
    files, labels, classes = list_tree(folder)
    fingerprint = _fingerprint(files, folder)
    formats = tuple(sorted({f.suffix.lower() for f in files}))
    cache_dir = Path(cache_dir) if cache_dir is not None else folder
    paths = {k: cache_dir / f".cache-{cache_name}{k}" for k in ("-images.npy", "-labels.npy", ".json")}
    cached = _read_cache(paths, fingerprint, len(files))
    if cached is not None:
        return DecodedTree(cached[0], cached[1], classes, cached=True, formats=formats)
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        decoded = list(progress(pool.map(decode_image, files, chunksize=256), total=len(files),
                                desc=f"decoding {folder.name}"))
    images = np.stack(decoded)
    _write_cache(paths, images, labels, {"fingerprint": fingerprint, "count": len(files), "classes": classes,
                                         "folder": str(folder)})
    return DecodedTree(images, labels, classes, cached=False, formats=formats)


def _read_cache(paths: dict[str, Path], fingerprint: str, count: int) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        meta = json.loads(paths[".json"].read_text())
        if meta.get("fingerprint") != fingerprint:
            return None
        images = np.load(paths["-images.npy"], allow_pickle=False)
        labels = np.load(paths["-labels.npy"], allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # no cache, or a damaged one: decode again
    if images.dtype != np.uint8 or images.shape != (count, 3, SIDE, SIDE) or labels.shape != (count,):
        return None
    return images, labels.astype(np.int64, copy=False)


def _write_cache(paths: dict[str, Path], images: np.ndarray, labels: np.ndarray, meta: dict) -> None:
    """Best effort: a read-only tree still loads, only without a cache."""
    try:
        paths[".json"].unlink(missing_ok=True)
        for suffix, array in (("-images.npy", images), ("-labels.npy", labels)):
            atomic_write(paths[suffix], functools.partial(_save_array, array=array))
        text = json.dumps(meta)
        atomic_write(paths[".json"], lambda tmp: tmp.write_text(text))  # written last: it vouches for the arrays
    except OSError:
        pass


def _save_array(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:  # a handle: given a name, np.save would append ".npy" to it
        np.save(handle, array, allow_pickle=False)
