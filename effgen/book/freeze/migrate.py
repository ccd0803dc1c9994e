"""Adopting the classifier runs of the layout before the run store into it (``effgen snapshot --adopt-legacy-runs``).

Before the run store, ``run_seeds`` kept each run in its chapter's folder as ``<label>-seed<N>-<key>``,
a chapter needing another's run copied it, and the freeze mirrored each chapter's folders into
``_freeze/<profile>/<chapter>/runs/``: finished checkpoints slimmed (no Adam or sampler state,
``"slim": True``), large text gzipped (FILE.gz), and a file another chapter's mirror held stored as a
pointer to it (FILE.twin: ``{"path", "sha256"}``). Reading that layout lives here and nowhere else.

``adopt_legacy_runs`` finds those folders, live and frozen, keeps the ones whose checkpoint hashes to
their key (a tuning run's folder can look alike; it stays where it is), and makes the furthest-along
copy of each key the store entry ``runs/<profile>/store/classifier/seed<N>-<key>/``, a finished one
with its ``weights.pt``. A store entry already at least as far along is kept. Then each chapter's
record lists the entries its mirror held, those entries are frozen into ``_freeze/<profile>/store/``,
the frozen folders leave the mirrors and the live ones are set aside in ``runs/<profile>/.superseded/``.
Running it again finds nothing left to adopt.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effgen.book.freeze.fingerprints import FINGERPRINT_FILE, freeze_dir, read_record
from effgen.book.freeze.mirror import SUPERSEDED_DIR
from effgen.book.freeze.store import freeze_entries, has_run, live_store, progress, write_if_changed
from effgen.checkpoints import (
    LOCK_FILE,
    atomic_folder,
    atomic_torch_save,
    config_key,
    exclusive_run,
    read_checkpoint,
    read_unpacked,
    unpacked,
)
from effgen.classifier.experiments import STORE_KIND
from effgen.classifier.loop import weights_payload
from effgen.errors import EffgenError
from effgen.paths import CHECKPOINT_FILE, RUNS_MIRROR, STORE_DIR, WEIGHTS_FILE

LEGACY_RUN = re.compile(r".+-seed(?P<seed>\d+)-(?P<key>[0-9a-f]{8})")
TWIN_SUFFIX = ".twin"
LEGACY_DIR = "legacy-runs"  # runs/<profile>/.superseded/legacy-runs/<chapter>/...: the live folders, set aside


@dataclass
class Legacy:
    """One copy of a run in the old layout."""

    chapter: str
    folder: Path
    frozen: bool  # in a chapter's mirror, not in runs/
    files: dict[str, Path]  # name in a run folder -> the file holding its bytes (gzipped where it ends .gz)
    state: dict[str, Any]  # its checkpoint

    @property
    def entry(self) -> str:
        return f"{STORE_KIND}/{self.folder.name[self.folder.name.rfind('-seed') + 1:]}"

    @property
    def done(self) -> tuple[bool, int]:
        step = int(self.state["step"])
        return bool(self.state.get("finished")) or step >= int(self.state["config"]["steps"]), step


@dataclass
class Adoption:
    adopted: dict[str, str] = field(default_factory=dict)  # entry -> the folder its files came from
    kept: list[str] = field(default_factory=list)  # entries the store already held at least as far along
    skipped: list[str] = field(default_factory=list)  # folders named like a run but keyed otherwise, or unreadable


def adopt_legacy_runs(root: Path, profile: str, log: Callable[[str], None] = print) -> Adoption:
    """Move the old layout's classifier runs of ``profile`` into the run store; see the module docstring."""
    root = Path(root)
    report = Adoption()
    copies: dict[str, list[Legacy]] = {}
    for chapter, folder, frozen in _legacy_folders(root, profile):
        if not frozen and _in_training(folder):
            raise EffgenError(f"{folder} is being trained by another process; stop it (its run resumes from the "
                              "store afterwards), then adopt the old runs again")
        run = _read(chapter, folder, frozen)
        if run is None:
            report.skipped.append(folder.relative_to(root).as_posix())
            continue
        copies.setdefault(run.entry, []).append(run)
    for entry, found in sorted(copies.items()):
        best = max(found, key=lambda run: (run.done, "test.json" in run.files, not run.frozen))
        target = live_store(root, profile) / entry
        if has_run(target) and progress(target) >= best.done:
            report.kept.append(entry)
        else:
            atomic_folder(target, functools.partial(_write_entry, best))
            report.adopted[entry] = best.folder.relative_to(root).as_posix()
    frozen_by_chapter: dict[str, set[str]] = {}
    for run in (run for found in copies.values() for run in found if run.frozen):
        frozen_by_chapter.setdefault(run.chapter, set()).add(run.entry)
    for chapter, entries in sorted(frozen_by_chapter.items()):  # the records first: then prune keeps them
        _list_in_record(root, profile, chapter, entries)
    for run in (run for found in copies.values() for run in found):
        if run.frozen:
            shutil.rmtree(run.folder)
        else:
            aside = _unused(root / "runs" / profile / SUPERSEDED_DIR / LEGACY_DIR / run.chapter
                            / run.folder.relative_to(root / "runs" / profile / run.chapter))
            aside.parent.mkdir(parents=True, exist_ok=True)
            run.folder.rename(aside)
    log(f"run store of {profile!r}: {len(report.adopted)} entries adopted, {len(report.kept)} already there; "
        f"{sum(map(len, copies.values()))} old run folders moved"
        + (f"; left as they are (not keyed by configuration and data): {', '.join(report.skipped)}"
           if report.skipped else ""))
    return report


def _legacy_folders(root: Path, profile: str) -> list[tuple[str, Path, bool]]:
    """(chapter, folder, frozen) for every folder named ``<label>-seed<N>-<key>`` in the old places."""
    found = []
    for base, frozen in ((root / "runs" / profile, False), (freeze_dir(root, profile), True)):
        for chapter in sorted(p for p in base.glob("*") if p.is_dir()):
            if chapter.name.startswith(".") or chapter.name == STORE_DIR:
                continue
            runs = chapter / RUNS_MIRROR if frozen else chapter
            found += [(chapter.name, folder, frozen) for folder in sorted(runs.rglob("*"))
                      if folder.is_dir() and LEGACY_RUN.fullmatch(folder.name)]
    return found


def _read(chapter: str, folder: Path, frozen: bool) -> Legacy | None:
    """The run in ``folder`` when its checkpoint is the run its name says; None otherwise."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name == LOCK_FILE or path.name.endswith(".tmp"):
            continue
        name, source = path.name, path
        if name.endswith(TWIN_SUFFIX):
            name, source = name.removesuffix(TWIN_SUFFIX), _twin_target(path)
        files[unpacked(Path(name)).name] = source
    if CHECKPOINT_FILE not in files:
        return None
    try:
        state = read_checkpoint(files[CHECKPOINT_FILE], "classifier checkpoint", ("config", "data_fingerprint", "step"))
    except EffgenError:
        return None
    match = LEGACY_RUN.fullmatch(folder.name)
    assert match is not None
    config = state["config"]
    if not isinstance(config, dict) or config.get("seed") != int(match["seed"]) \
            or config_key(config, str(state["data_fingerprint"])) != match["key"]:
        return None
    return Legacy(chapter, folder, frozen, files, state)


def _in_training(folder: Path) -> bool:
    if not (folder / LOCK_FILE).is_file():  # a trainer takes its folder's lock file first
        return False
    try:
        with exclusive_run(folder):
            return False
    except EffgenError:
        return True


def _unused(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``... when it is taken (an earlier adoption set one aside there)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _twin_target(pointer: Path) -> Path:
    """The file a pointer stands for, checked against the sha256 it records."""
    try:
        record = json.loads(pointer.read_text())
        target = pointer.parent / str(record["path"])
        if hashlib.sha256(target.read_bytes()).hexdigest() == record["sha256"]:
            return target
    except (OSError, ValueError, KeyError, TypeError):
        pass
    raise EffgenError(f"{pointer}: its file is missing or has changed; restore _freeze/ from git "
                      "(git checkout -- _freeze) and adopt the old runs again")


def _write_entry(run: Legacy, scratch: Path) -> Path:
    """The store entry of ``run`` in ``scratch``: its files, and weights.pt instead of a finished checkpoint."""
    finished = run.done[0]
    for name, source in run.files.items():
        if finished and name == CHECKPOINT_FILE:
            continue
        (scratch / name).write_bytes(read_unpacked(source))
    if finished:
        atomic_torch_save(weights_payload(run.state), scratch / WEIGHTS_FILE)
    return scratch


def _list_in_record(root: Path, profile: str, chapter: str, entries: set[str]) -> None:
    """Add ``entries`` to the chapter's record and freeze them, as if its execution had used them."""
    record = read_record(root, profile, chapter)
    if record is None:
        return
    record["store"] = sorted({*record.get("store", []), *entries})
    freeze_entries(root, profile, record["store"])
    write_if_changed(freeze_dir(root, profile, chapter) / FINGERPRINT_FILE,
                     (json.dumps(record, indent=2) + "\n").encode())
