"""The frozen mirror of a chapter's run folder: which artifacts it keeps, how, and how they come back.

``sync_mirror`` copies the small artifacts of ``runs/<profile>/<chapter>/`` into
``_freeze/<profile>/<chapter>/runs/`` (finished checkpoints slimmed, large text gzipped, a file another
chapter's mirror already holds stored once as a ``.twin`` pointer); ``thaw`` puts them back before a
chapter executes, so its training code reuses every finished run.
"""
from __future__ import annotations

import gzip
import io
import json
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effgen.book.freeze import fingerprints
from effgen.book.freeze.fingerprints import (
    _sha256,
    freeze_dir,
    read_record,
    runs_folder,
)
from effgen.book.freeze.status import MAX_FILE_BYTES
from effgen.checkpoints import (
    LOCK_FILE,
    TWIN_SUFFIX,
    atomic_write,
    copy_unpacked,
    twin_pointer,
    unpacked,
)
from effgen.paths import GZIP_SUFFIXES, RUNS_MIRROR

# Written into runs/<profile>/<chapter>/ before each execution: which RESULTS_VERSION made these runs.
RUNS_VERSION_FILE = ".results-version"
SUPERSEDED_DIR = ".superseded"  # runs/<profile>/.superseded/<chapter>.results-vN: runs of an older version

# Small artifacts: metrics, histories, configs, sample grids, weights, test predictions, Optuna studies.
KEEP_SUFFIXES = frozenset({".json", ".csv", ".yml", ".yaml", ".png", ".pt", ".npy", ".db"})
GZIP_OVER_BYTES = 64 * 2**10  # CSV, JSON and NumPy files above this are stored gzipped (FILE.gz), thawed back
# A mirror file this large whose bytes another mirror file already holds is stored as a pointer, FILE.twin
# (effgen.checkpoints): chapters share classifier runs (effgen.classifier.twins), and they would count twice
# against the committed profile's size limit. Which copy is real: chapter TWIN_HOLDER's, then the first in
# book order.
TWIN_OVER_BYTES = 64 * 2**10
TWIN_HOLDER = "02-classifier"  # the paper model's runs; `effgen evaluate classifier` is pointed at its weights
GAN_FINAL_FILE = "final.pt"  # a finished GAN run's generator weights when it has no generator.pt
GAN_FINAL_FORMAT = "effgen-gan-final-1"


@dataclass
class MirrorReport:
    written: int = 0  # files (re)written in the mirror
    kept: int = 0  # files in the mirror after syncing
    bytes: int = 0
    slimmed: list[str] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)  # {"path", "reason", "bytes"}
    twins: list[dict[str, Any]] = field(default_factory=list)  # {"path", "holder", "bytes"}: stored as pointers

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.kept, "bytes": self.bytes, "slimmed": self.slimmed, "dropped": self.dropped,
                "twins": self.twins}


def _torch_bytes(payload: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _sqlite_bytes(path: Path) -> bytes:
    """A consistent copy of an SQLite database even while a study writes to it (else the bytes as they are)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.db"
        try:
            source = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
        except sqlite3.Error:
            return Path(path).read_bytes()
        return copy.read_bytes()


def filter_run_file(path: Path, relative: str) -> tuple[dict[str, bytes], str]:
    """What the mirror keeps of one file of a run folder: {mirror relative path: bytes}, and a note.

    * a finished classifier ``checkpoint.pt`` is slimmed: Adam and sampler state are dropped
      (``train_classifier`` reloads it as a finished run: weights, history, RNG);
    * a finished GAN ``checkpoint.pt`` is dropped: the run keeps ``generator.pt`` (or gets
      ``final.pt``, its generator's weights, when it has none), ``history.csv`` and ``config.json``,
      from which ``train_gan`` reloads it;
    * in-progress checkpoints are kept whole, so a thawed run resumes;
    * large CSV and JSON files are gzipped (thawed back); SQLite files are copied consistently.
    The note is "" for a plain copy, "slimmed", or "dropped: <why>".
    """
    suffix = path.suffix
    if suffix not in KEEP_SUFFIXES:
        return {}, "dropped: not a small artifact"
    if path.name == "checkpoint.pt":
        return _filter_checkpoint(path, relative)
    data = _sqlite_bytes(path) if suffix == ".db" else path.read_bytes()
    if suffix in GZIP_SUFFIXES and len(data) > GZIP_OVER_BYTES:
        return {relative + ".gz": gzip.compress(data, mtime=0)}, ""
    return {relative: data}, ""


def _filter_checkpoint(path: Path, relative: str) -> tuple[dict[str, bytes], str]:
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable file is kept as it is, and the note says so
        return {relative: path.read_bytes()}, ""
    if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
        return {relative: path.read_bytes()}, ""
    steps = payload["config"].get("steps")
    finished = isinstance(steps, int) and int(payload.get("step", 0)) >= steps
    if "data_fingerprint" in payload and "model" in payload:  # a classifier (effgen.classifier.loop)
        if not (finished or payload.get("finished")) or "optimizer" not in payload:
            return {relative: path.read_bytes()}, ""
        slim = {k: v for k, v in payload.items() if k not in ("optimizer", "sampler")}
        return {relative: _torch_bytes({**slim, "slim": True})}, "slimmed"
    if "generator" in payload and "discriminator" in payload:  # a GAN run (effgen.gan.train)
        folder = path.parent
        if not finished or not (folder / "history.csv").is_file() or not (folder / "config.json").is_file():
            return {relative: path.read_bytes()}, ""
        if (folder / "generator.pt").is_file():
            return {}, "dropped: finished GAN run; generator.pt keeps its weights"
        final = {"format": GAN_FINAL_FORMAT, "config": payload["config"], "step": int(payload["step"]),
                 "dataset": payload.get("dataset", ""), "generator": payload["generator"]}
        final_rel = str(Path(relative).with_name(GAN_FINAL_FILE).as_posix())
        return {final_rel: _torch_bytes(final)}, f"dropped: finished GAN run; {GAN_FINAL_FILE} keeps its generator"
    return {relative: path.read_bytes()}, ""


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically write ``data`` unless ``path`` already holds exactly it; whether it wrote."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return True


def _pointer_record(pointer: Path) -> tuple[Path, str] | None:
    """The file a twin pointer names and its recorded sha256, unchecked; None when it is unreadable.

    Not ``checkpoints.twin_target``: that hashes the target, which indexing every pointer need not do.
    Only the mirror indexes pointers, so it lives beside its one caller.
    """
    try:
        record = json.loads(pointer.read_text())
        return pointer.parent / str(record["path"]), str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _holder_rank(chapter: str) -> tuple[bool, str]:
    return (chapter != TWIN_HOLDER, chapter)


class _Twins:
    """The profile's mirror files that may hold bytes for another (by hash), and the pointers to each."""

    def __init__(self, profile_dir: Path, chapter: str) -> None:
        self.held: dict[str, Path] = {}  # sha256 -> a real file of a chapter ranked before ``chapter``
        self.pointers: dict[Path, list[tuple[Path, str]]] = {}  # real file -> (pointer, recorded sha256)
        for folder in sorted(profile_dir.glob(f"*/{RUNS_MIRROR}")):
            for path in sorted(folder.rglob("*")):
                if not path.is_file():
                    continue
                if path.suffix == TWIN_SUFFIX:
                    # unchecked here: release() checks the one target it is about to copy
                    record = _pointer_record(path)
                    if record is not None:  # an unreadable pointer stands for nothing that could be lost
                        self.pointers.setdefault(record[0].resolve(), []).append((path, record[1]))
                elif (_holder_rank(folder.parent.name) < _holder_rank(chapter)
                      and path.stat().st_size >= TWIN_OVER_BYTES):
                    self.held.setdefault(_sha256(path.read_bytes()), path)

    def release(self, path: Path) -> None:
        """Before ``path`` goes or changes: every pointer standing for it becomes a real copy of it."""
        pointers = self.pointers.pop(path.resolve(), [])
        data = path.read_bytes() if pointers else b""
        held = _sha256(data) if pointers else ""
        for pointer, digest in pointers:
            if pointer.is_file() and held == digest:  # a pointer already broken is left as it is
                write_if_changed(pointer.with_suffix(""), data)
                pointer.unlink()


def sync_mirror(root: Path, profile: str, chapter: str, replace: bool) -> MirrorReport:
    """Copy the small artifacts of ``runs/<profile>/<chapter>/`` into the chapter's frozen mirror.

    ``replace`` (after a successful execution) makes the mirror exactly the filtered run folder;
    otherwise (a snapshot) files are added and updated, and none is removed. A file of
    ``TWIN_OVER_BYTES`` or more that a higher-ranked chapter's mirror (or an earlier file of this one)
    already holds is written as a pointer to it; a file that pointers stand for is copied into
    their places before it is removed or rewritten, so no chapter's mirror loses a file.
    """
    source = runs_folder(root, profile, chapter)
    mirror = freeze_dir(root, profile, chapter) / RUNS_MIRROR
    twins = _Twins(freeze_dir(root, profile), chapter)
    report = MirrorReport()
    produced: set[Path] = set()

    def remove(path: Path) -> None:
        if path.is_file():
            twins.release(path)
            path.unlink()

    def write(target: Path, data: bytes) -> None:
        produced.add(target)
        if target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data:
            return  # unchanged: nothing to write, no pointer to release
        twins.release(target)
        report.written += write_if_changed(target, data)

    for path in sorted(source.rglob("*")) if source.is_dir() else []:
        if not path.is_file() or path.name.endswith(".tmp") or path.name in (RUNS_VERSION_FILE, LOCK_FILE):
            continue
        relative = path.relative_to(source).as_posix()
        outputs, note = filter_run_file(path, relative)
        if note == "slimmed":
            report.slimmed.append(relative)
        elif note.startswith("dropped") and not outputs:
            report.dropped.append({"path": relative, "reason": note.split(": ", 1)[1], "bytes": path.stat().st_size})
        elif note.startswith("dropped"):
            report.slimmed.append(f"{relative} ({note.split(': ', 1)[1]})")
        # What an earlier snapshot may have made of this file and it no longer makes (e.g. the
        # in-progress checkpoint of a run that has finished since) must go, or a thaw would revive it.
        candidates = {relative, relative + ".gz"}
        if path.name == "checkpoint.pt":
            candidates.add(Path(relative).with_name(GAN_FINAL_FILE).as_posix())
        candidates |= {name + TWIN_SUFFIX for name in candidates}
        for name, data in outputs.items():
            if len(data) > MAX_FILE_BYTES:
                report.dropped.append({"path": name, "reason": f"over {MAX_FILE_BYTES // 2**20} MB",
                                       "bytes": len(data)})
                candidates.discard(name)  # an earlier copy that fitted stays: an older resumable state
                continue
            digest = _sha256(data) if len(data) >= TWIN_OVER_BYTES else ""
            holder = twins.held.get(digest) if digest else None
            if holder is not None:
                pointer = mirror / (name + TWIN_SUFFIX)
                write(pointer, twin_pointer(pointer, holder, digest))
                report.twins.append({"path": name, "holder": holder.relative_to(root).as_posix(),
                                     "bytes": len(data)})
                candidates.discard(name + TWIN_SUFFIX)
                continue
            write(mirror / name, data)
            candidates.discard(name)
            if digest:
                twins.held[digest] = mirror / name  # a later file of this chapter with these bytes points here
        for stale in candidates:
            remove(mirror / stale)
    if replace and mirror.is_dir():
        for path in sorted(mirror.rglob("*"), reverse=True):
            if path.is_file() and path not in produced:
                remove(path)
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    files = [p for p in mirror.rglob("*") if p.is_file()] if mirror.is_dir() else []
    report.kept, report.bytes = len(files), sum(p.stat().st_size for p in files)
    return report


def thaw(root: Path, profile: str, chapter: str) -> int:
    """Copy the frozen mirror into ``runs/<profile>/<chapter>/`` where a file is absent; returns files copied.

    Never overwrites a file in ``runs/`` (it may be newer work). Does nothing when the mirror was
    made under another ``RESULTS_VERSION``.
    """
    record = read_record(root, profile, chapter) or {}
    if (record.get("runs") or {}).get("results_version") != fingerprints.RESULTS_VERSION:
        return 0
    mirror = freeze_dir(root, profile, chapter) / RUNS_MIRROR
    target = runs_folder(root, profile, chapter)
    copied = 0
    for path in sorted(mirror.rglob("*")) if mirror.is_dir() else []:
        if not path.is_file():
            continue
        dest = target / unpacked(path.relative_to(mirror))
        if not dest.exists() and copy_unpacked(path, dest):
            copied += 1
    return copied
