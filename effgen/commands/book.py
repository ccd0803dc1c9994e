"""``effgen run | render | report``: execute chapters with papermill, then render the book."""
from __future__ import annotations

import argparse
import time

from ..errors import ParamsError
from ..paths import PROFILES, project_root

FORMATS = ("html", "pdf")


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick",
                        help=f"parameter set under params/ ({', '.join(PROFILES)}; default: quick)")


def _formats(text: str) -> list[str]:
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ParamsError(f"--to takes a comma-separated subset of {', '.join(FORMATS)}, got {text!r}")
    return formats


def _run(args: argparse.Namespace) -> int:
    from ..runner import execute, plan

    root = project_root()
    jobs = plan(root, args.profile, args.chapters)  # validates everything before executing anything
    execute(jobs, root)
    return 0


def _render(args: argparse.Namespace) -> int:
    from ..render import render_book

    root = project_root()
    formats = _formats(args.to)
    build = root / "_build" / args.profile
    start = time.perf_counter()
    outputs = render_book(root, executed_dir=build, out_dir=build / "book", formats=formats, engine=args.engine)
    for fmt, path in outputs.items():
        print(f"{fmt}: {path.relative_to(root) if path.is_relative_to(root) else path}")
    print(f"rendered in {time.perf_counter() - start:.1f} s")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..runner import execute, plan

    root = project_root()
    _formats(args.to)
    jobs = plan(root, args.profile, ())
    execute(jobs, root)
    return _render(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run", help="execute chapters with papermill into _build/PROFILE/",
        description="Execute chapters in book order with their params/PROFILE/<chapter>.yml. "
                    "All parameter files are validated first; nothing runs if one is wrong.")
    run.add_argument("chapters", nargs="*", metavar="CHAPTER",
                     help="chapters to run, e.g. 02, classifier or 02-classifier (default: all)")
    _add_profile(run)
    run.set_defaults(func=_run)

    render = subparsers.add_parser(
        "render", help="render the executed notebooks into _build/PROFILE/book/",
        description="Render the book with Quarto when it is on PATH, else with the offline "
                    "pandoc + Typst renderer.")
    _add_profile(render)
    render.add_argument("--to", default="html,pdf", help="formats: html, pdf or html,pdf (default)")
    render.add_argument("--engine", choices=("auto", "quarto", "offline"), default="auto",
                        help="auto uses Quarto if installed, else the offline renderer")
    render.set_defaults(func=_render)

    report = subparsers.add_parser("report", help="run every chapter, then render the book",
                                   description="effgen run --profile P, then effgen render --profile P.")
    _add_profile(report)
    report.add_argument("--to", default="html,pdf", help="formats: html, pdf or html,pdf (default)")
    report.add_argument("--engine", choices=("auto", "quarto", "offline"), default="auto")
    report.set_defaults(func=_report)
