"""Render with Quarto when it is installed: stage the project with executed notebooks, run quarto.

Quarto renders whatever notebooks it finds, so the staged copy puts each executed notebook where its
source was listed; a chapter without one keeps its source plus the not-executed callout. The
project's own data, runs and build folders are not copied.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from effgen.book.notebook_file import read_notebook
from effgen.book.render.book import locate_chapters
from effgen.book.render.config import BookConfig
from effgen.book.render.errors import RenderError
from effgen.book.render.ipynb import mark_not_executed

# Big or irrelevant folders: Quarto never reads them for a book built from executed notebooks.
SKIP = {".git", ".venv", "venv", "_build", "_freeze", "data", "runs", "__pycache__", ".pytest_cache", ".quarto",
        "node_modules", ".ipynb_checkpoints", ".ruff_cache"}
QUARTO_FORMATS = {"html": "html", "pdf": "typst"}


def render_with_quarto(quarto: str, config: BookConfig, executed_dir: Path, out_dir: Path,
                       formats: Sequence[str]) -> dict[str, Path]:
    chapters = locate_chapters(config, executed_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="effgen-quarto-") as tmp:
        stage = Path(tmp) / "project"
        _stage(config.root, stage, skip=[executed_dir, out_dir])
        for source, path, executed in chapters:
            target = stage / source
            target.parent.mkdir(parents=True, exist_ok=True)
            if executed:
                shutil.copyfile(path, target)
            elif source.endswith(".ipynb"):
                target.write_text(json.dumps(mark_not_executed(read_notebook(path, source), source), indent=1),
                                  encoding="utf-8")
        produced: dict[str, Path] = {}
        for fmt in formats:
            staged_out = Path(tmp) / f"out-{fmt}"
            _run(quarto, ["render", "--to", QUARTO_FORMATS[fmt], "--output-dir", str(staged_out)], stage)
            if fmt == "html":
                shutil.copytree(staged_out, out_dir, dirs_exist_ok=True)
                produced["html"] = out_dir / "index.html"
            else:
                pdfs = sorted(staged_out.rglob("*.pdf"))
                if not pdfs:
                    raise RenderError(f"quarto render --to typst produced no PDF in {staged_out}")
                produced["pdf"] = out_dir / f"{config.slug}.pdf"
                shutil.copyfile(pdfs[0], produced["pdf"])
        for fmt, path in produced.items():
            if not path.is_file():
                raise RenderError(f"quarto render --to {QUARTO_FORMATS[fmt]} did not produce {path.name}")
        return produced


def _stage(root: Path, stage: Path, skip: list[Path]) -> None:
    skipped = {p.resolve() for p in skip}

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in SKIP or (Path(folder) / n).resolve() in skipped}

    shutil.copytree(root, stage, ignore=ignore, symlinks=True)


def _run(quarto: str, args: list[str], cwd: Path) -> None:
    try:
        proc = subprocess.run([quarto, *args], cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as err:
        raise RenderError(f"cannot run {quarto}: {err}") from err
    if proc.returncode != 0:
        tail = " | ".join([line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()][-6:])
        raise RenderError(f"quarto {' '.join(args[:3])} failed (exit {proc.returncode}): {tail or 'no message'}")
