"""Where each chapter of a profile stands: frozen and current, stale (and why), missing, or damaged;
and how far the runs of the run store have got."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effgen.book.freeze import fingerprints
from effgen.book.freeze.fingerprints import (
    NOTEBOOK_FILE,
    PROSE,
    Fingerprint,
    FreezeDamaged,
    check_frozen_notebook,
    depends_on,
    fingerprint,
    freeze_dir,
    prose_only_change,
    read_record,
    runs_folder,
)
from effgen.book.freeze.store import check_entry, frozen_store, live_store, referenced
from effgen.book.run_progress import chapter_runs, summarise
from effgen.book.runner import chapter_name, select
from effgen.paths import RUNS_MIRROR

# Profiles whose _freeze/ is committed (.gitignore keeps the others out). A chapter of these that was
# never executed runs only when named on the command line or with --execute-missing: it costs hours.
COMMITTED_PROFILES: tuple[str, ...] = ("paper",)
MAX_FILE_BYTES = 15 * 2**20
MAX_TOTAL_BYTES = 60 * 2**20  # for a committed profile


@dataclass
class ChapterStatus:
    name: str
    notebook: str  # as listed in _quarto.yml
    state: str  # "frozen" | "stale" | "missing" | "damaged"
    reasons: list[str] = field(default_factory=list)
    record: dict[str, Any] | None = None
    depends_on: list[str] = field(default_factory=list)
    fingerprint: Fingerprint | None = None

    def describe(self) -> str:
        record = self.record or {}
        if self.state == "damaged":
            return "DAMAGED: " + "; ".join(self.reasons)
        if self.state == "missing":
            snap = record.get("runs")
            extra = (f"; a snapshot of its runs from {snap.get('at', '?')} will be thawed"
                     if snap and snap.get("results_version") == fingerprints.RESULTS_VERSION else "")
            return f"missing (never executed for this profile{extra})"
        executed = record.get("executed", {})
        when = f"executed {executed.get('at', '?')} in {_duration(executed.get('seconds'))}, git {executed.get('git', '?')}"
        if self.reasons == [PROSE]:
            return f"stale: prose only; the next run re-freezes it without executing ({when})"
        if self.state == "stale":
            return f"stale: {'; '.join(self.reasons)} ({when})"
        return f"frozen ({when})"


def status(root: Path, profile: str, requested: Sequence[str] = ()) -> list[ChapterStatus]:
    """Each selected chapter as frozen (current), stale (with reasons), missing or damaged, in execution order."""
    root = Path(root)
    result = []
    for notebook in select(root, requested):
        name = chapter_name(notebook)
        depends = depends_on(root, notebook)
        try:
            record = read_record(root, profile, name)
            if record is not None and "fingerprint" in record:
                check_frozen_notebook(root, profile, name, record)
            for entry in (record or {}).get("store", []):
                check_entry(root, profile, entry)
            current = fingerprint(root, profile, notebook,
                                  (record or {}).get("fingerprint", {}).get("library", {}))
        except FreezeDamaged as err:
            result.append(ChapterStatus(name, notebook, "damaged", [str(err)], None, depends))
            continue
        if record is None or "fingerprint" not in record:
            state, reasons = "missing", []
        else:
            reasons = current.differences(record["fingerprint"])
            if reasons == ["notebook"] and prose_only_change(root / notebook,
                                                             freeze_dir(root, profile, name) / NOTEBOOK_FILE):
                reasons = [PROSE]
            state = "stale" if reasons else "frozen"
        result.append(ChapterStatus(name, notebook, state, reasons, record, depends, current))
    return result


def refuse_damaged(statuses: Sequence[ChapterStatus]) -> None:
    """Raise ``FreezeDamaged`` naming every damaged freeze file: nothing may execute or re-freeze over one."""
    damaged = [s for s in statuses if s.state == "damaged"]
    if damaged:
        raise FreezeDamaged(" | ".join(s.reasons[0] for s in damaged))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def folder_bytes(folder: Path) -> tuple[int, int, list[tuple[int, Path]]]:
    """(total bytes, file count, files over MAX_FILE_BYTES) under ``folder``."""
    total, count, big = 0, 0, []
    for path in folder.rglob("*") if folder.is_dir() else []:
        if path.is_file():
            size = path.stat().st_size
            total += size
            count += 1
            if size > MAX_FILE_BYTES:
                big.append((size, path))
    return total, count, big


def size_report(root: Path, profile: str) -> list[str]:
    """One line on the size of ``_freeze/<profile>/``, plus a warning per limit it breaks."""
    folder = freeze_dir(root, profile)
    total, count, big = folder_bytes(folder)
    lines = [f"{folder.relative_to(root)}: {total / 2**20:.1f} MB in {count} files"
             + (f" (limit {MAX_TOTAL_BYTES // 2**20} MB, {MAX_FILE_BYTES // 2**20} MB a file)"
                if profile in COMMITTED_PROFILES else "")]
    if profile in COMMITTED_PROFILES and total > MAX_TOTAL_BYTES:
        lines.append(f"warning: {folder.relative_to(root)} is over {MAX_TOTAL_BYTES // 2**20} MB: "
                     "remove obsolete run folders from runs/ and re-freeze (effgen run --force CHAPTER)")
    for size, path in big:
        lines.append(f"warning: {path.relative_to(root)} is {size / 2**20:.1f} MB, over the "
                     f"{MAX_FILE_BYTES // 2**20} MB limit for one file")
    return lines


def format_status(root: Path, profile: str, statuses: Sequence[ChapterStatus]) -> str:
    width = max((len(s.name) for s in statuses), default=0)
    lines = [f"profile {profile}, results version {fingerprints.RESULTS_VERSION}"]
    for chapter in statuses:
        lines.append(f"  {chapter.name:<{width}}  {chapter.describe()}")
        if chapter.state != "frozen":  # a chapter computed across sessions: how far its runs have got
            runs = summarise(chapter_runs(runs_folder(root, profile, chapter.name),
                                          freeze_dir(root, profile, chapter.name) / RUNS_MIRROR))
            if runs:
                lines.append(f"  {'':<{width}}  runs: {runs}")
    lines += _store_lines(root, profile)
    lines += size_report(root, profile)
    return "\n".join(lines)




def _store_lines(root: Path, profile: str) -> list[str]:
    """How far the run store's entries have got, live or frozen (whichever is further), and which the
    snapshot alone keeps (an entry of no chapter's record: work in progress, or one to delete)."""
    runs = chapter_runs(live_store(root, profile), frozen_store(root, profile))
    if not runs:
        return []
    unlisted = sorted(entry for entry, keepers in referenced(root, profile).items() if keepers == {"snapshot"})
    return [f"  run store: {summarise(runs)}"
            + (f"; {len(unlisted)} in no chapter's record, kept by the snapshot" if unlisted else "")]
