"""What a GAN run folder holds besides its checkpoint, and how it is written and read back.

``history.csv`` (one row per step), ``diagnostics.csv`` (one row per ``diagnostics_every``
steps, see ``effgen.gan.diagnostics``), ``config.json``, the fixed-noise grids
``samples/step-NNNNNN.png`` and, once finished, ``generator.pt`` (and ``generator-raw.pt``
beside an EMA generator). The freeze keeps these when it drops ``checkpoint.pt``, so a finished
run can be reloaded from them alone.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torchvision.utils import make_grid

from effgen.checkpoints import atomic_write
from effgen.gan.diagnostics import DIAGNOSTIC_COLUMNS
from effgen.gan.trainer import HISTORY_COLUMNS


def image_grid(images: torch.Tensor, columns: int = 8, gap: int = 2) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> one (H', W', 3) uint8 grid image, white gaps between tiles."""
    blanks = images.new_ones(max(columns - len(images), 0), *images.shape[1:])  # make_grid narrows a short row
    grid = make_grid(torch.cat([images, blanks]), nrow=columns, padding=gap, pad_value=1.0)
    return (grid[:, gap:-gap, gap:-gap].permute(1, 2, 0) * 255).round().to(torch.uint8)  # no outer border


def save_grid(images: torch.Tensor, path: Path, columns: int = 8) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images, columns).numpy()).save(path)


def existing_samples(run_dir: Path | None) -> dict[int, Path]:
    """step -> sample grid already in ``run_dir/samples``."""
    if not run_dir or not (run_dir / "samples").is_dir():
        return {}
    return {int(p.stem.split("-")[1]): p for p in sorted((run_dir / "samples").glob("step-*.png"))}


def write_tables(run_dir: Path, history: pd.DataFrame, diagnostics: pd.DataFrame,
                 config: dict[str, Any]) -> None:
    """history.csv, diagnostics.csv (when it has rows) and config.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "history.csv", lambda tmp: history.to_csv(tmp, index=False))
    if len(diagnostics):
        atomic_write(run_dir / "diagnostics.csv", lambda tmp: diagnostics.to_csv(tmp, index=False))
    text = json.dumps(config, indent=2)
    atomic_write(run_dir / "config.json", lambda tmp: tmp.write_text(text))


def read_history(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "history.csv").astype({"step": "int64"})[list(HISTORY_COLUMNS)]


def read_diagnostics(run_dir: Path) -> pd.DataFrame:
    """diagnostics.csv, or an empty table for runs made before it was written."""
    path = run_dir / "diagnostics.csv"
    if not path.is_file():
        return empty_diagnostics()
    return pd.read_csv(path).astype({"step": "int64"})[list(DIAGNOSTIC_COLUMNS)]


def empty_diagnostics() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="int64" if name == "step" else "float64")
                         for name in DIAGNOSTIC_COLUMNS})
