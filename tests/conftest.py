"""Shared fixtures. Tests run on CPU with few threads; nothing here touches the network."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parent.parent
BOOK_SOURCES = ("_quarto.yml", "references.bib", "index.ipynb", "chapters", "params")
SMOKE_BOOK = pytest.mark.xdist_group("smoke_book")  # under `pytest -n`, every user of the book on one worker


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

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # `pytest -n`: share the cores
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`effgen report --profile smoke` over every chapter, once per session, in a copy of the project.

    The copy has its own empty data/ and runs/, as on a fresh clone, so whatever stand-in data the
    chapters fall back to offline is exercised too. Tests that need a chapter's smoke outputs read
    them here rather than execute the chapter again; tests that change a run work on a copy.
    """
    root = tmp_path_factory.mktemp("book")
    for name in BOOK_SOURCES:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, root / name)
    env = {"EFFGEN_ROOT": str(root), "EFFGEN_DATA": str(root / "data"), "PATH": "/usr/bin:/bin",
           "HOME": str(Path.home())}
    result = subprocess.run([sys.executable, "-m", "effgen.cli", "report", "--profile", "smoke"], cwd=root,
                            env=env, capture_output=True, text=True, timeout=1500, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root


def copy_chapter(book: Path, chapter: str, root: Path) -> Path:
    """A one-chapter project at ``root`` holding ``book``'s smoke notebook, params and finished runs."""
    (root / "chapters").mkdir(parents=True)
    (root / "params/smoke").mkdir(parents=True)
    (root / "_quarto.yml").write_text(f"book:\n  chapters:\n    - chapters/{chapter}.ipynb\n")
    shutil.copy(book / "chapters" / f"{chapter}.ipynb", root / "chapters")
    shutil.copy(book / "params/smoke" / f"{chapter}.yml", root / "params/smoke")
    shutil.copytree(book / "runs/smoke" / chapter, root / "runs/smoke" / chapter)
    return root
