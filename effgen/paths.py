"""Where things live: the project root, the data cache, the run folders, the build folders.

The root is found by walking up from the working directory to the folder holding
``_quarto.yml`` (the book's definition), so the library works from any chapter's cwd.
``EFFGEN_ROOT`` and ``EFFGEN_DATA`` override the discovery for unusual layouts.
"""
from __future__ import annotations

import os
from pathlib import Path

PROFILES: tuple[str, ...] = ("smoke", "quick", "paper")
FREEZE_DIR = "_freeze"  # _freeze/<profile>/<chapter>/: executed chapters kept, as Quarto's freeze does
RUNS_MIRROR = "runs"  # _freeze/<profile>/<chapter>/runs/: the chapter's run folders, kept small
GZIP_SUFFIXES = frozenset({".csv", ".json", ".npy"})  # files a mirror may store gzipped, as FILE.gz


def project_root(start: Path | None = None) -> Path:
    if env := os.environ.get("EFFGEN_ROOT"):
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_quarto.yml").is_file():
            return folder
    # Installed outside a checkout: the package's parent is the best remaining guess.
    return Path(__file__).resolve().parent.parent


def data_root() -> Path:
    if env := os.environ.get("EFFGEN_DATA"):
        return Path(env).resolve()
    return project_root() / "data"


def runs_dir(profile: str, chapter: str | None = None) -> Path:
    base = project_root() / "runs" / profile
    return base / chapter if chapter else base


def build_dir(profile: str) -> Path:
    return project_root() / "_build" / profile
