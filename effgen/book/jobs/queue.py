"""Keep every core busy with the paper profile's work, in order, until it is all done or the session ends.

The paper profile is days of CPU here, computed across sessions that each end without warning.
Each job below is one single-threaded process (one per core beats one process on all cores
while other work shares the machine; see ``gan_runs``), and each is idempotent: a finished
GAN run reloads, a frozen chapter is skipped, an interrupted one resumes from its last checkpoint.
So the same command every session picks up where the last one stopped::

    effgen jobs queue --workers 2 &      # logs in runs/paper/queue/
    ...
    kill %1; effgen snapshot --profile paper       # before the session ends; then commit _freeze/paper

A job starts when the jobs it needs have finished in this call, or were already done before it
(their chapter frozen). The order puts the summary page's rows first (chapter 04's DCGANs and
chapter 02's tuned seeds) and pairs a GAN with a classifier chapter rather than with the other
GAN. Measured here, one thread each: a DCGAN step takes 0.94 s alone, 1.05-1.11 s beside the other
GAN and 1.07 s beside a classifier, whose own step slows by only 4% (0.36 -> 0.375 s).

The profile ends in a chain, 04 -> 05 -> 06 -> summary, that little can run beside. So whatever that
chain can do early is a job of its own: the FID reference statistics (``effgen jobs fid-references``),
chapter 06's modern GAN and its ablation runs (``effgen jobs gan modern|ablation``), its generator
pilots, their winner at the full budget and the winner's leave-one-out (``effgen jobs pilots``,
``effgen jobs gan winner``, ``effgen jobs pilots --ablate``), and chapter 04
starts as soon as both DCGANs are done. A job that starts with nothing else running and nothing else
ready stays alone until it ends (only its end can make another job ready), so it gets every worker's
thread (``OMP_NUM_THREADS``; the jobs' ``--threads`` follows it); any other job gets one.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from effgen.book.freeze import status
from effgen.book.jobs.values import BEYOND, chapter_parameters
from effgen.errors import ParamsError
from effgen.paths import project_root, runs_dir

PROFILE = "paper"


@dataclass
class Job:
    """One queued process: ``command`` starts once every job in ``needs`` is done."""

    name: str
    command: list[str]
    needs: list[str] = field(default_factory=list)
    chapter: str | None = None  # a chapter job is done before it starts when the chapter is frozen and current


def paper_jobs(python: str = sys.executable) -> list[Job]:
    """The paper profile's jobs in queue order; each runs ``python -m effgen ...`` in the project's root."""
    effgen = [python, "-m", "effgen"]
    gan = [*effgen, "jobs", "gan"]
    beyond = chapter_parameters(PROFILE, BEYOND)
    pilots = [*effgen, "jobs", "pilots", "--steps", str(beyond["pilot_steps"]), "--n-fid", str(beyond["pilot_n_fid"])]

    def chapter(number: str, name: str, needs: Sequence[str] = ()) -> Job:
        return Job(number, [*effgen, "run", number, "--profile", PROFILE], list(needs), name)

    return [
        Job("gan-corrected", [*gan, "corrected"]),
        chapter("02", "02-classifier"),
        Job("gan-faithful", [*gan, "faithful"]),
        chapter("01", "01-activations"),
        chapter("04", "04-dcgan", ["gan-faithful", "gan-corrected"]),
        Job("fid-references", [*effgen, "jobs", "fid-references"]),
        Job("gan-modern", [*gan, "modern"]),
        Job("pilots", [*pilots, *beyond["pilots"], "--reseed", str(beyond["pilot_reseeds"])]),
        chapter("05", "05-evaluation", ["04", "fid-references"]),
        chapter("03", "03-tuning"),
        Job("gan-ablation", [*gan, "ablation"]),
        Job("gan-winner", [*gan, "winner"], ["pilots"]),
        Job("winner-ablation", [*pilots, "--ablate"], ["pilots"]),
        # 06 reads nothing of 05, but scores chapter 04's generators as 05 did: after 05, from its cached
        # statistics, instead of computing them a second time beside it.
        chapter("06", "06-beyond", ["04", "05", "gan-modern", "gan-ablation", "gan-winner", "winner-ablation"]),
        chapter("index", "index", ["01", "02", "03", "04", "05", "06"]),
    ]


def frozen_chapters(root: Path) -> set[str]:
    return {s.name for s in status(root, PROFILE) if s.state == "frozen"}


def with_threads(env: dict[str, str], threads: int) -> dict[str, str]:
    return {**env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def _say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def run_queue(queue: list[Job], workers: int, done: set[str], logs: Path, env: dict[str, str],
              cwd: Path, poll_seconds: float = 5.0) -> tuple[set[str], set[str]]:
    """Run ``queue`` on ``workers`` processes at once, each job once its needs are in ``done``.

    Returns (done, failed): a job that exits non-zero fails, and so does every job that needs it.
    """
    done, failed = set(done), set[str]()
    waiting = [job for job in queue if job.name not in done]
    running: dict[str, subprocess.Popen[bytes]] = {}
    while waiting or running:
        for name, process in list(running.items()):
            if process.poll() is not None:
                del running[name]
                (done if process.returncode == 0 else failed).add(name)
                _say(f"{name}: exit {process.returncode}")
        for job in [job for job in waiting if any(need in failed for need in job.needs)]:
            waiting.remove(job)
            failed.add(job.name)
            _say(f"{job.name}: skipped, {', '.join(job.needs)} did not all finish")
        ready = [job for job in waiting if all(need in done for need in job.needs)]
        while ready and len(running) < workers:
            job = ready.pop(0)
            waiting.remove(job)
            threads = workers if not running and not ready else 1  # alone until it ends: every core
            with open(logs / f"{job.name}.log", "a") as log:
                log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(job.command)} "
                          f"({threads} thread(s))\n")
                log.flush()
                running[job.name] = subprocess.Popen(job.command, cwd=cwd, env=with_threads(env, threads),
                                                     stdout=log, stderr=subprocess.STDOUT)
            _say(f"{job.name}: started, {threads} thread(s)")
        if not running and waiting:
            print(f"queue: {', '.join(job.name for job in waiting)} wait on jobs that are not queued", flush=True)
            failed.update(job.name for job in waiting)
            break
        if running:
            time.sleep(poll_seconds)
    return done, failed


def select(queue: list[Job], only: Sequence[str] | None) -> list[Job]:
    """The jobs named in ``only`` (all of them when it is empty), in queue order."""
    if not only:
        return queue
    unknown = set(only) - {job.name for job in queue}
    if unknown:
        raise ParamsError(f"unknown job(s) {', '.join(sorted(unknown))}; `effgen jobs queue --list` lists them")
    return [job for job in queue if job.name in only]


def run_paper_queue(workers: int, only: Sequence[str] | None = None) -> set[str]:
    """Run the paper profile's jobs (those named in ``only``) on ``workers`` processes; logs go to
    ``runs/paper/queue/<job>.log``. Returns the jobs that failed."""
    if workers < 1:
        raise ParamsError(f"--workers must be at least 1, got {workers}")
    root = project_root()
    queue = select(paper_jobs(), only)
    frozen = frozen_chapters(root)
    already = {job.name for job in queue if job.chapter in frozen}
    logs = runs_dir(PROFILE) / "queue"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EFFGEN_PROGRESS": "0"}  # threads are set per job (run_queue)
    print(f"queue: {len(queue) - len(already)} job(s) to do, {len(already)} done already; {workers} "
          f"worker(s); logs in {logs.relative_to(root)}", flush=True)
    done, failed = run_queue(queue, workers, already, logs, env, root)
    print(f"queue: done {sorted(done)}; failed {sorted(failed) or 'none'}", flush=True)
    return failed
