"""Where things live: the project root, the data cache, the run folders and run store, the build folders.

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
RUNS_MIRROR = "runs"  # _freeze/<profile>/<chapter>/runs/: the chapter's own artifacts, kept small
GZIP_SUFFIXES = frozenset({".csv", ".json", ".npy"})  # files a mirror may store gzipped, as FILE.gz
# The run store: runs/<profile>/store/<kind>/<name>/, one folder per content key, so a run that several
# chapters need exists once (and once in _freeze/<profile>/store/). An entry holding WEIGHTS_FILE finished
# (the file reloads it); CHECKPOINT_FILE is the whole training state, which only resuming needs.
STORE_DIR = "store"
WEIGHTS_FILE = "weights.pt"
CHECKPOINT_FILE = "checkpoint.pt"
STORE_ENTRY = re.compile(r"[a-z0-9_]+/[A-Za-z0-9_][A-Za-z0-9_.-]*")  # "<kind>/<name>", e.g. classifier/seed0-cefd3897
# Every store entry this process trained, resumed or reused: the book's runner records them with the chapter.
STORE_ENTRIES_USED: list[str] = []


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


def store_for(folder: Path) -> Path:
    """The run store for runs asked for under ``folder``: its profile's, ``runs/<profile>/store/``, when
    ``folder`` lies in the project's ``runs/<profile>/`` (a chapter's run folder); else ``folder/store/``."""
    folder, runs = Path(folder).resolve(), (project_root() / "runs").resolve()
    parts = folder.relative_to(runs).parts if folder.is_relative_to(runs) else ()
    return runs / parts[0] / STORE_DIR if parts else folder / STORE_DIR


def use_store_entry(store: Path, kind: str, name: str) -> Path:
    """``store/<kind>/<name>/``, noted in ``STORE_ENTRIES_USED``."""
    entry = f"{kind}/{name}"
    if not STORE_ENTRY.fullmatch(entry):
        raise ParamsError(f"{entry!r} is not a store entry name (<kind>/<name>: letters, digits, '_', '.', '-')")
    if entry not in STORE_ENTRIES_USED:
        STORE_ENTRIES_USED.append(entry)
    return Path(store) / kind / name
