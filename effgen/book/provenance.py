"""What produced a result: profile, seed, device, git revision, library versions, data source."""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from pathlib import Path

import torch

from effgen import __version__
from effgen.paths import project_root


def git_revision(root: Path | None = None) -> str:
    """Short commit hash, with ``+dirty`` when tracked files other than frozen results differ from it.

    ``unknown`` outside git. ``_freeze/`` does not count: it holds what chapters produced, and a run of
    several chapters rewrites it as it goes, which would mark every later chapter dirty though no
    source differs from the commit.
    """
    cwd = root or project_root()
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)_freeze"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def environment() -> dict[str, str]:
    return {
        "effgen": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}",
        "git": git_revision(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary() -> str:
    """One line naming the hardware a benchmark ran on, with the load that may have slowed it."""
    import os

    parts = [cpu_model(), f"{os.cpu_count()} CPUs", f"torch threads {torch.get_num_threads()}"]
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    try:
        parts.append("load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    except OSError:
        pass
    parts.append(f"Python {platform.python_version()}, torch {torch.__version__}")
    return "; ".join(parts)
