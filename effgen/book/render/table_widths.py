"""Column widths, type size and page orientation for the PDF's wide tables.

Pandoc gives a pipe table whose lines are long relative column widths proportional to the dashes of
its separator line, which ``DataFrame.to_markdown`` pads to each column's longest cell. A column of
short words beside one of long notes then gets a few per cent of the page, and Typst splits its words
("02-clas-si-fier"). Here each such table is laid out the way a browser lays out an automatic table:
no column narrower than its longest word, short cells (a verdict, a section link) kept on one line,
and the room left shared in proportion to how much text each column holds.

The table keeps the body's table type when that fits, else takes smaller type (down to 7 pt); a table
that needs more still gets a landscape page of its own, at the largest size at which its rows fit on that
one page (estimated by wrapping each cell's words into its column); only when even 7 pt is too wide does
its type shrink below 7 pt, with words still whole.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from effgen.book.render import tree
from effgen.book.render.tree import Node

PAGE_WIDTH_PT, PAGE_HEIGHT_PT = 595.0, 842.0  # A4
MARGIN_X_PT, MARGIN_Y_PT = 68.0, 73.7  # the preamble's 2.4 cm side and 2.6 cm top and bottom margins
SIZES_PT = (9.0, 8.0, 7.0)  # the preamble's table size first, then smaller ones, portrait or landscape
LAST_RESORT_PT = (6.5, 6.0)  # below 7 pt only when no readable layout fits
CHAR_EM = 0.5  # average character width of the serif table text, in em: generous, so words fit
INSET_PT = 10.0  # the preamble's 5 pt cell inset, on both sides
SHORT_CELL = 24  # characters: a cell this short is given its whole width before long text shares the rest
_BREAKS = re.compile(r"[ \t\r\n]+")  # where a line may break; a non-breaking space is not one
# Heights, from the preamble (book.typ) and measured on its tables: a cell of L lines of type size s is
# (L * 1.28 - 0.62) * s tall (cap height plus leading per line, less one leading), plus 5 pt inset above
# and below. A landscape page's rows get its height less the margins and a caption of up to three lines.
LINE_EM, LEADING_EM, ROW_INSET_PT = 1.28, 0.62, 10.0
CAPTION_PT = 50.0
LANDSCAPE_ROWS_PT = PAGE_WIDTH_PT - 2 * MARGIN_Y_PT - CAPTION_PT


@dataclass(frozen=True)
class Fit:
    size: float  # type size in pt
    landscape: bool


def fit_tables(blocks: list[Node], nested: bool = False) -> list[Node]:
    """Fit every relatively sized table among ``blocks`` (captioned ones sit in a Figure), and those in
    Divs below them; a table inside a Div keeps its page (a page cannot open inside a callout)."""
    out: list[Node] = []
    for block in blocks:
        if block["t"] == "Div":
            block["c"][1] = fit_tables(block["c"][1], nested=True)
        table = _table_of(block)
        fit = fit_table(table, allow_landscape=not nested) if table is not None else None
        if fit is None or (fit.size >= SIZES_PT[0] and not fit.landscape):
            out.append(block)
            continue
        opening = ("#page(flipped: true)[" if fit.landscape else "") + (
            f"#[#show table: set text(size: {fit.size:g}pt)" if fit.size < SIZES_PT[0] else "#[")
        out += [tree.raw_block("typst", opening), block,
                tree.raw_block("typst", "]" + ("]" if fit.landscape else ""))]
    return out


def _table_of(block: Node) -> Node | None:
    if block["t"] == "Table":
        return block
    if block["t"] == "Figure":
        return next((b for b in block["c"][2] if b["t"] == "Table"), None)
    return None


def fit_table(table: Node, allow_landscape: bool = True) -> Fit | None:
    """Set the widths of a table pandoc sized relatively; how it must be set, or None if untouched."""
    colspecs = table["c"][2]
    if not colspecs or not all(spec[1].get("t") == "ColWidth" for spec in colspecs):
        return None  # short lines: Typst sizes the columns to their content
    rows = _row_texts(table, len(colspecs))
    columns = [[text for text in (row[i] for row in rows) if text is not None] for i in range(len(colspecs))]
    shortest = [max((_longest_word(text) for text in texts), default=1) or 1 for texts in columns]
    longest = [max((len(text) for text in texts), default=1) or 1 for texts in columns]
    fit = choose(shortest, longest, allow_landscape, rows)
    widths = layout(shortest, longest, room(fit, len(colspecs)))
    points = [w * CHAR_EM * fit.size + INSET_PT for w in widths]
    total = sum(points)
    for spec, width in zip(colspecs, points):
        spec[1] = {"t": "ColWidth", "c": width / total}
    return fit


def choose(shortest: list[int], longest: list[int], allow_landscape: bool = True,
           rows: list[list[str | None]] | None = None) -> Fit:
    """The first layout in which every word and every short cell fits: portrait at 9, 8, 7 pt, then
    landscape at those sizes, where, given the table's ``rows``, the largest size at which they fit on the
    one landscape page wins (else the largest that fits across it: the table runs on); failing all,
    portrait at the largest size that fits the words alone."""
    short = _short_targets(shortest, longest)
    orientations = (False, True) if allow_landscape else (False,)
    fits = [Fit(size, landscape) for landscape in orientations for size in SIZES_PT
            if sum(short) <= room(Fit(size, landscape), len(shortest))]
    if fits and fits[0].landscape and rows is not None:
        return next((fit for fit in fits if height(rows, layout(shortest, longest, room(fit, len(shortest))), fit.size)
                     <= LANDSCAPE_ROWS_PT), fits[0])
    if fits:
        return fits[0]
    for size in SIZES_PT + LAST_RESORT_PT:
        if sum(shortest) <= room(Fit(size, False), len(shortest)):
            return Fit(size, False)
    return Fit(LAST_RESORT_PT[-1], False)


def room(fit: Fit, columns: int) -> float:
    """Characters of text a row of ``columns`` cells can hold across the page."""
    width = (PAGE_HEIGHT_PT if fit.landscape else PAGE_WIDTH_PT) - 2 * MARGIN_X_PT
    return (width - INSET_PT * columns) / (CHAR_EM * fit.size)


def layout(shortest: list[int], longest: list[int], space: float) -> list[float]:
    """Column widths in characters, filled in three stages while ``space`` lasts: every column its longest
    word; then a short cell's whole text, so short columns do not wrap; then what is left, in proportion
    to the text a column could still take."""
    stages = [[float(n) for n in shortest], [float(n) for n in _short_targets(shortest, longest)],
              [float(n) for n in longest]]
    widths = stages[0]
    for target in stages[1:]:
        low, high = sum(widths), sum(target)
        if high <= space:
            widths = target
            continue
        if high > low and space > low:
            share = (space - low) / (high - low)
            widths = [w + (t - w) * share for w, t in zip(widths, target)]
        break
    return widths


def height(rows: list[list[str | None]], widths: list[float], size: float) -> float:
    """Points the rows take at ``size`` with columns ``widths`` characters wide (a spanned cell: None)."""
    def lines(row: list[str | None]) -> int:
        return max((_wrapped_lines(text, width) for text, width in zip(row, widths) if text is not None), default=1)
    return sum(ROW_INSET_PT + size * (LINE_EM * lines(row) - LEADING_EM) for row in rows)


def _wrapped_lines(text: str, width: float) -> int:
    """Lines ``text`` takes when its words are set greedily into ``width`` characters."""
    count, used = 1, 0
    for word in (w for w in _BREAKS.split(text) if w):
        if used and used + 1 + len(word) > width:
            count, used = count + 1, len(word)
        else:
            used += (1 if used else 0) + len(word)
    return count


def _short_targets(shortest: list[int], longest: list[int]) -> list[int]:
    return [max(s, min(n, SHORT_CELL)) for s, n in zip(shortest, longest)]


def _row_texts(table: Node, n: int) -> list[list[str | None]]:
    """Each row's cell texts by column; None where a cell spans several columns, or none is."""
    _, _, _, head, bodies, foot = table["c"]
    rows = list(head[1]) + [row for body in bodies for row in body[2] + body[3]] + list(foot[1])
    texts: list[list[str | None]] = []
    for row in rows:
        cells: list[str | None] = [None] * n
        at = 0
        for cell in row[1]:
            span = max(1, int(cell[3]))
            if span == 1 and at < n:
                cells[at] = tree.stringify(cell[4])
            at += span
        texts.append(cells)
    return texts


def _longest_word(text: str) -> int:
    return max((len(word) for word in _BREAKS.split(text)), default=0)
