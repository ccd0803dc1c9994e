"""The ``effgen`` command: one entry point whose subcommands live in this package, one module each.

Each command module exposes ``register(subparsers)``; it adds its parser and sets ``func`` to a
callable taking the parsed namespace and returning an exit code. Every ``EffgenError`` is printed as
one line and turned into its exit code. ``python -m effgen`` runs the same command.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from effgen import __version__
from effgen.errors import EffgenError

# Book order of the command groups in --help; each name is a module in effgen.commands.
COMMAND_MODULES: tuple[str, ...] = ("book", "jobs", "data", "train", "evaluate", "tune", "fid", "lpips")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="effgen",
        description="Reproduce 'Efficient Discriminative and Generative Modelling': "
                    "execute the chapters, render the book, and run the library's experiments.",
    )
    parser.add_argument("--version", action="version", version=f"effgen {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"effgen.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except EffgenError as err:
        print(f"effgen: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("effgen: interrupted; checkpoints written so far are kept", file=sys.stderr)
        return 130
