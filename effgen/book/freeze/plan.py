"""What ``effgen run`` does: decide what to execute, execute it, and freeze, snapshot or re-freeze chapters."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effgen.book.freeze import fingerprints
from effgen.book.freeze.fingerprints import (
    FINGERPRINT_FILE,
    NOTEBOOK_FILE,
    PROSE,
    Fingerprint,
    _sha256,
    depends_on,
    fingerprint,
    freeze_dir,
    library_digests,
    runs_folder,
    splice_prose,
)
from effgen.book.freeze.mirror import (
    RUNS_VERSION_FILE,
    SUPERSEDED_DIR,
    MirrorReport,
    sync_mirror,
    thaw,
)
from effgen.book.freeze.reproduced import Reproduced, compare_metrics, read_metrics
from effgen.book.freeze.status import (
    COMMITTED_PROFILES,
    ChapterStatus,
    _duration,
    folder_bytes,
    refuse_damaged,
    size_report,
    status,
)
from effgen.book.freeze.store import (
    SNAPSHOT_FILE,
    freeze_entries,
    frozen_store,
    live_store,
    prune,
    snapshot_entries,
    thaw_snapshot,
    write_if_changed,
)
from effgen.book.runner import ChapterJob, chapter_name, execute, execution_order, plan
from effgen.errors import EffgenError


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _git(root: Path) -> str:
    from effgen.book.provenance import git_revision

    return git_revision(root)


def _write_record(root: Path, profile: str, chapter: str, record: dict[str, Any]) -> None:
    write_if_changed(freeze_dir(root, profile, chapter) / FINGERPRINT_FILE,
                      (json.dumps(record, indent=2) + "\n").encode())


@dataclass
class Frozen:
    """What ``freeze_chapter`` kept, and how the new results compare with those frozen before (if any)."""

    mirror: MirrorReport
    reproduced: Reproduced | None


def freeze_chapter(root: Path, job: ChapterJob, print_: Fingerprint, seconds: float,
                   ran: Sequence[str] = (), store: Sequence[str] = ()) -> Frozen:
    """After a successful execution: keep the executed notebook, mirror its runs, freeze the run-store
    entries it used (``store``), compare its results with those frozen before, record the fingerprint,
    then prune the entries nothing lists any more.

    ``print_`` is the fingerprint taken just before the execution started; its library part is
    replaced by the digests of ``ran``, the files the chapter's kernel loaded.
    """
    root = Path(root)
    profile = job.parameters["profile"]
    folder = freeze_dir(root, profile, job.name)
    notebook = job.output.read_bytes()
    print_ = dataclasses.replace(print_, library=library_digests(ran))
    before = read_metrics(folder / "runs")
    write_if_changed(folder / NOTEBOOK_FILE, notebook)
    mirror = sync_mirror(root, profile, job.name, replace=True)
    mirror.entries = freeze_entries(root, profile, store).frozen
    now = read_metrics(folder / "runs")
    reproduced = compare_metrics(before, now) if before is not None and now is not None else None
    git = _git(root)
    record = {
        "chapter": job.name,
        "profile": profile,
        "notebook": job.source.relative_to(root).as_posix(),
        "fingerprint": print_.as_dict(),
        "executed": {"at": _now(), "seconds": round(seconds, 1), "git": git,
                     "notebook_sha256": _sha256(notebook)},
        "notebook_file_sha256": _sha256(notebook),
        "runs": {"kind": "final", "at": _now(), "git": git, "results_version": fingerprints.RESULTS_VERSION,
                 **mirror.as_dict()},
        "store": mirror.entries,
    }
    if reproduced is not None:
        record["reproduced"] = reproduced.as_dict()
    _write_record(root, profile, job.name, record)
    prune(root, profile)
    return Frozen(mirror, reproduced)


def refreeze_prose(root: Path, profile: str, st: ChapterStatus) -> None:
    """A prose-only change: splice the source's markdown into the frozen notebook, record the new digest.

    The execution's identity (``executed.notebook_sha256``, which readers' ``upstream`` parts record)
    stays that of the notebook as executed: new prose changes no output, so no reader goes stale.
    """
    if st.state != "stale" or st.reasons != [PROSE] or st.record is None or st.fingerprint is None:
        raise ValueError(f"{st.name}: not a prose-only change ({st.state}: {st.reasons})")
    frozen = freeze_dir(root, profile, st.name) / NOTEBOOK_FILE
    spliced = splice_prose(root / st.notebook, frozen)
    write_if_changed(frozen, spliced)
    record = dict(st.record)
    record["notebook_file_sha256"] = _sha256(spliced)
    record["fingerprint"] = {**record["fingerprint"], "notebook": st.fingerprint.notebook}
    record["prose"] = {"at": _now(), "git": _git(root)}
    _write_record(root, profile, st.name, record)


def snapshot(root: Path, profile: str, requested: Sequence[str] = (),
             log: Callable[[str], None] = print) -> list[str]:
    """Copy the resumable state of chapters that are not frozen and current, and every entry of the
    run store, from ``runs/`` to ``_freeze/``.

    For a long run to cross sessions: commit ``_freeze/<profile>/`` afterwards, and the next
    ``effgen run`` thaws these files and the training code resumes from the checkpoints.
    Returns the chapters snapshotted.
    """
    root = Path(root)
    done = []
    statuses = status(root, profile, requested)
    refuse_damaged(statuses)
    for st in statuses:
        source = runs_folder(root, profile, st.name)
        if st.state == "frozen":
            log(f"{st.name}: frozen and current, nothing to snapshot")
            continue
        if not source.is_dir() or not any(source.iterdir()):
            log(f"{st.name}: nothing in {source.relative_to(root)} to snapshot")
            continue
        record = st.record or {"chapter": st.name, "profile": profile, "notebook": st.notebook}
        old_runs = record.get("runs") or {}
        # Runs of an older RESULTS_VERSION are obsolete: this snapshot replaces them.
        mirror = sync_mirror(root, profile, st.name, replace=old_runs.get("results_version") != fingerprints.RESULTS_VERSION)
        record["runs"] = {"kind": "snapshot", "at": _now(), "git": _git(root), "results_version": fingerprints.RESULTS_VERSION,
                          **mirror.as_dict()}
        _write_record(root, profile, st.name, record)
        done.append(st.name)
        log(f"{st.name}: snapshot of {mirror.kept} files ({mirror.bytes / 2**20:.1f} MB, "
            f"{mirror.written} updated) in {freeze_dir(root, profile, st.name).relative_to(root)}"
            + (f"; dropped {len(mirror.dropped)}: " + ", ".join(d["path"] for d in mirror.dropped)
               if mirror.dropped else ""))
    entries = snapshot_entries(root, profile, {"at": _now(), "git": _git(root)})
    log(f"run store: {len(entries.frozen)} entries in {frozen_store(root, profile).relative_to(root)} "
        f"({entries.written} files updated)"
        + (f"; {len(entries.kept)} left as they were, further along than here" if entries.kept else ""))
    for line in size_report(root, profile):
        log(line)
    return done


def retire_snapshot(root: Path, profile: str, log: Callable[[str], None] = print) -> list[str]:
    """Once every chapter is frozen and current, no work in progress is left for the snapshot to carry:
    remove ``snapshot.json`` and prune the frozen run-store entries that no chapter's record lists.

    ``runs/`` is not touched, so nothing trained here is lost. Returns the entries pruned.
    """
    root = Path(root)
    statuses = status(root, profile)
    refuse_damaged(statuses)
    if open_ := [st.name for st in statuses if st.state != "frozen"]:
        raise EffgenError(f"the snapshot still carries work: not frozen and current: {', '.join(open_)} "
                          f"(effgen run --profile {profile} first)")
    store = frozen_store(root, profile)
    before = folder_bytes(store)[0]
    (store / SNAPSHOT_FILE).unlink(missing_ok=True)
    pruned = prune(root, profile)
    log(f"snapshot retired: {len(pruned)} run-store entries no chapter lists were removed from "
        f"{store.relative_to(root)} ({(before - folder_bytes(store)[0]) / 2**20:.1f} MB); runs/ keeps them")
    return pruned


def prepare_runs(root: Path, profile: str, chapter: str, upstream: Sequence[str],
                 log: Callable[[str], None] = print) -> None:
    """Before a chapter executes: set aside runs of another RESULTS_VERSION (the chapter's and the run
    store's), thaw the chapter's, its upstream chapters' and the snapshot's, mark the folders."""
    folders = [runs_folder(root, profile, chapter), live_store(root, profile)]
    for folder in folders:
        _set_aside_if_superseded(root, folder, log)
    for name in [*upstream, chapter]:
        copied = thaw(root, profile, name)
        if copied:
            log(f"  thawed {copied} frozen files into {runs_folder(root, profile, name).relative_to(root)} "
                "and the run store")
    if copied := thaw_snapshot(root, profile):
        log(f"  thawed {copied} files of the last snapshot into {live_store(root, profile).relative_to(root)}")
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        # A folder without a marker predates it: its runs are adopted as the current version's.
        (folder / RUNS_VERSION_FILE).write_text(f"{fingerprints.RESULTS_VERSION}\n")


def _set_aside_if_superseded(root: Path, folder: Path, log: Callable[[str], None]) -> None:
    """Move ``folder`` to ``runs/<profile>/.superseded/`` when its runs were made under another RESULTS_VERSION."""
    marker = folder / RUNS_VERSION_FILE
    if not marker.is_file() or marker.read_text().strip() == str(fingerprints.RESULTS_VERSION):
        return
    old = marker.read_text().strip()
    # Out of the summary page's sight (it reads runs/<profile>/*/metrics.json), but kept.
    aside = folder.parent / SUPERSEDED_DIR / f"{folder.name}.results-v{old}"
    n = 1
    while aside.exists():
        n += 1
        aside = aside.with_name(f"{folder.name}.results-v{old}-{n}")
    aside.parent.mkdir(parents=True, exist_ok=True)
    folder.rename(aside)
    log(f"  {folder.name}: runs of results version {old} set aside in {aside.relative_to(root)}; recomputing")


def place_frozen_notebooks(root: Path, profile: str, names: Iterable[str] | None = None) -> list[str]:
    """Copy frozen notebooks to ``_build/<profile>/``, where the renderer reads executed notebooks."""
    root = Path(root)
    wanted = set(names) if names is not None else None
    placed = []
    for notebook in execution_order(root):
        name = chapter_name(notebook)
        frozen = freeze_dir(root, profile, name) / NOTEBOOK_FILE
        if (wanted is None or name in wanted) and frozen.is_file():
            write_if_changed(root / "_build" / profile / notebook, frozen.read_bytes())
            placed.append(name)
    return placed


def mark_stale_in_build(root: Path, profile: str, statuses: Iterable[ChapterStatus]) -> list[str]:
    """Say on each stale chapter's page, in ``_build/`` only, that it shows an older frozen execution."""
    marked = []
    for st in statuses:
        page = Path(root) / "_build" / profile / st.notebook
        if st.state != "stale" or st.reasons == [PROSE] or not page.is_file():
            continue
        executed = (st.record or {}).get("executed", {})
        callout = ("::: {.callout-note}\n## An earlier execution of this chapter\n\n"
                   f"This page shows the chapter as it was executed on {executed.get('at', '?')}. Its sources have "
                   f"changed since ({_short_reasons(st.reasons)}) and it has not been executed again: "
                   f"`effgen run {st.name} --profile {profile}` recomputes it, reusing every finished run.\n:::\n")
        notebook = json.loads(page.read_text(encoding="utf-8"))
        notebook["cells"].insert(1 if notebook["cells"] else 0,
                                 {"cell_type": "markdown", "metadata": {}, "source": callout})
        write_if_changed(page, (json.dumps(notebook, indent=1, ensure_ascii=False) + "\n").encode())
        marked.append(st.name)
    return marked


def _short_reasons(reasons: Sequence[str]) -> str:
    parts = [reason.split(":", 1)[0] for reason in reasons]
    return ", ".join(dict.fromkeys(parts))


def place_new_prose(root: Path, profile: str, statuses: Iterable[ChapterStatus]) -> None:
    """Put prose-only-stale chapters into ``_build/<profile>/`` with their new markdown; ``_freeze/`` is untouched."""
    for st in statuses:
        if st.reasons == [PROSE]:
            spliced = splice_prose(root / st.notebook, freeze_dir(root, profile, st.name) / NOTEBOOK_FILE)
            write_if_changed(root / "_build" / profile / st.notebook, spliced)


@dataclass
class Planned:
    job: ChapterJob
    status: ChapterStatus
    action: str  # "execute" | "frozen" | "skip" | "prose" (re-frozen with new markdown, not executed)
    why: str


def plan_run(root: Path, profile: str, requested: Sequence[str] = (), force: bool = False,
             execute_missing: bool = False) -> list[Planned]:
    """Decide, per selected chapter, whether it executes; validates every parameters file first."""
    jobs = plan(root, profile, requested)  # raises before anything runs
    every = status(root, profile)
    refuse_damaged(every)  # any chapter's, not only the selected ones': the summary page reads them all
    statuses = {s.name: s for s in every}
    executing: set[str] = set()
    planned = []
    for job in jobs:
        st = statuses[job.name]
        ups = [u for u in st.depends_on if u in executing]
        if force:
            action, why = "execute", "forced"
        elif st.state == "stale" and st.reasons != [PROSE]:
            action, why = "execute", "stale: " + "; ".join(st.reasons)
        elif st.state == "missing":
            if profile in COMMITTED_PROFILES and not requested and not execute_missing:
                action, why = "skip", "not frozen; needs --execute-missing or its name on the command line"
            else:
                action, why = "execute", "not frozen yet"
        elif ups:
            action, why = "execute", "upstream executes first: " + ", ".join(ups)
        elif st.state == "stale":
            action, why = "prose", "prose changed (markdown only): new text between the frozen outputs"
        else:
            action, why = "frozen", "frozen and current"
        if action == "execute":
            executing.add(job.name)
        planned.append(Planned(job, st, action, why))
    return planned


def _cost(item: Planned) -> str:
    executed = (item.status.record or {}).get("executed")
    if executed:
        took = f"; last execution took {_duration(executed.get('seconds'))}"
        if any(r.startswith("results-version") for r in item.status.reasons):
            return took + ", and everything is recomputed"
        return took + ", finished runs are reused"
    snap = (item.status.record or {}).get("runs")
    if snap:
        return f"; resumes from a snapshot of {snap.get('at', '?')}"
    return ""


def describe_plan(root: Path, profile: str, planned: Sequence[Planned]) -> list[str]:
    width = max((len(p.job.name) for p in planned), default=0)
    lines = []
    for item in planned:
        verb = {"execute": "execute", "frozen": "frozen ", "skip": "SKIP   ", "prose": "prose  "}[item.action]
        lines.append(f"  {item.job.name:<{width}}  {verb}  {item.why}"
                     + (_cost(item) if item.action == "execute" else ""))
    skipped = [p.job.name for p in planned if p.action == "skip"]
    if skipped:
        lines.append(
            f"{len(skipped)} chapter(s) of profile {profile!r} are not frozen and are NOT executed: they run the "
            "paper's budgets (hours on a CPU). They render unexecuted. To compute them, add --execute-missing "
            f"or name them (effgen run {skipped[0].split('-', 1)[0]} --profile {profile}).")
    later = _downstream_left_stale(root, planned)
    if later:
        lines.append(f"afterwards stale (not selected): {', '.join(later)}")
    return lines


def _downstream_left_stale(root: Path, planned: Sequence[Planned]) -> list[str]:
    executing = {p.job.name for p in planned if p.action == "execute"}
    selected = {p.job.name for p in planned}
    if not executing:
        return []
    others = [nb for nb in execution_order(root) if chapter_name(nb) not in selected]
    return [chapter_name(nb) for nb in others if executing & set(depends_on(root, nb))]


def run_book(root: Path, profile: str, requested: Sequence[str] = (), force: bool = False,
             execute_missing: bool = False, log: Callable[[str], None] = print) -> list[Planned]:
    """``effgen run``: execute what is stale or missing (or everything with ``force``), freeze each success.

    Frozen, current chapters are not executed: their frozen notebook goes to ``_build/<profile>/``.
    """
    root = Path(root)
    planned = plan_run(root, profile, requested, force, execute_missing)
    prose = sum(p.action == "prose" for p in planned)
    log(f"profile {profile}: {sum(p.action == 'execute' for p in planned)} to execute, "
        f"{sum(p.action == 'frozen' for p in planned)} frozen, {sum(p.action == 'skip' for p in planned)} skipped"
        + (f", {prose} with new prose only" if prose else ""))
    for line in describe_plan(root, profile, planned):
        log(line)
    for item in planned:
        if item.action == "prose":
            refreeze_prose(root, profile, item.status)
            log(f"  {item.job.name}: re-frozen with its new prose; nothing executed")
    place_frozen_notebooks(root, profile, [p.job.name for p in planned if p.action in ("frozen", "prose")])
    to_run = [p for p in planned if p.action == "execute"]
    prints: dict[str, Fingerprint] = {}

    def before(job: ChapterJob) -> None:
        prints[job.name] = fingerprint(root, profile, job.source.relative_to(root).as_posix())
        item = next(p for p in to_run if p.job.name == job.name)
        prepare_runs(root, profile, job.name, item.status.depends_on, log)

    def after(job: ChapterJob, seconds: float, ran: Sequence[str], store: Sequence[str]) -> None:
        frozen = freeze_chapter(root, job, prints[job.name], seconds, ran, store)
        mirror = frozen.mirror
        dropped = f"; dropped {', '.join(d['path'] for d in mirror.dropped)}" if mirror.dropped else ""
        log(f"  frozen into {freeze_dir(root, profile, job.name).relative_to(root)}: notebook and "
            f"{mirror.kept} run files, {mirror.bytes / 2**20:.1f} MB{dropped}; "
            f"{len(mirror.entries)} run-store entries")
        if frozen.reproduced is not None:
            log(f"  results: {frozen.reproduced.describe()}")

    if to_run:
        execute([p.job for p in to_run], root, log=log, before=before, after=after)
        for line in size_report(root, profile):
            if line.startswith("warning"):
                log(line)
    return planned

