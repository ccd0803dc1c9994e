from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_notebook

from effgen.book.notebook_file import NotebookError, read_notebook
from effgen.book.params import declared_parameters, load_params_file, validate
from effgen.errors import ParamsError

PARAMS = '''profile: str = "quick"
seed: int = 0
lr: float = 1e-3
tag: str | None = None
seeds: list[int] = [0, 1]
plain = 5
use_amp: bool = False'''


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    return write_notebook(tmp_path / "nb.ipynb", PARAMS)


def test_declared_parameters_reads_annotations_and_defaults(notebook: Path) -> None:
    declared = declared_parameters(notebook)
    assert list(declared) == ["profile", "seed", "lr", "tag", "seeds", "plain", "use_amp"]
    assert declared["lr"].default == 1e-3
    assert declared["tag"].describe_type == "str | None"
    assert declared["plain"].describe_type == "int"  # inferred from the literal


@pytest.mark.parametrize("values", [
    {"seed": 3}, {"lr": 1}, {"lr": 0.5}, {"tag": None}, {"tag": "a"}, {"seeds": [1, 2, 3]}, {"use_amp": True},
])
def test_valid_values_pass(notebook: Path, values: dict) -> None:
    assert validate(values, declared_parameters(notebook), "p.yml") == values


@pytest.mark.parametrize("values, fragment", [
    ({"sed": 1}, "unknown key 'sed'"),
    ({"seed": "1"}, "key 'seed' must be int, got str"),
    ({"seed": True}, "key 'seed' must be int, got bool"),
    ({"lr": "fast"}, "key 'lr' must be float"),
    ({"seeds": 3}, "key 'seeds' must be list"),
    ({"profile": "paper"}, "set by the runner"),
])
def test_bad_values_name_file_key_and_allowed_keys(notebook: Path, values: dict, fragment: str) -> None:
    with pytest.raises(ParamsError) as err:
        validate(values, declared_parameters(notebook), "params/smoke/nb.yml")
    message = str(err.value)
    assert fragment in message
    assert message.startswith("params/smoke/nb.yml: ")
    assert "allowed keys: lr, plain, seed, seeds, tag, use_amp" in message
    assert "\n" not in message


def test_params_file_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "x.yml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ParamsError, match="must be a mapping"):
        load_params_file(path)
    path.write_text("a: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params_file(path)
    path.write_text("")
    assert load_params_file(path) == {}


def test_parameters_cell_must_hold_only_literal_assignments(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="literal"):
        declared_parameters(write_notebook(tmp_path / "a.ipynb", "x = len('abc')"))
    with pytest.raises(ParamsError, match="not a simple assignment"):
        declared_parameters(write_notebook(tmp_path / "b.ipynb", "print('hi')"))
    with pytest.raises(ParamsError, match="default of 'n' is not a int"):
        declared_parameters(write_notebook(tmp_path / "c.ipynb", "n: int = 'three'"))


@pytest.mark.parametrize("content, problem", [
    (b"{not json", "cannot read notebook .*nb.ipynb: Notebook does not appear to be JSON"),
    (b"[1, 2]", "cannot read notebook .*nb.ipynb"),
    (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "cannot read notebook .*nb.ipynb"),
    (b"\xff\xfe", "cannot read notebook .*nb.ipynb: 'utf-8' codec can't decode"),
])
def test_an_unreadable_notebook_is_one_line_naming_it(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "nb.ipynb"
    path.write_bytes(content)
    with pytest.raises(NotebookError, match=problem) as err:
        declared_parameters(path)
    assert "\n" not in str(err.value)
    with pytest.raises(NotebookError, match="cannot read notebook .*missing.ipynb: No such file"):
        read_notebook(tmp_path / "missing.ipynb")


def test_the_one_notebook_reader_joins_sources(notebook: Path) -> None:
    cells = read_notebook(notebook).cells
    assert any(cell.cell_type == "code" and cell.source.startswith('profile: str = "quick"\nseed') for cell in cells)
