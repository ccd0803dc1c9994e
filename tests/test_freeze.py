"""Frozen chapters (effgen.book.freeze): fingerprints, status, freeze and its filter, thaw, reuse, no re-execution."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sqlite3
import time
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from conftest import reader_text, write_notebook

from effgen import checkpoints
from effgen.book import freeze
from effgen.book.freeze import (
    fingerprint,
    freeze_chapter,
    notebook_digest,
    params_digest,
    plan_run,
    prepare_runs,
    run_book,
    source_digest,
    status,
    sync_mirror,
    thaw,
)
from effgen.book.freeze import fingerprints as _fingerprints  # noqa: F401  (freeze.fingerprints below)
from effgen.book.freeze import mirror as _mirror  # noqa: F401  (freeze.mirror below)
from effgen.book.render import RenderWarning
from effgen.book.runner import plan
from effgen.commands import main
from effgen.errors import ParamsError

PROFILE = "smoke"


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A summary page and three chapters; 02 reads 01's outputs. EFFGEN_ROOT points at it."""
    root = tmp_path / "book"
    root.mkdir()
    (root / "_quarto.yml").write_text(
        "book:\n  title: Frozen\n  chapters:\n    - index.ipynb\n    - chapters/01-first.ipynb\n"
        "    - chapters/02-second.ipynb\n    - chapters/03-third.ipynb\n")
    write_notebook(root / "index.ipynb", 'profile: str = "quick"', "from effgen.book.summary import load_metrics",
                   title="# Summary")
    write_notebook(root / "chapters/01-first.ipynb", 'profile: str = "quick"\nsteps: int = 1',
                   "from effgen.paths import runs_dir\n"
                   "out = runs_dir(profile, '01-first')\nout.mkdir(parents=True, exist_ok=True)\n"
                   "(out / 'metrics.json').write_text('{\"steps\": %d}' % steps)\nprint('steps', steps)",
                   title="# First")
    write_notebook(root / "chapters/02-second.ipynb", 'profile: str = "quick"',
                   "from effgen.book.notebook import start_chapter\nchapter = start_chapter('02-second', profile, 0)\n"
                   "text = chapter.artifact(\"01-first\", \"metrics.json\").read_text()", title="# Second")
    write_notebook(root / "chapters/03-third.ipynb", 'profile: str = "quick"', "import json", title="# Third")
    for profile in (PROFILE, "paper"):
        (root / "params" / profile).mkdir(parents=True)
        for name in ("01-first", "02-second", "03-third"):
            (root / "params" / profile / f"{name}.yml").write_text("steps: 2\n" if name == "01-first" else "")
    monkeypatch.setenv("EFFGEN_ROOT", str(root))
    return root


def fake_execute(root: Path, names: list[str], profile: str = PROFILE,
                 ran: dict[str, list[Path]] | None = None) -> None:
    """Freeze chapters as if they had executed: the source copied to _build with an output added.

    ``ran``: the package files each chapter's kernel loaded (default: effgen/paths.py).
    """
    for job in plan(root, profile, names):
        notebook = nbformat.read(job.source, as_version=4)
        notebook.cells[-1].outputs = [nbformat.v4.new_output("stream", text="done\n")]
        notebook.metadata["papermill"] = {"end_time": time.time_ns()}  # every execution differs, as papermill's
        job.output.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, job.output)
        files = (ran or {}).get(job.name, [freeze.fingerprints.PACKAGE_DIR / "paths.py"])
        freeze_chapter(root, job, fingerprint(root, profile, job.source.relative_to(root).as_posix()), 1.5,
                       [str(f) for f in files])


def states(root: Path, profile: str = PROFILE) -> dict[str, tuple[str, list[str]]]:
    return {s.name: (s.state, s.reasons) for s in status(root, profile)}


# ---------------------------------------------------------------- fingerprint parts

def test_notebook_digest_counts_sources_not_outputs(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "a.ipynb", "x: int = 1", "print(x)")
    before = notebook_digest(path)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[2].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    notebook.cells[2].execution_count = 7
    notebook.cells[2].id = "changed-id"
    notebook.metadata["papermill"] = {"duration": 3.2}
    nbformat.write(notebook, path)
    assert notebook_digest(path) == before
    notebook.cells[0].source += " (edited)"
    nbformat.write(notebook, path)
    assert notebook_digest(path) != before


def test_params_digest_is_content_and_absent_is_a_state(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    assert params_digest(path) == "absent"
    path.write_text("steps: 2\n")
    first = params_digest(path)
    path.write_text("steps: 2\n")
    assert params_digest(path) == first
    path.write_text("steps: 3\n")
    assert params_digest(path) != first


def fake_package(tmp_path: Path) -> Path:
    package = tmp_path / "lib" / "effgen"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text('"""The package."""\n')
    (package / "a.py").write_text('"""Module a."""\nVALUE = 1  # a comment\n')
    (package / "b.py").write_text("from .a import VALUE\n\ndef f():\n    from .sub import deep\n    return deep\n")
    (package / "c.py").write_text("import os\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "deep.py").write_text("from ..c import os\n")
    return package


def test_file_hash_ignores_docstrings_comments_and_formatting(tmp_path: Path) -> None:
    package = fake_package(tmp_path)
    digest = source_digest(package / "a.py")
    (package / "a.py").write_text('"""Module a, reworded."""\n\n# new comment\nVALUE   =   1\n')
    assert source_digest(package / "a.py") == digest
    (package / "a.py").write_text("VALUE = 2\n")
    assert source_digest(package / "a.py") != digest


def test_upstream_chapters_are_found(book: Path) -> None:
    assert freeze.depends_on(book, "chapters/02-second.ipynb") == ["01-first"]
    assert freeze.depends_on(book, "chapters/03-third.ipynb") == []
    assert freeze.depends_on(book, "index.ipynb") == ["01-first", "02-second", "03-third"]


# ---------------------------------------------------------------- status

def test_params_change_stales_that_chapter_only(book: Path, capsys: pytest.CaptureFixture) -> None:
    assert {name for name, (state, _) in states(book).items() if state == "missing"} == {
        "index", "01-first", "02-second", "03-third"}
    fake_execute(book, [])
    assert {state for state, _ in states(book).values()} == {"frozen"}
    (book / "params" / PROFILE / "03-third.yml").write_text("# a comment changes the file\n")
    assert states(book) == {"01-first": ("frozen", []), "02-second": ("frozen", []),
                            "03-third": ("stale", ["params"]), "index": ("frozen", [])}
    assert main(["run", "--status", "--profile", PROFILE]) == 0
    out = capsys.readouterr().out
    assert "03-third   stale: params" in out and out.count("stale") == 1


def test_output_only_change_keeps_frozen_and_source_change_stales(book: Path) -> None:
    fake_execute(book, ["03"])
    source = book / "chapters/03-third.ipynb"
    notebook = nbformat.read(source, as_version=4)
    notebook.cells[2].outputs = [nbformat.v4.new_output("stream", text="left by Jupyter\n")]
    nbformat.write(notebook, source)
    assert states(book)["03-third"] == ("frozen", [])
    notebook.cells[2].source = "import json, os"
    nbformat.write(notebook, source)
    assert states(book)["03-third"] == ("stale", ["notebook"])


def _with_injected_parameters(executed: Path) -> None:
    """Make a fake execution look like papermill's: its injected-parameters cell after the parameters cell."""
    notebook = nbformat.read(executed, as_version=4)
    injected = nbformat.v4.new_code_cell('profile = "smoke"\n', metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(2, injected)
    nbformat.write(notebook, executed)
    record_path = executed.with_name("fingerprint.json")  # as if papermill had written it so: record its bytes
    record = json.loads(record_path.read_text())
    digest = hashlib.sha256(executed.read_bytes()).hexdigest()
    record["notebook_file_sha256"] = digest
    record_path.write_text(json.dumps(record))


def test_a_prose_only_change_is_refrozen_without_execution(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill

    fake_execute(book, [])
    frozen = book / "_freeze" / PROFILE / "01-first" / "notebook.ipynb"
    _with_injected_parameters(frozen)
    identity = freeze.execution_digest(book, PROFILE, "01-first")
    source = book / "chapters/01-first.ipynb"
    notebook = nbformat.read(source, as_version=4)
    notebook.cells[0].source = "# First, retitled"
    notebook.cells.insert(2, nbformat.v4.new_markdown_cell("A new paragraph between the cells."))
    nbformat.write(notebook, source)

    assert states(book)["01-first"] == ("stale", [freeze.PROSE])
    assert {name: state for name, (state, _) in states(book).items() if name != "01-first"} == dict.fromkeys(
        ["index", "02-second", "03-third"], "frozen")
    assert {p.job.name: p.action for p in plan_run(book, PROFILE)} == {
        "index": "frozen", "01-first": "prose", "02-second": "frozen", "03-third": "frozen"}

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a prose change executed"))
    log: list[str] = []
    run_book(book, PROFILE, log=log.append)
    assert any("re-frozen with its new prose" in line for line in log)
    assert {state for state, _ in states(book).values()} == {"frozen"}
    cells = nbformat.read(frozen, as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "code", "code", "markdown", "code"]
    assert cells[0].source == "# First, retitled" and cells[3].source == "A new paragraph between the cells."
    assert cells[2].metadata["tags"] == ["injected-parameters"]  # papermill's cell stays after the parameters
    assert cells[4].outputs[0]["text"] == "done\n"  # the outputs are the frozen execution's
    assert freeze.execution_digest(book, PROFILE, "01-first") == identity  # so 02, which reads 01, stays frozen
    built = book / "_build" / PROFILE / "chapters/01-first.ipynb"
    assert nbformat.read(built, as_version=4).cells[0].source == "# First, retitled"


def test_a_code_change_or_inline_code_in_markdown_is_not_prose(book: Path) -> None:
    fake_execute(book, ["01"])
    source = book / "chapters/01-first.ipynb"
    notebook = nbformat.read(source, as_version=4)
    notebook.cells[0].source = "# First: `{python} steps` steps"  # Quarto computes this when it executes
    nbformat.write(notebook, source)
    assert states(book)["01-first"] == ("stale", ["notebook"])
    notebook.cells[0].source = "# First"
    notebook.cells[2].source += "\nprint('more')"
    nbformat.write(notebook, source)
    assert states(book)["01-first"] == ("stale", ["notebook"])


def test_render_shows_new_prose_before_it_is_refrozen(book: Path) -> None:
    fake_execute(book, ["01"])
    source = book / "chapters/01-first.ipynb"
    notebook = nbformat.read(source, as_version=4)
    notebook.cells[0].source = "# First, retitled"
    nbformat.write(notebook, source)
    before = (book / "_freeze" / PROFILE / "01-first" / "notebook.ipynb").read_bytes()
    freeze.place_new_prose(book, PROFILE, status(book, PROFILE))
    built = nbformat.read(book / "_build" / PROFILE / "chapters/01-first.ipynb", as_version=4)
    assert built.cells[0].source == "# First, retitled" and built.cells[-1].outputs[0]["text"] == "done\n"
    assert (book / "_freeze" / PROFILE / "01-first" / "notebook.ipynb").read_bytes() == before


def test_the_fingerprint_is_what_the_kernel_ran_lazy_loads_included(book: Path) -> None:
    """effgen.tuning loads its objective module on first use, through importlib: it counts as it ran."""
    write_notebook(book / "chapters/03-third.ipynb", 'profile: str = "quick"',
                   "from effgen import tuning\nrun = tuning.run_tuning", title="# Third")
    run_book(book, PROFILE, ["03"], log=lambda line: None)
    record = json.loads((book / "_freeze" / PROFILE / "03-third/fingerprint.json").read_text())
    library = record["fingerprint"]["library"]
    assert {"effgen/tuning/__init__.py", "effgen/tuning/classifier.py", "effgen/classifier/loop.py"} <= set(library)
    assert "effgen/gan/loop.py" not in library and "effgen/book/runner.py" not in library
    frozen = (book / "_freeze" / PROFILE / "03-third/notebook.ipynb").read_text()
    assert "effgen-loaded-files" not in frozen and "PACKAGE_FILES_USED" not in frozen  # the recorder is gone
    assert states(book)["03-third"] == ("frozen", [])


def test_a_library_file_edited_while_a_chapter_runs_leaves_it_unfrozen(book: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The fingerprint hashes the files a kernel loaded as they are when it ends: a file edited meanwhile
    would be recorded as what ran, so the chapter is not frozen and the error names the file."""
    from effgen.book import runner

    module = tmp_path / "edited.py"
    module.write_text("X = 1\n")
    loaded = runner._loaded_files
    monkeypatch.setattr(runner, "_loaded_files", lambda recorded: ([*loaded(recorded)[0], str(module)], []))
    write_notebook(book / "chapters/03-third.ipynb", 'profile: str = "quick"',
                   f"import pathlib\npathlib.Path({str(module)!r}).write_text('X = 2\\n')", title="# Third")
    with pytest.raises(runner.ChapterFailed, match=r"library files changed while it ran: .*edited\.py; not frozen"):
        run_book(book, PROFILE, ["03"], log=lambda line: None)
    assert not (book / "_freeze" / PROFILE / "03-third" / "fingerprint.json").exists()
    assert runner.edited_since([str(module)], time.time() + 1) == []
    assert runner.edited_since([str(tmp_path / "gone.py")], 0.0) == [str(tmp_path / "gone.py")]


def test_a_library_change_stales_exactly_the_chapters_that_ran_it(book: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    package = fake_package(tmp_path)
    (package / "csrc").mkdir()
    (package / "csrc" / "kernel.c").write_text("void f(void) {}\n")
    monkeypatch.setattr(freeze.fingerprints, "PACKAGE_DIR", package)
    fake_execute(book, [], ran={"01-first": [package / "a.py"],
                                "03-third": [package / "b.py", package / "sub" / "deep.py", package / "csrc/kernel.c"]})
    (package / "sub" / "deep.py").write_text("from ..c import os\nEXTRA = 1\n")
    found = states(book)
    assert found["03-third"] == ("stale", ["library: effgen/sub/deep.py"])
    assert all(state == "frozen" for name, (state, _) in found.items() if name != "03-third")
    (package / "sub" / "deep.py").write_text("from ..c import os\n")
    (package / "csrc" / "kernel.c").write_text("void f(void) { /* faster */ }\n")
    assert states(book)["03-third"] == ("stale", ["library: effgen/csrc/kernel.c"])
    (package / "csrc" / "kernel.c").write_text("void f(void) {}\n")
    (package / "a.py").unlink()
    found = states(book)
    assert found["01-first"] == ("stale", ["library: effgen/a.py (1 of them removed)"])
    assert found["02-second"][0] == "frozen" and found["03-third"][0] == "frozen"


def test_results_version_bump_stales_all_and_recomputes_from_scratch(book: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    runs = book / "runs" / PROFILE / "03-third"
    runs.mkdir(parents=True)
    (runs / "history.csv").write_text("step\n1\n")
    fake_execute(book, [])
    shutil.rmtree(runs)
    prepare_runs(book, PROFILE, "03-third", [], log=lambda _: None)  # thaws, marks version 1
    assert (runs / "history.csv").is_file() and (runs / ".results-version").read_text() == "1\n"

    monkeypatch.setattr(freeze.fingerprints, "RESULTS_VERSION", 2)
    assert {tuple(reasons) for _, reasons in states(book).values()} == {("results-version 1 -> 2",)}
    assert thaw(book, PROFILE, "01-first") == 0  # runs frozen under version 1 stay frozen
    prepare_runs(book, PROFILE, "03-third", [], log=lambda _: None)
    assert (book / "runs" / PROFILE / ".superseded/03-third.results-v1/history.csv").is_file()  # set aside, not lost
    assert not (runs / "history.csv").exists() and (runs / ".results-version").read_text() == "2\n"


def test_upstream_re_execution_stales_its_readers_after_it_is_refrozen(book: Path) -> None:
    fake_execute(book, [])
    (book / "params" / PROFILE / "01-first.yml").write_text("steps: 3\n")
    assert [name for name, (state, _) in states(book).items() if state == "stale"] == ["01-first"]
    planned = {p.job.name: (p.action, p.why) for p in plan_run(book, PROFILE)}
    assert planned["01-first"] == ("execute", "stale: params")
    assert planned["02-second"] == ("execute", "upstream executes first: 01-first")
    assert planned["index"][0] == "execute" and planned["03-third"] == ("frozen", "frozen and current")
    fake_execute(book, ["01"])
    assert states(book)["02-second"] == ("stale", ["upstream: 01-first"])


def test_missing_paper_chapters_run_only_when_asked(book: Path) -> None:
    assert {p.action for p in plan_run(book, "paper")} == {"skip"}
    assert [p.action for p in plan_run(book, "paper", ["03"])] == ["execute"]
    assert {p.action for p in plan_run(book, "paper", execute_missing=True)} == {"execute"}
    assert {p.action for p in plan_run(book, PROFILE)} == {"execute"}  # small profiles just run
    fake_execute(book, ["01", "03"], profile="paper")
    assert {p.job.name: p.action for p in plan_run(book, "paper")} == {
        "index": "skip", "01-first": "frozen", "02-second": "skip", "03-third": "frozen"}
    assert {p.job.name: p.action for p in plan_run(book, "paper", force=True)} == dict.fromkeys(
        ["index", "01-first", "02-second", "03-third"], "execute")


# ---------------------------------------------------------------- freeze, filter, thaw

def tiny_classifier():
    from effgen.classifier import ClassifierConfig

    config = ClassifierConfig.from_dict({"model": "baseline", "steps": 4, "steps_per_epoch": 2, "batch_size": 16,
                                         "eval_samples": 20, "lr": 1e-2})
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(n, 3, 28, 28, generator=g), torch.randint(0, 20, (n,), generator=g)) for n in (64, 32)]
    return config, data


def tiny_gan(name: str, **overrides):
    from effgen.gan import preset

    settings = {"steps": 4, "batch_size": 4, "sample_every": 2, "checkpoint_every": 100, "n_fixed": 4,
                "epoch_steps": 2, "step_size": 2, **overrides}
    return preset(name, **settings), torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished classifier, finished DCGAN and MLP GAN runs and an unfinished one: trained once, copied per test."""
    from effgen.classifier import train_classifier
    from effgen.gan import train_gan

    folder = tmp_path_factory.mktemp("template") / "01-first"
    config, (train, valid) = tiny_classifier()
    train_classifier(config, train, valid, torch.device("cpu"), folder / "cls")
    for name, overrides in (("corrected", {}), ("fc_gan", {}), ("unfinished", {"steps": 6})):
        gan, images = tiny_gan("fc_gan" if name == "fc_gan" else "corrected", **overrides)
        train_gan(gan, images, folder / name, stop_at=3 if name == "unfinished" else None, show_progress=False)
    (folder / "metrics.json").write_text(json.dumps({"headline": []}))
    (folder / "big.csv").write_text("a,b\n" + "123456789,987654321\n" * 60_000)  # 1.2 MB
    np.save(folder / "cls" / "test_predictions.npy", np.arange(10_000) % 20)  # 80 KB, as a paper run's
    (folder / "scratch.npz").write_bytes(b"not kept")
    with sqlite3.connect(folder / "optuna.db") as study:  # an Optuna study is SQLite; it is kept
        study.execute("create table trials (value real)")
        study.execute("insert into trials values (0.5)")
    (folder / "cls" / "checkpoint.pt.tmp").write_bytes(b"half written")
    return folder


@pytest.fixture
def runs(book: Path, trained_runs: Path) -> Path:
    """runs/smoke/01-first of the book, holding a copy of ``trained_runs``."""
    folder = book / "runs" / PROFILE / "01-first"
    shutil.copytree(trained_runs, folder)
    return folder


def test_freeze_writes_the_layout_and_keeps_finished_runs_without_their_training_state(book: Path,
                                                                                       runs: Path) -> None:
    fake_execute(book, ["01"])
    frozen = book / "_freeze" / PROFILE / "01-first"
    assert (frozen / "notebook.ipynb").is_file()
    record = json.loads((frozen / "fingerprint.json").read_text())
    assert set(record["fingerprint"]) == {"notebook", "params", "library", "results_version", "upstream"}
    assert list(record["fingerprint"]["library"]) == ["effgen/paths.py"]
    assert record["notebook_file_sha256"] == record["executed"]["notebook_sha256"]
    assert record["executed"]["seconds"] == 1.5 and record["runs"]["results_version"] == 1
    mirror = frozen / "runs"
    files = {p.relative_to(mirror).as_posix() for p in mirror.rglob("*") if p.is_file()}
    assert {"metrics.json", "big.csv.gz", "cls/weights.pt", "cls/history.csv", "cls/test_predictions.npy.gz",
            "corrected/generator.pt", "corrected/history.csv", "corrected/config.json", "fc_gan/generator.pt",
            "unfinished/checkpoint.pt"} <= files
    assert not {"cls/checkpoint.pt", "corrected/checkpoint.pt", "fc_gan/checkpoint.pt", "scratch.npz",
                "cls/checkpoint.pt.tmp"} & files
    with sqlite3.connect(mirror / "optuna.db") as study:
        assert study.execute("select value from trials").fetchall() == [(0.5,)]
    assert any(f.startswith("corrected/samples/") for f in files)
    assert (mirror / "cls/weights.pt").read_bytes() == (runs / "cls/weights.pt").read_bytes()  # copied as it is
    whole = torch.load(mirror / "unfinished/checkpoint.pt", weights_only=True)
    assert whole["step"] == 3 and "opt_g" in whole  # in progress: kept whole, so it resumes
    dropped = {d["path"]: d["reason"] for d in record["runs"]["dropped"]}  # nothing is lost silently
    # save_generator stores the MLP generator too, so both finished GAN runs keep generator.pt
    assert dropped == {"scratch.npz": "not a small artifact",
                       "cls/checkpoint.pt": "finished run; weights.pt reloads it",
                       "corrected/checkpoint.pt": "finished GAN run; generator.pt keeps its weights",
                       "fc_gan/checkpoint.pt": "finished GAN run; generator.pt keeps its weights"}
    # Freezing again changes no file: nothing to commit when nothing changed.
    stamps = {p: p.stat().st_mtime_ns for p in mirror.rglob("*") if p.is_file()}
    assert sync_mirror(book, PROFILE, "01-first", replace=True).written == 0
    assert {p: p.stat().st_mtime_ns for p in mirror.rglob("*") if p.is_file()} == stamps


def test_a_refreeze_records_whether_its_results_are_those_frozen_before(book: Path) -> None:
    runs = book / "runs" / PROFILE / "01-first"
    runs.mkdir(parents=True)
    record_file = book / "_freeze" / PROFILE / "01-first" / "fingerprint.json"

    def execute_with(accuracy: float, seconds: float) -> dict:
        (runs / "metrics.json").write_text(json.dumps({"provenance": {"git": "a1", "date": f"run {seconds}"},
                                                       "accuracy": accuracy, "seconds": seconds}))
        fake_execute(book, ["01"])
        return json.loads(record_file.read_text())

    assert "reproduced" not in execute_with(80.0, 1.0)  # nothing frozen before
    same = execute_with(80.0, 2.0)["reproduced"]
    assert same == {"against": {"at": "run 1.0", "git": "a1"}, "results": 1, "changed": 0, "new": 0, "gone": 0,
                    "first_changes": [], "first_new": [], "first_gone": []}
    changed = execute_with(80.5, 3.0)["reproduced"]
    assert changed["changed"] == 1 and changed["against"]["at"] == "run 2.0"
    assert changed["first_changes"] == [{"result": "accuracy", "before": 80.0, "now": 80.5}]
    assert freeze.read_record(book, PROFILE, "01-first")["reproduced"] == changed  # a valid record


def test_thaw_restores_what_is_absent_and_never_overwrites(book: Path, runs: Path) -> None:
    big, predictions = (runs / "big.csv").read_bytes(), (runs / "cls/test_predictions.npy").read_bytes()
    fake_execute(book, ["01"])
    (runs / "metrics.json").write_text('{"newer": true}')
    (runs / "big.csv").unlink()
    shutil.rmtree(runs / "cls")
    copied = thaw(book, PROFILE, "01-first")
    assert copied >= 4
    assert (runs / "metrics.json").read_text() == '{"newer": true}'
    assert (runs / "big.csv").read_bytes() == big and not (runs / "big.csv.gz").exists()
    assert not (runs / "cls/checkpoint.pt").exists()
    assert "optimizer" not in torch.load(runs / "cls/weights.pt", weights_only=True)
    assert (runs / "cls/test_predictions.npy").read_bytes() == predictions
    assert thaw(book, PROFILE, "01-first") == 0


def test_two_runs_of_a_chapter_thaw_at_once(book: Path, runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two background runs of one chapter start together and both thaw its mirror. Here the other
    # process (another pid) thaws everything while this one is half-way through its first copy.
    fake_execute(book, ["01"])
    shutil.rmtree(book / "runs")
    real_copy, real_pid = shutil.copyfile, checkpoints.os.getpid()
    other: list[int] = []

    def copy_while_another_process_thaws(src: Path, dst: Path) -> None:
        real_copy(src, dst)
        if not other:
            other.append(0)
            monkeypatch.setattr(checkpoints.os, "getpid", lambda: real_pid + 1)
            other[0] = thaw(book, PROFILE, "01-first")
            monkeypatch.setattr(checkpoints.os, "getpid", lambda: real_pid)

    monkeypatch.setattr(checkpoints.shutil, "copyfile", copy_while_another_process_thaws)
    mine = thaw(book, PROFILE, "01-first")
    assert other[0] >= 4 and mine < other[0]
    assert not list(runs.rglob("*.tmp"))
    monkeypatch.undo()
    assert thaw(book, PROFILE, "01-first") == 0


def test_a_snapshot_keeps_in_progress_state_and_is_thawed(book: Path, runs: Path) -> None:
    assert freeze.snapshot(book, PROFILE, ["01"], log=lambda _: None) == ["01-first"]
    folder = book / "_freeze" / PROFILE / "01-first"
    assert not (folder / "notebook.ipynb").exists() and (folder / "runs/unfinished/checkpoint.pt").is_file()
    assert states(book)["01-first"][0] == "missing"
    shutil.rmtree(book / "runs")
    prepare_runs(book, PROFILE, "01-first", [], log=lambda _: None)
    assert torch.load(runs / "unfinished/checkpoint.pt", weights_only=True)["step"] == 3

    # The run finishes in the next session; the next snapshot must not keep its in-progress checkpoint.
    from effgen.gan import train_gan

    config, images = tiny_gan("corrected", steps=6)
    assert train_gan(config, images, runs / "unfinished", show_progress=False).resumed_from == 3
    freeze.snapshot(book, PROFILE, ["01"], log=lambda _: None)
    assert not (folder / "runs/unfinished/checkpoint.pt").exists()
    assert (folder / "runs/unfinished/generator.pt").is_file()


def test_status_says_how_far_the_runs_of_an_unfinished_chapter_have_got(book: Path, runs: Path) -> None:
    from effgen.gan import train_gan

    freeze.snapshot(book, PROFILE, ["01"], log=lambda _: None)  # the mirror has "unfinished" at step 3
    config, images = tiny_gan("corrected", steps=6)
    train_gan(config, images, runs / "unfinished", stop_at=5, show_progress=False)  # the live run is further
    shutil.rmtree(runs / "cls")  # a finished classifier run left only in the mirror
    (runs / "broken").mkdir()
    (runs / "broken" / "checkpoint.pt").write_bytes(b"not a checkpoint")  # passed over, not a crash

    def runs_line() -> list[str]:
        text = freeze.format_status(book, PROFILE, freeze.status(book, PROFILE))
        return [line.strip() for line in text.splitlines() if line.strip().startswith("runs:")]

    assert runs_line() == ["runs: 3 finished; unfinished at 5 of 6 steps"]
    fake_execute(book, ["01"])
    assert runs_line() == []  # a frozen chapter lists none


def test_a_file_grown_over_the_size_limit_keeps_its_last_snapshot(book: Path, runs: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = book / "_freeze" / PROFILE / "01-first" / "runs"
    sync_mirror(book, PROFILE, "01-first", replace=False)
    kept = (mirror / "unfinished/checkpoint.pt").read_bytes()
    monkeypatch.setattr(freeze.mirror, "MAX_FILE_BYTES", len(kept) - 1)  # the next snapshot's copy is too large
    report = sync_mirror(book, PROFILE, "01-first", replace=False)
    assert "unfinished/checkpoint.pt" in {d["path"] for d in report.dropped}
    assert (mirror / "unfinished/checkpoint.pt").read_bytes() == kept


# ---------------------------------------------------------------- the training code reuses frozen runs

def test_a_thawed_finished_classifier_run_is_reused_without_training(book: Path, runs: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from effgen.classifier import loop, train_classifier

    config, (train, valid) = tiny_classifier()
    first = train_classifier(config, train, valid, torch.device("cpu"), runs / "cls")
    fake_execute(book, ["01"])
    shutil.rmtree(book / "runs")
    thaw(book, PROFILE, "01-first")
    monkeypatch.setattr(loop, "_train_steps", lambda *a, **k: pytest.fail("a finished run was trained again"))
    again = train_classifier(config, train, valid, torch.device("cpu"), runs / "cls")
    assert again.reused and again.history.drop(columns="seconds").equals(first.history.drop(columns="seconds"))
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ParamsError, match="different config"):
        train_classifier(config.replace(steps=6), train, valid, torch.device("cpu"), runs / "cls")


def test_frozen_gan_runs_reload_without_training(book: Path, runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from effgen.gan import train_gan
    from effgen.gan.trainer import Trainer as _Trainer

    config, images = tiny_gan("corrected")
    first = train_gan(config, images, runs / "corrected", show_progress=False, provenance={"dataset": "noise"})
    fc_config, _ = tiny_gan("fc_gan")
    fc_first = train_gan(fc_config, images, runs / "fc_gan", show_progress=False)
    fake_execute(book, ["01"])
    shutil.rmtree(book / "runs")
    thaw(book, PROFILE, "01-first")
    assert not (runs / "corrected/checkpoint.pt").exists()
    monkeypatch.setattr(_Trainer, "step", lambda self: pytest.fail("a finished run was trained again"))
    for cfg, before, name in ((config, first, "corrected"), (fc_config, fc_first, "fc_gan")):
        again = train_gan(cfg, images, runs / name, show_progress=False)
        assert again.finished and again.resumed_from == cfg.steps and again.seconds == 0
        assert np.array_equal(before.history.to_numpy(), again.history.to_numpy())
        for a, b in zip(before.generator.state_dict().values(), again.generator.state_dict().values()):
            assert torch.equal(a, b)
        assert sorted(again.samples) == sorted(before.samples)
    with pytest.raises(ParamsError, match="without its training state"):
        train_gan(dataclasses.replace(config, steps=6), images, runs / "corrected", show_progress=False)
    with pytest.raises(ParamsError, match="trained on noise, not cifar10"):
        train_gan(config, images, runs / "corrected", show_progress=False, provenance={"dataset": "cifar10"})


# ---------------------------------------------------------------- run and render: frozen means not executed

@pytest.mark.slow
def test_a_frozen_chapter_renders_without_execution(book: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill

    log: list[str] = []
    run_book(book, PROFILE, ["01"], log=log.append)  # really executes, with papermill
    executed = book / "_build" / PROFILE / "chapters/01-first.ipynb"
    assert "steps 2" in executed.read_text()
    assert (book / "_freeze" / PROFILE / "01-first/runs/metrics.json").read_text() == '{"steps": 2}'
    assert not any(line.strip().startswith("results:") for line in log)  # nothing frozen before to compare
    run_book(book, PROFILE, ["01"], force=True, log=log.append)
    assert "  results: all 1 results as frozen before (executed ?, git ?; costs and provenance aside)" in log
    shutil.rmtree(book / "_build")
    shutil.rmtree(book / "runs")  # a fresh clone: nothing but the sources and _freeze/

    def no_execution(*args, **kwargs):
        raise AssertionError("a frozen chapter was executed")

    monkeypatch.setattr(papermill, "execute_notebook", no_execution)
    planned = run_book(book, PROFILE, ["01"], log=log.append)
    assert [p.action for p in planned] == ["frozen"]
    assert "steps 2" in executed.read_text()
    shutil.rmtree(book / "_build")
    assert main(["render", "--profile", PROFILE, "--to", "html", "--engine", "offline"]) == 0
    page = (book / "_build" / PROFILE / "book/chapters/01-first.html").read_text()
    assert "steps 2" in page


def test_every_store_entry_the_committed_paper_book_lists_is_whole() -> None:
    """A commit that drops or changes a frozen store entry a record lists would break its chapter's thaw."""
    from effgen.book.freeze.store import check_entry, referenced

    repo = Path(__file__).resolve().parents[1]
    for entry in referenced(repo, "paper"):
        check_entry(repo, "paper", entry)  # FreezeDamaged when a file is missing or changed


def test_the_committed_paper_book_renders_without_a_warning(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """What `make report` shows a reader: every cross-reference and citation of the frozen chapters and the
    prose pages resolves (a chapter re-frozen alone can cite a label another chapter's freeze lacks)."""
    repo = Path(__file__).resolve().parents[1]
    for name in ("_quarto.yml", "references.bib", "index.ipynb", "chapters", "params", "_freeze"):
        (tmp_path / name).symlink_to(repo / name)  # read only: the render writes under tmp_path/_build
    monkeypatch.setenv("EFFGEN_ROOT", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RenderWarning)
        assert main(["render", "--profile", "paper", "--to", "html", "--engine", "offline"]) == 0
    assert (tmp_path / "_build/paper/book/index.html").is_file()


def test_the_committed_paper_book_shows_readers_no_machine_noise() -> None:
    """Outputs of the frozen chapters that are current hold no absolute path, download error or timestamp
    (metrics.json keeps those); a stale chapter shows its older execution until it runs again."""
    from test_claims import NOISE

    repo = Path(__file__).resolve().parents[1]
    current = [st.name for st in status(repo, "paper") if st.state == "frozen"]
    assert current, "no chapter of the committed paper book is frozen and current"
    for name in current:
        text = reader_text(json.loads((repo / "_freeze/paper" / name / "notebook.ipynb").read_text()))
        assert not [noise for noise in NOISE if noise in text], name


# ---------------------------------------------------------------- a damaged freeze is never run over

def _snapshot_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", [
    lambda path: path.write_bytes(path.read_bytes()[:70]),                   # truncated
    lambda path: path.write_bytes(b""),                                      # emptied
    lambda path: path.write_text('{"fingerprint": {"notebook": 1}}'),         # partly valid
    lambda path: path.write_text('{"fingerprint": 5, "executed": "x"}'),      # retyped
    lambda path: path.write_text("[1, 2]"),                                  # not an object
    lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "store": ["../../etc"]})),
], ids=["truncated", "empty", "partial", "retyped", "list", "store"])
def test_a_damaged_fingerprint_is_named_and_nothing_runs_over_it(book: Path, damage,
                                                                   capsys: pytest.CaptureFixture) -> None:
    fake_execute(book, [])
    damage(book / "_freeze" / PROFILE / "01-first" / "fingerprint.json")
    before = _snapshot_of(book / "_freeze")
    found = states(book)
    assert found["01-first"][0] == "damaged" and "fingerprint.json is damaged" in found["01-first"][1][0]
    assert found["02-second"][0] == "stale"  # its reader is only stale: the damage is reported once
    with pytest.raises(freeze.FreezeDamaged, match="git checkout -- _freeze/smoke/01-first/fingerprint.json"):
        run_book(book, PROFILE, ["03"], log=lambda line: None)
    assert main(["run", "--status", "--profile", PROFILE]) == freeze.FreezeDamaged.exit_code
    assert main(["render", "--profile", PROFILE, "--to", "html", "--engine", "offline"]) == 3
    assert main(["snapshot", "--profile", PROFILE]) == 3
    error = capsys.readouterr().err.strip().splitlines()
    assert error and all(line.startswith("effgen: error: _freeze/smoke/01-first/fingerprint.json is damaged")
                         for line in error)
    assert _snapshot_of(book / "_freeze") == before


def test_a_corrupted_frozen_notebook_is_damaged_not_rendered(book: Path) -> None:
    fake_execute(book, [])
    frozen = book / "_freeze" / PROFILE / "02-second" / "notebook.ipynb"
    frozen.write_bytes(frozen.read_bytes()[:-40])
    found = states(book)
    assert found["02-second"][0] == "damaged"
    assert "_freeze/smoke/02-second/notebook.ipynb is damaged" in found["02-second"][1][0]
    assert main(["render", "--profile", PROFILE, "--to", "html", "--engine", "offline"]) == 3


def test_a_chapter_that_did_not_finish_renders_with_a_banner() -> None:
    from effgen.book.render.ipynb import execution_progress, mark_unfinished

    def cell(status: str) -> dict:
        return {"cell_type": "code", "source": "x", "outputs": [], "metadata": {"papermill": {"status": status}}}

    title = {"cell_type": "markdown", "source": "# Chapter", "metadata": {}}
    finished = {"cells": [title, cell("completed"), cell("completed")], "metadata": {"papermill": {}}}
    killed = {"cells": [title, cell("completed"), cell("running"), cell("pending")], "metadata": {"papermill": {}}}
    assert execution_progress(finished) is None and mark_unfinished(finished, "c.ipynb") == finished
    assert execution_progress(killed) == (1, 3)
    banner = mark_unfinished(killed, "chapters/06-beyond.ipynb")["cells"][0]["source"]
    assert "did not finish executing" in banner and "Only 1 of its 3 code cells" in banner
    assert "effgen run 06-beyond" in banner
