"""``effgen run | render | report | snapshot``: execute what is not frozen, render the book, keep long runs.

Chapters are frozen (``effgen.book.freeze``): ``run`` executes only chapters whose fingerprint changed
(or all with ``--force``), and ``render`` uses every chapter's frozen notebook.
"""
from __future__ import annotations

import argparse
import time

from effgen.errors import ParamsError
from effgen.paths import PROFILES, project_root

FORMATS = ("html", "pdf")


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick",
                        help=f"parameter set under params/ ({', '.join(PROFILES)}; default: quick)")


def _add_freeze_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="execute the selected chapters even when they are frozen and current")
    parser.add_argument("--execute-missing", action="store_true",
                        help="also execute chapters of the paper profile that were never frozen (hours of "
                             "compute); without it they are listed and rendered unexecuted")


def _formats(text: str) -> list[str]:
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ParamsError(f"--to takes a comma-separated subset of {', '.join(FORMATS)}, got {text!r}")
    return formats


def _run(args: argparse.Namespace) -> int:
    from effgen.book.freeze import FreezeDamaged, format_status, run_book, status
    from effgen.book.runner import plan

    root = project_root()
    if args.status:
        plan(root, args.profile, args.chapters)  # the same checks as a run: unknown profile, bad params
        statuses = status(root, args.profile, args.chapters)
        print(format_status(root, args.profile, statuses))
        return FreezeDamaged.exit_code if any(s.state == "damaged" for s in statuses) else 0
    run_book(root, args.profile, args.chapters, force=args.force, execute_missing=args.execute_missing)
    return 0


def _render(args: argparse.Namespace) -> int:
    from effgen.book.freeze import (
        PROSE,
        place_frozen_notebooks,
        place_new_prose,
        refuse_damaged,
        status,
    )
    from effgen.book.render import render_book

    root = project_root()
    formats = _formats(args.to)
    build = root / "_build" / args.profile
    start = time.perf_counter()
    statuses = status(root, args.profile)
    refuse_damaged(statuses)
    placed = place_frozen_notebooks(root, args.profile)
    if placed:
        # New prose renders at once, between the frozen outputs; `effgen run` or `report` re-freezes it.
        place_new_prose(root, args.profile, [s for s in statuses if s.reasons == [PROSE]])
        stale = [s.name + (" (prose)" if s.reasons == [PROSE] else "") for s in statuses if s.state == "stale"]
        missing = [s.name for s in statuses if s.state == "missing"]
        print(f"rendering {len(placed)} frozen chapter(s) of profile {args.profile}"
              + (f"; stale: {', '.join(stale)}" if stale else "")
              + (f"; not frozen: {', '.join(missing)}" if missing else ""))
    outputs = render_book(root, executed_dir=build, out_dir=build / "book", formats=formats, engine=args.engine)
    for fmt, path in outputs.items():
        print(f"{fmt}: {path.relative_to(root) if path.is_relative_to(root) else path}")
    print(f"rendered in {time.perf_counter() - start:.1f} s")
    return 0


def _report(args: argparse.Namespace) -> int:
    from effgen.book.freeze import run_book

    root = project_root()
    _formats(args.to)
    run_book(root, args.profile, (), force=args.force, execute_missing=args.execute_missing)
    return _render(args)


def _snapshot(args: argparse.Namespace) -> int:
    from effgen.book.freeze import snapshot
    from effgen.book.runner import plan

    root = project_root()
    plan(root, args.profile, args.chapters)
    snapshot(root, args.profile, args.chapters)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run", help="execute the chapters that are not frozen into _build/PROFILE/",
        description="Execute chapters in book order with their params/PROFILE/<chapter>.yml. All parameter "
                    "files are validated first; nothing runs if one is wrong. A chapter frozen under "
                    "_freeze/PROFILE/ with an unchanged fingerprint (notebook, params file, the effgen modules "
                    "it ran, RESULTS_VERSION) is not executed; its frozen notebook is used instead.")
    run.add_argument("chapters", nargs="*", metavar="CHAPTER",
                     help="chapters to run, e.g. 02, classifier or 02-classifier (default: all)")
    _add_profile(run)
    _add_freeze_options(run)
    run.add_argument("--status", action="store_true",
                     help="list each chapter as frozen, stale (and why) or missing; execute nothing")
    run.set_defaults(func=_run)

    render = subparsers.add_parser(
        "render", help="render the frozen or executed notebooks into _build/PROFILE/book/",
        description="Render the book with Quarto when it is on PATH, else with the offline "
                    "pandoc + Typst renderer. Frozen chapters (_freeze/PROFILE/) are rendered from their "
                    "frozen notebooks; nothing is executed.")
    _add_profile(render)
    render.add_argument("--to", default="html,pdf", help="formats: html, pdf or html,pdf (default)")
    render.add_argument("--engine", choices=("auto", "quarto", "offline"), default="auto",
                        help="auto uses Quarto if installed, else the offline renderer")
    render.set_defaults(func=_render)

    report = subparsers.add_parser(
        "report", help="run what is not frozen, then render the book",
        description="effgen run --profile P, then effgen render --profile P. Frozen chapters are not "
                    "executed; for the paper profile, chapters never frozen need --execute-missing.")
    _add_profile(report)
    _add_freeze_options(report)
    report.add_argument("--to", default="html,pdf", help="formats: html, pdf or html,pdf (default)")
    report.add_argument("--engine", choices=("auto", "quarto", "offline"), default="auto")
    report.set_defaults(func=_report)

    snap = subparsers.add_parser(
        "snapshot", help="save the resumable state of unfinished chapters into _freeze/PROFILE/",
        description="Copy the small artifacts and in-progress checkpoints of every chapter that is not "
                    "frozen and current from runs/PROFILE/ into _freeze/PROFILE/<chapter>/runs/. Commit "
                    "_freeze/paper/ at the end of a session; the next `effgen run` thaws it and resumes.")
    snap.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapters (default: all)")
    _add_profile(snap)
    snap.set_defaults(func=_snapshot)
