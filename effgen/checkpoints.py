"""Reading checkpoints safely, writing any output file atomically, and one trainer per run folder.

Every checkpoint is loaded onto the CPU, whatever device the run trains on. Two reasons:
``torch.Generator.set_state`` accepts only a CPU ``ByteTensor``, so RNG states mapped to CUDA
break a resume; and ``load_state_dict`` copies each tensor to its parameter's device anyway.
A file that cannot be read, or lacks what its kind needs, raises a one-line ``CheckpointError``.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import CheckpointError, EffgenError
from .paths import GZIP_SUFFIXES

LOCK_FILE = ".lock"  # held (flock) by the process training in a run folder; never copied or frozen


@contextlib.contextmanager
def exclusive_run(folder: Path | None) -> Iterator[None]:
    """Hold ``folder``'s training lock for the block; fail at once if another process holds it.

    Two processes training one run folder would overwrite each other's checkpoints, each
    resuming from a state the other then replaces. The lock is an OS file lock, so it is
    released when its holder exits, however it exits. Where file locks do not exist
    (Windows) nothing is locked.
    """
    if folder is None:
        yield
        return
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise EffgenError(f"{folder} is being trained by another process; wait for it to finish "
                              "(or stop it), then run this again to reuse or resume its run") from None
        yield
    finally:
        os.close(handle)
        # A run that failed its checks before writing anything leaves no folder behind.
        if created and [path.name for path in folder.iterdir()] == [LOCK_FILE]:
            (folder / LOCK_FILE).unlink()
            folder.rmdir()


def read_checkpoint(path: Path, kind: str, required: Iterable[str] = ()) -> dict[str, Any]:
    """``torch.load(path)`` onto the CPU (weights only), checked to be a dict holding ``required``.

    ``kind`` names the file in messages ("GAN checkpoint", "generator file", ...).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {kind}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError,
            zipfile.BadZipFile) as err:
        reason = " ".join(str(err).split())[:120]
        raise CheckpointError(f"{path}: unreadable {kind}, truncated or corrupt "
                              f"({type(err).__name__}: {reason})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not an effgen {kind} (it holds a {type(payload).__name__})")
    if missing := [key for key in required if key not in payload]:
        raise CheckpointError(f"{path}: not an effgen {kind} (missing {', '.join(missing)})")
    return payload


def load_module_state(module: Any, state: Any, path: Path, kind: str) -> None:
    """``module.load_state_dict(state)``, with a mismatch reported as a one-line ``CheckpointError``."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as err:
        first = " ".join(str(err).split())[:160]
        raise CheckpointError(f"{path}: does not fit this {kind} ({type(err).__name__}: {first})") from None


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a sibling temporary file, then rename it over ``path``.

    A reader sees the old file or the new one, never half of one, even if the run is killed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def unpacked(relative: Path) -> Path:
    """Where a frozen mirror's file lands in a run folder: FILE.csv.gz and FILE.json.gz unpack to FILE.csv/.json."""
    packed = relative.suffix == ".gz" and Path(relative.stem).suffix in GZIP_SUFFIXES
    return relative.with_suffix("") if packed else relative


def copy_unpacked(source: Path, dest: Path) -> bool:
    """Copy ``source`` to ``dest`` atomically, gunzipping it when it is a packed mirror file (FILE.csv.gz).

    Returns False, and leaves ``dest`` alone, when ``dest`` exists by the time the copy is ready:
    another process (two runs of a chapter start together) put the same file there first.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.copy-{os.getpid()}.tmp")  # one name per process
    if unpacked(Path(source.name)).name != source.name:
        tmp.write_bytes(gzip.decompress(source.read_bytes()))
    else:
        shutil.copyfile(source, tmp)
    if dest.exists():
        tmp.unlink()
        return False
    tmp.replace(dest)
    return True
