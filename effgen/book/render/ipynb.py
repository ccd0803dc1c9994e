"""Turn a notebook into one pandoc-Markdown document: prose, code, outputs and Quarto cell options.

Labelled figure and table cells become fenced divs (``.effgen-figure`` / ``.effgen-table``) holding
a ``.effgen-caption`` div and the outputs; ``crossref`` turns them into numbered pandoc Figure and
Table nodes after parsing. Images do not travel through pandoc: the Markdown names them
``effgen-image:N`` and the writers swap in data URIs (HTML) or files (Typst).
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effgen.book.render.errors import RenderError
from effgen.checkpoints import parse_yaml
from effgen.errors import ParamsError

IMAGE_SCHEME = "effgen-image:"
OPTION_PREFIX = "#|"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Bundle preference: what the author meant to show beats its plain-text fallback.
_IMAGE_MIMES = ("image/png", "image/svg+xml", "image/jpeg", "image/gif")
_FIGURE_FENCE = "::::::::"
_CAPTION_FENCE = ":::::"
_FOLD_FENCE = ":::::::"
CODE_FOLD_CLASS = "effgen-code-fold"  # a folded code block: <details> in HTML, small type in the PDF


@dataclass(frozen=True)
class Image:
    mime: str
    b64: str  # base64 payload, ready for a data URI
    alt: str = ""

    @property
    def suffix(self) -> str:
        return {"image/png": ".png", "image/svg+xml": ".svg", "image/jpeg": ".jpg", "image/gif": ".gif"}[self.mime]

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{self.b64}"


@dataclass
class ImageStore:
    """Every image of the book, keyed by the ``effgen-image:N`` target the Markdown uses."""

    images: dict[str, Image] = field(default_factory=dict)

    def add(self, image: Image) -> str:
        key = f"{IMAGE_SCHEME}{len(self.images)}"
        self.images[key] = image
        return key

    def get(self, key: str) -> Image | None:
        return self.images.get(key)

    def set_alt(self, key: str, alt: str) -> None:
        image = self.images[key]
        self.images[key] = Image(image.mime, image.b64, alt)


@dataclass(frozen=True)
class _Output:
    kind: str  # image, markdown, text or error
    markdown: str
    image_key: str = ""


@dataclass(frozen=True)
class CellContext:
    where: str  # e.g. "chapters/02-classifier.ipynb", for messages
    language: str
    echo: bool
    warning: bool
    images: ImageStore


def not_executed_callout(where: str) -> str:
    stem = Path(where).stem
    return (
        "::: {.callout-warning}\n## Not executed in this build\n\n"
        f"This chapter was rendered from its source notebook `{where}`: this build has no executed copy, "
        f"so its outputs, figures and tables are missing. Execute it (`effgen run {stem}`) and render again.\n:::\n"
    )


def unfinished_callout(where: str, ran: int, total: int) -> str:
    stem = Path(where).stem
    return (
        "::: {.callout-warning}\n## This chapter did not finish executing\n\n"
        f"Only {ran} of its {total} code cells ran to the end; what follows the last of them was never "
        f"executed, and the numbers and figures on this page are partial. Execute it again "
        f"(`effgen run {stem}`) and render again.\n:::\n"
    )


def execution_progress(notebook: dict[str, Any]) -> tuple[int, int] | None:
    """(cells completed, code cells) when papermill's record shows an execution that did not finish, else None.

    Papermill marks every code cell ``pending`` before it starts and ``completed`` after; a run that
    was killed or raised leaves cells ``pending``, ``running`` or ``failed``.
    """
    states = [cell.get("metadata", {}).get("papermill", {}).get("status")
              for cell in notebook.get("cells", []) if cell.get("cell_type") == "code"]
    recorded = [state for state in states if state is not None]
    exception = bool(notebook.get("metadata", {}).get("papermill", {}).get("exception"))
    if not recorded or (not exception and all(state == "completed" for state in recorded)):
        return None
    return sum(state == "completed" for state in recorded), len(states)


def mark_unfinished(notebook: dict[str, Any], where: str) -> dict[str, Any]:
    """``notebook`` with the did-not-finish callout below its title, when its execution stopped part-way."""
    progress = execution_progress(notebook)
    return notebook if progress is None else _with_callout(notebook, unfinished_callout(where, *progress))


def mark_not_executed(notebook: dict[str, Any], where: str) -> dict[str, Any]:
    """A copy of ``notebook`` with the not-executed callout right below the title line."""
    return _with_callout(notebook, not_executed_callout(where))


def _with_callout(notebook: dict[str, Any], callout: str) -> dict[str, Any]:
    cells = [dict(cell) for cell in notebook.get("cells", [])]
    first = cells[0] if cells else None
    if first is not None and first.get("cell_type") == "markdown" and _source(first).lstrip().startswith("# "):
        title, _, rest = _source(first).lstrip().partition("\n")
        first["source"] = f"{title}\n\n{callout}\n{rest}"
    else:
        cells.insert(0, {"cell_type": "markdown", "metadata": {}, "source": callout})
    return {**notebook, "cells": cells}


def notebook_to_markdown(notebook: dict[str, Any], *, echo: bool, warning: bool, images: ImageStore,
                         where: str) -> str:
    meta = notebook.get("metadata", {})
    language = (meta.get("kernelspec", {}).get("language") or meta.get("language_info", {}).get("name")
                or "python")
    ctx = CellContext(where=where, language=language, echo=echo, warning=warning, images=images)
    pieces: list[str] = []
    for index, cell in enumerate(notebook["cells"]):
        kind = cell.get("cell_type")
        if kind == "markdown":
            pieces.append(_markdown_cell(cell, ctx))
        elif kind == "code":
            pieces.extend(_code_cell(cell, index, ctx))
        elif kind == "raw" and cell.get("metadata", {}).get("format") in ("text/markdown", "markdown"):
            pieces.append(_source(cell))
    # Blank lines keep one cell's Markdown from running into the next one's paragraph.
    return "\n\n".join(p.strip("\n") for p in pieces if p.strip()) + "\n"


def split_cell_options(source: str, where: str) -> tuple[dict[str, Any], str]:
    """Leading ``#| key: value`` lines as a dict (they are YAML), and the code after them."""
    lines = source.splitlines()
    count = 0
    while count < len(lines) and lines[count].lstrip().startswith(OPTION_PREFIX):
        count += 1
    if not count:
        return {}, source
    text = "\n".join(line.lstrip()[len(OPTION_PREFIX):].removeprefix(" ") for line in lines[:count])
    try:
        options = parse_yaml(text, f"{where}: '#|' cell options", "block of '#|' options")
    except ParamsError as err:
        raise RenderError(str(err)) from None
    return options, "\n".join(lines[count:]).strip("\n")


def _markdown_cell(cell: dict[str, Any], ctx: CellContext) -> str:
    text = _source(cell)
    attachments = cell.get("attachments") or {}
    for name, bundle in attachments.items():
        image = _image_from_bundle(bundle)
        if image is not None:
            text = text.replace(f"(attachment:{name}", f"({ctx.images.add(image)}")
    return text


def _code_cell(cell: dict[str, Any], index: int, ctx: CellContext) -> list[str]:
    where = f"{ctx.where} cell {index + 1}"
    options, code = split_cell_options(_source(cell), where)
    if options.get("include") is False:
        return []
    label = str(options.get("label") or "")
    pieces: list[str] = []
    if options.get("echo", ctx.echo) and code.strip():
        pieces.append(_folded(fenced(code, ctx.language), options))
    if options.get("output", True) is False:
        return pieces
    show_warnings = bool(options.get("warning", ctx.warning))
    outputs = _render_outputs(cell.get("outputs", []), ctx, show_warnings)
    if not outputs and cell.get("execution_count") is not None:
        # Executed, and it showed nothing: a step this profile skips. A caption over an empty box
        # would only puzzle the reader; an unexecuted cell keeps its placeholder and number instead.
        return pieces

    if label.startswith("fig-"):
        pieces += _labelled(outputs, "image", label, "effgen-figure", str(options.get("fig-cap") or ""),
                            "*No figure: this cell produced no image in this build.*", ctx,
                            alt=str(options.get("fig-alt") or ""))
    elif label.startswith("tbl-"):
        pieces += _labelled(outputs, "markdown", label, "effgen-table", str(options.get("tbl-cap") or ""),
                            "*No table: this cell produced no Markdown table in this build.*", ctx)
    else:
        body = [out.markdown for out in outputs]
        if label and body:
            pieces.append(f"{_FIGURE_FENCE} {{#{label} .cell}}\n" + "\n\n".join(body) + f"\n{_FIGURE_FENCE}")
        else:
            pieces += body
    return pieces


def _folded(code_block: str, options: dict[str, Any]) -> str:
    """Quarto's ``code-fold`` (true: folded, "show": unfolded but foldable) and ``code-summary``.

    The code is wrapped in a ``.effgen-code-fold`` div that each writer turns into its own form,
    so the reader can still open the code (e.g. the parameters behind a chapter's numbers).
    """
    fold = options.get("code-fold", False)
    if fold not in (True, "true", "show"):
        return code_block
    summary = str(options.get("code-summary") or "Code").replace("\\", "\\\\").replace('"', '\\"')
    shown = ' open="true"' if fold == "show" else ""
    return f'{_FOLD_FENCE} {{.{CODE_FOLD_CLASS} summary="{summary}"{shown}}}\n{code_block}\n{_FOLD_FENCE}'


def _labelled(outputs: list[_Output], kind: str, label: str, css: str, caption: str, missing: str,
              ctx: CellContext, alt: str = "") -> list[str]:
    """Gather the outputs of ``kind`` into one captioned div, where the first of them appeared."""
    chosen = [out.markdown for out in outputs if out.kind == kind]
    if alt:
        for out in outputs:
            if out.image_key:
                ctx.images.set_alt(out.image_key, alt)
    body = "\n\n".join(chosen) if chosen else missing
    block = (f"{_FIGURE_FENCE} {{#{label} .{css}}}\n{_CAPTION_FENCE} {{.effgen-caption}}\n{caption}\n"
             f"{_CAPTION_FENCE}\n\n{body}\n{_FIGURE_FENCE}")
    pieces: list[str] = []
    placed = False
    for out in outputs:
        if out.kind == kind:
            if not placed:
                pieces.append(block)
                placed = True
        else:
            pieces.append(out.markdown)
    if not placed:
        pieces.append(block)
    return pieces


def _render_outputs(outputs: list[dict[str, Any]], ctx: CellContext,
                    show_warnings: bool) -> list[_Output]:
    rendered: list[_Output] = []
    stream: dict[str, list[str]] = {}

    def flush() -> None:
        for name, parts in stream.items():
            text = _ANSI.sub("", "".join(parts)).rstrip("\n")
            if text.strip():
                rendered.append(_Output("text", fenced(text, "cell-output" if name == "stdout" else "cell-stderr")))
        stream.clear()

    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            name = output.get("name", "stdout")
            if name == "stdout" or show_warnings:
                stream.setdefault(name, []).append(_join(output.get("text", "")))
            continue
        flush()
        if kind in ("display_data", "execute_result"):
            item = _bundle(output.get("data", {}), ctx)
            if item is not None:
                rendered.append(item)
        elif kind == "error":
            traceback = _ANSI.sub("", "\n".join(output.get("traceback") or []))
            traceback = traceback or f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
            rendered.append(_Output("error", f"::: {{.effgen-error}}\n{fenced(traceback, 'cell-error')}\n:::"))
    flush()
    return rendered


def _bundle(data: dict[str, Any], ctx: CellContext) -> _Output | None:
    if "text/markdown" in data:
        return _Output("markdown", _join(data["text/markdown"]))
    image = _image_from_bundle(data)
    if image is not None:
        key = ctx.images.add(image)
        return _Output("image", f"![]({key})", key)
    if "text/plain" in data:
        return _Output("text", fenced(_ANSI.sub("", _join(data["text/plain"])), "cell-output"))
    if "text/html" in data:  # only the HTML page can show it; the PDF drops raw HTML
        return _Output("markdown", fenced(_join(data["text/html"]), "{=html}"))
    return None


def _image_from_bundle(data: dict[str, Any]) -> Image | None:
    for mime in _IMAGE_MIMES:
        if mime in data:
            payload = _join(data[mime])
            if mime == "image/svg+xml":
                return Image(mime, base64.b64encode(payload.encode("utf-8")).decode("ascii"))
            return Image(mime, "".join(payload.split()))
    return None


def fenced(text: str, info: str) -> str:
    """A code fence longer than any backtick run inside ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info if info.startswith('{') else ' ' + info if info else ''}\n{text}\n{fence}"


def _source(cell: dict[str, Any]) -> str:
    return _join(cell.get("source", ""))


def _join(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)
