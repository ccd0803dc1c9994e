"""The paper profile's long jobs, run outside the notebooks into the chapters' own run folders.

The paper profile is days of CPU here, computed across sessions that each end without warning. Its
chapters train their runs one after another in one kernel; these jobs do the same work ahead of them,
one single-threaded process each, and every one is idempotent (a finished run reloads, a cached set is
only hashed, a frozen chapter is skipped), so the same command continues next session:

* ``gan_runs``: chapter 04's DCGANs and chapter 06's modern and ablation runs (``effgen jobs gan``);
* ``fid_references``: the real-image FID statistics of chapters 05 and 06 (``effgen jobs fid-references``);
* ``queue``: all of the profile's work in order on a fixed number of workers (``effgen jobs queue``);
* ``values``: a chapter's parameter values for a profile, as its execution would see them.

Each builds its runs with the calls the chapters make, so the chapters find the results and do not
compute them again.
"""
from effgen.book.jobs.fid_references import (
    ReferenceSet,
    compute_references,
    missing_sets,
    reference_sets,
    reference_states,
    still_needed,
)
from effgen.book.jobs.gan_runs import (
    GAN_JOBS,
    PREFIX_RUN,
    beyond_runs,
    chapter_runs,
    modern_config,
    run_configs,
    run_key,
    start_from_prefix,
    train_ahead,
)
from effgen.book.jobs.queue import (
    PROFILE,
    Job,
    frozen_chapters,
    paper_jobs,
    run_paper_queue,
    run_queue,
    select,
    with_threads,
)
from effgen.book.jobs.values import BEYOND, DCGAN, EVALUATION, chapter_parameters

__all__ = [
    "BEYOND", "DCGAN", "EVALUATION", "GAN_JOBS", "PREFIX_RUN", "PROFILE", "Job", "ReferenceSet",
    "beyond_runs", "chapter_parameters", "chapter_runs", "compute_references", "frozen_chapters",
    "missing_sets", "modern_config", "paper_jobs", "reference_sets", "reference_states", "run_configs",
    "run_key", "run_paper_queue", "run_queue", "select", "start_from_prefix", "still_needed", "train_ahead",
    "with_threads",
]
