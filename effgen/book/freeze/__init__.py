"""Frozen results, Quarto's ``freeze: auto`` for papermill chapters.

Each executed chapter is kept under ``_freeze/<profile>/<chapter>/``:

* ``notebook.ipynb``: the executed notebook, which the renderer uses instead of executing;
* ``runs/``: a filtered mirror of ``runs/<profile>/<chapter>/`` holding its small artifacts (``mirror``);
* ``fingerprint.json``: what produced them, part by part (``fingerprints``), plus when, on which git
  revision and in how long it ran, and the run-store entries it used.

The run store's entries are kept once, in ``_freeze/<profile>/store/`` (``store``).

``status`` says per chapter whether it is frozen and current, stale (and why), missing, or damaged;
``plan`` decides what ``effgen run`` executes, executes it and freezes each success.
"""
from effgen.book.freeze.fingerprints import (
    FINGERPRINT_FILE,
    NOTEBOOK_FILE,
    PACKAGE,
    PROSE,
    RESULTS_VERSION,
    Fingerprint,
    FreezeDamaged,
    depends_on,
    execution_digest,
    fingerprint,
    freeze_dir,
    library_digests,
    notebook_digest,
    params_digest,
    read_record,
    runs_folder,
    source_digest,
)
from effgen.book.freeze.mirror import (
    MirrorReport,
    filter_run_file,
    sync_mirror,
    thaw,
)
from effgen.book.freeze.plan import (
    Planned,
    describe_plan,
    freeze_chapter,
    mark_stale_in_build,
    place_frozen_notebooks,
    place_new_prose,
    plan_run,
    prepare_runs,
    refreeze_prose,
    retire_snapshot,
    run_book,
    snapshot,
)
from effgen.book.freeze.status import (
    COMMITTED_PROFILES,
    ChapterStatus,
    format_status,
    refuse_damaged,
    size_report,
    status,
)
from effgen.book.freeze.store import (
    StoreReport,
    check_entry,
    freeze_entries,
    frozen_store,
    live_store,
    prune,
    read_snapshot,
    snapshot_entries,
    thaw_entries,
    thaw_snapshot,
)

__all__ = [
    "COMMITTED_PROFILES", "FINGERPRINT_FILE", "NOTEBOOK_FILE", "PACKAGE", "PROSE",
    "RESULTS_VERSION", "ChapterStatus", "Fingerprint", "FreezeDamaged",
    "MirrorReport", "Planned", "StoreReport", "check_entry", "depends_on", "describe_plan", "execution_digest", "source_digest",
    "filter_run_file", "fingerprint", "freeze_entries", "frozen_store", "live_store", "format_status", "freeze_chapter", "freeze_dir", "library_digests", "mark_stale_in_build",
    "notebook_digest", "params_digest", "place_frozen_notebooks", "place_new_prose", "plan_run",
    "prepare_runs", "prune", "read_record", "read_snapshot", "refreeze_prose", "retire_snapshot", "refuse_damaged", "run_book", "runs_folder",
    "size_report", "snapshot", "snapshot_entries", "status", "sync_mirror", "thaw", "thaw_entries",
    "thaw_snapshot",
]
