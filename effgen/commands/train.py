"""``effgen train MODEL``: the classifier and the GAN register their own sub-commands."""
from __future__ import annotations

import argparse
import importlib

TRAINERS: tuple[str, ...] = ("train_classifier", "train_gan")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model from a parameters file",
                                   description="Train one model outside the book, from a YAML parameters file.")
    models = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name in TRAINERS:
        importlib.import_module(f"effgen.commands.{name}").register(models)
