"""Reading checkpoints and YAML files safely, naming runs by content, writing any output file
atomically, and one trainer per run folder.

Every checkpoint is loaded onto the CPU, whatever device the run trains on. Two reasons:
``torch.Generator.set_state`` accepts only a CPU ``ByteTensor``, so RNG states mapped to CUDA
break a resume; and ``load_state_dict`` copies each tensor to its parameter's device anyway.
A file that cannot be read, or lacks what its kind needs, raises a one-line ``CheckpointError``.

Run folders are named by :func:`config_key`, the one hash of a configuration that the classifier,
the tuning study and the GAN share: a run is found again only if every caller hashes it the same way.
"""
from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from effgen.errors import CheckpointError, EffgenError, ParamsError
from effgen.paths import GZIP_SUFFIXES

LOCK_FILE = ".lock"  # held (flock) by the process training in a run folder; never copied or frozen


@contextlib.contextmanager
def exclusive_run(folder: Path | None, wait: bool = False) -> Iterator[None]:
    """Hold ``folder``'s training lock for the block; fail at once if another process holds it, or
    with ``wait`` wait until it is released (a run two chapters need: the second then reuses it).

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
    handle = _take_lock(fcntl, folder, wait)
    try:
        yield
    finally:
        os.close(handle)
        # A run that failed its checks before writing anything leaves no folder behind.
        if created and folder.is_dir() and [path.name for path in folder.iterdir()] == [LOCK_FILE]:
            (folder / LOCK_FILE).unlink()
            folder.rmdir()


def _take_lock(fcntl: Any, folder: Path, wait: bool) -> int:
    """An open handle on ``folder``'s lock file, locked exclusively (see ``exclusive_run``)."""
    told = False
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except OSError:
            if not wait:
                os.close(handle)
                raise EffgenError(f"{folder} is being trained by another process; wait for it to finish "
                                  "(or stop it), then run this again to reuse or resume its run") from None
        if not told:
            print(f"{folder} is being trained by another process; waiting for it", flush=True)
            told = True
        fcntl.flock(handle, fcntl.LOCK_EX)
        if os.fstat(handle).st_nlink:
            return handle
        os.close(handle)  # its holder stopped before writing anything and removed the folder: lock it anew


def config_key(config: Mapping[str, Any], *salt: str) -> str:
    """Eight hex digits naming a run: sha256 of ``config`` as sorted JSON, then ``salt`` (e.g. a data
    fingerprint). Every run folder and run-store key is made here, so keys cannot drift apart.

    ``default=str`` lets a config carry a value JSON lacks (a path); a plain JSON config hashes as
    ``json.dumps(config, sort_keys=True)`` always did, which keeps the stored runs' keys.
    """
    text = json.dumps(config, sort_keys=True, default=str) + "".join(salt)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def read_yaml(path: Path, what: str = "YAML file", missing_ok: bool = False) -> dict[str, Any]:
    """A YAML file that must hold a mapping (an empty file is ``{}``); anything else is one ``ParamsError``.

    ``what`` names the file in messages ("parameters file", "best setting"); with ``missing_ok`` an
    absent file reads as ``{}``.
    """
    path = Path(path)
    if missing_ok and not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such {what}") from None
    except OSError as err:
        raise ParamsError(f"{path}: cannot read this {what} ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not a text file ({err.reason} at byte {err.start})") from None
    return parse_yaml(text, str(path), what)


def parse_yaml(text: str, source: str, what: str = "YAML text") -> dict[str, Any]:
    """``text`` as a mapping (empty text is ``{}``); anything else is one ``ParamsError`` beginning with
    ``source`` (where the text came from), the one YAML parser behind :func:`read_yaml`."""
    import yaml

    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ParamsError(f"{source}: not valid YAML ({_yaml_problem(err)})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ParamsError(f"{source}: a {what} must be a mapping of keys to values, got {type(content).__name__}")
    return content


def _yaml_problem(err: Exception) -> str:
    """PyYAML's message, which spans several lines with a caret drawing, as one line."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)


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
    if isinstance(state, Mapping) and (mismatch := state_mismatch(module.state_dict(), state)):
        raise CheckpointError(f"{path}: does not fit this {kind} ({mismatch})")
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as err:
        first = " ".join(str(err).split())[:160]
        raise CheckpointError(f"{path}: does not fit this {kind} ({type(err).__name__}: {first})") from None


def state_mismatch(expected: Mapping[str, Any], saved: Mapping[str, Any], shown: int = 3) -> str:
    """How ``saved`` weights differ from a module's ``expected`` state dict, in one line ("" if they fit).

    ``load_state_dict`` lists every key and shape over many lines; this counts them and names the first few.
    """
    def names(keys: list[str]) -> str:
        return ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")

    missing = [key for key in expected if key not in saved]
    unexpected = [key for key in saved if key not in expected]
    reshaped = [f"{key} {_shape(saved[key])} vs {_shape(expected[key])}" for key in expected
                if key in saved and _shape(saved[key]) != _shape(expected[key])]
    parts = [f"{len(missing)} missing: {names(missing)}" if missing else "",
             f"{len(unexpected)} unexpected: {names(unexpected)}" if unexpected else "",
             f"{len(reshaped)} of another shape (saved vs expected): {names(reshaped)}" if reshaped else ""]
    return "; ".join(part for part in parts if part)


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else None


def temporary_sibling(path: Path) -> Path:
    """The name ``path`` is written under before it is renamed into place.

    Beside it, so the rename stays on one filesystem and is atomic; hidden and ending in ``.tmp``, so
    listings and the freeze mirror pass it by; one per process, so two processes writing one file at
    once (two chapters converting the same weights) never write into each other's half.
    """
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a sibling temporary file, then rename it over ``path``.

    A reader sees the old file or the new one, never half of one, even if the run is killed.
    ``tmp`` does not end in ``path``'s suffix: a writer that appends one (``np.save``) gets a handle.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(payload: Any, path: Path) -> Path:
    """``torch.save(payload, path)`` through :func:`atomic_write`.

    The bytes go through a handle: given a file name, torch names the archive's inner folder after
    it, so the temporary name would end up in the file and identical payloads would differ.
    """
    import torch

    def save(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            torch.save(payload, handle)

    return atomic_write(path, save)


def atomic_folder(folder: Path, build: Callable[[Path], Path]) -> Path:
    """Make ``folder`` appear complete or not at all.

    ``build(scratch)`` fills ``scratch``, a fresh hidden sibling of ``folder``, or a folder inside it,
    and returns the folder to install; that is renamed into place, and an existing ``folder`` is
    swapped out only once the new one is whole. Whatever ``build`` leaves in ``scratch`` is removed.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        built = build(scratch)
        built.chmod(0o755)  # mkdtemp makes scratch private; the finished folder should read like any other
        _swap_into_place(built, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _swap_into_place(built: Path, folder: Path) -> None:
    if not folder.exists():
        try:
            os.replace(built, folder)
            return
        except OSError as error:  # another process (two chapters building one dataset) got there first
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".old"))
    os.replace(folder, old / folder.name)
    os.replace(built, folder)
    shutil.rmtree(old, ignore_errors=True)


def unpacked(relative: Path) -> Path:
    """Where a frozen mirror's file lands in a run folder: FILE.csv.gz unpacks to FILE.csv (likewise
    .json.gz and .npy.gz)."""
    packed = relative.suffix == ".gz" and Path(relative.stem).suffix in GZIP_SUFFIXES
    return relative.with_suffix("") if packed else relative


def read_unpacked(path: Path) -> bytes:
    """A mirror file's bytes as its run folder holds them: a packed FILE.csv.gz (or .json.gz, .npy.gz)
    gunzipped, any other file as it is."""
    data = path.read_bytes()
    return gzip.decompress(data) if unpacked(Path(path.name)).name != path.name else data


def copy_unpacked(source: Path, dest: Path) -> bool:
    """Copy ``source`` to ``dest`` atomically, gunzipping a packed mirror file (FILE.csv.gz).

    Returns False, and leaves ``dest`` alone, when ``dest`` exists by the time the copy is ready:
    another process (two runs of a chapter start together) put the same file there first.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(dest)
    if unpacked(Path(source.name)).name != source.name:
        tmp.write_bytes(read_unpacked(source))
    else:
        shutil.copyfile(source, tmp)  # streamed: a checkpoint can be tens of MB
    if dest.exists():
        tmp.unlink()
        return False
    tmp.replace(dest)
    return True
