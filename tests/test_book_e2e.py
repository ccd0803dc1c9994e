"""End to end: `effgen report --profile smoke` over every chapter, in a copy of the project.

The copy has its own empty data/ and runs/, as on a fresh clone, so whatever stand-in data the
chapters fall back to offline is exercised too.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from effgen.runner import book_notebooks, chapter_name

from conftest import REPO

SOURCES = ("_quarto.yml", "references.bib", "index.ipynb", "chapters", "params")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def _text(path: Path) -> str:
    parser = _Text()
    parser.feed(path.read_text())
    return " ".join(parser.chunks)


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("book")
    for name in SOURCES:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, root / name)
    env = {"EFFGEN_ROOT": str(root), "EFFGEN_DATA": str(root / "data"), "PATH": "/usr/bin:/bin",
           "HOME": str(Path.home())}
    result = subprocess.run([sys.executable, "-m", "effgen.cli", "report", "--profile", "smoke"], cwd=root,
                            env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root


@pytest.mark.slow
def test_every_chapter_executes_and_writes_metrics(smoke_book: Path) -> None:
    for notebook in book_notebooks(smoke_book):
        assert (smoke_book / "_build/smoke" / notebook).is_file(), notebook
        if notebook != "index.ipynb":
            metrics = json.loads((smoke_book / "runs/smoke" / chapter_name(notebook) / "metrics.json").read_text())
            assert metrics["provenance"]["profile"] == "smoke"
            assert metrics["provenance"]["seed"] is not None


@pytest.mark.slow
def test_book_renders_to_html_and_pdf(smoke_book: Path) -> None:
    book = smoke_book / "_build/smoke/book"
    index = book / "index.html"
    assert index.is_file()
    summary = _text(index)
    assert "This run" in summary and "84.95" in summary  # the paper-vs-run table with the paper's numbers
    assert "not run yet" not in summary  # every chapter reported its headline numbers
    pages = sorted(book.rglob("*.html"))
    assert len(pages) >= len(book_notebooks(smoke_book))
    for page in pages:
        html = page.read_text()
        assert "#|" not in html, page.name
        assert "?@fig-" not in html and "?@tbl-" not in html and "?@sec-" not in html, page.name
    pdfs = list(book.glob("*.pdf"))
    assert len(pdfs) == 1 and pdfs[0].stat().st_size > 50_000
