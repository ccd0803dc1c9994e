"""How far a chapter's training runs have got, from their run folders: what ``effgen run --status``
lists under a chapter that is not frozen, so a profile computed across sessions shows where it stands.

A run folder is one with a ``weights.pt`` (a finished run of the run store, or one tuning trained),
a ``checkpoint.pt`` (classifier or GAN: it holds ``step`` and the config's ``steps``), or, for a
finished GAN run whose checkpoint was dropped from the freeze, a ``generator.pt`` with its ``history.csv``.
"""
from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from effgen.paths import CHECKPOINT_FILE, WEIGHTS_FILE

FINISHED_GAN_FILE = "generator.pt"


@dataclass(frozen=True)
class RunProgress:
    name: str  # the run folder, relative to the chapter's runs folder
    step: int
    steps: int | None  # None where the folder does not say (a finished run's budget)
    finished: bool

    def describe(self) -> str:
        if self.finished:
            return f"{self.name} finished"
        budget = f" of {self.steps:,}" if self.steps else ""
        return f"{self.name} at {self.step:,}{budget} steps"


def run_progress(folder: Path, name: str) -> RunProgress | None:
    """The progress of the run in ``folder``, or None when it holds no run (or one that cannot be read)."""
    if (folder / WEIGHTS_FILE).is_file():  # written when the run finished
        return RunProgress(name, _history_steps(folder), None, finished=True)
    checkpoint = folder / CHECKPOINT_FILE
    if checkpoint.is_file():
        return _from_checkpoint(checkpoint, name)
    if (folder / FINISHED_GAN_FILE).is_file():
        return RunProgress(name, _history_steps(folder), None, finished=True)
    return None


def _from_checkpoint(path: Path, name: str) -> RunProgress | None:
    import torch  # only here: the status of a frozen book needs no torch

    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        step, steps = int(state["step"]), int(state["config"]["steps"])
    except Exception:  # noqa: BLE001 - a status line must not fail on one unreadable run
        return None
    finished = bool(state.get("finished", step >= steps))
    return RunProgress(name, step, steps, finished)


def _history_steps(folder: Path) -> int:
    """The last step in the run's ``history.csv`` (or its gzipped mirror copy); 0 if there is none."""
    for path, opener in ((folder / "history.csv", open), (folder / "history.csv.gz", gzip.open)):
        if path.is_file():
            with opener(path, "rt", newline="") as lines:
                rows = list(csv.DictReader(lines))
            return int(float(rows[-1]["step"])) if rows and "step" in rows[-1] else 0
    return 0


def chapter_runs(*folders: Path) -> list[RunProgress]:
    """Every run under the given runs folders (the live one first, then the snapshot mirror): for a
    run found in several, the one furthest along. Sorted by name."""
    best: dict[str, RunProgress] = {}
    for base in folders:
        for progress in _runs_under(base):
            known = best.get(progress.name)
            if known is None or (progress.finished, progress.step) > (known.finished, known.step):
                best[progress.name] = progress
    return sorted(best.values(), key=lambda p: p.name)


def _runs_under(base: Path) -> Iterable[RunProgress]:
    if not base.is_dir():
        return
    for folder in sorted(p for p in base.rglob("*") if p.is_dir()):
        progress = run_progress(folder, folder.relative_to(base).as_posix())
        if progress is not None:
            yield progress


def summarise(runs: list[RunProgress]) -> str:
    """``3 finished; tuned-seed3-cdf5dadf at 9,000 of 10,000 steps`` (empty without runs)."""
    finished = sum(run.finished for run in runs)
    parts = [f"{finished} finished"] if finished else []
    parts += [run.describe() for run in runs if not run.finished]
    return "; ".join(parts)
