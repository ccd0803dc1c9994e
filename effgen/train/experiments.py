"""Experiments as the chapters run them: train (or reuse) a run, score it on test once, sweep seeds.

A run lives in its own folder: the training checkpoint and history, plus ``test.json`` and
``test_predictions.npy`` written the first time the finished model meets the test split.
Re-running a chapter therefore reuses every finished run and touches the test split once.
"""
from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..budget import BudgetReport
from .config import ClassifierConfig
from .loop import data_fingerprint, evaluate, train_classifier

TEST_FILE = "test.json"
PREDICTIONS_FILE = "test_predictions.npy"


class Splits(Protocol):
    train: tuple[Tensor, Tensor]
    valid: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]


@dataclass
class ClassifierRun:
    config: ClassifierConfig
    history: pd.DataFrame
    budget: BudgetReport
    test: dict[str, Any]  # accuracy and mean_batch_accuracy (fractions), loss, n; raw_accuracy with EMA
    predictions: np.ndarray  # test-set predictions, int64 (n,)
    out_dir: Path

    @property
    def test_acc(self) -> float:
        """Test accuracy over all samples, in percent."""
        return 100.0 * self.test["accuracy"]

    @property
    def flag(self) -> str:
        """A dagger on every run that exceeds the paper's limits on purpose (it says so in its config)."""
        return "†" if self.config.over_budget_reason or self.budget.over_budget else ""


def run_classifier(config: ClassifierConfig, data: Splits, device: torch.device, out_dir: Path) -> ClassifierRun:
    """Train (resume, or reuse) in ``out_dir``, then score the test split once and cache the score."""
    out_dir = Path(out_dir)
    result = train_classifier(config, data.train, data.valid, device, out_dir)
    x_test, y_test = data.test
    fingerprint = data_fingerprint(x_test, y_test)
    cached = _read_test(out_dir, fingerprint) if result.reused else None
    if cached is None:
        scores = evaluate(result.model, x_test, y_test, device)
        predictions = scores.pop("predictions").numpy()
        if result.raw_model is not None:  # EMA on: the score above is the EMA's; keep the raw weights' too
            raw = evaluate(result.raw_model, x_test, y_test, device)
            scores.update(raw_accuracy=raw["accuracy"], raw_loss=raw["loss"])
        cached = (scores, predictions)
        # predictions first, the record last: a test.json on disk always has its predictions beside it
        tmp = out_dir / (PREDICTIONS_FILE + ".tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, predictions, allow_pickle=False)
        tmp.replace(out_dir / PREDICTIONS_FILE)
        tmp = out_dir / (TEST_FILE + ".tmp")
        tmp.write_text(json.dumps({**scores, "data_fingerprint": fingerprint}, indent=2))
        tmp.replace(out_dir / TEST_FILE)
    scores, predictions = cached
    return ClassifierRun(config=config, history=result.history, budget=result.budget, test=scores,
                         predictions=predictions, out_dir=out_dir)


def run_seeds(config: ClassifierConfig, seeds: Iterable[int], data: Splits, device: torch.device,
              root: Path, name: str) -> list[ClassifierRun]:
    """The same configuration once per seed, each in ``root/<name>-seed<seed>-<key>``.

    ``key`` hashes the configuration and the training data, so a chapter re-run with changed
    parameters or data trains new runs beside the old ones instead of tripping over them,
    and a re-run with the same ones reuses them.
    """
    runs = []
    for seed in seeds:
        seeded = config.replace(seed=seed)
        folder = Path(root) / f"{name}-seed{seed}-{run_key(seeded, data)}"
        runs.append(run_classifier(seeded, data, device, folder))
    return runs


def run_key(config: ClassifierConfig, data: Splits) -> str:
    """Eight hex digits identifying (configuration, training and validation data)."""
    text = json.dumps(config.to_dict(), sort_keys=True) + data_fingerprint(*data.train, *data.valid)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def seed_summary(runs: list[ClassifierRun]) -> dict[str, Any]:
    """Test accuracy (percent) over seeds: mean, sample std, min, max, n and the value per seed."""
    accs = [run.test_acc for run in runs]
    return {
        "mean": statistics.fmean(accs),
        "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "min": min(accs),
        "max": max(accs),
        "n": len(accs),
        "per_seed": {int(run.config.seed): acc for run, acc in zip(runs, accs)},
        "mean_batch_accuracy_mean": 100.0 * statistics.fmean(r.test["mean_batch_accuracy"] for r in runs),
    }


def histories(runs: list[ClassifierRun], **labels: Any) -> pd.DataFrame:
    """All runs' histories stacked, with a ``seed`` column and any constant label columns."""
    frames = [run.history.assign(seed=run.config.seed, **labels) for run in runs]
    return pd.concat(frames, ignore_index=True)


def claim_verdict(summaries: dict[str, dict[str, Any]], champion: str, z: float = 2.0) -> dict[str, Any]:
    """Does ``champion`` beat every rival, beyond seed noise?

    ``summaries`` maps a setting to its ``seed_summary``. The champion is compared with the
    best rival: the gap in mean accuracy against ``z`` standard errors of that difference
    (Welch's, from the seed standard deviations). Returns ``verdict`` "yes" (champion ahead
    by more than the noise), "no" (behind by more than the noise) or "within noise", with
    the numbers behind it. Fewer than two seeds on either side cannot measure noise: "within noise".
    """
    rivals = {name: s for name, s in summaries.items() if name != champion}
    if champion not in summaries or not rivals:
        raise ValueError(f"need {champion!r} and at least one rival among {sorted(summaries)}")
    mine = summaries[champion]
    runner_up, theirs = max(rivals.items(), key=lambda item: item[1]["mean"])
    gap = mine["mean"] - theirs["mean"]
    measurable = mine["n"] > 1 and theirs["n"] > 1
    noise = z * (mine["std"] ** 2 / mine["n"] + theirs["std"] ** 2 / theirs["n"]) ** 0.5 if measurable else float("nan")
    if measurable and gap > noise:
        verdict = "yes"
    elif measurable and gap < -noise:
        verdict = "no"
    else:
        verdict = "within noise"
    best = max(summaries, key=lambda name: summaries[name]["mean"])
    return {"verdict": verdict, "best": best, "runner_up": runner_up, "gap": gap, "noise": noise, "z": z}


def combine_verdicts(verdicts: Iterable[str]) -> str:
    """"yes" only when every comparison says yes, "no" when any says no, else "within noise"."""
    verdicts = list(verdicts)
    if verdicts and all(v == "yes" for v in verdicts):
        return "yes"
    return "no" if "no" in verdicts else "within noise"


def confusion(labels: np.ndarray, predictions: np.ndarray, n_classes: int = 20) -> np.ndarray:
    """Counts (n_classes, n_classes): row = true class, column = predicted class."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return np.bincount(labels * n_classes + predictions, minlength=n_classes ** 2).reshape(n_classes, n_classes)


def spread_text(summary: dict[str, Any], digits: int = 2) -> str:
    """"mean ± std" of a seed summary, for tables and prose."""
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"


def _read_test(out_dir: Path, fingerprint: str) -> tuple[dict[str, Any], np.ndarray] | None:
    test_file, predictions_file = out_dir / TEST_FILE, out_dir / PREDICTIONS_FILE
    if not (test_file.is_file() and predictions_file.is_file()):
        return None
    try:
        record = json.loads(test_file.read_text())
        predictions = np.load(predictions_file, allow_pickle=False)
    except (ValueError, OSError):
        return None  # unreadable cache: score again
    if record.pop("data_fingerprint", None) != fingerprint or len(predictions) != record.get("n"):
        return None
    return record, predictions
