"""``effgen run | render | report | snapshot``: execute what is not frozen, render the book, keep long runs.

Chapters are frozen (``effgen.book.freeze``): ``run`` executes only chapters whose fingerprint changed
(or all with ``--force``), and ``render`` uses every chapter's frozen notebook.
"""
from __future__ import annotations

import argparse
import errno
import time
from pathlib import Path

from effgen.errors import EffgenError, ParamsError
from effgen.paths import PROFILES, check_profile, project_root

FORMATS = ("html", "pdf")


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick",
                        help=f"parameter set: a folder name under params/ ({', '.join(PROFILES)}; default: quick)")


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

    check_profile(args.profile)
    root = project_root()
    if args.status:
        plan(root, args.profile, args.chapters)  # the same checks as a run: unknown profile, bad params
        statuses = status(root, args.profile, args.chapters)
        print(format_status(root, args.profile, statuses))
        return FreezeDamaged.exit_code if any(s.state == "damaged" for s in statuses) else 0
    run_book(root, args.profile, args.chapters, force=args.force, execute_missing=args.execute_missing)
    return 0


def _render(args: argparse.Namespace) -> int:
    check_profile(args.profile)
    root = project_root()
    formats = _formats(args.to)
    try:
        return _render_into(root, args.profile, formats, args.engine)
    except OSError as err:
        raise _unwritable(err, args.profile) from None


def _unwritable(err: OSError, profile: str) -> EffgenError:
    """An OS error while rendering as one line: which file, what went wrong, and the likely why."""
    where = f" {err.filename}:" if err.filename else ""
    hint = (f"; the book is rendered into {Path('_build') / profile}/, so the checkout must be writable"
            if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else "")
    return EffgenError(f"render failed:{where} {err.strerror or err}{hint}")


def _render_into(root: Path, profile: str, formats: list[str], engine: str) -> int:
    from effgen.book.freeze import (
        PROSE,
        mark_stale_in_build,
        place_frozen_notebooks,
        place_new_prose,
        refuse_damaged,
        status,
    )
    from effgen.book.render import render_book

    build = root / "_build" / profile
    start = time.perf_counter()
    statuses = status(root, profile)
    refuse_damaged(statuses)
    placed = place_frozen_notebooks(root, profile)
    if placed:
        # New prose renders at once, between the frozen outputs; `effgen run` or `report` re-freezes it.
        place_new_prose(root, profile, [s for s in statuses if s.reasons == [PROSE]])
        mark_stale_in_build(root, profile, statuses)
        stale = [s.name + (" (prose)" if s.reasons == [PROSE] else "") for s in statuses if s.state == "stale"]
        missing = [s.name for s in statuses if s.state == "missing"]
        print(f"rendering {len(placed)} frozen chapter(s) of profile {profile}"
              + (f"; stale: {', '.join(stale)}" if stale else "")
              + (f"; not frozen: {', '.join(missing)}" if missing else ""))
    outputs = render_book(root, executed_dir=build, out_dir=build / "book", formats=formats, engine=engine)
    for fmt, path in outputs.items():
        print(f"{fmt}: {path.relative_to(root) if path.is_relative_to(root) else path}")
    print(f"rendered in {time.perf_counter() - start:.1f} s")
    return 0


def _report(args: argparse.Namespace) -> int:
    from effgen.book.freeze import COMMITTED_PROFILES, run_book

    check_profile(args.profile)
    root = project_root()
    _formats(args.to)
    if args.profile in COMMITTED_PROFILES and not (args.force or args.execute_missing or args.execute_stale):
        # The published book: a reader's `make report` renders it and never starts hours of training.
        print(f"profile {args.profile}: rendering the frozen book; nothing is executed (stale chapters show their "
              f"frozen execution, marked as such; --execute-stale or `effgen run --profile {args.profile}` "
              "recomputes them)")
    else:
        run_book(root, args.profile, (), force=args.force, execute_missing=args.execute_missing)
    return _render(args)


def _snapshot(args: argparse.Namespace) -> int:
    from effgen.book.freeze import refuse_damaged, snapshot, status
    from effgen.book.runner import plan

    check_profile(args.profile)
    root = project_root()
    plan(root, args.profile, args.chapters)
    if args.retire:
        from effgen.book.freeze import retire_snapshot

        if args.chapters or args.adopt_legacy_runs:
            raise ParamsError("--retire takes no chapters and no --adopt-legacy-runs: it acts on the whole profile")
        retire_snapshot(root, args.profile)
        return 0
    if args.adopt_legacy_runs:
        from effgen.book.freeze.migrate import adopt_legacy_runs

        refuse_damaged(status(root, args.profile))
        adopt_legacy_runs(root, args.profile)
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
                    "executed. For the committed paper profile nothing is executed unless asked "
                    "(--execute-stale, --execute-missing, --force): it renders the published book.")
    _add_profile(report)
    _add_freeze_options(report)
    report.add_argument("--execute-stale", action="store_true",
                        help="for the paper profile: also re-execute stale chapters (by default the committed "
                             "book is rendered as frozen, and nothing is executed)")
    report.add_argument("--to", default="html,pdf", help="formats: html, pdf or html,pdf (default)")
    report.add_argument("--engine", choices=("auto", "quarto", "offline"), default="auto")
    report.set_defaults(func=_report)

    snap = subparsers.add_parser(
        "snapshot", help="save the resumable state of unfinished chapters into _freeze/PROFILE/",
        description="Copy the small artifacts and in-progress checkpoints of every chapter that is not "
                    "frozen and current from runs/PROFILE/ into _freeze/PROFILE/<chapter>/runs/, and every "
                    "entry of the run store (runs/PROFILE/store/) into _freeze/PROFILE/store/. Commit "
                    "_freeze/paper/ at the end of a session; the next `effgen run` thaws it and resumes.")
    snap.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapters (default: all)")
    _add_profile(snap)
    snap.add_argument("--adopt-legacy-runs", action="store_true",
                      help="first move the classifier runs kept per chapter before the run store "
                           "(<label>-seed<N>-<key>, live and frozen) into runs/PROFILE/store/, once")
    snap.add_argument("--retire", action="store_true",
                      help="once every chapter is frozen and current: drop the snapshot, and the frozen "
                           "run-store entries no chapter lists (runs/ keeps them)")
    snap.set_defaults(func=_snapshot)
