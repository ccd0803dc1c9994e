"""Shared fixtures. Tests run on CPU with few threads; nothing here touches the network."""
from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parent.parent
# Test files live in memory where the machine offers it: an SQLite commit waits for the disk (~18 ms on this
# machine's disk, ~0.03 ms in tmpfs), and every Optuna study here commits each trial's every report. A TMPDIR
# the caller set wins; subprocesses inherit the choice.
SHARED_MEMORY = Path("/dev/shm")
if "TMPDIR" not in os.environ and SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK):
    os.environ["TMPDIR"] = str(SHARED_MEMORY)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # `pytest -n N`: N processes share the cores
# The package index stays out of the tests (and the notebooks they execute): MNIST's route through it is
# tested against a local folder (test_data_package_index.py), so a test that wants MNIST must bring it.
os.environ["PIP_NO_INDEX"] = "1"
EMPTY_FIND_LINKS = tempfile.mkdtemp(prefix="effgen-no-index-")
os.environ["PIP_FIND_LINKS"] = EMPTY_FIND_LINKS
atexit.register(shutil.rmtree, EMPTY_FIND_LINKS, ignore_errors=True)
if WORKERS > 1:  # more OpenMP threads than cores spin-wait on each other; kernels and scripts inherit this
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // WORKERS)))


# `make test` hands whole files to two workers in collection order (`--dist loadfile --no-loadscope-reorder`),
# each taking the next file as it runs out. The longest files go first, as measured there, so that the
# workers end together on short ones instead of one waiting on the other's last long file.
LONGEST_FIRST = ("test_book_e2e.py", "test_tuning_study.py", "test_tuning_cli.py", "test_interactive.py",
                 "test_typing.py",  # ~25 s on a fresh clone, where mypy has no cache yet
                 "test_faults.py", "test_gan_recipes.py", "test_freeze.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files keep their own order

def write_notebook(path: Path, parameters: str, *code: str, title: str = "# A chapter") -> Path:
    """A chapter-shaped notebook: a title, a tagged parameters cell, then code cells."""
    cells = [new_markdown_cell(title), new_code_cell(parameters, metadata={"tags": ["parameters"]})]
    cells += [new_code_cell(c) for c in code]
    notebook = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                   "language": "python"}})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def tiny_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A two-chapter book: 01 writes a marker file, 02 raises. EFFGEN_ROOT points at it."""
    root = tmp_path / "project"
    (root / "chapters").mkdir(parents=True)
    (root / "_quarto.yml").write_text(
        "book:\n  title: Tiny\n  chapters:\n    - chapters/01-first.ipynb\n    - chapters/02-second.ipynb\n"
    )
    write_notebook(root / "chapters/01-first.ipynb",
                   'profile: str = "quick"\nsteps: int = 1\nname: str = "x"',
                   "from pathlib import Path\nPath(f'marker-{profile}-{steps}.txt').write_text(name)")
    write_notebook(root / "chapters/02-second.ipynb",
                   'profile: str = "quick"\nfail: bool = True',
                   "if fail:\n    raise ValueError('the second chapter broke on purpose')")
    for profile in ("smoke", "quick"):
        (root / "params" / profile).mkdir(parents=True)
        (root / "params" / profile / "01-first.yml").write_text("steps: 3\n")
        (root / "params" / profile / "02-second.yml").write_text("")
    monkeypatch.setenv("EFFGEN_ROOT", str(root))
    return root


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    import torch

    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // WORKERS)))


def reader_text(notebook: dict) -> str:
    """What readers see of an executed notebook's outputs: streams and text/* data, as one string
    (images are base64 and may hold any letters)."""
    return json.dumps([[output.get("text"), {mime: value for mime, value in output.get("data", {}).items()
                                             if mime.startswith("text/")}]
                       for cell in notebook["cells"] for output in cell.get("outputs", [])])
