"""Reading checkpoints safely, writing any output file atomically, and one trainer per run folder.

Every checkpoint is loaded onto the CPU, whatever device the run trains on. Two reasons:
``torch.Generator.set_state`` accepts only a CPU ``ByteTensor``, so RNG states mapped to CUDA
break a resume; and ``load_state_dict`` copies each tensor to its parameter's device anyway.
A file that cannot be read, or lacks what its kind needs, raises a one-line ``CheckpointError``.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from effgen.errors import CheckpointError, EffgenError
from effgen.paths import GZIP_SUFFIXES

LOCK_FILE = ".lock"  # held (flock) by the process training in a run folder; never copied or frozen
# In a frozen mirror, FILE.twin stands for FILE: a JSON pointer ({"path", "sha256"}) to a mirror file with
# the same bytes, so a run that two chapters share is stored once (effgen.book.freeze.sync_mirror).
TWIN_SUFFIX = ".twin"


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
    """Where a frozen mirror's file lands in a run folder: FILE.csv.gz unpacks to FILE.csv (likewise
    .json.gz and .npy.gz), and a twin pointer FILE.twin lands as FILE."""
    if relative.suffix == TWIN_SUFFIX:
        return unpacked(relative.with_suffix(""))
    packed = relative.suffix == ".gz" and Path(relative.stem).suffix in GZIP_SUFFIXES
    return relative.with_suffix("") if packed else relative


def twin_pointer(pointer: Path, target: Path, digest: str) -> bytes:
    """The bytes of ``pointer`` (FILE.twin) standing for ``target``, whose bytes hash to ``digest``."""
    relative = os.path.relpath(target, pointer.parent)
    return (json.dumps({"path": Path(relative).as_posix(), "sha256": digest}, indent=1) + "\n").encode()


def twin_target(pointer: Path) -> Path:
    """The mirror file that ``pointer`` (FILE.twin) stands for, checked against its recorded hash."""
    try:
        record = json.loads(pointer.read_text())
        target, digest = pointer.parent / str(record["path"]), str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{pointer}: an unreadable twin pointer ({type(err).__name__}: {err})") from None
    if not target.is_file() or hashlib.sha256(target.read_bytes()).hexdigest() != digest:
        raise CheckpointError(f"{pointer} stands for {os.path.normpath(target)}, which is missing or has "
                              "changed; restore _freeze/ from git (git checkout -- _freeze) or re-run the "
                              "chapter that holds it")
    return target


def copy_unpacked(source: Path, dest: Path) -> bool:
    """Copy ``source`` to ``dest`` atomically, gunzipping a packed mirror file (FILE.csv.gz) and following
    a twin pointer (FILE.twin) to the file it stands for.

    Returns False, and leaves ``dest`` alone, when ``dest`` exists by the time the copy is ready:
    another process (two runs of a chapter start together) put the same file there first.
    """
    if source.suffix == TWIN_SUFFIX:
        return copy_unpacked(twin_target(source), dest)
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
