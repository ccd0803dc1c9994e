"""Where things live: the project root, the data cache, the run folders, the build folders.

The root is found by walking up from the working directory to the folder holding
``_quarto.yml`` (the book's definition), so the library works from any chapter's cwd.
``EFFGEN_ROOT`` and ``EFFGEN_DATA`` override the discovery for unusual layouts.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from effgen.errors import ParamsError

PROFILES: tuple[str, ...] = ("smoke", "quick", "paper")
# A profile is a folder name under params/, runs/, _build/ and _freeze/: a name, never a path, so no
# profile can put a run or a frozen chapter outside the checkout.
PROFILE_NAME = re.compile(r"[a-z0-9-]+")
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


def check_profile(name: str) -> str:
    """``name`` if it is a profile name (lower-case letters, digits and dashes); else a one-line ``ParamsError``."""
    if not isinstance(name, str) or not PROFILE_NAME.fullmatch(name):
        raise ParamsError(f"profile {name!r} is not a profile name: use lower-case letters, digits and dashes, "
                          f"as the folders under params/ are named ({', '.join(PROFILES)})")
    return name


def runs_dir(profile: str, chapter: str | None = None) -> Path:
    base = project_root() / "runs" / check_profile(profile)
    return base / chapter if chapter else base


def build_dir(profile: str) -> Path:
    return project_root() / "_build" / check_profile(profile)
