"""Classifier runs shared between the chapters of one profile.

Several chapters need the same run: chapter 02's tuned model is chapter 01's SE + IR model with
Swish and chapter 06's paper model, and chapter 02's plain CNN is chapter 01's. A run folder's
name ends in ``-seed<seed>-<key>``, where the key hashes the configuration and the training and
validation data (``experiments.run_key``), so two chapters that need the same run name folders
with the same ending. Before training one, ``adopt_twin`` looks for a run with that ending in the
other chapters of the profile, in ``runs/`` or frozen under ``_freeze/``, and copies the furthest
along in: the chapter stays self-contained (its own folder is frozen with it). A run resumes
exactly from any of its checkpoints, so an unfinished twin is taken too and resumed from its step;
checkpoints are replaced atomically, so a copy taken while the twin trains is still a whole one.
On the CPU the result is bit-for-bit the run the chapter would have trained from scratch.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from torch import Tensor

from effgen.checkpoints import LOCK_FILE, copy_unpacked, unpacked
from effgen.classifier.config import ClassifierConfig
from effgen.classifier.loop import CHECKPOINT_FILE, data_fingerprint, matching_checkpoint
from effgen.errors import EffgenError
from effgen.paths import FREEZE_DIR, PROFILES, RUNS_MIRROR, project_root


def _profile_of(out_dir: Path, root: Path) -> tuple[str, str] | None:
    """(profile, chapter) when ``out_dir`` lies under ``runs/<profile>/<chapter>/``, else None."""
    try:
        parts = out_dir.resolve().relative_to((root / "runs").resolve()).parts
    except ValueError:
        return None
    return (parts[0], parts[1]) if len(parts) >= 3 and parts[0] in PROFILES else None


def _candidates(root: Path, profile: str, chapter: str, ending: str) -> Iterator[Path]:
    """Run folders named ``*<ending>`` in the profile's other chapters: live runs first, then frozen ones."""
    bases = [(folder, folder) for folder in sorted((root / "runs" / profile).glob("*")) if folder.is_dir()]
    bases += [(folder, folder / RUNS_MIRROR) for folder in sorted((root / FREEZE_DIR / profile).glob("*"))]
    for chapter_folder, base in bases:
        if chapter_folder.name == chapter or not base.is_dir():
            continue
        yield from sorted(path for path in base.rglob(f"*{ending}") if path.is_dir())


def _copy_run(source: Path, dest: Path) -> None:
    """Copy a run folder, unpacking a frozen mirror's gzipped text files; each file lands atomically."""
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.name != LOCK_FILE:
            copy_unpacked(path, dest / unpacked(path.relative_to(source)))


def adopt_twin(out_dir: Path, config: ClassifierConfig, train: tuple[Tensor, Tensor],
               valid: tuple[Tensor, Tensor], log: Callable[[str], None] = print) -> Path | None:
    """Copy the furthest-along twin from another chapter into an empty ``out_dir``; its source, or None.

    Only folders under ``runs/<profile>/<chapter>/`` of the project take part; anything else
    (a user's own output folder, a folder already holding a checkpoint) is left alone.
    """
    out_dir = Path(out_dir)
    root = project_root()
    where = _profile_of(out_dir, root)
    if where is None or (out_dir / CHECKPOINT_FILE).exists():
        return None
    ending = out_dir.name[out_dir.name.rfind("-seed"):]
    if not ending.startswith("-seed"):
        return None
    fingerprint = None  # hashing the data costs a second at the official sizes: only when there is a candidate
    best, best_step = None, 0
    for candidate in _candidates(root, *where, ending):
        if not (candidate / CHECKPOINT_FILE).is_file():
            continue
        fingerprint = fingerprint or data_fingerprint(*train, *valid)
        try:
            state = matching_checkpoint(candidate, config, fingerprint)
        except EffgenError:  # another configuration or data under a colliding name: not a twin
            continue
        if state is not None and int(state["step"]) > best_step:
            best, best_step = candidate, int(state["step"])
    if best is None:
        return None
    _copy_run(best, out_dir)
    finished = best_step >= config.steps
    log(f"{out_dir.relative_to(root / 'runs')}: the same run (configuration, seed and data) is "
        f"{'finished' if finished else f'at step {best_step:,} of {config.steps:,}'} in {best.relative_to(root)}; "
        f"copied{'' if finished else ', and resumed from there'}")
    return best
