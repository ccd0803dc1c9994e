"""Run pandoc (the binary shipped in ``pypandoc-binary``): Markdown in, JSON AST or HTML/Typst out.

Pandoc's own warnings (say, a citation key missing from the bibliography) come back as
``RenderWarning``s; a pandoc failure becomes a ``RenderError`` that names the document.
"""
from __future__ import annotations

import json
import subprocess
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from effgen.book.render.errors import RenderError, RenderWarning

# Quarto's Markdown is pandoc Markdown; these are the extensions a notebook's prose relies on.
MARKDOWN = "markdown+tex_math_dollars+fenced_divs+bracketed_spans+pipe_tables+citations+raw_html"


@lru_cache(maxsize=1)
def pandoc_path() -> str:
    try:
        import pypandoc

        return str(pypandoc.get_pandoc_path())
    except (ImportError, OSError) as err:
        raise RenderError(f"pandoc is not available ({err}); install pypandoc-binary") from err


def run_pandoc(args: Sequence[str], stdin: str, where: str) -> str:
    proc = subprocess.run([pandoc_path(), *args], input=stdin.encode("utf-8"), capture_output=True, check=False)
    messages = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        raise RenderError(f"pandoc failed on {where}: {_brief(messages)}")
    for line in messages.splitlines():
        if line.strip():
            warnings.warn(f"{where}: pandoc: {line.strip()}", RenderWarning, stacklevel=3)
    return proc.stdout.decode("utf-8")


def markdown_to_ast(markdown: str, where: str) -> dict[str, Any]:
    return json.loads(run_pandoc(["--from", MARKDOWN, "--to", "json"], markdown, where))


def ast_to(fmt: str, doc: dict[str, Any], where: str, bibliography: Path | None,
           extra: Sequence[str] = (), references_title: bool = True) -> str:
    """Write an AST as ``fmt`` (html, typst), resolving citations when there is a bibliography.

    ``references_title`` lets pandoc add a level-1 "References" heading before the list; a page
    that places its own ``#refs`` div (the HTML chapters) turns it off.
    """
    args = ["--from", "json", "--to", fmt, "--wrap=none", *extra]
    if bibliography is not None:
        args += ["--citeproc", f"--bibliography={bibliography}", "--metadata=link-citations=true"]
        if references_title:
            args.append("--metadata=reference-section-title=References")
    return run_pandoc(args, json.dumps(doc), where)


def _brief(messages: str, lines: int = 6) -> str:
    kept = [line for line in messages.splitlines() if line.strip()][:lines]
    return " | ".join(kept) or "no message"
