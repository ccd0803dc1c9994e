"""Read every chapter of the book into a numbered pandoc AST: the input of both offline writers."""
from __future__ import annotations

import os
import posixpath
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effgen.book.notebook_file import read_notebook
from effgen.book.render.config import MARKDOWN_SUFFIXES, BookConfig
from effgen.book.render.crossref import Registry, Section, number_chapter
from effgen.book.render.errors import RenderError, RenderWarning
from effgen.book.render.ipynb import (
    ImageStore,
    mark_not_executed,
    mark_unfinished,
    notebook_to_markdown,
)
from effgen.book.render.pandoc import markdown_to_ast
from effgen.book.render.structure import shape_chapter
from effgen.book.render.tree import Node


@dataclass
class Chapter:
    source: str  # the path listed in _quarto.yml
    page: int  # position in book order
    number: int | None  # chapter number; None for the index and other unnumbered pages
    title: str
    blocks: list[Node]
    sections: list[Section]
    executed: bool
    api_version: list[int]

    @property
    def html_name(self) -> str:
        """The page's path inside the output folder, mirroring the source tree like Quarto."""
        return posixpath.splitext(self.source)[0] + ".html"


@dataclass
class Book:
    config: BookConfig
    chapters: list[Chapter]
    registry: Registry
    images: ImageStore


def locate_chapters(config: BookConfig, executed_dir: Path) -> list[tuple[str, Path, bool]]:
    """(listed path, file to read, executed?) per chapter; fails before any work if one is missing."""
    found: list[tuple[str, Path, bool]] = []
    missing: list[str] = []
    for source in config.chapters:
        executed = Path(executed_dir) / source
        if executed.is_file():
            found.append((source, executed, True))
        elif (config.root / source).is_file():
            # Markdown pages have nothing to execute, so their source is the finished page.
            found.append((source, config.root / source, source.endswith(MARKDOWN_SUFFIXES)))
        else:
            missing.append(source)
    if missing:
        raise RenderError(f"_quarto.yml lists chapters that exist neither in {config.root} nor in "
                          f"{executed_dir}: {', '.join(missing)}")
    return found


def read_book(config: BookConfig, executed_dir: Path) -> Book:
    images = ImageStore()
    located = locate_chapters(config, executed_dir)
    markdown = [_chapter_markdown(config, source, path, executed, images) for source, path, executed in located]
    with ThreadPoolExecutor(max_workers=workers()) as pool:  # pandoc runs in subprocesses
        docs = list(pool.map(lambda item: markdown_to_ast(item[1], item[0][0]), zip(located, markdown)))

    registry = Registry()
    chapters: list[Chapter] = []
    next_number = 1
    for page, ((source, path, executed), doc) in enumerate(zip(located, docs)):
        blocks = doc["blocks"]
        title = shape_chapter(blocks, images=images, base_dir=(config.root / source).parent, where=source,
                              fallback_title=Path(source).stem)
        number: int | None = None
        if not _is_unnumbered(source, blocks):
            number, next_number = next_number, next_number + 1
        sections = number_chapter(blocks, page=page, chapter=number, registry=registry, where=source)
        chapters.append(Chapter(source, page, number, title, blocks, sections, executed,
                                doc["pandoc-api-version"]))
    return Book(config, chapters, registry, images)


def _chapter_markdown(config: BookConfig, source: str, path: Path, executed: bool, images: ImageStore) -> str:
    if source.endswith(MARKDOWN_SUFFIXES):  # prose pages: nothing to execute
        return path.read_text(encoding="utf-8")
    notebook: dict[str, Any] = read_notebook(path, source)
    if not executed:
        warnings.warn(f"{source} has no executed copy in this build; rendering its source without outputs",
                      RenderWarning, stacklevel=3)
        notebook = mark_not_executed(notebook, source)
    else:
        notebook = mark_unfinished(notebook, source)
    return notebook_to_markdown(notebook, echo=config.echo, warning=config.warning, images=images, where=source)


def _is_unnumbered(source: str, blocks: list[Node]) -> bool:
    """Quarto leaves the index page, and chapters whose title is marked {.unnumbered}, unnumbered."""
    if Path(source).stem == "index":
        return True
    first = next((b for b in blocks if b["t"] == "Header" and b["c"][0] == 1), None)
    return first is not None and bool({"unnumbered", "-"} & set(first["c"][1][1]))


def workers() -> int:
    """Threads for pandoc subprocesses: the work happens in pandoc, so threads run in parallel."""
    return max(1, min(4, os.cpu_count() or 1))


def document(chapter_blocks: list[Node], api_version: list[int]) -> dict[str, Any]:
    return {"pandoc-api-version": api_version, "meta": {}, "blocks": chapter_blocks}
