from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from effgen.book.runner import plan, select
from effgen.commands import main
from effgen.errors import ParamsError

InProcess = Callable[..., tuple[int, str]]  # effgen's exit code and stderr


def effgen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "effgen", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_select_accepts_number_name_or_stem(tiny_project: Path) -> None:
    assert select(tiny_project, ["02"]) == ["chapters/02-second.ipynb"]
    assert select(tiny_project, ["first"]) == ["chapters/01-first.ipynb"]
    assert select(tiny_project, ["02-second", "01"]) == ["chapters/01-first.ipynb", "chapters/02-second.ipynb"]
    with pytest.raises(ParamsError, match="matches no chapter"):
        select(tiny_project, ["07"])

    (tiny_project / "_quarto.yml").write_text("book: [\n")
    with pytest.raises(ParamsError, match="_quarto.yml: not valid YAML"):
        select(tiny_project, ["01"])


def test_plan_injects_profile_and_file_values(tiny_project: Path) -> None:
    jobs = plan(tiny_project, "smoke", ["01"])
    assert jobs[0].parameters == {"steps": 3, "profile": "smoke"}
    assert jobs[0].output == tiny_project / "_build/smoke/chapters/01-first.ipynb"


@pytest.fixture
def effgen_here(tiny_project: Path, capsys: pytest.CaptureFixture[str],
                monkeypatch: pytest.MonkeyPatch) -> InProcess:
    """`effgen ARGS` in this process, from the tiny project: its exit code and stderr. For refusals, which
    need no second interpreter's imports; `python -m effgen` itself is run by the tests below."""
    monkeypatch.chdir(tiny_project)

    def run(*args: str) -> tuple[int, str]:
        code = main(list(args))
        return code, capsys.readouterr().err

    return run


def test_unknown_key_exits_2_before_anything_runs(tiny_project: Path, effgen_here: InProcess) -> None:
    (tiny_project / "params/smoke/02-second.yml").write_text("fial: false\n")
    code, stderr = effgen_here("run", "--profile", "smoke")
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1
    assert "params/smoke/02-second.yml" in lines[0] and "'fial'" in lines[0] and "allowed keys: fail" in lines[0]
    assert not (tiny_project / "_build/smoke/chapters").exists()  # chapter 01 did not execute either
    assert not list(tiny_project.glob("marker-*"))


def test_wrong_type_exits_2(tiny_project: Path, effgen_here: InProcess) -> None:
    (tiny_project / "params/smoke/01-first.yml").write_text("steps: many\n")
    code, stderr = effgen_here("run", "01", "--profile", "smoke")
    assert code == 2
    assert "key 'steps' must be int, got str" in stderr


def test_missing_params_file_is_reported(tiny_project: Path, effgen_here: InProcess) -> None:
    (tiny_project / "params/smoke/02-second.yml").unlink()
    code, stderr = effgen_here("run", "--profile", "smoke")
    assert code == 2
    assert "params/smoke/02-second.yml is missing" in stderr


@pytest.mark.slow
def test_failing_chapter_stops_run_with_its_error_and_keeps_earlier_chapters(tiny_project: Path) -> None:
    result = effgen("run", "--profile", "smoke", cwd=tiny_project)
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert error_lines == [error_lines[-1]]  # one line, not papermill's wall of output
    assert "chapter 02-second failed" in error_lines[-1]
    assert "ValueError" in error_lines[-1] and "broke on purpose" in error_lines[-1]
    # Chapter 01 ran with the profile's parameters and its executed notebook is kept.
    assert (tiny_project / "marker-smoke-3.txt").read_text() == "x"
    executed = nbformat.read(tiny_project / "_build/smoke/chapters/01-first.ipynb", as_version=4)
    assert executed.cells[2].get("execution_count") is not None
    log = json.loads((tiny_project / "_build/smoke/run-log.json").read_text())
    assert [(r["name"], r["ok"]) for r in log] == [("01-first", True), ("02-second", False)]


def test_help_works_at_every_level(tiny_project: Path) -> None:
    top = effgen("--help", cwd=tiny_project)
    assert top.returncode == 0
    commands = ["run", "render", "report", "train", "data", "evaluate", "tune", "fid"]
    for command in [c for c in commands if f"    {c} " in top.stdout]:
        result = effgen(command, "--help", cwd=tiny_project)
        assert result.returncode == 0, result.stderr
        assert "usage: effgen " + command in result.stdout
    for command in ["run", "render", "report"]:
        assert f"    {command} " in top.stdout


def test_injected_cell_is_labelled_and_shown_like_the_parameters_cell(tmp_path: Path) -> None:
    """Item 6: the runner gives papermill's injected cell the parameters cell's display options."""
    from nbformat.v4 import new_code_cell, new_notebook

    from effgen.book.runner import ChapterJob, _label_injected_parameters

    def executed(options: str) -> Path:
        declared = new_code_cell(f"{options}\nprofile: str = 'quick'\nsteps: int = 10")
        declared.metadata["tags"] = ["parameters"]
        injected = new_code_cell('# Parameters\nprofile = "smoke"\nsteps = 4\n')
        injected.metadata["tags"] = ["injected-parameters"]
        path = tmp_path / f"{len(options)}.ipynb"
        nbformat.write(new_notebook(cells=[declared, injected]), path)
        return path

    params = tmp_path / "params" / "smoke" / "01-x.yml"
    params.parent.mkdir(parents=True)
    params.write_text("steps: 4\n")
    label = "Parameters of profile 'smoke', from params/smoke/01-x.yml"
    for options, expected in [
        ("#| include: false", ["#| include: false", f"# {label}"]),
        ('#| code-fold: true\n#| code-summary: "defaults"',
         ["#| code-fold: true", f'#| code-summary: "{label}"', f"# {label}"]),
        ("", [f"# {label}"]),
    ]:
        path = executed(options)
        job = ChapterJob("01-x", path, path, params, {"profile": "smoke", "steps": 4})
        _label_injected_parameters(job, tmp_path)
        cell = nbformat.read(path, as_version=4).cells[1]
        assert cell.source.splitlines()[:len(expected)] == expected
        assert cell.source.splitlines()[len(expected):] == ['profile = "smoke"', "steps = 4"]
