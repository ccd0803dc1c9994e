"""How long the whole smoke book takes, end to end and per phase, from an installed environment.

Copies the book's sources into a temporary project (empty data/ and runs/, as on a fresh clone),
then times `effgen run --profile smoke` and `effgen render --profile smoke` separately.
Targets: at most 3 minutes end to end on a 2-core CPU, and at most 20 s for rendering.

    .venv/bin/python bench/bench_report.py [--profile smoke] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from effgen.book.provenance import machine_summary

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("_quarto.yml", "references.bib", "index.ipynb", "chapters", "params")


def timed(command: list[str], root: Path) -> float:
    env = {**os.environ, "EFFGEN_ROOT": str(root), "EFFGEN_DATA": str(root / "data")}
    start = time.perf_counter()
    subprocess.run(command, cwd=root, env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="effgen-bench-"))
    for name in SOURCES:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, root / name)
    effgen = [sys.executable, "-m", "effgen"]
    try:
        run_s = timed([*effgen, "run", "--profile", args.profile], root)
        render_s = timed([*effgen, "render", "--profile", args.profile], root)
        render_again_s = timed([*effgen, "render", "--profile", args.profile], root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"machine: {machine_summary()}")
    print(f"profile {args.profile}: run {run_s:.1f} s, render {render_s:.1f} s "
          f"(again {render_again_s:.1f} s), total {run_s + render_s:.1f} s")
    print(f"render share of the total: {render_s / (run_s + render_s):.1%}")


if __name__ == "__main__":
    main()
