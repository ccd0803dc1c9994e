"""Read the book's ``_quarto.yml``: the only description of the book both engines share."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effgen.book.render.errors import RenderError
from effgen.checkpoints import read_yaml
from effgen.errors import ParamsError

NOTEBOOK_SUFFIXES = (".ipynb",)
MARKDOWN_SUFFIXES = (".md", ".qmd")


@dataclass(frozen=True)
class BookConfig:
    root: Path
    title: str
    subtitle: str
    author: str
    date: str
    chapters: tuple[str, ...]  # paths relative to root, posix style, in book order
    bibliography: Path | None
    echo: bool  # execute.echo: whether code is shown when a cell says nothing
    warning: bool  # execute.warning: whether stderr streams are shown

    @property
    def slug(self) -> str:
        """File-name form of the title, as Quarto names the book's PDF."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")
        return slug or "book"


def load_config(root: Path) -> BookConfig:
    root = Path(root)
    path = root / "_quarto.yml"
    if not path.is_file():
        raise RenderError(f"no _quarto.yml in {root}: render_book needs the folder of a Quarto book project")
    try:
        data = read_yaml(path, "Quarto project file")
    except ParamsError as err:
        raise RenderError(str(err)) from None
    book = data.get("book")
    if not isinstance(book, dict):
        raise RenderError(f"{path} has no 'book:' section; only Quarto book projects can be rendered")
    chapters = tuple(_flatten_chapters(book.get("chapters"), path))
    if not chapters:
        raise RenderError(f"{path}: book.chapters lists no chapters")
    for chapter in chapters:
        if not chapter.endswith(NOTEBOOK_SUFFIXES + MARKDOWN_SUFFIXES):
            raise RenderError(f"{path}: chapter {chapter!r} is neither a notebook (.ipynb) nor Markdown (.md, .qmd)")
    execute: dict[str, Any] = data["execute"] if isinstance(data.get("execute"), dict) else {}
    return BookConfig(
        root=root,
        title=_text(book.get("title") or data.get("title") or root.name),
        subtitle=_text(book.get("subtitle") or data.get("subtitle") or ""),
        author=_authors(book.get("author") or data.get("author") or ""),
        date=_text(book.get("date") or data.get("date") or dt.date.today().isoformat()),
        chapters=chapters,
        bibliography=_bibliography(root, data.get("bibliography") or book.get("bibliography"), path),
        echo=bool(execute.get("echo", True)),
        warning=bool(execute.get("warning", True)),
    )


def _flatten_chapters(entries: Any, path: Path) -> list[str]:
    """Chapters may be plain paths or Quarto ``- part: ... chapters: [...]`` groups."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise RenderError(f"{path}: book.chapters must be a list of files")
    out: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            out.append(entry.strip().removeprefix("./"))
        elif isinstance(entry, dict) and "chapters" in entry:
            out += _flatten_chapters(entry["chapters"], path)
        elif isinstance(entry, dict) and isinstance(entry.get("href"), str):
            out.append(entry["href"])
        else:
            raise RenderError(f"{path}: cannot read chapter entry {entry!r}")
    return out


def _bibliography(root: Path, value: Any, path: Path) -> Path | None:
    if not value:
        return None
    if isinstance(value, list):
        if len(value) > 1:
            raise RenderError(f"{path}: the offline renderer reads one bibliography file, got {value}")
        value = value[0]
    bib = root / str(value)
    if not bib.is_file():
        raise RenderError(f"{path} names bibliography {value!r}, but {bib} does not exist")
    return bib


def _authors(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_authors(v) for v in value)
    if isinstance(value, dict):
        return _text(value.get("name", ""))
    return _text(value)


def _text(value: Any) -> str:
    return str(value).strip()
