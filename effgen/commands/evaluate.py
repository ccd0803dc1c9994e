"""``effgen evaluate classifier``: score a trained run's weights on any official-format AddNIST folder."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

SPLITS = ("train", "valid", "test")


def _evaluate_classifier(args: argparse.Namespace) -> int:
    from effgen.budget import count_params
    from effgen.classifier import UnfinishedRunWarning, evaluate, load_classifier
    from effgen.data import read_addnist_folder
    from effgen.runtime import pick_device

    device = pick_device(args.device)
    with warnings.catch_warnings(record=True) as caught:  # an unfinished run: said on one stderr line
        warnings.simplefilter("always", UnfinishedRunWarning)
        model, _config = load_classifier(args.checkpoint, device)  # fails before the data is read
    for warning in caught:
        print(f"effgen: warning: {warning.message}", file=sys.stderr)
    data = read_addnist_folder(args.data)
    x, y = data.split(args.split)
    scores = evaluate(model, x, y, device)
    print(json.dumps({
        "accuracy": scores["accuracy"],
        "n": scores["n"],
        "params": count_params(model),
        "mean_batch_accuracy": scores["mean_batch_accuracy"],
        "split": args.split,
    }))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="score a trained model",
                                   description="Score a trained model on a dataset folder.")
    models = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    classifier = models.add_parser(
        "classifier", help="accuracy of a classifier checkpoint on an AddNIST folder",
        description="Print JSON {accuracy, n, params, mean_batch_accuracy, split}: accuracy over every "
                    "sample of the split, and the original notebook's mean of per-batch (64) accuracies.")
    classifier.add_argument("--checkpoint", type=Path, required=True,
                            help="weights.pt or checkpoint.pt written by `effgen train classifier`, or its run "
                                 "folder (a run-store entry under runs/PROFILE/store/classifier/ is one)")
    classifier.add_argument("--data", type=Path, required=True,
                            help="folder with train/valid/test _x.npy and _y.npy in the official AddNIST format")
    classifier.add_argument("--split", choices=SPLITS, default="test", help="split to score (default test)")
    classifier.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default auto)")
    classifier.set_defaults(func=_evaluate_classifier)
