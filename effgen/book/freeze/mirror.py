"""The frozen mirror of a chapter's run folder: which artifacts it keeps, how, and how they come back.

``sync_mirror`` copies the small artifacts of ``runs/<profile>/<chapter>/`` into
``_freeze/<profile>/<chapter>/runs/`` (a finished run without its training state, large text
gzipped); ``thaw`` puts them back, with the run-store entries the chapter used (``store``), before a
chapter executes, so its training code reuses every finished run. Classifier runs that ``run_seeds``
trains live in the run store, not here; what stays here is the chapter's own: metrics, plots, Optuna
studies, its tuning runs and GAN runs.
"""
from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effgen.book.freeze import fingerprints
from effgen.book.freeze.fingerprints import freeze_dir, read_record, runs_folder
from effgen.book.freeze.status import MAX_FILE_BYTES
from effgen.book.freeze.store import pack, thaw_entries, write_if_changed
from effgen.checkpoints import LOCK_FILE, copy_unpacked, unpacked
from effgen.paths import CHECKPOINT_FILE, RUNS_MIRROR, WEIGHTS_FILE

# Written into runs/<profile>/<chapter>/ before each execution: which RESULTS_VERSION made these runs.
RUNS_VERSION_FILE = ".results-version"
SUPERSEDED_DIR = ".superseded"  # runs/<profile>/.superseded/<chapter>.results-vN: runs of an older version

# Small artifacts: metrics, histories, configs, sample grids, weights, test predictions, Optuna studies.
KEEP_SUFFIXES = frozenset({".json", ".csv", ".yml", ".yaml", ".png", ".pt", ".npy", ".db"})


@dataclass
class MirrorReport:
    written: int = 0  # files (re)written in the mirror
    kept: int = 0  # files in the mirror after syncing
    bytes: int = 0
    dropped: list[dict[str, Any]] = field(default_factory=list)  # {"path", "reason", "bytes"}
    entries: list[str] = field(default_factory=list)  # run-store entries frozen with the chapter (not in as_dict)

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.kept, "bytes": self.bytes, "dropped": self.dropped}


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

    * a ``checkpoint.pt`` beside a ``weights.pt`` is dropped: the run finished, and ``weights.pt``
      reloads it (a classifier run that tuning trained in the chapter's folder);
    * a finished GAN ``checkpoint.pt`` is dropped: training wrote ``generator.pt`` (its weights),
      ``history.csv`` and ``config.json``, from which ``train_gan`` reloads it;
    * in-progress checkpoints are kept whole, so a thawed run resumes;
    * large CSV and JSON files are gzipped (thawed back); SQLite files are copied consistently.
    The note is "" for a plain copy, or "dropped: <why>".
    """
    suffix = path.suffix
    if suffix not in KEEP_SUFFIXES:
        return {}, "dropped: not a small artifact"
    if path.name == CHECKPOINT_FILE and (path.parent / WEIGHTS_FILE).is_file():
        return {}, f"dropped: finished run; {WEIGHTS_FILE} reloads it"
    if path.name == CHECKPOINT_FILE:
        return _filter_checkpoint(path, relative)
    name, data = pack(relative, _sqlite_bytes(path) if suffix == ".db" else path.read_bytes())
    return {name: data}, ""


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
    if "generator" in payload and "discriminator" in payload:  # a GAN run (effgen.gan.train)
        folder = path.parent
        if not finished or not (folder / "history.csv").is_file() or not (folder / "config.json").is_file():
            return {relative: path.read_bytes()}, ""
        if (folder / "generator.pt").is_file():
            return {}, "dropped: finished GAN run; generator.pt keeps its weights"
    return {relative: path.read_bytes()}, ""


def sync_mirror(root: Path, profile: str, chapter: str, replace: bool) -> MirrorReport:
    """Copy the small artifacts of ``runs/<profile>/<chapter>/`` into the chapter's frozen mirror.

    ``replace`` (after a successful execution) makes the mirror exactly the filtered run folder;
    otherwise (a snapshot) files are added and updated, and none is removed.
    """
    source = runs_folder(root, profile, chapter)
    mirror = freeze_dir(root, profile, chapter) / RUNS_MIRROR
    report = MirrorReport()
    produced: set[Path] = set()
    for path in sorted(source.rglob("*")) if source.is_dir() else []:
        if not path.is_file() or path.name.endswith(".tmp") or path.name in (RUNS_VERSION_FILE, LOCK_FILE):
            continue
        relative = path.relative_to(source).as_posix()
        outputs, note = filter_run_file(path, relative)
        if note.startswith("dropped"):
            report.dropped.append({"path": relative, "reason": note.split(": ", 1)[1], "bytes": path.stat().st_size})
        # What an earlier snapshot may have made of this file and it no longer makes (e.g. the
        # in-progress checkpoint of a run that has finished since) must go, or a thaw would revive it.
        candidates = {relative, relative + ".gz"}
        for name, data in outputs.items():
            if len(data) > MAX_FILE_BYTES:
                report.dropped.append({"path": name, "reason": f"over {MAX_FILE_BYTES // 2**20} MB",
                                       "bytes": len(data)})
                candidates.discard(name)  # an earlier copy that fitted stays: an older resumable state
                continue
            produced.add(mirror / name)
            report.written += write_if_changed(mirror / name, data)
            candidates.discard(name)
        for stale in candidates:
            (mirror / stale).unlink(missing_ok=True)
    if replace and mirror.is_dir():
        for path in sorted(mirror.rglob("*"), reverse=True):
            if path.is_file() and path not in produced:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    files = [p for p in mirror.rglob("*") if p.is_file()] if mirror.is_dir() else []
    report.kept, report.bytes = len(files), sum(p.stat().st_size for p in files)
    return report


def thaw(root: Path, profile: str, chapter: str) -> int:
    """Copy the frozen mirror into ``runs/<profile>/<chapter>/`` where a file is absent, and the store
    entries the chapter used into ``runs/<profile>/store/`` where an entry is absent; returns files copied.

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
    return copied + thaw_entries(root, profile, record.get("store", []))
