"""Bring a user's image-folder tree (a directory, .tar[.gz] or .zip) into ``data/<name>/``.

The archive may wrap the tree in any number of folders (``cifar10-jpeg/train/...``); the
first folder holding ``train/`` becomes ``data/<name>``. Everything is staged beside the
destination and moved into place in one rename, so a failed import leaves nothing behind.
"""
from __future__ import annotations

import re
import shutil
import tarfile
import zipfile
from pathlib import Path

from effgen.checkpoints import atomic_folder
from effgen.data.image_folder import list_tree
from effgen.errors import DataError
from effgen.paths import data_root

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def import_images(source: Path, name: str, root: Path | None = None, force: bool = False) -> tuple[Path, dict[str, int]]:
    """Copy or extract ``source`` into ``<root>/<name>``; returns the folder and images per split."""
    source = Path(source).expanduser()
    if not NAME_PATTERN.match(name):
        raise DataError(f"dataset name {name!r} must be letters, digits, '.', '_' or '-'")
    if not source.exists():
        raise DataError(f"{source}: no such file or folder")
    root = Path(root) if root is not None else data_root()
    dest = root / name
    if dest.exists() and not force:
        raise DataError(f"{dest} already exists; pass --force to replace it")
    counts: dict[str, int] = {}

    def build(staging: Path) -> Path:
        unpacked = staging / "unpacked"
        _unpack(source, unpacked)
        tree = _find_tree(unpacked, source)
        counts.update({split: len(list_tree(tree / split)[0]) for split in ("train", "test")
                       if (tree / split).is_dir()})
        return tree

    atomic_folder(dest, build)
    return dest, counts


def _unpack(source: Path, out: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, out)
        return
    try:
        if tarfile.is_tarfile(source):
            with tarfile.open(source) as archive:
                archive.extractall(out, filter="data")  # refuses absolute paths, '..' and devices
            return
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                archive.extractall(out)  # zipfile strips '..' and absolute prefixes
            return
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise DataError(f"{source}: cannot unpack ({err})") from err
    raise DataError(f"{source}: not a folder, tar(.gz) or zip archive")


def _find_tree(unpacked: Path, source: Path) -> Path:
    """The shallowest folder that holds a ``train/`` sub-folder."""
    candidates = sorted((p.parent for p in unpacked.rglob("train") if p.is_dir()),
                        key=lambda p: len(p.parts))
    if not candidates:
        raise DataError(f"{source}: no train/<class>/*.jpg tree inside; an image-folder dataset needs "
                        f"train/ (and optionally test/) folders with one sub-folder per class")
    return candidates[0]
