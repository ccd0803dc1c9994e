"""The digit-sum classifier (chapter 06): the sum head, weight tying, the budget, the recipe switches, EMA."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from effgen.budget import CLASSIFIER_LIMITS
from effgen.classifier import (
    CHECKPOINT_FILE,
    ClassifierConfig,
    budget_of,
    load_classifier,
    run_classifier,
    run_key,
    train_classifier,
)
from effgen.classifier.digitsum import (
    DigitConcatClassifier,
    DigitSumClassifier,
    digit_accuracy,
    digit_predictions,
    sum_log_probs,
)
from effgen.classifier.recipe import BACKGROUND, WeightEMA, augment_batch, lr_at
from effgen.commands import main
from effgen.errors import ParamsError
from effgen.tuning.classifier import config_tag

CPU = torch.device("cpu")


def digits_images(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """AddNIST-shaped noise with sum labels 0..19 (nothing here needs to be learnable)."""
    g = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(n, 3, 28, 28, generator=g), torch.randint(0, 20, (n,), generator=g)


class Splits:
    def __init__(self) -> None:
        self.train, self.valid, self.test = digits_images(96, 0), digits_images(32, 1), digits_images(32, 2)


def tiny(**changes: object) -> ClassifierConfig:
    base = {"model": "digitsum", "steps": 6, "steps_per_epoch": 3, "batch_size": 16, "lr": 3e-3}
    return ClassifierConfig.from_dict({**base, **changes})


# --- the budget ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["digitsum", "digitconcat"])
def test_both_variants_fit_the_papers_parameter_budget(model: str) -> None:
    report = budget_of(ClassifierConfig(model=model))  # raises BudgetError when over
    assert 0 < report.params < CLASSIFIER_LIMITS.max_params and not report.over_budget
    assert report.steps == CLASSIFIER_LIMITS.max_steps


def test_the_sum_head_has_no_parameters() -> None:
    net = DigitSumClassifier()
    assert sum(p.numel() for p in net.parameters()) == (sum(p.numel() for p in net.digits.parameters())
                                                       + sum(p.numel() for p in net.classify.parameters()))
    assert sum(p.numel() for p in DigitConcatClassifier().head.parameters()) > 0


# --- the sum head ----------------------------------------------------------------------------------

def test_sum_head_output_is_a_normalised_distribution_over_the_20_sums() -> None:
    logits = 4 * torch.randn(64, 3, 10, dtype=torch.float64)
    out = sum_log_probs(torch.log_softmax(logits, -1))
    assert out.shape == (64, 20)
    assert torch.allclose(out.exp().sum(1), torch.ones(64, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(torch.log_softmax(out, 1), out, atol=1e-12)  # cross_entropy sees it unchanged


def test_sum_head_is_the_convolution_of_the_three_digit_distributions() -> None:
    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(torch.randn(5, 3, 10, generator=g, dtype=torch.float64), -1)
    raw = sum_log_probs(probs.log(), renormalise=False).exp().numpy()
    for row, p in zip(raw, probs.numpy()):
        full = np.convolve(np.convolve(p[0], p[1]), p[2])  # sums 0..27
        np.testing.assert_allclose(row, full[1:21], rtol=1e-12)
        assert full.sum() == pytest.approx(1.0) and row.sum() < 1.0


def test_one_hot_digits_give_exactly_their_sum() -> None:
    triples = torch.tensor([t for t in itertools.product(range(10), repeat=3) if 1 <= sum(t) <= 20])
    log_probs = torch.log(torch.nn.functional.one_hot(triples, 10).float())  # 0 for the digit, -inf elsewhere
    out = sum_log_probs(log_probs)
    labels = triples.sum(1) - 1
    assert torch.equal(out.argmax(1), labels)
    assert torch.equal(out.exp()[torch.arange(len(labels)), labels], torch.ones(len(labels)))
    assert float(out.exp().sum()) == len(labels)  # every other sum has probability exactly 0


def test_sum_head_stays_finite_for_a_confident_digit_network() -> None:
    # three confident digits whose sum (27) is not an AddNIST class: every valid sum is ~e^-300 away
    logits = torch.full((1, 3, 10), -100.0)
    logits[..., 9] = 100.0
    logits.requires_grad_(True)
    out = sum_log_probs(torch.log_softmax(logits, -1))
    loss = torch.nn.functional.cross_entropy(out, torch.tensor([0]))
    loss.backward()
    assert torch.isfinite(out).all() and torch.isfinite(loss) and torch.isfinite(logits.grad).all()


# --- weight tying and channel symmetry ------------------------------------------------------------

def test_digit_sum_prediction_is_invariant_to_permuting_the_channels() -> None:
    torch.manual_seed(0)
    model = DigitSumClassifier().eval()
    x = torch.randn(8, 3, 28, 28)
    with torch.no_grad():
        reference = model(x)
        for order in itertools.permutations(range(3)):
            permuted = model(x[:, list(order)])
            assert torch.allclose(permuted, reference, atol=1e-5)
            assert torch.equal(permuted.argmax(1), reference.argmax(1))
            assert torch.equal(model.digit_logits(x[:, list(order)]), model.digit_logits(x)[:, list(order)])


def test_digit_predictions_and_accuracy() -> None:
    model = DigitSumClassifier().eval()
    x = torch.randn(10, 3, 28, 28)
    predicted = digit_predictions(model, x, CPU, batch_size=4)
    assert predicted.shape == (10, 3) and predicted.dtype == torch.int64
    truth = predicted.clone()
    truth[0, 1] = (truth[0, 1] + 1) % 10
    scores = digit_accuracy(predicted, truth)
    assert scores["digit"] == pytest.approx(29 / 30) and scores["channel_1"] == pytest.approx(0.9)
    assert scores["all_three"] == pytest.approx(0.9) and scores["n_images"] == 10


# --- configuration: new switches, old keys ---------------------------------------------------------

OLD_DEFAULT_DICT = {"model": "paper", "activation": "swish", "extra_block": False, "dropout": 0.0, "se_reduction": 4,
                    "lr": 0.005039249, "weight_decay": 1.1710477e-05, "batch_size": 64, "steps": 10000,
                    "steps_per_epoch": 1000, "eval_samples": None, "seed": 0, "over_budget_reason": ""}


def test_an_old_config_keeps_its_dict_and_its_keys() -> None:
    config = ClassifierConfig.from_dict(OLD_DEFAULT_DICT)
    assert config.to_dict() == OLD_DEFAULT_DICT and list(config.to_dict()) == list(OLD_DEFAULT_DICT)
    # config_tag values computed before the recipe switches existed
    assert config_tag(config) == "fe5b49f6"
    assert config_tag(config.replace(model="baseline", lr=1e-4, weight_decay=0.0, seed=3)) == "b4dd9dbe"
    data = Splits()
    assert run_key(config, data) == run_key(ClassifierConfig.from_dict(OLD_DEFAULT_DICT), data)


def test_recipe_switches_enter_the_dict_and_key_only_when_set() -> None:
    config = ClassifierConfig(model="digitsum", ema_decay=0.99, lr_schedule="onecycle")
    assert config.to_dict()["ema_decay"] == 0.99 and config.to_dict()["lr_schedule"] == "onecycle"
    assert "label_smoothing" not in config.to_dict()
    assert ClassifierConfig.from_dict(config.to_dict()) == config
    assert config_tag(config) != config_tag(config.replace(ema_decay=0.0))


@pytest.mark.parametrize("key, value", [("lr_schedule", "step"), ("label_smoothing", 1.0), ("ema_decay", 1.0),
                                        ("augment_rotate", -1.0), ("augment_permute", 1)])
def test_bad_recipe_values_are_rejected(key: str, value: object) -> None:
    with pytest.raises(ParamsError, match=key):
        ClassifierConfig.from_dict({key: value})


def test_learning_rate_schedules() -> None:
    constant = ClassifierConfig(steps=100)
    assert {lr_at(constant, s) for s in range(100)} == {constant.lr}
    cosine = constant.replace(lr_schedule="cosine")
    assert lr_at(cosine, 0) == pytest.approx(cosine.lr) and lr_at(cosine, 99) == pytest.approx(0.0, abs=1e-12)
    onecycle = constant.replace(lr_schedule="onecycle")
    rates = [lr_at(onecycle, s) for s in range(100)]
    assert max(rates) == pytest.approx(onecycle.lr, rel=1e-3) and rates[0] == pytest.approx(onecycle.lr / 25)
    assert rates[-1] < onecycle.lr / 1e5 and np.argmax(rates) in (24, 25)


def test_augmentation_is_seeded_per_step_and_keeps_the_digits() -> None:
    x, _ = digits_images(6, 0)
    config = tiny(augment_permute=True)
    permuted = augment_batch(x, config, step=4)
    assert torch.equal(permuted, augment_batch(x, config, step=4))
    for image, original in zip(permuted, x):  # the same three channels, reordered
        assert sorted(float(c.sum()) for c in image) == pytest.approx(sorted(float(c.sum()) for c in original))
    moved = tiny(augment_rotate=15.0, augment_translate=3.0)
    a, b = augment_batch(x, moved, 0), augment_batch(x, moved, 1)
    assert a.shape == x.shape and not torch.equal(a, b) and not torch.equal(a, x)
    blank = torch.full((2, 3, 28, 28), BACKGROUND)
    assert torch.allclose(augment_batch(blank, moved, 0), blank, atol=1e-6)  # background stays background
    assert augment_batch(x, tiny(), 0) is x


# --- EMA ---------------------------------------------------------------------------------------------

def test_weight_ema_averages_parameters_and_batch_norm_statistics() -> None:
    model = DigitSumClassifier()
    ema = WeightEMA(model, decay=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.digits.features[0][1].running_mean.add_(2.0)
    ema.update(model)  # first update: decay min(0.5, 2/11) = 2/11
    first = next(model.parameters())
    averaged = next(ema.model.parameters())
    assert torch.allclose(averaged, first - 1.0 * 2 / 11, atol=1e-6)
    assert torch.allclose(ema.model.digits.features[0][1].running_mean, torch.full((16,), 2.0 * 9 / 11))
    assert all(not p.requires_grad for p in ema.model.parameters())


def test_ema_run_saves_both_weights_that_differ_and_scores_both(tmp_path: Path) -> None:
    config = tiny(ema_decay=0.9, lr_schedule="onecycle", label_smoothing=0.1, augment_permute=True,
                  augment_rotate=10.0, augment_translate=2.0)
    run = run_classifier(config, Splits(), CPU, tmp_path / "run")
    payload = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)
    raw, averaged = payload["model"], payload["ema"]["model"]
    assert raw.keys() == averaged.keys()
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw if raw[k].is_floating_point())
    ema_model, _ = load_classifier(tmp_path / "run", CPU)  # auto: the EMA weights
    raw_model, _ = load_classifier(tmp_path / "run", CPU, weights="raw")
    assert torch.equal(ema_model.classify.weight, averaged["classify.weight"])
    assert torch.equal(raw_model.classify.weight, raw["classify.weight"])
    assert {"val_acc_raw", "val_loss_raw"} <= set(run.history.columns)
    assert 0.0 <= run.test["raw_accuracy"] <= 1.0 and 0.0 <= run.test["accuracy"] <= 1.0


def test_recipe_run_resumes_exactly(tmp_path: Path) -> None:
    config = tiny(steps=4, steps_per_epoch=2, ema_decay=0.8, lr_schedule="cosine", augment_permute=True,
                  augment_rotate=10.0, augment_translate=2.0, model="digitconcat")
    data = Splits()
    whole = train_classifier(config, data.train, data.valid, CPU, tmp_path / "whole")

    class Interrupted(Exception):
        pass

    def stop(epoch: int, _row: dict) -> None:
        raise Interrupted(epoch)

    with pytest.raises(Interrupted):  # killed after the first epoch's checkpoint
        train_classifier(config, data.train, data.valid, CPU, tmp_path / "cut", on_epoch=stop)
    resumed = train_classifier(config, data.train, data.valid, CPU, tmp_path / "cut")
    columns = ["train_loss", "train_acc", "val_loss", "val_acc", "val_acc_raw"]
    assert np.allclose(whole.history[columns].to_numpy(), resumed.history[columns].to_numpy(), atol=1e-6)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    for a, b in zip(whole.raw_model.state_dict().values(), resumed.raw_model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


# --- the command line --------------------------------------------------------------------------------

def test_cli_trains_the_digit_sum_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "addnist"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        y = np.arange(60, dtype=np.int64) % 20
        np.save(folder / f"{split}_x.npy", rng.uniform(-0.42, 2.82, (60, 3, 28, 28)).astype(np.float32))
        np.save(folder / f"{split}_y.npy", y)
    params = tmp_path / "params.yml"
    params.write_text("model: digitsum\nsteps: 4\nsteps_per_epoch: 2\nbatch_size: 16\nema_decay: 0.9\n")
    assert main(["train", "classifier", "--params", str(params), "--out", str(tmp_path / "run"),
                 "--data", str(folder), "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["params"] == budget_of(ClassifierConfig(model="digitsum")).params < 100_000
    assert summary["steps"] == 4 and "test_accuracy_raw" in summary
    assert main(["evaluate", "classifier", "--checkpoint", str(tmp_path / "run"), "--data", str(folder),
                 "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(summary["test_accuracy"])
