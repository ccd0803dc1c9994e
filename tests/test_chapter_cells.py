"""Which code a reader sees: one rule in every chapter (DEVELOPING.md, "Chapter notebooks").

The ``parameters`` cell is folded (the summary page's is not included); a cell that trains, tunes or
measures is shown open and holds no figure, table or prose; every other cell is hidden. The checks read
the committed sources only (nothing executes), then render each source with the offline renderer to
check that it shows exactly those cells.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from effgen.book.render.config import load_config
from effgen.book.render.ipynb import ImageStore, notebook_to_markdown, split_cell_options

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb")) + [ROOT / "index.ipynb"]
# Calls that train, tune or measure: the chapter's experiments, which a reader sees.
WORK = re.compile(r"\b(run_seeds|pick_lr|run_tuning|confirm_top|budget_sweep|train_gan|image_set_stats|cached_stats"
                  r"|run_pilot|original_protocol|cached_embedding|nearest|diversity)\(")
# What presents a result: a figure, a table, prose, the provenance callout, the metrics file.
PRESENTS = re.compile(r"\b(?:plt|sns)\.|\.imshow\(|\bmd\(|\bdisplay\(|\bmarkdown_table\(|\.to_markdown\("
                      r"|\.provenance_callout\(|\.write_metrics\(")


def _code_cells(notebook: Any, where: str) -> list[tuple[int, Any, dict[str, Any], str]]:
    out = []
    for number, cell in enumerate(notebook["cells"], start=1):
        if cell["cell_type"] == "code":
            options, code = split_cell_options("".join(cell["source"]), f"{where} cell {number}")
            out.append((number, cell, options, code))
    return out


def _hidden(options: dict[str, Any]) -> bool:
    return options.get("echo") is False or options.get("include") is False


def _folded(options: dict[str, Any]) -> bool:
    return options.get("code-fold") in (True, "true")


def _presents(options: dict[str, Any], code: str) -> bool:
    return bool(PRESENTS.search(code)) or str(options.get("label", "")).startswith(("fig-", "tbl-"))


def rule_problems(notebook: Any, where: str) -> list[str]:
    """Every cell of ``notebook`` that breaks the rule, one line each ("" when none does)."""
    problems = []
    for number, cell, options, code in _code_cells(notebook, where):
        at = f"{where} cell {number} ({code.strip().splitlines()[0][:50] if code.strip() else 'empty'})"
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            if options.get("include") is not False and not (_folded(options) and options.get("code-summary")):
                problems.append(f"{at}: the parameters cell needs '#| code-fold: true' and a '#| code-summary'")
        elif WORK.search(code):
            if _hidden(options) or _folded(options):
                problems.append(f"{at}: it trains, tunes or measures, so it is shown open")
            if _presents(options, code):
                problems.append(f"{at}: it trains, tunes or measures and also presents a result: split it")
        elif not _hidden(options):
            problems.append(f"{at}: plotting, tables, prose and plumbing are hidden ('#| echo: false')")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_follow_the_rule(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    problems = rule_problems(notebook, path.relative_to(ROOT).as_posix())
    assert not problems, "\n".join(problems)


def test_every_chapter_that_trains_or_measures_shows_that_code() -> None:
    for path in NOTEBOOKS:
        if path.name in ("index.ipynb", "00-data.ipynb"):  # the summary and the data computes nothing
            continue
        cells = _code_cells(nbformat.read(path, as_version=4), path.name)
        assert any(WORK.search(code) and not _hidden(options) for _, _, options, code in cells), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_offline_renderer_shows_exactly_those_cells(path: Path) -> None:
    """The options the rule uses are the ones the offline renderer honours: rendered from its source, a
    chapter shows the code of its work cells, and its parameters folded, and nothing else."""
    notebook = nbformat.read(path, as_version=4)
    echo = load_config(ROOT).echo
    markdown = notebook_to_markdown(notebook, echo=echo, warning=False, images=ImageStore(), where=path.name)
    cells = _code_cells(notebook, path.name)
    shown = [code for _, _, options, code in cells if not _hidden(options) and code.strip()]
    fences = re.findall(r"^`{3,} python$", markdown, flags=re.MULTILINE)
    assert len(fences) == len(shown)
    for code in shown:
        assert code in markdown
    for _, _, options, code in cells:
        if _hidden(options) and code.strip():
            assert code not in markdown
    folded = sum(_folded(options) for _, _, options, _ in cells if not _hidden(options))
    assert markdown.count(".effgen-code-fold") == folded == (0 if path.name == "index.ipynb" else 1)


def test_the_rule_catches_a_shown_figure_a_hidden_run_and_a_bare_parameters_cell() -> None:
    parameters = new_code_cell("steps: int = 10  # optimisation steps")
    parameters.metadata["tags"] = ["parameters"]
    notebook = new_notebook(cells=[
        new_markdown_cell("# A chapter"),
        parameters,
        new_code_cell("#| label: fig-x\n#| fig-cap: \"A figure\"\nplt.plot([1, 2])"),
        new_code_cell("#| echo: false\nruns = run_seeds(config, seeds, data, device, folder, 'tuned')"),
        new_code_cell("runs = train_gan(config, images, folder, device)\nmd(f'{runs}')"),
        new_code_cell("#| echo: false\nmd('prose')"),
        new_code_cell("#| output: false\nruns = train_gan(config, images, folder, device)"),
    ])
    problems = rule_problems(notebook, "test.ipynb")
    assert [line.split(" (")[0] for line in problems] == [
        "test.ipynb cell 2", "test.ipynb cell 3", "test.ipynb cell 4", "test.ipynb cell 5"]
    assert "split it" in problems[-1]


def test_the_book_cites_no_project_internal_document() -> None:
    """Readers cannot open the project's specification or issues: a claim cites the paper or the authors' code."""
    internal = re.compile(r"SPEC §|SPEC\.md|DESIGN\.md|\bissue \d+")
    for path in NOTEBOOKS:
        for number, cell in enumerate(nbformat.read(path, as_version=4).cells, start=1):
            assert not internal.search(cell.source), f"{path.name} cell {number}: {internal.search(cell.source)[0]}"
    for page in sorted((ROOT / "chapters").glob("*.md")):
        assert not internal.search(page.read_text()), page.name
