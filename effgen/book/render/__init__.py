"""Render the book: Quarto when it is on PATH, otherwise an offline pandoc + Typst renderer.

``render_book(root, executed_dir, out_dir)`` reads ``root/_quarto.yml`` and the executed notebooks
under ``executed_dir`` (same relative paths as the sources) and writes ``out_dir/index.html`` plus
one page per chapter, and ``out_dir/<book-slug>.pdf``.

Offline pipeline, one module per step:
``config`` (_quarto.yml) -> ``ipynb`` (cells, options, outputs -> Markdown) -> ``pandoc`` (Markdown ->
AST) -> ``structure`` (figures, tables, callouts) -> ``crossref`` (numbers, @refs) -> ``html`` and
``typst_book`` writers. ``quarto`` drives the real Quarto instead.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from effgen.book.render.config import BookConfig, load_config
from effgen.book.render.errors import RenderError, RenderWarning

FORMATS = ("html", "pdf")
ENGINES = ("auto", "quarto", "offline")

__all__ = ["ENGINES", "FORMATS", "BookConfig", "RenderError", "RenderWarning", "load_config", "render_book"]


def render_book(root: Path, executed_dir: Path, out_dir: Path, formats: Sequence[str] = FORMATS,
                engine: str = "auto") -> dict[str, Path]:
    """Render the book; returns {"html": out_dir/index.html, "pdf": out_dir/<slug>.pdf} for what was made."""
    formats = tuple(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise RenderError(f"formats must be a non-empty subset of {', '.join(FORMATS)}, got {list(formats)}")
    if engine not in ENGINES:
        raise RenderError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    root, executed_dir, out_dir = Path(root), Path(executed_dir), Path(out_dir)
    config = load_config(root)
    quarto = shutil.which("quarto")
    if engine == "quarto" and quarto is None:
        raise RenderError("engine 'quarto' was asked for, but quarto is not on PATH; use engine 'offline'")
    if engine != "offline" and quarto is not None:
        from effgen.book.render.quarto import render_with_quarto

        return render_with_quarto(quarto, config, executed_dir, out_dir, formats)
    return _render_offline(config, executed_dir, out_dir, formats)


def _render_offline(config: BookConfig, executed_dir: Path, out_dir: Path,
                    formats: Sequence[str]) -> dict[str, Path]:
    from effgen.book.render.book import read_book
    from effgen.book.render.html import write_html
    from effgen.book.render.typst_book import write_pdf

    book = read_book(config, executed_dir)
    produced: dict[str, Path] = {}
    if "html" in formats:
        produced["html"] = write_html(book, out_dir)
    if "pdf" in formats:
        produced["pdf"] = write_pdf(book, out_dir / f"{config.slug}.pdf")
    return produced
