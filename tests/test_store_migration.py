"""`effgen snapshot --adopt-legacy-runs`: the classifier runs kept per chapter before the run store (live folders,
frozen mirrors with slimmed checkpoints, gzipped text and .twin pointers) become store entries, once each."""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import write_notebook
from tiny_classifier import CONFIG, CPU, DATA, PROFILE

from effgen import paths
from effgen.book.freeze import read_record, status
from effgen.book.freeze.migrate import adopt_legacy_runs
from effgen.classifier import (
    loop,
    run_classifier,
    run_key,
    run_seeds,
    train_classifier,
)
from effgen.commands import main
from effgen.errors import EffgenError


class Interrupted(Exception):
    pass


def _stop(epoch: int, row: dict) -> None:
    raise Interrupted


@pytest.fixture(scope="module")
def legacy_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs as the old layout kept them: seed 0 finished, seed 1 interrupted at step 2 of 4 (its ``partial``
    copy) and then finished, and a tuning run whose folder name ends like a run's but is keyed otherwise."""
    folder = tmp_path_factory.mktemp("legacy")
    run_classifier(CONFIG.replace(seed=0), DATA, CPU, folder / "seed0")
    with pytest.raises(Interrupted):
        train_classifier(CONFIG.replace(seed=1), DATA.train, DATA.valid, CPU, folder / "seed1", on_epoch=_stop)
    shutil.copytree(folder / "seed1", folder / "seed1-partial")
    run_classifier(CONFIG.replace(seed=1), DATA, CPU, folder / "seed1")
    train_classifier(CONFIG.replace(lr=1e-3), DATA.train, DATA.valid, CPU, folder / "sweep")
    for run in folder.iterdir():
        (run / "weights.pt").unlink(missing_ok=True)  # the old code wrote none
        (run / ".lock").unlink(missing_ok=True)
    return folder


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, legacy_runs: Path) -> Path:
    """Chapter 02 holds seed 0 in its mirror (slimmed, its history gzipped) and seed 1 live and, half-way, in
    its mirror; chapter 01's mirror points at 02's checkpoint of seed 0; 02's sweep run is a tuning run's."""
    root = tmp_path / "book"
    (root / "_quarto.yml").parent.mkdir(parents=True)
    (root / "_quarto.yml").write_text("book:\n  chapters:\n    - chapters/01-first.ipynb\n"
                                      "    - chapters/02-second.ipynb\n")
    for name in ("01-first", "02-second"):
        write_notebook(root / "chapters" / f"{name}.ipynb", 'profile: str = "smoke"', "x = 1")
        (root / "params" / PROFILE).mkdir(parents=True, exist_ok=True)
        (root / "params" / PROFILE / f"{name}.yml").write_text("")
        frozen = root / "_freeze" / PROFILE / name
        frozen.mkdir(parents=True)
        (frozen / "fingerprint.json").write_text(json.dumps({"chapter": name, "runs": {"results_version": 1}}))
    key0, key1 = run_key(CONFIG.replace(seed=0), DATA), run_key(CONFIG.replace(seed=1), DATA)
    mirror2, mirror1 = (root / "_freeze" / PROFILE / name / "runs" for name in ("02-second", "01-first"))
    slim = mirror2 / f"tuned-seed0-{key0}"
    shutil.copytree(legacy_runs / "seed0", slim)
    state = torch.load(slim / "checkpoint.pt", weights_only=True)
    torch.save({**{k: v for k, v in state.items() if k not in ("optimizer", "sampler")}, "slim": True},
               slim / "checkpoint.pt")
    (slim / "history.csv.gz").write_bytes(gzip.compress((slim / "history.csv").read_bytes()))
    (slim / "history.csv").unlink()
    pointer = mirror1 / f"paper-seed0-{key0}" / "checkpoint.pt.twin"
    pointer.parent.mkdir(parents=True)
    shutil.copy(slim / "config.yml", pointer.parent / "config.yml")
    digest = hashlib.sha256((slim / "checkpoint.pt").read_bytes()).hexdigest()
    pointer.write_text(json.dumps({"path": f"../../../02-second/runs/tuned-seed0-{key0}/checkpoint.pt",
                                   "sha256": digest}))
    shutil.copytree(legacy_runs / "seed1-partial", mirror2 / f"tuned-seed1-{key1}")
    shutil.copytree(legacy_runs / "seed1", root / "runs" / PROFILE / "02-second" / f"tuned-seed1-{key1}")
    shutil.copytree(legacy_runs / "sweep", root / "runs" / PROFILE / "02-second" / "sweep" / "steps4-seed0-deadbeef")
    monkeypatch.setenv("EFFGEN_ROOT", str(root))
    monkeypatch.setenv("EFFGEN_PROGRESS", "0")
    monkeypatch.setattr(paths, "STORE_ENTRIES_USED", [])
    return root


def test_old_runs_become_store_entries_once_and_are_reused(book: Path, legacy_runs: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    key0, key1 = run_key(CONFIG.replace(seed=0), DATA), run_key(CONFIG.replace(seed=1), DATA)
    assert main(["snapshot", "--profile", PROFILE, "--adopt-legacy-runs"]) == 0
    store = book / "runs" / PROFILE / "store" / "classifier"
    assert sorted(p.name for p in store.iterdir()) == [f"seed0-{key0}", f"seed1-{key1}"]
    seed0, seed1 = store / f"seed0-{key0}", store / f"seed1-{key1}"
    assert sorted(p.name for p in seed0.iterdir()) == ["config.yml", "history.csv", "test.json",
                                                      "test_predictions.npy", "weights.pt"]
    assert (seed0 / "history.csv").read_bytes() == (legacy_runs / "seed0" / "history.csv").read_bytes()
    assert "slim" not in torch.load(seed0 / "weights.pt", weights_only=True)
    assert (seed1 / "weights.pt").is_file()  # the live copy, finished, beat the frozen one at step 2
    # The frozen book: each entry once, listed by the records of the chapters whose mirrors held it.
    assert read_record(book, PROFILE, "01-first")["store"] == [f"classifier/seed0-{key0}"]
    assert read_record(book, PROFILE, "02-second")["store"] == [f"classifier/seed0-{key0}", f"classifier/seed1-{key1}"]
    frozen = book / "_freeze" / PROFILE / "store" / "classifier"
    assert sorted(p.name for p in frozen.iterdir()) == [f"seed0-{key0}", f"seed1-{key1}"]
    assert not list((book / "_freeze" / PROFILE).glob("*/runs/*-seed*"))
    assert {s.state for s in status(book, PROFILE)} == {"missing"}  # never executed; nothing damaged
    # The old live folders are set aside; the tuning run is not a store run and stays.
    assert (book / "runs" / PROFILE / ".superseded/legacy-runs/02-second" / f"tuned-seed1-{key1}").is_dir()
    assert (book / "runs" / PROFILE / "02-second/sweep/steps4-seed0-deadbeef/checkpoint.pt").is_file()
    assert adopt_legacy_runs(book, PROFILE, log=lambda _: None).adopted == {}  # once

    monkeypatch.setattr(loop, "_train_steps", lambda *a, **k: pytest.fail("an adopted run was trained again"))
    runs = run_seeds(CONFIG, [0, 1], DATA, CPU, paths.runs_dir(PROFILE, "01-first"), "paper")
    for run, seed in zip(runs, (0, 1)):
        before = json.loads((legacy_runs / f"seed{seed}" / "test.json").read_text())
        assert run.test == {k: v for k, v in before.items() if k != "data_fingerprint"}


def test_a_broken_pointer_stops_the_adoption_before_anything_moves(book: Path) -> None:
    pointer = next((book / "_freeze").rglob("*.twin"))
    pointer.write_text(json.dumps({"path": "../nowhere/checkpoint.pt", "sha256": "0" * 64}))
    before = sorted(p.relative_to(book).as_posix() for p in book.rglob("*"))
    with pytest.raises(EffgenError, match="its file is missing or has changed; restore _freeze/ from git"):
        adopt_legacy_runs(book, PROFILE, log=lambda _: None)
    assert sorted(p.relative_to(book).as_posix() for p in book.rglob("*")) == before
