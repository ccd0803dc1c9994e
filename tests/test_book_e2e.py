"""End to end: `effgen report --profile smoke` over every chapter (conftest's `smoke_book`)."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from conftest import SMOKE_BOOK

from effgen.runner import book_notebooks, chapter_name

pytestmark = SMOKE_BOOK


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


def _markdown_outputs(notebook: Path) -> str:
    """Every Markdown output of an executed notebook: the prose the chapter generated."""
    cells = json.loads(notebook.read_text())["cells"]
    return "\n".join("".join(out["data"]["text/markdown"]) for cell in cells for out in cell.get("outputs", [])
                     if "text/markdown" in out.get("data", {}))


@pytest.mark.slow
def test_summary_notes_say_what_produced_each_number(smoke_book: Path) -> None:
    """Item 6: no number of this build sits beside the paper's without its steps, data and seeds."""
    from effgen.paper import BY_KEY
    from effgen.summary import load_metrics, paper_vs_run

    table = paper_vs_run(load_metrics("smoke", root=smoke_book))
    index_text = " ".join(_text(smoke_book / "_build/smoke/book/index.html").split())
    for _, row in table.iterrows():
        number = next(n for n in BY_KEY.values() if n.label == row["Result"])
        if row["Chapter"] in ("01-activations", "02-classifier", "03-tuning") and row["This run"] != "—":
            if number.limit:
                assert row["Notes"].startswith(number.limit), row
            else:
                assert " steps per run; " in row["Notes"] and " seed" in row["Notes"], row
                assert ", a stand-in for AddNIST" in row["Notes"], row  # the smoke profile's rebuilt AddNIST
            assert row["Notes"].replace("'", "’")[:40] in index_text.replace("'", "’"), row
    # the summary page shows no parameter cells; chapters fold theirs, labelled with the profile's file
    index_html = (smoke_book / "_build/smoke/book/index.html").read_text()
    assert "profile = " not in index_html and "profile: str" not in index_html
    chapter = (smoke_book / "_build/smoke/book/chapters/01-activations.html").read_text()
    assert chapter.count('<details class="code-fold">') >= 2
    assert "Parameters of profile &#x27;smoke&#x27;, from params/smoke/01-activations.yml" in chapter


@pytest.mark.slow
def test_generated_sentences_follow_the_data(smoke_book: Path) -> None:
    """Item 9: sentences that used to be typed in now follow what the run measured."""
    executed = smoke_book / "_build/smoke/chapters"
    runs = smoke_book / "runs/smoke"
    data = json.loads((runs / "00-data/metrics.json").read_text())["metrics"]["addnist"]
    counts = data["class_counts"]
    prose = _markdown_outputs(executed / "00-data.ipynb")
    equal = all(min(c) == max(c) for c in counts.values())
    assert ("Every class is equally represented" in prose) == equal
    n_test = data["sizes"]["test"]
    prose = _markdown_outputs(executed / "02-classifier.ipynb")
    if n_test % 64:
        assert f"partial test batch of {n_test % 64} images" in prose
    else:
        assert "every test batch is full" in prose and "partial test batch of" not in prose
    prose = _markdown_outputs(executed / "03-tuning.ipynb")
    assert "draw the same batches" not in prose or "Batch size is searched" in prose
    assert "Its dropout range, [0.25, 0.35], was searched" in prose
    prose = _markdown_outputs(executed / "04-dcgan.ipynb")
    gan = json.loads((runs / "04-dcgan/metrics.json").read_text())["metrics"]["params"]["total"]
    assert ("exactly the paper's count" in prose) == (gan == 967_072)
    # Item 4: chapter 01 either picks each activation's learning rate or says its verdict favours Swish.
    smoke = yaml.safe_load((smoke_book / "params/smoke/01-activations.yml").read_text())
    prose = _markdown_outputs(executed / "01-activations.ipynb")
    if len(smoke.get("lr_factors", [1.0])) > 1:
        assert "Each activation ran at the learning rate it picked on validation data" in prose
    else:
        assert "biased in Swish's favour" in prose
    # Item 4: the verdicts name their test; no "two standard errors" rule is left.
    for name in ("01-activations.ipynb", "03-tuning.ipynb"):
        prose = _markdown_outputs(executed / name)
        assert "standard error" not in prose.replace("standard errors to count", "")
        assert "t-test" in prose or "no test is possible" in prose.lower()
