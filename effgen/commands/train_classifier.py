"""``effgen train classifier --params FILE --out DIR``: one classifier run outside the book.

The parameters file is a YAML mapping of ``ClassifierConfig`` keys (any subset; the rest keep
the paper's tuned defaults). The run checkpoints every epoch into ``--out`` and resumes from
there when restarted with the same file; a finished run is reused. At the end the test split
is scored once and a JSON summary is printed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from effgen.checkpoints import read_yaml


def _train(args: argparse.Namespace) -> int:
    from effgen.classifier import ClassifierConfig, budget_of, run_classifier
    from effgen.data import load_addnist, read_addnist_folder
    from effgen.runtime import describe, pick_device

    config = ClassifierConfig.from_dict(read_yaml(args.params, "parameters file"), source=str(args.params))
    budget_of(config)  # over the paper's limits: fail before the data is loaded
    device = pick_device(args.device)
    data = read_addnist_folder(args.data) if args.data else load_addnist(args.addnist_source)
    run = run_classifier(config, data, device, args.out)
    summary = {
        "out": str(args.out),
        "data": data.provenance.get("dataset"),
        "stand_in": bool(data.provenance.get("stand_in")),
        "device": describe(device),
        "params": run.budget.params,
        "steps": run.budget.steps,
        "over_budget": run.budget.over_budget,
        "final_train_acc": float(run.history["train_acc"].iloc[-1]),
        "final_val_acc": float(run.history["val_acc"].iloc[-1]),
        "test_accuracy": run.test["accuracy"],
        "test_mean_batch_accuracy": run.test["mean_batch_accuracy"],
        "test_n": run.test["n"],
    }
    if "raw_accuracy" in run.test:  # EMA on: test_accuracy is the averaged weights', this the raw ones'
        summary["test_accuracy_raw"] = run.test["raw_accuracy"]
    print(json.dumps(summary, indent=2))
    return 0


def register(models: argparse._SubParsersAction) -> None:
    parser = models.add_parser(
        "classifier", help="train the AddNIST classifier",
        description="Train an AddNIST classifier from a YAML file of ClassifierConfig keys: model: paper "
                    "(SE + inverted residual), baseline (plain CNN), digitsum (shared digit CNN + sum head) or "
                    "digitconcat (shared digit CNN + learned head); checkpoints every epoch and resumes from --out.")
    parser.add_argument("--params", type=Path, required=True, help="YAML file of ClassifierConfig keys")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint.pt, history.csv, test.json")
    parser.add_argument("--data", type=Path, default=None,
                        help="an AddNIST folder in the official format (default: load by --addnist-source)")
    parser.add_argument("--addnist-source", default="auto",
                        help="auto | official | mnist | mnist-5k (when --data is not given; default auto)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default auto)")
    parser.set_defaults(func=_train)
