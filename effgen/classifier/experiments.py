"""Experiments as the chapters run them: train (or reuse) a run, score it on test once, sweep seeds.

A run lives in its own folder: the training checkpoint and history (``weights.pt`` once finished),
plus ``test.json`` and ``test_predictions.npy`` written the first time the finished model meets the
test split. Re-running a chapter therefore reuses every finished run and touches the test split once.

``run_seeds`` and ``pick_lr`` keep their runs in the run store (``effgen.paths.store_for``): one
folder per content key, ``store/classifier/seed<seed>-<key>``, where the key hashes the
configuration and the training and validation data. A run that several chapters need (chapter 02's
tuned model is chapter 01's SE + IR Swish model and chapter 06's paper model) is trained once, and
reused, or resumed from its last checkpoint, wherever it is asked for again.
"""
from __future__ import annotations

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

from effgen import stats
from effgen.budget import BudgetReport
from effgen.checkpoints import atomic_write, config_key
from effgen.classifier.config import ClassifierConfig
from effgen.classifier.loop import data_fingerprint, evaluate, train_classifier
from effgen.paths import store_for, use_store_entry

STORE_KIND = "classifier"  # runs/<profile>/store/classifier/<entry>/
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
    label: str = ""  # what the chapter calls the run ("tuned"); the store names it by content, not by this

    @property
    def test_acc(self) -> float:
        """Test accuracy over all samples, in percent."""
        return 100.0 * self.test["accuracy"]

    @property
    def flag(self) -> str:
        """A dagger on every run that exceeds the paper's limits, as measured when it was built.

        Only the measured budget decides: a config may carry an ``over_budget_reason`` and still
        fit the limits (the quick profile's "20,000 steps" run takes 400), and then it is no outlier.
        """
        return self.budget.flag


def run_classifier(config: ClassifierConfig, data: Splits, device: torch.device, out_dir: Path,
                   label: str = "", wait: bool = False) -> ClassifierRun:
    """Train (resume, or reuse) in ``out_dir``; score the test split once. ``wait``: see ``train_classifier``."""
    out_dir = Path(out_dir)
    result = train_classifier(config, data.train, data.valid, device, out_dir, wait=wait)
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
        atomic_write(out_dir / PREDICTIONS_FILE, lambda tmp: _save_array(tmp, predictions))
        text = json.dumps({**scores, "data_fingerprint": fingerprint}, indent=2)
        atomic_write(out_dir / TEST_FILE, lambda tmp: tmp.write_text(text))
    scores, predictions = cached
    return ClassifierRun(config=config, history=result.history, budget=result.budget, test=scores,
                         predictions=predictions, out_dir=out_dir, label=label)


def run_seeds(config: ClassifierConfig, seeds: Iterable[int], data: Splits, device: torch.device,
              root: Path, name: str) -> list[ClassifierRun]:
    """The same configuration once per seed, each in the run store of ``root`` (``run_folder``).

    ``root`` is the chapter's run folder; ``name`` labels the runs for the chapter (``ClassifierRun.label``).
    The key hashes the configuration and the training data, so a chapter re-run with changed
    parameters or data trains new runs beside the old ones, and a re-run with the same ones, or
    another chapter asking for the same run, reuses them.
    """
    runs = []
    for seed in seeds:
        seeded = config.replace(seed=seed)
        runs.append(run_classifier(seeded, data, device, _use(seeded, data, root), label=name, wait=True))
    return runs


def run_folder(config: ClassifierConfig, data: Splits, root: Path) -> Path:
    """Where ``run_seeds`` keeps the run of ``config`` (its seed included): ``<store>/classifier/seed<N>-<key>``."""
    return store_for(root) / STORE_KIND / _entry_name(config, data)


def _entry_name(config: ClassifierConfig, data: Splits) -> str:
    return f"seed{config.seed}-{run_key(config, data)}"


def _use(config: ClassifierConfig, data: Splits, root: Path) -> Path:
    """``run_folder``, noted as used by this process (the book records what each chapter ran)."""
    return use_store_entry(store_for(root), STORE_KIND, _entry_name(config, data))


@dataclass
class LrPick:
    """A learning rate picked on validation data from a fixed grid (``pick_lr``)."""

    lr: float
    factor: float  # lr / the base configuration's lr
    table: pd.DataFrame  # one row per (factor, seed): factor, lr, seed, val_acc (percent, final epoch)

    def scores(self) -> pd.Series:
        """Mean final validation accuracy (%) per learning rate."""
        return self.table.groupby("lr")["val_acc"].mean()


def pick_lr(config: ClassifierConfig, factors: Iterable[float], seeds: Iterable[int], data: Splits,
            device: torch.device, root: Path, name: str) -> LrPick:
    """Train ``config`` at ``lr x factor`` for each factor and seed; keep the best mean validation score.

    Only the training and validation splits are used, so the test split cannot steer the pick.
    Runs go to the store entries ``run_seeds`` uses, so a later ``run_seeds`` at the picked learning
    rate reuses them (and only then scores them on test). Ties go to the factor nearest 1, the
    base learning rate, then to the smaller one. Every configuration given the same factors and
    seeds gets the same budget: len(factors) x len(seeds) runs of ``config.steps`` steps.
    ``root`` and ``name`` are ``run_seeds``'s (the store does not use the label).
    """
    factors, seeds = [float(f) for f in factors], [int(s) for s in seeds]
    if not factors or not seeds or any(f <= 0 for f in factors):
        raise ValueError(f"need positive learning-rate factors and at least one seed, got {factors} and {seeds}")
    rows = []
    for factor in factors:
        for seed in seeds:
            run = config.replace(lr=config.lr * factor, seed=seed)
            result = train_classifier(run, data.train, data.valid, device, _use(run, data, root), wait=True)
            rows.append({"factor": factor, "lr": run.lr, "seed": seed, "val_acc": 100.0 * result.final_val_acc})
    table = pd.DataFrame(rows)
    means = table.groupby("factor")["val_acc"].mean()
    best = min(means.index, key=lambda f: (-means[f], abs(np.log(f)), f))
    return LrPick(lr=config.lr * best, factor=float(best), table=table)


def run_key(config: ClassifierConfig, data: Splits) -> str:
    """Eight hex digits identifying (configuration, training and validation data)."""
    return config_key(config.to_dict(), data_fingerprint(*data.train, *data.valid))


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


def claim_verdict(summaries: dict[str, dict[str, Any]], champion: str, level: float = stats.LEVEL) -> dict[str, Any]:
    """Does ``champion`` beat every rival, beyond seed noise?

    ``summaries`` maps a setting to its ``seed_summary``. The champion is tested against each
    rival with ``stats.compare_seeds``: a paired t-test when both ran the same seeds, else
    Welch's. The verdict is

    - "yes" when every rival is behind at p < alpha (alpha = 1 - ``level``): an
      intersection-union test, which needs no correction for the number of rivals;
    - "no" when some rival is ahead at p < alpha / (number of rivals) (Bonferroni, since any
      one of several rivals could trigger it);
    - "cannot tell" when some comparison could not be tested (one seed, or no spread), and no
      rival is significantly ahead;
    - "within noise" otherwise.

    Returns the verdict, the comparisons by rival (``stats.Comparison``), the closest rival
    (highest mean) as ``runner_up`` with its ``comparison`` and ``gap``, and the best setting.
    """
    rivals = {name: s for name, s in summaries.items() if name != champion}
    if champion not in summaries or not rivals:
        raise ValueError(f"need {champion!r} and at least one rival among {sorted(summaries)}")
    mine = summaries[champion]
    comparisons = {name: stats.compare_seeds(mine["per_seed"], theirs["per_seed"], level)
                   for name, theirs in rivals.items()}
    alpha = round(1.0 - level, 12)
    bonferroni = alpha / len(rivals)
    if any(c.tested and c.diff < 0 and c.p < bonferroni for c in comparisons.values()):  # type: ignore[operator]
        verdict = stats.BEHIND
    elif all(c.verdict == stats.AHEAD for c in comparisons.values()):
        verdict = stats.AHEAD
    elif any(not c.tested for c in comparisons.values()):
        verdict = stats.CANNOT
    else:
        verdict = stats.WITHIN
    runner_up = max(rivals, key=lambda name: rivals[name]["mean"])
    best = max(summaries, key=lambda name: summaries[name]["mean"])
    return {"verdict": verdict, "best": best, "runner_up": runner_up, "gap": mine["mean"] - rivals[runner_up]["mean"],
            "comparison": comparisons[runner_up], "comparisons": comparisons, "alpha": alpha,
            "bonferroni_alpha": bonferroni}


def combine_verdicts(verdicts: Iterable[str]) -> str:
    """One verdict for a claim made on several models: it holds only where it holds on each.

    "yes" only when every verdict is yes; "no" when any is no; else "cannot tell" when any could
    not be tested; else "within noise".
    """
    verdicts = list(verdicts)
    if verdicts and all(v == stats.AHEAD for v in verdicts):
        return stats.AHEAD
    if stats.BEHIND in verdicts:
        return stats.BEHIND
    return stats.CANNOT if stats.CANNOT in verdicts or not verdicts else stats.WITHIN


def confusion(labels: np.ndarray, predictions: np.ndarray, n_classes: int = 20) -> np.ndarray:
    """Counts (n_classes, n_classes): row = true class, column = predicted class."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return np.bincount(labels * n_classes + predictions, minlength=n_classes ** 2).reshape(n_classes, n_classes)


def _save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save would add ".npy" to a temporary file's name
        np.save(handle, array, allow_pickle=False)


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
