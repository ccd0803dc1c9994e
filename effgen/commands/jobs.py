"""``effgen jobs queue | gan | fid-references | pilots``: the paper profile's long jobs, outside the notebooks.

Each job writes into the chapters' own run folders and caches (``effgen.book.jobs``), so the chapters
reuse what it made; each resumes, or is skipped when done, so the same command continues next session.
``queue`` runs them all in order, one process per job.
"""
from __future__ import annotations

import argparse
import os

from effgen.paths import check_profile


def _threads_default() -> int:
    return int(os.environ.get("OMP_NUM_THREADS", "1") or 1)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="paper", help="parameter set whose chapters the job serves (default: paper)")
    parser.add_argument("--threads", type=int, default=_threads_default(),
                        help="torch threads (default: OMP_NUM_THREADS, which `effgen jobs queue` sets, else 1)")


def _queue(args: argparse.Namespace) -> int:
    from effgen.book.jobs.queue import paper_jobs, run_paper_queue

    if args.list:
        for job in paper_jobs():
            print(f"{job.name:14s} needs {', '.join(job.needs) or '-':30s} {' '.join(job.command[3:])}")
        return 0
    return 1 if run_paper_queue(args.workers, args.only) else 0


def _gan(args: argparse.Namespace) -> int:
    from effgen.book.jobs.gan_runs import train_ahead

    train_ahead(check_profile(args.profile), args.run, args.threads)
    return 0


def _fid_references(args: argparse.Namespace) -> int:
    from effgen.book.jobs.fid_references import compute_references, reference_states

    profile = check_profile(args.profile)
    if args.check:
        dataset, states = reference_states(profile, args.all)
        for state, ref in states:
            print(f"{state:7s}  {dataset} {ref.describe()}")
        return 1 if any(state == "missing" for state, _ in states) else 0
    compute_references(profile, args.threads, args.all)
    return 0


def _pilots(args: argparse.Namespace) -> int:
    from effgen.book.jobs.pilot_runs import main

    return main(args.pilot_args)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "jobs", help="the paper profile's long jobs, run ahead of their chapters (queue, gan, fid-references, pilots)",
        description="Long jobs of the paper profile, run outside the notebooks into the chapters' own run folders "
                    "and caches, so executing a chapter afterwards reuses their results. Every job resumes, or is "
                    "skipped when done: the same command continues next session.")
    jobs = parser.add_subparsers(dest="job", metavar="JOB", required=True)

    queue = jobs.add_parser(
        "queue", help="run all of the paper profile's work in order, one process per job",
        description="Keep WORKERS processes busy with the paper profile's jobs (GAN runs, FID references, "
                    "chapters), each once the jobs it needs are done; a job alone gets every worker's thread. "
                    "Logs go to runs/paper/queue/. Stop it and `effgen snapshot --profile paper` before a "
                    "session ends. Exit 1 when a job failed.")
    queue.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes at once (default: CPUs)")
    queue.add_argument("--only", nargs="*", metavar="JOB", help="run just these jobs (names as listed by --list)")
    queue.add_argument("--list", action="store_true", help="print the jobs, what each needs, and exit")
    queue.set_defaults(func=_queue)

    gan = jobs.add_parser(
        "gan", help="train chapter 04's or 06's GAN runs into the chapter's run folder",
        description="Train one chapter's GAN runs with the configs the chapter builds from its parameters: "
                    "faithful, corrected (or corrected-augmented) for chapter 04; modern (the ablation's "
                    "full-recipe run first, then continued into the long run), ablation (the other "
                    "leave-one-out runs) or winner (the best pilot at chapter 04's budget) for chapter 06. On the CPU; a finished run reloads, an interrupted one "
                    "resumes, in-progress checkpoints are thawed from _freeze/ first.")
    gan.add_argument("run", metavar="RUN", help="faithful | corrected | corrected-augmented | modern | ablation | winner")
    _add_common(gan)
    gan.set_defaults(func=_gan)

    fid = jobs.add_parser(
        "fid-references", help="compute chapters 05 and 06's real-image FID statistics ahead of them",
        description="Compute the real-image FID statistics chapters 05 and 06 will ask for into the content-keyed "
                    "cache they read (<data>/fid-stats); a cached set costs a hash, and a set only frozen, current "
                    "chapters asked for is skipped.")
    _add_common(fid)
    fid.add_argument("--check", action="store_true", help="compute nothing; list each set, exit 1 if one is missing")
    fid.add_argument("--all", action="store_true", help="also the sets that only frozen, current chapters asked for")
    fid.set_defaults(func=_fid_references)

    pilots = jobs.add_parser(
        "pilots", add_help=False, prefix_chars="\0",
        help="score the GAN recipe pilots at a quarter of the budget, reseed the best, take the winner apart",
        description="The arguments are those of effgen.book.jobs.pilot_runs (`effgen jobs pilots --help`).")
    pilots.add_argument("pilot_args", nargs=argparse.REMAINDER, metavar="ARGS")
    pilots.set_defaults(func=_pilots)
