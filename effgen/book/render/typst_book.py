"""Write the PDF book: all chapters as one pandoc AST -> Typst markup -> ``typst.compile``.

Typst numbers headings and figures itself (``assets/book.typ`` restarts figure counts at each
chapter); cross-references become ``#link(<label>)[Figure 2.3]`` with the numbers ``crossref``
computed, which the test suite checks agree with Typst's captions. Citations go through citeproc
over the whole book, so the bibliography is one list at the end.
"""
from __future__ import annotations

import base64
import copy
import json
import re
import tempfile
from importlib.resources import files
from pathlib import Path

import typst

from effgen.book.render import tree
from effgen.book.render.book import Book, Chapter, document
from effgen.book.render.crossref import REF_KEY, resolve_references
from effgen.book.render.errors import RenderError
from effgen.book.render.ipynb import CODE_FOLD_CLASS, IMAGE_SCHEME
from effgen.book.render.pandoc import ast_to
from effgen.book.render.table_widths import fit_tables
from effgen.book.render.tree import Node

_CAPTION_START = re.compile(r"caption: \[\s+")


def write_pdf(book: Book, pdf_path: Path, keep_source: Path | None = None) -> Path:
    blocks: list[Node] = []
    with tempfile.TemporaryDirectory(prefix="effgen-typst-") as work:
        work_dir = Path(work)
        for chapter in book.chapters:
            blocks += _chapter_blocks(book, chapter, work_dir)
        body = ast_to("typst", document(blocks, book.chapters[0].api_version), "the PDF book",
                      book.config.bibliography)
        # pandoc opens captions as "caption: [\n    text": Typst would print that line break as a space.
        source = _preamble(book) + _CAPTION_START.sub("caption: [", body)
        main = work_dir / "book.typ"
        main.write_text(source, encoding="utf-8")
        if keep_source is not None:
            keep_source.write_text(source, encoding="utf-8")
        pdf_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            typst.compile(str(main), output=str(pdf_path), root=str(work_dir), ignore_system_fonts=True)
        except typst.TypstError as err:
            raise RenderError(f"Typst could not compile the PDF book: {_brief(err)}") from err
    return pdf_path


def _chapter_blocks(book: Book, chapter: Chapter, work_dir: Path) -> list[Node]:
    blocks = copy.deepcopy(chapter.blocks)
    if chapter.number is None:  # Typst numbers every heading unless told otherwise
        for node in tree.walk_nodes(blocks):
            if node["t"] == "Header" and "unnumbered" not in node["c"][1][1]:
                node["c"][1][1].append("unnumbered")
    _unique_ids(blocks, f"p{chapter.page}-")
    resolve_references(blocks, book.registry, lambda target: f"#{target.label}", chapter.source)
    _image_files(blocks, book, work_dir)
    blocks[:] = fit_tables(blocks)  # after the references: their numbers are the text measured
    tree.map_block_lists(blocks, _callouts)
    tree.map_block_lists(blocks, _code_folds)
    return blocks


def _unique_ids(blocks: list[Node], prefix: str) -> None:
    """One Typst document holds every chapter: give pandoc's automatic ids (two chapters may both
    have an "introduction") a per-chapter prefix; labels the author chose stay as written."""
    renamed: dict[str, str] = {}
    for node in tree.walk_nodes(blocks):
        node_attr = tree.node_attr(node)
        if node_attr is not None and node["t"] != "Link" and node_attr[0] and not REF_KEY.match(node_attr[0]):
            renamed[node_attr[0]] = prefix + node_attr[0]
            node_attr[0] = renamed[node_attr[0]]
    for node in tree.walk_nodes(blocks):
        if node["t"] == "Link" and node["c"][2][0].startswith("#"):
            target = node["c"][2][0][1:]
            node["c"][2][0] = "#" + renamed.get(target, target)


def _image_files(blocks: list[Node], book: Book, work_dir: Path) -> None:
    for node in tree.walk_nodes(blocks):
        if node["t"] == "Image" and node["c"][2][0].startswith(IMAGE_SCHEME):
            key = node["c"][2][0]
            image = book.images.get(key)
            if image is None:
                continue
            name = f"images/{key.removeprefix(IMAGE_SCHEME)}{image.suffix}"
            path = work_dir / name
            if not path.exists():
                path.parent.mkdir(exist_ok=True)
                path.write_bytes(base64.b64decode(image.b64))
            node["c"][2][0] = name


def _callouts(blocks: list[Node]) -> list[Node]:
    """Normalised callout divs -> ``#callout(kind: ..., title: [...])[body]`` around pandoc's markup."""
    out: list[Node] = []
    for block in blocks:
        classes = block["c"][0][1] if block["t"] == "Div" else []
        if "callout" not in classes:
            out.append(block)
            continue
        kind = next(c.removeprefix("callout-") for c in classes if c.startswith("callout-"))
        title_div, body_div = block["c"][1]
        title = title_div["c"][1][0]["c"]
        out.append(tree.plain([tree.raw_inline("typst", f"#callout(kind: {json.dumps(kind)}, title: ["),
                               *title, tree.raw_inline("typst", "])[")]))
        out += body_div["c"][1]
        out.append(tree.raw_block("typst", "]"))
    return out


def _code_folds(blocks: list[Node]) -> list[Node]:
    """Folded code -> ``#code-fold(summary: ...)[code]``: a page cannot fold, so it prints small."""
    out: list[Node] = []
    for block in blocks:
        if block["t"] != "Div" or CODE_FOLD_CLASS not in block["c"][0][1]:
            out.append(block)
            continue
        summary = dict(block["c"][0][2]).get("summary", "Code")
        out.append(tree.raw_block("typst", f"#code-fold(summary: {_string(summary)})["))
        out += block["c"][1]
        out.append(tree.raw_block("typst", "]"))
    return out


def _preamble(book: Book) -> str:
    config = book.config
    preamble = (files("effgen.book.render") / "assets" / "book.typ").read_text(encoding="utf-8")
    preamble = preamble.replace("BOOK-TITLE", _string(config.title)).replace("BOOK-AUTHOR", _string(config.author))
    return (
        preamble
        + f"\n#title-page(title: {_string(config.title)}, subtitle: {_string(config.subtitle)}, "
        f"author: {_string(config.author)}, date: {_string(config.date)})\n"
        + "#page(numbering: none, outline(depth: 2, indent: auto))\n"
        + "#set page(numbering: \"1\")\n#counter(page).update(1)\n\n"
    )


def _string(text: str) -> str:
    """A Typst string literal: shown verbatim, so titles need no markup escaping."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _brief(err: typst.TypstError) -> str:
    diagnostic = getattr(err, "diagnostic", "") or ""
    lines = [line.rstrip() for line in diagnostic.splitlines() if line.strip()][:6]
    return " | ".join(lines) if lines else str(err)
