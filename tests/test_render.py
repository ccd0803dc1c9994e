"""The book renderer: offline HTML + PDF from the miniature book in tests/fixtures/book, and the
Quarto path with a fake ``quarto`` on PATH. The fixture's notebooks carry committed outputs
(tests/fixtures/book/make_fixture.py wrote them); chapter 03 deliberately has no executed copy."""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from effgen.book.render import RenderError, RenderWarning, render_book
from effgen.book.render.ipynb import split_cell_options
from effgen.errors import EffgenError

FIXTURE = Path(__file__).parent / "fixtures" / "book"
PAGES = ("index.html", "chapters/01-alpha.html", "chapters/02-beta.html", "chapters/03-gamma.html")


class Page(HTMLParser):
    """The parts of a rendered page the tests look at, collected with the standard library parser."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.links: list[tuple[str, str]] = []  # (text, href)
        self.ids: set[str] = set()
        self.captions: list[str] = []
        self.callouts: list[tuple[str, str]] = []  # (kind, title)
        self.text_parts: list[str] = []
        self._stack: list[tuple[str, dict[str, str], list[str]]] = []
        self.feed(text)
        self.text = "".join(self.text_parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag not in ("img", "meta", "br", "hr", "link", "input"):
            self._stack.append((tag, attributes, []))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            open_tag, attributes, parts = self._stack.pop()
            text = " ".join("".join(parts).split())
            if self._stack:
                self._stack[-1][2].append("".join(parts))
            if open_tag == "a":
                self.links.append((text, attributes.get("href", "")))
            if open_tag in ("figcaption", "caption"):
                self.captions.append(text)
            classes = attributes.get("class", "").split()
            if open_tag == "div" and "callout-title" in classes:
                self._title = text
            if open_tag == "div" and "callout" in classes:
                kind = next(c.removeprefix("callout-") for c in classes if c.startswith("callout-"))
                self.callouts.append((kind, getattr(self, "_title", "")))
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)
        if self._stack:
            self._stack[-1][2].append(data)


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("book")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        produced = render_book(FIXTURE, FIXTURE / "executed", out, engine="offline")
    pages = {name: Page((out / name).read_text(encoding="utf-8")) for name in PAGES}
    raw = {name: (out / name).read_text(encoding="utf-8") for name in PAGES}
    return {"out": out, "produced": produced, "pages": pages, "raw": raw,
            "warnings": [str(w.message) for w in caught if issubclass(w.category, RenderWarning)]}


def test_outputs_are_where_the_api_says(book: dict) -> None:
    out = book["out"]
    assert book["produced"] == {"html": out / "index.html", "pdf": out / "a-miniature-book.pdf"}
    for name in PAGES:
        assert (out / name).is_file()


def test_figures_and_tables_are_numbered_per_chapter_with_captions(book: dict) -> None:
    pages = book["pages"]
    assert pages["index.html"].captions == ["Table 1: Paper versus this run"]
    alpha = pages["chapters/01-alpha.html"].captions
    assert len(alpha) == 2 and alpha[1] == "Table 1.1: Scores per activation"
    assert alpha[0].startswith("Figure 1.1: The sigmoid curve") and alpha[0].endswith("over a small range")
    assert pages["chapters/02-beta.html"].captions == ["Figure 2.1: A square drawn as SVG",
                                                       "Figure 2.2: A scatter of noise"]
    # A labelled figure whose chapter was not executed keeps its number, so references still resolve.
    assert pages["chapters/03-gamma.html"].captions == ["Figure 3.1: A plot that needs execution"]
    assert "produced no image in this build" in pages["chapters/03-gamma.html"].text


def test_cross_references_are_numbered_links_to_existing_targets(book: dict) -> None:
    pages = book["pages"]
    beta = dict(pages["chapters/02-beta.html"].links)
    assert beta["Figure 2.2"] == "#fig-beta-scatter"
    assert beta["Figure 1.1"] == "01-alpha.html#fig-alpha-curve"
    assert beta["Table 1.1"] == "01-alpha.html#tbl-alpha-scores"
    assert beta["Section 2.1"] == "#sec-beta-results"  # a heading printed by a code cell
    assert beta["Chapter 1"] == "01-alpha.html#sec-alpha"
    assert beta["2.1"] == "#fig-beta-svg"  # [-@fig-beta-svg]: the number alone
    assert beta["first chapter"] == "01-alpha.html"  # a Markdown link to a chapter's notebook
    index = dict(pages["index.html"].links)
    assert index["Figure 1.1"] == "chapters/01-alpha.html#fig-alpha-curve"
    assert index["Chapter 2"] == "chapters/02-beta.html#sec-beta"
    assert dict(pages["chapters/01-alpha.html"].links)["Section 1.1"] == "#sec-alpha-method"
    for name, page in pages.items():
        for text, href in page.links:
            path, _, anchor = href.partition("#")
            if anchor and not path.startswith(("http", "data:")):
                target = pages[os.path.normpath(os.path.join(os.path.dirname(name), path))] if path else page
                assert anchor in target.ids, f"{name}: link {text!r} -> {href} has no target"


def test_no_quarto_syntax_leaks_into_pages(book: dict) -> None:
    for name, page in book["pages"].items():
        assert "#|" not in book["raw"][name], name
        for leftover in ("@fig-", "@tbl-", "@sec-", "?@", ":::", "{#sec", "callout-note}"):
            assert leftover not in page.text, (name, leftover)
    assert not any("unresolved" in w for w in book["warnings"]), book["warnings"]


def test_cell_options_echo_output_and_streams(book: dict) -> None:
    alpha = book["pages"]["chapters/01-alpha.html"]
    assert "np.linspace" in alpha.text  # echo defaults to true (execute: echo: true)
    assert "to_markdown" not in alpha.text  # #| echo: false
    assert "stdout is shown" in alpha.text
    assert "print('hidden-output' + '-marker')" in alpha.text  # output: false keeps the code...
    for hidden in ("hidden-output-marker", "stderr-marker", "warning-marker"):  # ...but drops these
        assert hidden not in alpha.text
    results = [attrs for tag, attrs in alpha.tags if tag == "div" and "cell-output" in attrs.get("class", "")]
    assert len(results) == 2  # the stdout stream and the `1 + 1` result
    assert "<math" in book["raw"]["chapters/01-alpha.html"] and "$" not in alpha.text


def test_images_are_embedded(book: dict) -> None:
    sources = [attrs["src"] for page in book["pages"].values() for tag, attrs in page.tags if tag == "img"]
    assert len(sources) == 3
    assert sum(s.startswith("data:image/png;base64,") for s in sources) == 2
    assert sum(s.startswith("data:image/svg+xml;base64,") for s in sources) == 1


def test_pages_are_self_contained(book: dict) -> None:
    for name, page in book["pages"].items():
        for tag, attrs in page.tags:
            for key in ("src", "href") if tag != "a" else ():
                assert not attrs.get(key, "").startswith(("http:", "https:", "//")), (name, tag, attrs)
            assert tag not in ("script", "iframe"), name
        assert "<style>" in book["raw"][name]


def test_citations_resolve_and_emails_are_not_citations(book: dict) -> None:
    alpha = book["pages"]["chapters/01-alpha.html"]
    assert "Hu et al." in alpha.text and "Sandler et al. 2018" in alpha.text
    assert "Squeeze-and-Excitation Networks" in alpha.text  # the chapter's reference list
    assert "someone@example.org" in alpha.text
    assert "hu2018squeeze?" not in alpha.text
    assert not any("Citeproc" in w for w in book["warnings"]), book["warnings"]


def test_callouts_in_markdown_and_outputs(book: dict) -> None:
    pages = book["pages"]
    assert pages["chapters/01-alpha.html"].callouts == [
        ("note", "What produced this chapter"),  # printed by a code cell
        ("note", "A titled note"), ("warning", "Warning"), ("tip", "Tip title"),
        ("important", "Important title"), ("caution", "Caution title"),
    ]
    beta = pages["chapters/02-beta.html"]
    assert ("warning", "A stand-in dataset") in beta.callouts
    assert ("error", "Error") in beta.callouts and "deliberate failure" in beta.text
    # A callout's heading is its title, not a numbered section of the chapter.
    main = book["raw"]["chapters/02-beta.html"].split("<main")[1].split("</main>")[0]
    assert main.count("<h2") == 3  # Results, Cross-references, References


def test_unexecuted_chapter_says_so_at_its_top(book: dict) -> None:
    gamma = book["raw"]["chapters/03-gamma.html"]
    main = gamma[gamma.index("<main"):]
    assert main.index("Gamma chapter") < main.index("Not executed in this build") < main.index("never executed")
    assert book["pages"]["chapters/03-gamma.html"].callouts[0] == ("warning", "Not executed in this build")
    assert any("03-gamma.ipynb has no executed copy" in w for w in book["warnings"])


def test_sidebar_numbers_and_prev_next(book: dict) -> None:
    beta = book["pages"]["chapters/02-beta.html"]
    links = beta.links
    sidebar = [(t, h) for t, h in links if h in ("../index.html", "01-alpha.html", "02-beta.html", "03-gamma.html")]
    assert ("Summary", "../index.html") in sidebar
    assert ("1 Alpha chapter", "01-alpha.html") in sidebar and ("3 Gamma chapter", "03-gamma.html") in sidebar
    assert ("← Previous1 Alpha chapter", "01-alpha.html") in links
    assert ("Next →3 Gamma chapter", "03-gamma.html") in links
    index_links = book["pages"]["index.html"].links
    assert not any(t.startswith("← Previous") for t, _ in index_links)
    assert ("Next →1 Alpha chapter", "chapters/01-alpha.html") in index_links
    assert "A Miniature Book" in book["pages"]["index.html"].text and "Test Author" in book["pages"]["index.html"].text


def test_pdf_has_title_toc_numbered_figures_callouts_and_references(book: dict) -> None:
    from pypdf import PdfReader

    pdf = PdfReader(book["produced"]["pdf"])
    text = " ".join(" ".join(page.extract_text().split()) for page in pdf.pages)
    for expected in ("A Miniature Book", "Test Author", "Contents", "1 Alpha chapter", "2.1 Results from an output",
                     "Figure 1.1: The sigmoid curve", "Figure 2.1: A square drawn as SVG",
                     "Figure 2.2: A scatter of noise", "Table 1.1: Scores per activation",
                     "Table 1: Paper versus this run", "Figure 3.1: A plot that needs execution",
                     "Compare Figure 2.2 with Figure 1.1", "see Section 2.1 and Chapter 1",
                     "What produced this chapter", "Caution title", "Not executed in this build",
                     "deliberate failure", "References", "Squeeze-and-Excitation Networks", "Hu et al. (2018)"):
        assert expected in text, expected
    for leaked in ("#|", "@fig-", "?@", "hidden-output-marker"):
        assert leaked not in text


def _write_book(root: Path, chapters: dict[str, list]) -> Path:
    (root / "_quarto.yml").parent.mkdir(parents=True, exist_ok=True)
    listing = "".join(f"    - {name}\n" for name in chapters)
    (root / "_quarto.yml").write_text(f"book:\n  title: Small\n  chapters:\n{listing}")
    for name, cells in chapters.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(new_notebook(cells=cells), root / name)
    return root


def test_unresolved_reference_is_visible_and_warned(tmp_path: Path) -> None:
    root = _write_book(tmp_path / "p", {"one.ipynb": [new_markdown_cell("# One\n\nSee @fig-missing.")]})
    with pytest.warns(RenderWarning, match="unresolved cross-reference @fig-missing"):
        render_book(root, root, tmp_path / "out", formats=["html"], engine="offline")
    assert "?@fig-missing" in Page((tmp_path / "out" / "one.html").read_text()).text


def test_bad_inputs_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="no _quarto.yml"):
        render_book(tmp_path, tmp_path, tmp_path / "out")
    root = _write_book(tmp_path / "p", {"one.ipynb": [new_markdown_cell("# One")]})
    (root / "_quarto.yml").write_text("book:\n  title: T\n  chapters:\n    - one.ipynb\n    - two.ipynb\n")
    with pytest.raises(RenderError, match="two.ipynb") as err:
        render_book(root, root, tmp_path / "out")
    assert isinstance(err.value, EffgenError)
    with pytest.raises(RenderError, match="formats"):
        render_book(root, root, tmp_path / "out", formats=["docx"])
    (root / "_quarto.yml").write_text("book: [\n")
    with pytest.raises(RenderError, match=f"^{re.escape(str(root / '_quarto.yml'))}: not valid YAML \\(.*line 2") as err:
        render_book(root, root, tmp_path / "out")
    assert "\n" not in str(err.value)
    (root / "_quarto.yml").write_text("book:\n  title: T\n  chapters:\n    - one.ipynb\n")
    if shutil.which("quarto") is None:
        with pytest.raises(RenderError, match="quarto is not on PATH"):
            render_book(root, root, tmp_path / "out", engine="quarto")


def test_typst_errors_are_reported_briefly(tmp_path: Path) -> None:
    broken = new_markdown_cell("# Broken\n\n```{=typst}\n#no-such-function(1)\n```")
    root = _write_book(tmp_path / "p", {"broken.ipynb": [broken]})
    with pytest.raises(RenderError, match="Typst could not compile.*unknown variable: no-such-function"):
        render_book(root, root, tmp_path / "out", formats=["pdf"], engine="offline")


def test_cell_options_parse_as_yaml_and_bad_ones_name_the_cell() -> None:
    options, code = split_cell_options('#| label: fig-x\n#| fig-cap: "A: caption"\n#|echo: false\nx = 1', "nb")
    assert options == {"label": "fig-x", "fig-cap": "A: caption", "echo": False} and code == "x = 1"
    assert split_cell_options("x = 1\n#| label: late", "nb") == ({}, "x = 1\n#| label: late")
    with pytest.raises(RenderError, match="^nb cell 3: '#\\|' cell options: not valid YAML \\(.* at line 1, column"):
        split_cell_options("#| label: [unclosed\nx = 1", "nb cell 3")
    with pytest.raises(RenderError, match="^nb cell 3: '#\\|' cell options: .* must be a mapping of keys to values"):
        split_cell_options("#| - fig-x\nx = 1", "nb cell 3")


FAKE_QUARTO = """#!{python}
import json, os, pathlib, shutil, sys
log = pathlib.Path(os.environ["FAKE_QUARTO_LOG"])
args = sys.argv[1:]
stage = pathlib.Path.cwd()
with open(log / "calls.jsonl", "a") as f:
    f.write(json.dumps({{"cwd": str(stage), "args": args,
                        "files": sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())}}) + "\\n")
if not (log / "stage").exists():
    shutil.copytree(stage, log / "stage")
out = pathlib.Path(args[args.index("--output-dir") + 1])
out.mkdir(parents=True, exist_ok=True)
if args[args.index("--to") + 1] == "html":
    (out / "index.html").write_text("<html>fake</html>")
    (out / "chapters").mkdir(exist_ok=True)
    (out / "chapters" / "01-alpha.html").write_text("<html>fake</html>")
else:
    (out / "Fake-Book.pdf").write_bytes(b"%PDF-1.7 fake")
"""


def test_quarto_engine_stages_executed_notebooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    fake = bin_dir / "quarto"
    fake.write_text(FAKE_QUARTO.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_QUARTO_LOG", str(log))
    out = tmp_path / "out"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RenderWarning)  # chapter 03 is not executed, on purpose
        produced = render_book(FIXTURE, FIXTURE / "executed", out)  # auto: quarto is on PATH

    assert produced == {"html": out / "index.html", "pdf": out / "a-miniature-book.pdf"}
    assert (out / "chapters" / "01-alpha.html").is_file() and (out / "a-miniature-book.pdf").read_bytes().startswith(b"%PDF")
    calls = [json.loads(line) for line in (log / "calls.jsonl").read_text().splitlines()]
    assert [c["args"][:3] for c in calls] == [["render", "--to", "html"], ["render", "--to", "typst"]]
    assert all(c["args"][3] == "--output-dir" for c in calls)
    assert all(Path(c["cwd"]) != FIXTURE and not Path(c["cwd"]).is_relative_to(FIXTURE) for c in calls)
    files = calls[0]["files"]
    assert {"_quarto.yml", "references.bib", "index.ipynb", "chapters/01-alpha.ipynb"} <= set(files)
    assert not any(f.startswith("executed/") for f in files)  # the build folder is not staged
    stage = log / "stage"
    for name in ("index.ipynb", "chapters/01-alpha.ipynb", "chapters/02-beta.ipynb"):
        assert (stage / name).read_text() == (FIXTURE / "executed" / name).read_text()
    gamma = json.loads((stage / "chapters/03-gamma.ipynb").read_text())
    assert "Not executed in this build" in "".join(gamma["cells"][0]["source"])


def test_offline_engine_ignores_quarto_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "quarto"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    root = _write_book(tmp_path / "p", {"index.ipynb": [new_markdown_cell("# Home"), new_code_cell("1")]})
    assert render_book(root, root, tmp_path / "out", formats=["html"], engine="offline") == {
        "html": tmp_path / "out" / "index.html"}
    with pytest.raises(RenderError, match="quarto render --to html failed \\(exit 3\\)"):
        render_book(root, root, tmp_path / "out2", formats=["html"], engine="quarto")


def _tagged(source: str, tag: str) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    cell.metadata["tags"] = [tag]
    return cell


def test_hidden_and_folded_parameter_cells(tmp_path: Path) -> None:
    """Item 6: the summary page hides its parameter cells; chapters fold theirs (HTML) or print them small (PDF)."""
    from pypdf import PdfReader

    label = "Parameters of profile 'smoke', from params/smoke/one.yml"
    root = _write_book(tmp_path / "p", {
        "index.ipynb": [new_markdown_cell("# Summary {.unnumbered}\n\nSummary text."),
                        _tagged("#| include: false\nprofile: str = 'quick'  # DEFAULTS-MARKER", "parameters"),
                        _tagged(f"#| include: false\n# {label}\nprofile = 'smoke'  # INJECTED-MARKER",
                                "injected-parameters")],
        "one.ipynb": [new_markdown_cell("# One\n\nChapter text."),
                      _tagged('#| code-fold: true\n#| code-summary: "Parameters: defaults"\n'
                              "profile: str = 'quick'  # DEFAULTS-MARKER", "parameters"),
                      _tagged(f'#| code-fold: true\n#| code-summary: "{label}"\n# {label}\n'
                              "profile = 'smoke'  # INJECTED-MARKER", "injected-parameters"),
                      new_code_cell("#| code-fold: show\nshown_but_foldable = 1"),
                      new_code_cell("plain_code = 2")],
    })
    produced = render_book(root, root, tmp_path / "out", engine="offline")
    summary = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "DEFAULTS-MARKER" not in summary and "INJECTED-MARKER" not in summary
    assert "Summary text." in summary
    chapter = (tmp_path / "out" / "one.html").read_text(encoding="utf-8")
    page = Page(chapter)
    assert [attrs.get("open") for tag, attrs in page.tags if tag == "details"] == [None, None, ""]
    assert "<summary>Parameters: defaults</summary>" in chapter
    assert f"<summary>{label.replace(chr(39), '&#x27;')}</summary>" in chapter
    assert "DEFAULTS-MARKER" in page.text and "INJECTED-MARKER" in page.text  # folded, not removed
    assert "<summary>Code</summary>" in chapter  # Quarto's default summary
    pdf = "\n".join(p.extract_text() for p in PdfReader(produced["pdf"]).pages)
    assert "DEFAULTS-MARKER" in pdf and "INJECTED-MARKER" in pdf and "Parameters: defaults" in pdf
    assert pdf.count("DEFAULTS-MARKER") == 1  # the summary page's hidden copy is not in the PDF


def test_an_executed_cell_that_showed_nothing_leaves_no_empty_caption() -> None:
    from effgen.book.render.ipynb import ImageStore, notebook_to_markdown

    def figure_cell(execution_count: int | None) -> dict:
        return {"cell_type": "code", "execution_count": execution_count, "metadata": {}, "outputs": [],
                "source": '#| label: fig-skipped\n#| fig-cap: "Only when the profile trains it"\nif False:\n    plt.show()'}

    def rendered(cell: dict) -> str:
        notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "Text."}, cell], "metadata": {}}
        return notebook_to_markdown(notebook, echo=False, warning=False, images=ImageStore(), where="test")

    skipped = rendered(figure_cell(7))
    assert "fig-skipped" not in skipped and "Only when" not in skipped and "Text." in skipped
    never_run = rendered(figure_cell(None))  # an unexecuted chapter keeps the numbered placeholder
    assert "#fig-skipped" in never_run and "produced no image in this build" in never_run


def _markdown_output_cell(source: str, markdown: str) -> dict:
    """A code cell as papermill leaves it: executed, its Markdown output in place."""
    return {"cell_type": "code", "id": f"cell-{abs(hash(source)) % 10**8}", "execution_count": 1, "metadata": {},
            "source": source,
            "outputs": [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                         "data": {"text/markdown": markdown, "text/plain": "<Markdown>"}}]}


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed")
def test_summary_tables_fit_the_pdf_page(tmp_path: Path) -> None:
    """The summary page and the appendix, rendered from the paper profile's frozen metrics: in the PDF
    each claim's paper value and this book's value stand on its row's first line, and no word of a
    narrow column is split ("02-clas-si-fier")."""
    import subprocess

    from effgen.book import claims, summary, summary_tables
    from effgen.book.notebook import markdown_table

    fixture = Path(__file__).parent / "fixtures" / "summary"
    metrics = {path.stem: json.loads(path.read_text()) for path in sorted(fixture.glob("*.json"))}
    assessed = claims.assess(metrics)
    records = {name: {"executed": {"seconds": 600.0}} for name in metrics}
    tables = {
        "claims": claims.claims_frame(assessed),
        "numbers": summary.paper_vs_run(metrics),
        "compute": summary_tables.compute_table(metrics, records, {"02-classifier": 10_800.0}),
        "deviations": summary_tables.deviations(metrics),
    }
    cells = [new_markdown_cell("# Summary {.unnumbered}"),
             _markdown_output_cell("md(bottom)", claims.bottom_line(assessed, metrics))]
    cells += [_markdown_output_cell(f'#| label: tbl-{name}\n#| tbl-cap: "The {name}."\nshow()',
                                    markdown_table(frame).data) for name, frame in tables.items()]
    cells.append(_markdown_output_cell("md(details)", claims.details_markdown(assessed)))
    sections = sorted({claim.section.removeprefix("@") for claim in claims.CLAIMS}
                      | {summary.chapter_ref(name).removeprefix("@") for name in metrics})
    root = tmp_path / "book"
    (root / "chapters").mkdir(parents=True)
    nbformat.write(nbformat.from_dict({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}),
                   root / "index.ipynb")
    (root / "chapters" / "stub.md").write_text("# The chapters {#sec-stub}\n\n" + "".join(
        f"## {name} {{#{name}}}\n\nText.\n\n" for name in sections))
    shutil.copy(Path(__file__).resolve().parent.parent / "chapters" / "appendix.md", root / "chapters")
    (root / "_quarto.yml").write_text("book:\n  title: Summary\n  chapters:\n    - index.ipynb\n"
                                      "    - chapters/stub.md\n    - chapters/appendix.md\n")
    produced = render_book(root, root, tmp_path / "out", engine="offline")
    text = subprocess.run(["pdftotext", "-layout", str(produced["pdf"]), "-"], capture_output=True, text=True,
                          check=True).stdout.replace("\u00a0", " ")
    lines = text.splitlines()
    pages_with_claims = [page for page in text.split("\f") if re.search(r"^\s*C\d+\s", page, re.MULTILINE)]
    assert len(pages_with_claims) == 1, "the claims table breaks across pages"
    for claim, verdict in assessed:
        row = [line for line in lines if re.match(rf"\s*{claim.label}\s", line)]
        paper, book = claim.paper.replace("\u00a0", " "), verdict.book.replace("\u00a0", " ")
        assert row and paper in row[0] and book in row[0], (claim.label, paper, book, row)
    assert "02-classifier" in text and "02-clas-" not in text
    assert "Appendix: running this book again" in text
    assert (tmp_path / "out" / "chapters" / "appendix.html").is_file()


def test_table_layout_keeps_words_whole_and_short_cells_on_one_line() -> None:
    from effgen.book.render.table_widths import Fit, choose, layout, room

    shortest, longest = [13, 9, 20], [13, 24, 400]  # a chapter name, a verdict, long notes
    widths = layout(shortest, longest, 100.0)
    assert widths[0] == 13 and widths[1] == 24 and widths[2] == 100 - 13 - 24
    assert layout(shortest, longest, 30.0) == [13.0, 9.0, 20.0]  # too narrow: words stay whole
    assert choose([5, 5], [10, 10]) == Fit(9.0, False)
    wide = [20] * 6 + [12]  # seven columns of unbreakable values: smaller type, then a landscape page
    fit = choose(wide, [24] * 7)
    assert fit.landscape and sum(wide) <= room(fit, 7)
    assert not choose(wide, [24] * 7, allow_landscape=False).landscape


def test_a_landscape_table_takes_the_largest_type_at_which_its_rows_fit_the_page() -> None:
    from effgen.book.render.table_widths import LANDSCAPE_ROWS_PT, Fit, choose, height, layout, room

    shortest, longest = [17] * 6 + [4], [17] * 6 + [299]  # too wide for portrait; one column of long notes
    notes = " ".join(["word"] * 60)
    rows: list[list[str | None]] = [["x" * 17] * 6 + [notes] for _ in range(5)]

    def rows_height(fit: Fit) -> float:
        return height(rows, layout(shortest, longest, room(fit, 7)), fit.size)

    assert rows_height(Fit(9.0, True)) > LANDSCAPE_ROWS_PT >= rows_height(Fit(8.0, True))
    assert choose(shortest, longest, rows=rows) == Fit(8.0, True)
    assert choose(shortest, longest, rows=rows[:4]) == Fit(9.0, True)  # short enough at the body's size
    assert choose(shortest, longest, rows=rows * 10) == Fit(9.0, True)  # runs on over pages at any size
