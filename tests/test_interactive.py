"""A chapter opened in Jupyter, as a person would open it: its defaults reuse the frozen runs, a changed
parameter trains only what it adds, a wrong value stops the first cell in one line, and ``_freeze/`` is
never written.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import nbformat
import pytest
import torch
import yaml
from conftest import REPO
from nbclient import NotebookClient

from effgen.book.params import declared_parameters, load_params_file
from effgen.book.runner import book_notebooks
from effgen.classifier import ClassifierConfig, train_classifier
from effgen.classifier import loop as loop_module

CHAPTER = "02-classifier"  # the cheapest chapter that trains classifier runs over a list of seeds


def test_every_notebook_defaults_to_the_paper_profiles_values() -> None:
    """Run keys hash the configuration, so an opened chapter reuses the frozen paper runs only if its
    defaults are the paper profile's values."""
    for notebook in book_notebooks(REPO):
        declared = declared_parameters(REPO / notebook)
        assert declared["profile"].default == "paper", notebook
        paper = load_params_file(REPO / "params" / "paper" / f"{Path(notebook).stem}.yml")
        differing = {key: (declared[key].default, value) for key, value in paper.items()
                     if declared[key].default != value}
        assert differing == {}, f"{notebook}: defaults differ from params/paper: {differing}"


def test_every_parameter_says_what_it_changes() -> None:
    for notebook in book_notebooks(REPO):
        cell = next(c for c in nbformat.read(REPO / notebook, as_version=4).cells
                    if "parameters" in c.metadata.get("tags", []))
        bare = [line for line in cell.source.splitlines() if not line.startswith("#") and "  # " not in line]
        assert bare == [], f"{notebook}: parameters without a comment: {bare}"


# --- a wrong value, and papermill's own runs, in an IPython shell ------------------------------------

SHELL_SCRIPT = """
from IPython.core.interactiveshell import InteractiveShell
from effgen.runtime import parameters_injected

shell = InteractiveShell.instance()
shell.run_cell({parameters!r}, store_history=True)  # as a kernel runs cells: into the input history
shell.run_cell("steps = '10000'", store_history=True)  # a typo a person makes: a string for an int
result = shell.run_cell("from effgen.book.notebook import start_chapter\\n"
                        "chapter = start_chapter({chapter!r}, profile, seed, device)", store_history=True)
print("RESULT", type(result.error_in_exec).__name__, parameters_injected())
shell.run_cell("# Parameters\\nprofile = 'smoke'\\n", store_history=True)  # the cell papermill injects
print("INJECTED", parameters_injected())
"""


def one_chapter_project(root: Path) -> Path:
    """A project holding only chapter 02 and its smoke parameters, as the runner and Jupyter see one."""
    (root / "chapters").mkdir(parents=True)
    (root / "params" / "smoke").mkdir(parents=True)
    (root / "_quarto.yml").write_text(f"book:\n  chapters:\n    - chapters/{CHAPTER}.ipynb\n")
    shutil.copy(REPO / "chapters" / f"{CHAPTER}.ipynb", root / "chapters")
    shutil.copy(REPO / "params" / "smoke" / f"{CHAPTER}.yml", root / "params" / "smoke")
    return root


def parameters_source(notebook: Path) -> str:
    return next(c.source for c in nbformat.read(notebook, as_version=4).cells
                if "parameters" in c.metadata.get("tags", []))


def test_a_wrong_value_stops_the_first_cell_in_one_line(tmp_path: Path) -> None:
    root = one_chapter_project(tmp_path / "project")
    script = SHELL_SCRIPT.format(parameters=parameters_source(root / "chapters" / f"{CHAPTER}.ipynb"),
                                 chapter=CHAPTER)
    env = {**os.environ, "EFFGEN_ROOT": str(root), "IPYTHONDIR": str(tmp_path / "ipython")}
    result = subprocess.run([sys.executable, "-c", script], cwd=root / "chapters", env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    out = result.stdout
    assert "ParamsError: the parameters cell: steps must be int, got str '10000'" in out.splitlines(), out
    assert "Traceback" not in out + result.stderr and "%tb" not in out
    assert "RESULT ParamsError False" in out  # a person's run: nothing injected
    assert "INJECTED True" in out  # papermill's cell makes it a batch run: start_chapter leaves it to the runner
    assert not (root / "runs").exists()  # stopped before any folder was made


def test_progress_is_text_in_ci_and_off_for_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    from tqdm import std

    from effgen.runtime import TEXT_MININTERVAL, progress

    monkeypatch.delenv("EFFGEN_PROGRESS", raising=False)
    monkeypatch.setenv("CI", "true")
    bar = progress(total=3)
    assert type(bar) is std.tqdm and bar.mininterval == TEXT_MININTERVAL and not bar.disable
    bar.close()
    monkeypatch.setenv("EFFGEN_PROGRESS", "0")  # what the runner sets: nothing reaches the book
    bar = progress(total=3)
    assert bar.disable
    bar.close()


# --- an interrupted run -------------------------------------------------------------------------------

def test_a_keyboard_interrupt_mid_epoch_leaves_a_run_that_resumes(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EFFGEN_PROGRESS", raising=False)  # the interrupt rides on the progress bar's updates
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 20, (160,), generator=g)
    x = 0.3 * torch.randn(160, 3, 28, 28, generator=g) + (y.float() / 19 - 0.5)[:, None, None, None]
    data = ((x, y), (x[:60], y[:60]))
    config = ClassifierConfig.from_dict({"model": "baseline", "steps": 8, "steps_per_epoch": 4, "batch_size": 16,
                                         "eval_samples": 40})
    straight = train_classifier(config, *data, torch.device("cpu"), tmp_path / "straight")

    real_progress = loop_module.progress

    def interrupted_at_step_6(*args: Any, **kwargs: Any) -> Any:
        bar = real_progress(*args, **kwargs)
        update = bar.update

        def update_or_interrupt(n: int = 1) -> Any:
            if bar.n + n >= 6:  # Ctrl-C (Kernel > Interrupt) in the middle of the second epoch
                raise KeyboardInterrupt
            return update(n)

        bar.update = update_or_interrupt
        return bar

    monkeypatch.setattr(loop_module, "progress", interrupted_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(config, *data, torch.device("cpu"), tmp_path / "run")
    monkeypatch.setattr(loop_module, "progress", real_progress)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 4  # the first epoch's checkpoint, written whole before the interrupt

    resumed = train_classifier(config, *data, torch.device("cpu"), tmp_path / "run")  # the lock was let go
    assert not resumed.reused
    assert resumed.history.drop(columns="seconds").equals(straight.history.drop(columns="seconds"))


# --- the chapter, opened and run -----------------------------------------------------------------------

def tree_state(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: its sha256 and modification time."""
    return {path.relative_to(folder).as_posix(): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*")) if path.is_file()}


def edit_parameters(notebook: nbformat.NotebookNode, values: dict[str, Any]) -> None:
    """Set values in the parameters cell as a person does: by editing the assignment's line."""
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    lines = cell.source.splitlines()
    for key, value in values.items():
        pattern = re.compile(rf"^{key}\s*(:[^=]*)?=")
        index = next(i for i, line in enumerate(lines) if pattern.match(line))
        lines[index] = f"{key} = {value!r}"
    cell.source = "\n".join(lines)


def store_runs(store: Path) -> set[str]:
    """The classifier runs of a run store, live or frozen: a finished one holds weights.pt."""
    return {path.name for path in (store / "classifier").iterdir()
            if (path / "weights.pt").is_file() or (path / "checkpoint.pt").is_file()}


def unpacked_bytes(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


@pytest.fixture(scope="module")
def frozen_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Chapter 02 run once by `effgen run --profile smoke` and frozen; then its working runs are deleted,
    so that, as on a fresh clone, only ``_freeze/`` holds them."""
    root = one_chapter_project(tmp_path_factory.mktemp("book") / "project")
    env = {**os.environ, "EFFGEN_ROOT": str(root), "EFFGEN_DATA": str(root / "data")}
    result = subprocess.run([sys.executable, "-m", "effgen", "run", CHAPTER, "--profile", "smoke"], cwd=root,
                            env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shutil.rmtree(root / "runs" / "smoke")
    return root


@pytest.mark.slow
def test_an_opened_chapter_reuses_the_frozen_runs_and_trains_only_an_added_seed(
        frozen_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = frozen_project
    frozen = root / "_freeze" / "smoke" / CHAPTER
    before = tree_state(root / "_freeze")
    smoke = yaml.safe_load((root / "params" / "smoke" / f"{CHAPTER}.yml").read_text())
    seeds = smoke["seeds"]
    notebook = nbformat.read(root / "chapters" / f"{CHAPTER}.ipynb", as_version=4)
    edit_parameters(notebook, {**smoke, "profile": "smoke", "seeds": [*seeds, max(seeds) + 1]})

    # As Jupyter runs it: from chapters/, the project found from there, progress bars on.
    for name in ("EFFGEN_ROOT", "EFFGEN_DATA", "EFFGEN_PROGRESS"):
        monkeypatch.delenv(name, raising=False)
    kernels = root.parent / "jupyter"
    (kernels / "kernels" / "python3").mkdir(parents=True)
    (kernels / "kernels" / "python3" / "kernel.json").write_text(json.dumps(
        {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(kernels))  # this interpreter, whatever kernels the machine has
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(root / "chapters")}}).execute()

    first = next(c for c in notebook.cells if c.cell_type == "code" and "start_chapter(" in c.source)
    said = "".join(o.get("text", "") for o in first.outputs if o.output_type == "stream")
    frozen_runs = store_runs(root / "_freeze" / "smoke" / "store")
    assert f"{CHAPTER}, run interactively at profile 'smoke'" in said
    assert re.search(r"thawed \d+ frozen files into runs/smoke/" + CHAPTER, said), said
    assert f"runs on hand: {len(frozen_runs)} finished" in said, said
    assert f"seeds = {[*seeds, max(seeds) + 1]!r} (frozen: {seeds!r})" in said, said

    working = root / "runs" / "smoke" / CHAPTER
    store = root / "runs" / "smoke" / "store" / "classifier"
    new = store_runs(store.parent) - frozen_runs
    assert frozen_runs <= store_runs(store.parent)
    assert new and all(name.startswith(f"seed{max(seeds) + 1}-") for name in new), new
    trained_at = min((store / name / "checkpoint.pt").stat().st_mtime_ns for name in new)
    for name in frozen_runs:  # reused by key: the frozen weights, untouched since the thaw, and no checkpoint
        weights = store / name / "weights.pt"
        assert weights.read_bytes() == (root / "_freeze/smoke/store/classifier" / name / "weights.pt").read_bytes()
        assert weights.stat().st_mtime_ns < trained_at and not (store / name / "checkpoint.pt").exists(), name
    for name in new:  # trained here: a whole checkpoint, optimiser state included, and its weights
        state = torch.load(store / name / "checkpoint.pt", weights_only=True)
        assert state["step"] == state["config"]["steps"] and "optimizer" in state, name
        assert (store / name / "weights.pt").is_file(), name

    # The runner's metrics stay the frozen ones; the experiment's are kept out of the summary's sight.
    assert (working / "metrics.json").read_bytes() == unpacked_bytes(
        next((frozen / "runs").glob("metrics.json*")))
    interactive = json.loads((root / "runs" / "smoke" / ".interactive" / CHAPTER / "metrics.json").read_text())
    assert interactive["chapter"] == CHAPTER
    assert tree_state(root / "_freeze") == before  # byte for byte, and not even rewritten
    assert not textwrap.dedent(said).count("Traceback")
