"""The frozen run store, ``_freeze/<profile>/store/``: each run-store entry the book needs, kept once.

Training keeps runs in ``runs/<profile>/store/<kind>/<name>/``, one folder per content key
(``effgen.paths``), so a run that several chapters need is one entry. The runner records the entries
each chapter's kernel used (``paths.STORE_ENTRIES_USED``) in its ``fingerprint.json`` (``store``).
Freezing copies files:

* a finished entry (one holding ``weights.pt``): every file but ``checkpoint.pt``, the training
  state that only resuming needs;
* an unfinished entry: every file, so a thawed run resumes;

CSV, JSON and NumPy files over 64 KB gzipped (thawed back), and beside them ``manifest.json``: each
file's sha256 and how far the run had got. A frozen file that does not match it is ``FreezeDamaged``.
A frozen entry further along than the live one is left as it is. ``effgen snapshot`` freezes every
live entry and lists them in ``snapshot.json``, so work in progress survives the session; an entry
that neither a chapter's record nor the snapshot lists is pruned when a chapter is frozen. A thaw
copies an entry back where the live store has none of it, never over a file.
"""
from __future__ import annotations

import csv
import gzip
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effgen.book.freeze import fingerprints
from effgen.book.freeze.fingerprints import (
    FINGERPRINT_FILE,
    _damaged,
    _sha256,
    freeze_dir,
    read_frozen_json,
    read_record,
)
from effgen.checkpoints import LOCK_FILE, atomic_write, copy_unpacked, unpacked
from effgen.paths import CHECKPOINT_FILE, GZIP_SUFFIXES, STORE_DIR, STORE_ENTRY, WEIGHTS_FILE

MANIFEST = "manifest.json"  # in each frozen entry: {"finished", "step", "files": {name: sha256}}
SNAPSHOT_FILE = "snapshot.json"  # _freeze/<profile>/store/snapshot.json: the entries the last snapshot kept
GZIP_OVER_BYTES = 64 * 2**10  # CSV, JSON and NumPy files above this are frozen gzipped (FILE.gz), thawed back


def frozen_store(root: Path, profile: str) -> Path:
    return freeze_dir(root, profile) / STORE_DIR


def live_store(root: Path, profile: str) -> Path:
    return Path(root) / "runs" / profile / STORE_DIR


def pack(relative: str, data: bytes) -> tuple[str, bytes]:
    """The name and bytes a frozen copy keeps: CSV, JSON and NumPy files over GZIP_OVER_BYTES as FILE.gz."""
    if Path(relative).suffix in GZIP_SUFFIXES and len(data) > GZIP_OVER_BYTES:
        return relative + ".gz", gzip.compress(data, mtime=0)
    return relative, data


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically write ``data`` unless ``path`` already holds exactly it; whether it wrote."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return True


def has_run(folder: Path) -> bool:
    return (folder / WEIGHTS_FILE).is_file() or (folder / CHECKPOINT_FILE).is_file()


def progress(folder: Path) -> tuple[bool, int]:
    """(finished, the last step its ``history.csv`` records) of a live entry; no torch needed."""
    step = 0
    try:
        with (folder / "history.csv").open(newline="") as lines:
            rows = list(csv.DictReader(lines))
        step = int(float(rows[-1]["step"])) if rows else 0
    except (OSError, KeyError, ValueError, TypeError):
        pass  # a history not written yet: step 0, whatever the checkpoint says
    return (folder / WEIGHTS_FILE).is_file(), step


def live_entries(root: Path, profile: str) -> list[str]:
    """Every entry of the live store that holds a run, as ``<kind>/<name>``."""
    store = live_store(root, profile)
    return sorted(f"{folder.parent.name}/{folder.name}" for folder in store.glob("*/*")
                  if folder.is_dir() and STORE_ENTRY.fullmatch(f"{folder.parent.name}/{folder.name}")
                  and has_run(folder))


@dataclass
class StoreReport:
    frozen: list[str] = field(default_factory=list)  # entries held frozen afterwards
    written: int = 0  # files (re)written
    kept: list[str] = field(default_factory=list)  # frozen further along than live: left as they were
    missing: list[str] = field(default_factory=list)  # neither live nor frozen: nothing to keep


def freeze_entries(root: Path, profile: str, entries: Iterable[str]) -> StoreReport:
    """Copy each live entry into the frozen store (see the module docstring); what was done."""
    report = StoreReport()
    for entry in dict.fromkeys(entries):
        live, frozen = live_store(root, profile) / entry, frozen_store(root, profile) / entry
        theirs = _frozen_progress(root, frozen)
        if not has_run(live):
            (report.frozen if theirs is not None else report.missing).append(entry)
            continue
        mine = progress(live)
        if theirs is not None and theirs > mine:
            report.kept.append(entry)
        else:
            report.written += _copy_entry(live, frozen, mine)
        report.frozen.append(entry)
    return report


def _copy_entry(live: Path, frozen: Path, done: tuple[bool, int]) -> int:
    finished, step = done
    files: dict[str, bytes] = {}
    for path in sorted(live.rglob("*")):
        if (not path.is_file() or path.name == LOCK_FILE or path.name.startswith(".") or path.name.endswith(".tmp")
                or (finished and path.name == CHECKPOINT_FILE)):
            continue
        name, data = pack(path.relative_to(live).as_posix(), path.read_bytes())
        files[name] = data
    written = sum(write_if_changed(frozen / name, data) for name, data in files.items())
    for path in sorted(frozen.rglob("*")):  # e.g. the checkpoint of a run that has finished since
        if path.is_file() and path.relative_to(frozen).as_posix() not in {*files, MANIFEST}:
            path.unlink()
    manifest = {"finished": finished, "step": step, "files": {name: _sha256(data) for name, data in files.items()}}
    return written + write_if_changed(frozen / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())


def _frozen_progress(root: Path, frozen: Path) -> tuple[bool, int] | None:
    if not (frozen / MANIFEST).is_file():
        return None
    manifest = read_manifest(root, frozen)
    return manifest["finished"], manifest["step"]


def read_manifest(root: Path, frozen: Path) -> dict[str, Any]:
    """A frozen entry's ``manifest.json``, validated; ``FreezeDamaged`` when it is missing or malformed."""
    path = frozen / MANIFEST
    if not path.is_file():
        raise _damaged(root, path, "missing: a frozen store entry lists its files there")
    manifest = read_frozen_json(root, path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if (not isinstance(files, dict) or not isinstance(manifest.get("finished"), bool)
            or not isinstance(manifest.get("step"), int) or isinstance(manifest.get("step"), bool)
            or not all(isinstance(name, str) and isinstance(digest, str) and _plain_name(name)
                       for name, digest in files.items())):
        raise _damaged(root, path, "not a store entry's manifest (finished, step, files)")
    return manifest


def _plain_name(name: str) -> bool:
    """A file inside its entry: relative, without '..', not the manifest itself."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts and name != MANIFEST


def check_entry(root: Path, profile: str, entry: str) -> dict[str, Any]:
    """The manifest of a frozen entry whose every file is the one it records; else ``FreezeDamaged``."""
    frozen = frozen_store(root, profile) / entry
    if not frozen.is_dir():
        raise _damaged(root, frozen, "missing, though a record of the frozen book lists this store entry")
    manifest = read_manifest(root, frozen)
    for name, digest in manifest["files"].items():
        path = frozen / name
        if not path.is_file() or path.is_symlink():
            raise _damaged(root, path, f"missing, though {MANIFEST} lists it")
        if _sha256(path.read_bytes()) != digest:
            raise _damaged(root, path, f"its sha256 is not the one {MANIFEST} records")
    return manifest


def thaw_entries(root: Path, profile: str, entries: Iterable[str]) -> int:
    """Copy frozen entries into the live store where it holds no run of theirs; returns files copied."""
    copied = 0
    for entry in dict.fromkeys(entries):
        live = live_store(root, profile) / entry
        if has_run(live):  # live work, maybe further along: never overwritten
            continue
        for name in check_entry(root, profile, entry)["files"]:
            copied += copy_unpacked(frozen_store(root, profile) / entry / name, live / unpacked(Path(name)))
    return copied


def read_snapshot(root: Path, profile: str) -> dict[str, Any] | None:
    """``snapshot.json``, validated; None when there is none."""
    path = frozen_store(root, profile) / SNAPSHOT_FILE
    if not path.exists():
        return None
    record = read_frozen_json(root, path)
    if not isinstance(record, dict) or not _entry_list(record.get("entries")) \
            or not isinstance(record.get("results_version"), int):
        raise _damaged(root, path, "not a snapshot of the run store (entries, results_version)")
    return record


def _entry_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(e, str) and STORE_ENTRY.fullmatch(e) for e in value)


def snapshot_entries(root: Path, profile: str, stamp: dict[str, Any]) -> StoreReport:
    """Freeze every live entry and list them in ``snapshot.json`` (with ``stamp``: when, git).

    An entry the last snapshot listed that the live store lacks (nothing thawed it here) stays listed:
    a snapshot never drops work. To let an entry go, delete it from ``runs/`` and ``_freeze/``.
    """
    previous = read_snapshot(root, profile) or {}
    current = previous.get("results_version") == fingerprints.RESULTS_VERSION
    entries = live_entries(root, profile) + (previous.get("entries", []) if current else [])
    report = freeze_entries(root, profile, entries)
    record = {**stamp, "results_version": fingerprints.RESULTS_VERSION, "entries": sorted(report.frozen)}
    write_if_changed(frozen_store(root, profile) / SNAPSHOT_FILE, (json.dumps(record, indent=1) + "\n").encode())
    return report


def thaw_snapshot(root: Path, profile: str) -> int:
    """Thaw the entries of the last snapshot made under this ``RESULTS_VERSION``; returns files copied."""
    record = read_snapshot(root, profile)
    if record is None or record["results_version"] != fingerprints.RESULTS_VERSION:
        return 0
    return thaw_entries(root, profile, record["entries"])


def referenced(root: Path, profile: str) -> dict[str, set[str]]:
    """Who keeps each frozen entry: the chapters whose records list it, and "snapshot"."""
    keepers: dict[str, set[str]] = {}
    for path in sorted(freeze_dir(root, profile).glob(f"*/{FINGERPRINT_FILE}")):
        for entry in (read_record(root, profile, path.parent.name) or {}).get("store", []):
            keepers.setdefault(entry, set()).add(path.parent.name)
    for entry in (read_snapshot(root, profile) or {}).get("entries", []):
        keepers.setdefault(entry, set()).add("snapshot")
    return keepers


def frozen_entries(root: Path, profile: str) -> list[str]:
    store = frozen_store(root, profile)
    return sorted(f"{folder.parent.name}/{folder.name}" for folder in store.glob("*/*") if folder.is_dir())


def prune(root: Path, profile: str) -> list[str]:
    """Remove the frozen entries that no chapter's record and not the snapshot lists; the entries removed."""
    keepers = referenced(root, profile)  # raises FreezeDamaged before anything is removed
    pruned = [entry for entry in frozen_entries(root, profile) if entry not in keepers]
    for entry in pruned:
        folder = frozen_store(root, profile) / entry
        shutil.rmtree(folder)
        if not any(folder.parent.iterdir()):
            folder.parent.rmdir()
    return pruned

