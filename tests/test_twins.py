"""A chapter copies another chapter's finished run of the same configuration, seed and data."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from effgen.classifier import ClassifierConfig, loop, run_seeds
from effgen.classifier.experiments import Splits, run_folder


class TinySplits:
    """Three random AddNIST-shaped splits (``experiments.Splits`` is a protocol)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.train, self.valid, self.test = [
            (torch.randn(n, 3, 28, 28, generator=g), torch.randint(0, 20, (n,), generator=g)) for n in (64, 32, 32)]

CONFIG = ClassifierConfig.from_dict({"model": "baseline", "steps": 4, "steps_per_epoch": 2, "batch_size": 16,
                                     "eval_samples": 20, "lr": 1e-2})


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "_quarto.yml").write_text("book:\n  title: Twins\n")
    monkeypatch.setenv("EFFGEN_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def data() -> Splits:
    return TinySplits()


def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "_train_steps", lambda *a, **k: pytest.fail("a finished twin was trained again"))


def test_a_finished_run_of_another_chapter_is_copied_not_trained(root: Path, data: Splits,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    [first] = run_seeds(CONFIG, [0], data, torch.device("cpu"), root / "runs/paper/02-classifier", "tuned")
    no_training(monkeypatch)
    [again] = run_seeds(CONFIG, [0], data, torch.device("cpu"), root / "runs/paper/06-beyond", "paper")
    assert again.out_dir.name.startswith("paper-seed0-") and again.out_dir.parent.name == "06-beyond"
    assert again.test_acc == first.test_acc
    assert again.history.drop(columns="seconds").equals(first.history.drop(columns="seconds"))
    assert not list(again.out_dir.rglob("*.tmp"))


def test_a_frozen_twin_is_unpacked_from_the_mirror(root: Path, data: Splits, monkeypatch: pytest.MonkeyPatch) -> None:
    [first] = run_seeds(CONFIG, [1], data, torch.device("cpu"), root / "runs/paper/02-classifier", "tuned")
    mirror = root / "_freeze/paper/02-classifier/runs" / first.out_dir.name
    shutil.copytree(first.out_dir, mirror)
    history = mirror / "history.csv"
    history.with_name("history.csv.gz").write_bytes(gzip.compress(history.read_bytes()))
    history.unlink()
    shutil.rmtree(root / "runs/paper/02-classifier")
    no_training(monkeypatch)
    [again] = run_seeds(CONFIG, [1], data, torch.device("cpu"), root / "runs/paper/01-activations", "baseline-swish")
    assert again.test_acc == first.test_acc
    assert (again.out_dir / "history.csv").read_bytes() == gzip.decompress((mirror / "history.csv.gz").read_bytes())


def test_an_unfinished_twin_is_resumed_and_another_configuration_is_not_taken(
        root: Path, data: Splits, monkeypatch: pytest.MonkeyPatch) -> None:
    other = root / "runs/paper/02-classifier"

    class Interrupted(Exception):
        pass

    def stop(epoch: int, row: dict) -> None:
        raise Interrupted

    unfinished = run_folder(CONFIG.replace(seed=2), data, other, "unfinished")
    with pytest.raises(Interrupted):  # stopped after its first epoch's checkpoint, at step 2 of 4
        loop.train_classifier(CONFIG.replace(seed=2), data.train, data.valid, torch.device("cpu"), unfinished,
                              on_epoch=stop)
    assert torch.load(unfinished / "checkpoint.pt", weights_only=False)["step"] == 2
    # A run of another configuration filed under this run's ending by mistake is not a twin.
    wrong = run_folder(CONFIG.replace(seed=2), data, other, "wrong")
    loop.train_classifier(CONFIG.replace(seed=2, lr=1e-3), data.train, data.valid, torch.device("cpu"), wrong)

    trained: list[int] = []
    real_steps = loop._train_steps

    def counted(model, optimizer, sampler, n_steps, *args, **kwargs):
        trained.append(n_steps)
        return real_steps(model, optimizer, sampler, n_steps, *args, **kwargs)

    monkeypatch.setattr(loop, "_train_steps", counted)
    [resumed] = run_seeds(CONFIG, [2], data, torch.device("cpu"), root / "runs/paper/06-beyond", "paper")
    assert trained == [2]  # steps 3-4 only: steps 1-2 came with the twin
    monkeypatch.undo()
    [scratch] = run_seeds(CONFIG, [2], data, torch.device("cpu"), root / "runs/quick/06-beyond", "paper")
    assert resumed.test_acc == scratch.test_acc
    weights = [torch.load(run.out_dir / "checkpoint.pt", weights_only=False)["model"] for run in (resumed, scratch)]
    assert all(torch.equal(a, b) for a, b in zip(weights[0].values(), weights[1].values()))


def test_only_project_run_folders_of_other_chapters_take_part(root: Path, data: Splits) -> None:
    [first] = run_seeds(CONFIG, [3], data, torch.device("cpu"), root / "runs/paper/02-classifier", "tuned")
    # A folder outside runs/<profile>/<chapter>/ trains: a user's own output is never filled behind their back.
    from effgen.classifier.twins import adopt_twin

    elsewhere = root / "mine" / first.out_dir.name
    assert adopt_twin(elsewhere, CONFIG.replace(seed=3), data.train, data.valid) is None
    same_chapter = root / "runs/paper/02-classifier" / f"again-{first.out_dir.name.split('-', 1)[1]}"
    assert adopt_twin(same_chapter, CONFIG.replace(seed=3), data.train, data.valid) is None
    assert not elsewhere.exists() and not same_chapter.exists()
