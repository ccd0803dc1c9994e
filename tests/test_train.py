"""Step-budgeted training: config validation, the budget guard, history, exact resume, evaluation."""
from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor, nn

from effgen.classifier import (
    HISTORY_COLUMNS,
    ClassifierConfig,
    confusion,
    evaluate,
    load_classifier,
    pick_lr,
    run_classifier,
    run_folder,
    run_key,
    run_seeds,
    seed_summary,
    train_classifier,
)
from effgen.classifier import config as config_module
from effgen.classifier.config import build_model
from effgen.errors import BudgetError, DataError, EffgenError, ParamsError
from effgen.runtime import flush_denormals

CPU = torch.device("cpu")
NUMERIC = [c for c in HISTORY_COLUMNS if c != "seconds"]


def separable(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Images whose class is written as brightness: a plain CNN with pooling can learn it quickly."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 20, (n,), generator=g)
    x = 0.3 * torch.randn(n, 3, 28, 28, generator=g)
    x[:, 0] += (y.float() / 19 * 3 - 1.5)[:, None, None]
    return x, y


def tiny(**changes: object) -> ClassifierConfig:
    base = {"model": "baseline", "steps": 12, "steps_per_epoch": 4, "batch_size": 16, "eval_samples": 40,
            "lr": 1e-2}
    return ClassifierConfig.from_dict({**base, **changes})


@pytest.fixture(scope="module")
def data() -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    return separable(400, 0), separable(120, 1)


# --- configuration -------------------------------------------------------------------------------

def test_defaults_are_the_papers_tuned_run() -> None:
    config = ClassifierConfig()
    assert (config.lr, config.weight_decay, config.batch_size, config.steps, config.steps_per_epoch) == (
        5.039249e-3, 1.1710477e-5, 64, 10_000, 1_000)
    assert (config.model, config.activation, config.dropout, config.epochs) == ("paper", "swish", 0.0, 10)


def test_unknown_key_names_the_key_and_the_allowed_keys() -> None:
    with pytest.raises(ParamsError, match=r"^p.yml: unknown key\(s\) learning_rate \(allowed keys: model, .*lr, "):
        ClassifierConfig.from_dict({"learning_rate": 0.1}, source="p.yml")


@pytest.mark.parametrize("key, value", [("lr", "fast"), ("steps", 1.5), ("steps", True),
                                        ("extra_block", 1), ("eval_samples", "all")])
def test_wrong_types_are_rejected_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ParamsError, match=rf"^classifier config: {key}: input should be .* \(got {value!r}\)$"):
        ClassifierConfig.from_dict({key: value})


def test_ints_are_accepted_for_floats_and_values_are_checked() -> None:
    assert ClassifierConfig.from_dict({"weight_decay": 0}).weight_decay == 0.0
    assert isinstance(ClassifierConfig(lr=1).lr, float)  # so the run key hashes 1.0, as it always did
    with pytest.raises(ParamsError, match=r"activation: input should be 'swish', 'relu' or 'softplus' \(got 'tanh'\)"):
        ClassifierConfig(activation="tanh")
    with pytest.raises(ParamsError, match="extra_block: applies to the 'paper' model only"):
        ClassifierConfig(model="baseline", extra_block=True)
    with pytest.raises(ParamsError, match=r"steps: input should be greater than or equal to 1 \(got 0\)"):
        ClassifierConfig(steps=0)


@pytest.mark.parametrize("values, problem", [
    ({"lr": float("nan")}, "lr: input should be a finite number (got nan)"),
    ({"lr": float("inf")}, "lr: input should be a finite number (got inf)"),
    ({"lr": 0.0}, "lr: input should be greater than 0 (got 0.0)"),
    ({"lr": 2.0}, "lr: input should be less than or equal to 1 (got 2.0)"),
    ({"weight_decay": float("nan")}, "weight_decay: input should be a finite number (got nan)"),
    ({"weight_decay": -1e-5}, "weight_decay: input should be greater than or equal to 0 (got -1e-05)"),
    ({"se_reduction": 3}, "se_reduction: must divide the SE channel counts 64, 128, 256 (got 3)"),
    ({"se_reduction": 128}, "se_reduction: must divide the SE channel counts 64, 128, 256 (got 128)"),
    ({"dropout": 1.0}, "dropout: input should be less than 1 (got 1.0)"),
    ({"seed": -1}, "seed: input should be greater than or equal to 0 (got -1)"),
])
def test_bad_values_are_one_line_naming_the_file_and_key(values: dict, problem: str) -> None:
    with pytest.raises(ParamsError) as err:
        ClassifierConfig.from_dict(values, source="params/paper/02-classifier.yml")
    assert str(err.value) == f"params/paper/02-classifier.yml: {problem}"


def test_every_se_reduction_the_config_accepts_builds_the_model() -> None:
    from effgen.classifier.layers import ACTIVATIONS, SqueezeExcite
    from effgen.classifier.models import SE_CHANNELS

    model = build_model(ClassifierConfig())
    assert sorted({m.reduce.in_features for m in model.modules() if isinstance(m, SqueezeExcite)}) == list(SE_CHANNELS)
    assert set(typing.get_args(config_module.Activation)) == set(ACTIVATIONS)
    for reduction in (1, 2, 8, 64):
        build_model(ClassifierConfig(se_reduction=reduction, extra_block=True, over_budget_reason="test"))


# --- budget guard --------------------------------------------------------------------------------

def test_over_budget_steps_fail_before_any_compute(tmp_path: Path, data) -> None:
    with pytest.raises(BudgetError, match="20,000 steps"):
        train_classifier(ClassifierConfig(steps=20_000), *data, CPU, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_extra_block_is_over_budget_unless_declared(tmp_path: Path, data) -> None:
    with pytest.raises(BudgetError, match="104,804 parameters"):
        train_classifier(ClassifierConfig(extra_block=True, steps=4), *data, CPU)
    config = tiny(model="paper", extra_block=True, steps=4, over_budget_reason="paper's scalability test")
    result = train_classifier(config, *data, CPU)
    assert result.budget.over_budget and result.budget.params == 104_804 and result.budget.flag == "†"


def test_bad_data_is_reported_before_training(data) -> None:
    (x, y), valid = data
    with pytest.raises(DataError, match="labels must be int64"):
        train_classifier(tiny(), (x, y.int()), valid, CPU)
    with pytest.raises(DataError, match="fewer than one batch"):
        train_classifier(tiny(batch_size=64), (x[:10], y[:10]), valid, CPU)


# --- history, checkpoints, resume ------------------------------------------------------------------

def test_history_has_one_row_per_epoch_and_the_running_mean(tmp_path: Path, data) -> None:
    result = train_classifier(tiny(steps=10), *data, CPU, tmp_path)  # 4 + 4 + 2 steps
    history = result.history
    assert list(history.columns) == list(HISTORY_COLUMNS)
    assert history["step"].tolist() == [4, 8, 10] and history["epoch"].tolist() == [1, 2, 3]
    expected = history["val_acc"].expanding().mean()
    assert history["val_acc_running_mean"].tolist() == pytest.approx(expected.tolist())
    on_disk = pd.read_csv(tmp_path / "history.csv")
    assert on_disk[NUMERIC].to_numpy() == pytest.approx(history[NUMERIC].to_numpy())
    assert (tmp_path / "config.yml").read_text().startswith("model: baseline")
    assert result.final_val_acc == history["val_acc"].iloc[-1]


def flushing() -> bool:
    """Whether CPU arithmetic treats a subnormal float as zero right now."""
    return float(torch.tensor([1e-39]) * 1.0) == 0.0


def test_flush_denormals_nests_and_restores_pytorchs_default() -> None:
    assert not flushing()
    with flush_denormals():
        with flush_denormals():
            assert flushing()
        assert flushing()  # the inner block's end leaves the outer one flushing
    assert not flushing()


def test_training_and_scoring_flush_subnormals_and_restore_the_default(data) -> None:
    seen: list[bool] = []
    result = train_classifier(tiny(steps=4), *data, CPU, on_epoch=lambda epoch, row: seen.append(flushing()))
    assert seen == [True] and not flushing()
    scoring: list[bool] = []
    handle = result.model.register_forward_hook(lambda module, inputs, output: scoring.append(flushing()))
    evaluate(result.model, *data[1], CPU)
    handle.remove()
    assert scoring and all(scoring) and not flushing()


def test_training_learns_a_separable_task(data) -> None:
    result = train_classifier(tiny(steps=150, steps_per_epoch=50, eval_samples=None), *data, CPU)
    assert result.history["val_acc"].iloc[-1] > 0.5  # chance is 0.05
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]


class Interrupt(Exception):
    pass


def test_resumed_run_ends_with_the_same_metrics_and_weights(tmp_path: Path, data) -> None:
    config = tiny(model="paper", dropout=0.3, steps=9, steps_per_epoch=3)  # dropout draws from the RNG
    straight = train_classifier(config, *data, CPU, tmp_path / "straight")

    def stop_after_first(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_classifier(config, *data, CPU, tmp_path / "resumed", on_epoch=stop_after_first)
    assert len(pd.read_csv(tmp_path / "resumed" / "history.csv")) == 1
    seen: list[int] = []
    resumed = train_classifier(config, *data, CPU, tmp_path / "resumed", on_epoch=lambda e, r: seen.append(e))
    assert seen == [2, 3]
    assert resumed.history[NUMERIC].equals(straight.history[NUMERIC])
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_same_seed_same_run_other_seed_other_run(data) -> None:
    a = train_classifier(tiny(seed=3), *data, CPU).history[NUMERIC]
    b = train_classifier(tiny(seed=3), *data, CPU).history[NUMERIC]
    c = train_classifier(tiny(seed=4), *data, CPU).history[NUMERIC]
    assert a.equals(b) and not a.equals(c)


def test_finished_run_is_reused_not_retrained(tmp_path: Path, data) -> None:
    first = train_classifier(tiny(), *data, CPU, tmp_path)
    calls: list[int] = []
    again = train_classifier(tiny(), *data, CPU, tmp_path, on_epoch=lambda e, r: calls.append(e))
    assert again.reused and not first.reused and calls == []
    assert again.history[NUMERIC].equals(first.history[NUMERIC])


def test_resume_refuses_a_different_config_or_data(tmp_path: Path, data) -> None:
    train_classifier(tiny(), *data, CPU, tmp_path)
    with pytest.raises(ParamsError, match="lr: saved 0.01, requested 0.02"):
        train_classifier(tiny(lr=0.02), *data, CPU, tmp_path)
    other = separable(400, 7)
    with pytest.raises(DataError, match="different data"):
        train_classifier(tiny(), other, data[1], CPU, tmp_path)


# --- evaluation and loading -----------------------------------------------------------------------

class Oracle(nn.Module):
    """Predicts the class written in pixel (0, 0, 0): lets a test choose every prediction."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.one_hot(x[:, 0, 0, 0].long(), 20).float()


def test_accuracy_is_over_all_samples_and_the_original_batch_mean_is_beside_it() -> None:
    y = torch.zeros(70, dtype=torch.long)
    x = torch.zeros(70, 3, 28, 28)
    x[64:, 0, 0, 0] = 5  # the last, partial batch of 6 is all wrong
    scores = evaluate(Oracle(), x, y, CPU, batch_size=32)
    assert scores["accuracy"] == pytest.approx(64 / 70)
    assert scores["mean_batch_accuracy"] == pytest.approx((1.0 + 0.0) / 2)
    assert scores["n"] == 70 and scores["predictions"].tolist() == [0] * 64 + [5] * 6


def test_load_classifier_round_trips_predictions(tmp_path: Path, data) -> None:
    result = train_classifier(tiny(model="paper"), *data, CPU, tmp_path)
    model, config = load_classifier(tmp_path / "checkpoint.pt", CPU)
    assert config == tiny(model="paper") and not model.training
    x, y = data[1]
    assert torch.equal(evaluate(model, x, y, CPU)["predictions"], evaluate(result.model, x, y, CPU)["predictions"])


def test_load_classifier_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(EffgenError, match="no such checkpoint"):
        load_classifier(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EffgenError, match="unreadable classifier checkpoint"):
        load_classifier(garbage)


@dataclass
class Splits:
    train: tuple[Tensor, Tensor]
    valid: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]


def test_run_classifier_scores_test_once_and_reuses_it(tmp_path: Path, data) -> None:
    splits = Splits(*data, separable(90, 2))
    first = run_classifier(tiny(), splits, CPU, tmp_path)
    record = json.loads((tmp_path / "test.json").read_text())
    assert record["n"] == 90 and record["accuracy"] == first.test["accuracy"]
    assert len(first.predictions) == 90 and first.flag == ""
    again = run_classifier(tiny(), splits, CPU, tmp_path)
    assert again.test == first.test and (again.predictions == first.predictions).all()


def test_dagger_follows_the_measured_budget_not_the_declared_reason(tmp_path: Path, data) -> None:
    # A small profile's "20,000 steps" run is a few hundred steps: it carries the paper's reason
    # for exceeding the limits, yet stays inside them, so it must not be marked.
    splits = Splits(*data, separable(90, 2))
    declared = run_classifier(tiny(over_budget_reason="the paper's 20,000-step test, scaled down"), splits, CPU,
                              tmp_path / "declared")
    assert not declared.budget.over_budget and declared.flag == ""
    over = run_classifier(tiny(model="paper", extra_block=True, steps=4, over_budget_reason="a fourth block"),
                          splits, CPU, tmp_path / "over")
    assert over.budget.over_budget and over.flag == "†"


def test_pick_lr_uses_validation_only_and_leaves_runs_for_run_seeds(tmp_path: Path, data) -> None:
    splits = Splits(*data, separable(90, 2))
    base = tiny(lr=1e-2)
    pick = pick_lr(base, [0.01, 1.0], [0, 1], splits, CPU, tmp_path, "plain")
    assert len(pick.table) == 4 and set(pick.table["lr"]) == {1e-4, 1e-2}
    assert pick.lr in (1e-4, 1e-2) and pick.lr == base.lr * pick.factor
    scores = pick.scores()
    assert scores[pick.lr] == scores.max()
    # The pick never scored the test split; run_seeds at the picked lr reuses the trained runs.
    folders = [run_folder(base.replace(lr=pick.lr, seed=s), splits, tmp_path) for s in (0, 1)]
    assert all((f / "checkpoint.pt").is_file() and not (f / "test.json").exists() for f in folders)
    runs = run_seeds(base.replace(lr=pick.lr), [0, 1], splits, CPU, tmp_path, "plain")
    assert [r.out_dir for r in runs] == folders and all((f / "test.json").is_file() for f in folders)


def test_pick_lr_breaks_ties_towards_the_base_lr(tmp_path: Path, data) -> None:
    # A budget too small to learn anything: every lr scores the same, so the base one is kept.
    splits = Splits(*data, separable(90, 2))
    flat = tiny(steps=1, steps_per_epoch=1, lr=1e-9)
    pick = pick_lr(flat, [4.0, 1.0, 0.25], [0], splits, CPU, tmp_path, "flat")
    assert pick.table["val_acc"].nunique() == 1 and pick.factor == 1.0


def test_seed_summary_in_percent(tmp_path: Path, data) -> None:
    splits = Splits(*data, separable(90, 2))
    runs = [run_classifier(tiny(seed=s), splits, CPU, tmp_path / str(s)) for s in (0, 1)]
    summary = seed_summary(runs)
    accs = [100 * r.test["accuracy"] for r in runs]
    assert summary["n"] == 2 and summary["mean"] == pytest.approx(sum(accs) / 2)
    assert summary["min"] == min(accs) and summary["per_seed"] == {0: accs[0], 1: accs[1]}


# --- chapter helpers -------------------------------------------------------------------------------

def test_confusion_counts_true_rows_and_predicted_columns() -> None:
    matrix = confusion(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), n_classes=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_run_seeds_keys_folders_by_config_and_data(tmp_path: Path, data) -> None:
    splits = Splits(*data, separable(90, 2))
    first = run_seeds(tiny(), [0], splits, CPU, tmp_path, "demo")
    assert first[0].out_dir == tmp_path / "store" / "classifier" / f"seed0-{run_key(tiny(seed=0), splits)}"
    assert first[0].label == "demo"
    changed = run_seeds(tiny(lr=0.02), [0], splits, CPU, tmp_path, "demo")  # no clash with the old run
    assert changed[0].out_dir != first[0].out_dir
    again = run_seeds(tiny(), [0], splits, CPU, tmp_path, "demo")
    assert again[0].test == first[0].test
    assert run_key(tiny(), Splits(separable(400, 9), data[1], data[1])) != run_key(tiny(), splits)


def test_progress_accepts_disable_when_bars_are_off(monkeypatch):
    from effgen.runtime import progress

    monkeypatch.setenv("EFFGEN_PROGRESS", "0")
    bar = progress(total=3, disable=True)  # a caller's own disable must not clash with the batch-run one
    bar.update(1)
    bar.close()
    assert bar.disable
