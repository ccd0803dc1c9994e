"""The run store: a run several chapters need is trained once and kept once, live and frozen; freezing copies
files; a thaw restores them; a finished run reloads from weights.pt; a snapshot keeps an unfinished run
resumable; unreferenced entries are pruned; a damaged frozen entry is one line, and nothing runs over it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
import torch
from conftest import write_notebook
from tiny_classifier import CONFIG, CPU, DATA, PROFILE

from effgen import paths
from effgen.book import freeze
from effgen.book.freeze import fingerprint, freeze_chapter, prepare_runs, read_record, status, thaw
from effgen.book.runner import plan
from effgen.classifier import load_classifier, loop, run_seeds, train_classifier
from effgen.classifier.experiments import ClassifierRun, run_folder
from effgen.commands import main


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two chapters of one profile; EFFGEN_ROOT points at the book, and the store's registry starts empty."""
    root = tmp_path / "book"
    (root / "chapters").mkdir(parents=True)
    (root / "_quarto.yml").write_text("book:\n  chapters:\n    - chapters/01-first.ipynb\n"
                                      "    - chapters/02-second.ipynb\n")
    for name in ("01-first", "02-second"):
        write_notebook(root / "chapters" / f"{name}.ipynb", 'profile: str = "smoke"', "x = 1")
        for profile in (PROFILE, "quick"):
            (root / "params" / profile).mkdir(parents=True, exist_ok=True)
            (root / "params" / profile / f"{name}.yml").write_text("")
    monkeypatch.setenv("EFFGEN_ROOT", str(root))
    monkeypatch.setenv("EFFGEN_PROGRESS", "0")
    monkeypatch.setattr(paths, "STORE_ENTRIES_USED", [])
    return root


def chapter_runs(chapter: str, seeds: list[int], profile: str = PROFILE) -> tuple[list[ClassifierRun], list[str]]:
    """What a chapter's kernel does: ``run_seeds`` from its run folder; the runs and the entries it used."""
    paths.STORE_ENTRIES_USED.clear()
    runs = run_seeds(CONFIG, seeds, DATA, CPU, paths.runs_dir(profile, chapter), "label")
    return runs, list(paths.STORE_ENTRIES_USED)


def freeze_as_executed(root: Path, chapter: str, store: list[str]) -> None:
    """Freeze ``chapter`` as the runner does after executing it, with the entries its kernel used."""
    [job] = plan(root, PROFILE, [chapter])
    job.output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.read(job.source, as_version=4), job.output)
    freeze_chapter(root, job, fingerprint(root, PROFILE, job.source.relative_to(root).as_posix()), 1.0, [], store)


def count_training(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    trained: list[int] = []
    real = loop._train_steps

    def counted(model, optimizer, sampler, n_steps, *args, **kwargs):
        trained.append(n_steps)
        return real(model, optimizer, sampler, n_steps, *args, **kwargs)

    monkeypatch.setattr(loop, "_train_steps", counted)
    return trained


def frozen_files(root: Path) -> dict[str, bytes]:
    store = root / "_freeze" / PROFILE / "store"
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def test_a_run_two_chapters_need_is_trained_once_and_kept_once_live_and_frozen(
        book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trained = count_training(monkeypatch)
    [first], used_first = chapter_runs("01-first", [0])
    [second], used_second = chapter_runs("02-second", [0])
    assert trained == [2, 2]  # one run of two epochs: the second chapter reused it
    entry = f"classifier/{first.out_dir.name}"
    assert used_first == used_second == [entry] and first.out_dir == second.out_dir
    assert first.out_dir == book / "runs" / PROFILE / "store" / entry and first.out_dir.name.startswith("seed0-")
    assert second.test == first.test and (second.predictions == first.predictions).all()

    freeze_as_executed(book, "01-first", used_first)
    freeze_as_executed(book, "02-second", used_second)
    frozen = frozen_files(book)
    assert sorted(frozen) == [f"{entry}/{name}" for name in
                              ("config.yml", "history.csv", "manifest.json", "test.json", "test_predictions.npy",
                               "weights.pt")]  # kept once; a finished run without its training state
    for name, data in frozen.items():  # freezing copies files, byte for byte
        if not name.endswith("manifest.json"):
            assert data == (book / "runs" / PROFILE / "store" / name).read_bytes(), name
    assert not list((book / "_freeze" / PROFILE).glob("*/runs/**/weights.pt"))  # no chapter holds a copy
    assert read_record(book, PROFILE, "01-first")["store"] == read_record(book, PROFILE, "02-second")["store"] == [entry]


def test_a_thaw_restores_the_entries_and_never_overwrites(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [first], used = chapter_runs("01-first", [0])
    freeze_as_executed(book, "01-first", used)
    shutil.rmtree(book / "runs")
    prepare_runs(book, PROFILE, "02-second", ["01-first"], log=lambda _: None)  # a reader thaws what it reads
    assert not (first.out_dir / "checkpoint.pt").exists() and (first.out_dir / "weights.pt").is_file()
    monkeypatch.setattr(loop, "_train_steps", lambda *a, **k: pytest.fail("a frozen finished run trained again"))
    [again], _ = chapter_runs("02-second", [0])
    assert again.test == first.test and again.history.equals(first.history)
    (first.out_dir / "history.csv").write_text("newer work\n")
    assert thaw(book, PROFILE, "01-first") == 0 and (first.out_dir / "history.csv").read_text() == "newer work\n"


def test_a_finished_run_reloads_from_its_weights_exactly_as_trained(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [first], _ = chapter_runs("01-first", [1])
    rng_after_training = torch.get_rng_state()
    # Another profile's store holding only what the freeze keeps of it, minus the test scores: scored again.
    entry = paths.runs_dir("quick") / "store" / "classifier" / first.out_dir.name
    entry.mkdir(parents=True)
    for name in ("weights.pt", "history.csv", "config.yml"):
        shutil.copy(first.out_dir / name, entry / name)
    torch.manual_seed(123)  # whatever came before, a reused run leaves the RNG where its training did
    monkeypatch.setattr(loop, "_train_steps", lambda *a, **k: pytest.fail("a finished run was trained again"))
    [again], _ = chapter_runs("01-first", [1], profile="quick")
    assert again.out_dir == entry
    assert again.test == first.test and (again.predictions == first.predictions).all()
    assert again.history.equals(first.history) and torch.equal(torch.get_rng_state(), rng_after_training)
    model, _ = load_classifier(entry / "weights.pt")
    saved = torch.load(first.out_dir / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())
    assert not (entry / "checkpoint.pt").exists()


def test_a_snapshot_keeps_an_unfinished_run_resumable(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Interrupted(Exception):
        pass

    def stop(epoch: int, row: dict) -> None:
        raise Interrupted

    config = CONFIG.replace(seed=2)
    folder = run_folder(config, DATA, paths.runs_dir(PROFILE, "01-first"))
    with pytest.raises(Interrupted):  # the session ends after the first epoch, at step 2 of 4
        train_classifier(config, DATA.train, DATA.valid, CPU, folder, on_epoch=stop)
    freeze.snapshot(book, PROFILE, log=lambda _: None)
    entry = f"classifier/{folder.name}"
    frozen = book / "_freeze" / PROFILE / "store" / entry
    assert (frozen / "checkpoint.pt").is_file() and not (frozen / "weights.pt").exists()
    assert freeze.read_snapshot(book, PROFILE)["entries"] == [entry]

    shutil.rmtree(book / "runs")  # the next session, on a fresh clone
    prepare_runs(book, PROFILE, "01-first", [], log=lambda _: None)
    trained = count_training(monkeypatch)
    [resumed], _ = chapter_runs("01-first", [2])
    assert trained == [2]  # steps 3-4 only
    monkeypatch.undo()
    [whole], _ = chapter_runs("01-first", [2], profile="quick")
    assert resumed.test == whole.test and (resumed.predictions == whole.predictions).all()
    freeze.snapshot(book, PROFILE, log=lambda _: None)  # finished since: kept without its training state
    assert (frozen / "weights.pt").is_file() and not (frozen / "checkpoint.pt").exists()


def test_prune_removes_only_the_entries_no_record_and_no_snapshot_lists(book: Path) -> None:
    runs, used = chapter_runs("01-first", [0, 1])
    freeze_as_executed(book, "01-first", used)
    [later], _ = chapter_runs("02-second", [2])  # work in progress of a chapter not frozen yet
    shutil.rmtree(runs[1].out_dir)  # seed 1 is obsolete here; only chapter 01's record keeps it now
    freeze.snapshot(book, PROFILE, ["02"], log=lambda _: None)
    store = book / "_freeze" / PROFILE / "store" / "classifier"
    assert {p.name for p in store.iterdir()} == {runs[0].out_dir.name, runs[1].out_dir.name, later.out_dir.name}
    _, used = chapter_runs("01-first", [0])  # chapter 01 now runs seed 0 only
    freeze_as_executed(book, "01-first", used)
    assert {p.name for p in store.iterdir()} == {runs[0].out_dir.name, later.out_dir.name}


def test_retiring_the_snapshot_drops_what_no_chapter_lists_once_every_chapter_is_frozen(
        book: Path, capsys: pytest.CaptureFixture) -> None:
    runs, _ = chapter_runs("01-first", [0, 1])
    freeze.snapshot(book, PROFILE, log=lambda _: None)  # both seeds kept while chapter 01 is not frozen
    _, used = chapter_runs("01-first", [0])
    freeze_as_executed(book, "01-first", used)  # its record lists seed 0 only; the snapshot still keeps seed 1
    store = book / "_freeze" / PROFILE / "store"
    assert {p.name for p in (store / "classifier").iterdir()} == {runs[0].out_dir.name, runs[1].out_dir.name}
    capsys.readouterr()
    assert main(["snapshot", "--profile", PROFILE, "--retire"]) != 0  # chapter 02 was never executed
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "not frozen and current: 02-second" in error[0]
    assert (store / "snapshot.json").is_file()
    freeze_as_executed(book, "02-second", [])
    assert main(["snapshot", "--profile", PROFILE, "--retire"]) == 0
    assert "snapshot retired: 1 run-store entries" in capsys.readouterr().out
    assert {p.name for p in (store / "classifier").iterdir()} == {runs[0].out_dir.name}
    assert not (store / "snapshot.json").exists()
    assert (runs[1].out_dir / "weights.pt").is_file()  # the live run store keeps it
    assert {s.state for s in status(book, PROFILE)} == {"frozen"}


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize("damage, file, why", [
    (_truncate, "weights.pt", "its sha256 is not the one manifest.json records"),
    (lambda path: path.unlink(), "history.csv", "missing, though manifest.json lists it"),
    (lambda path: path.write_text("{"), "manifest.json", "not readable JSON"),
    (lambda path: path.write_text('{"files": []}'), "manifest.json", "not a store entry's manifest"),
    (lambda path: shutil.rmtree(path), "", "missing, though a record of the frozen book lists"),
], ids=["changed", "missing-file", "manifest-json", "manifest-shape", "missing-entry"])
def test_a_damaged_store_entry_is_one_line_and_nothing_runs_over_it(book: Path, damage, file: str, why: str,
                                                                     capsys: pytest.CaptureFixture) -> None:
    [run], used = chapter_runs("01-first", [0])
    freeze_as_executed(book, "01-first", used)
    path = book / "_freeze" / PROFILE / "store" / used[0] / file  # file "": the entry's folder
    damage(path)
    found = {s.name: s for s in status(book, PROFILE)}["01-first"]
    assert found.state == "damaged" and why in found.reasons[0]
    assert found.reasons[0].endswith(f"git checkout -- {path.relative_to(book)}")
    assert main(["run", "--status", "--profile", PROFILE]) == freeze.FreezeDamaged.exit_code
    capsys.readouterr()
    assert main(["snapshot", "--profile", PROFILE]) == freeze.FreezeDamaged.exit_code  # refuses to write over it
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("effgen: error: _freeze/smoke/store/classifier/")
    shutil.rmtree(book / "runs")
    with pytest.raises(freeze.FreezeDamaged, match=why):
        thaw(book, PROFILE, "01-first")
    assert not run.out_dir.exists()


def test_a_damaged_snapshot_list_is_one_line(book: Path, capsys: pytest.CaptureFixture) -> None:
    chapter_runs("01-first", [0])
    freeze.snapshot(book, PROFILE, log=lambda _: None)
    (book / "_freeze" / PROFILE / "store" / "snapshot.json").write_text(json.dumps({"entries": ["../x"]}))
    capsys.readouterr()
    assert main(["run", "--status", "--profile", PROFILE]) == freeze.FreezeDamaged.exit_code
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "snapshot.json is damaged" in error[0]


@pytest.mark.slow
def test_the_runner_records_the_entries_a_chapter_used(book: Path) -> None:
    """The recorder cell collects ``STORE_ENTRIES_USED`` from the chapter's kernel into its record."""
    write_notebook(book / "chapters/01-first.ipynb", 'profile: str = "smoke"',
                   "from effgen.paths import runs_dir, use_store_entry\n"
                   "entry = use_store_entry(runs_dir(profile) / 'store', 'classifier', 'seed0-0123abcd')\n"
                   "entry.mkdir(parents=True)\n(entry / 'history.csv').write_text('epoch,step\\n1,2\\n')\n"
                   "(entry / 'checkpoint.pt').write_bytes(b'in progress')")
    freeze.run_book(book, PROFILE, ["01"], log=lambda _: None)
    assert read_record(book, PROFILE, "01-first")["store"] == ["classifier/seed0-0123abcd"]
    manifest = json.loads((book / "_freeze" / PROFILE / "store/classifier/seed0-0123abcd/manifest.json").read_text())
    assert manifest["finished"] is False and manifest["step"] == 2 and "checkpoint.pt" in manifest["files"]
