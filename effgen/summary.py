"""The summary page's "paper vs this run" table, built from every chapter's ``metrics.json``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from .paper import BY_KEY, PAPER_NUMBERS
from .paths import runs_dir


def load_metrics(profile: str, root: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every chapter's metrics.json for ``profile``, keyed by chapter name."""
    base = (root / "runs" / profile) if root else runs_dir(profile)
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(base.glob("*/metrics.json")):
        try:
            found[path.parent.name] = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue  # a half-written file from a killed run is the same as no result
    return found


def _format(value: Any, unit: str, std: float | None = None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        text = f"{int(value):,}"
    else:
        text = f"{value:.2f}" if unit == "%" else f"{value:.3g}"
    if std is not None:
        text += f" ± {std:.2f}" if unit == "%" else f" ± {std:.3g}"
    return text + (" %" if unit == "%" else "")


def paper_vs_run(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per paper number; this run's value where a chapter reported it, else '—'."""
    reported: dict[str, tuple[str, dict[str, Any]]] = {}
    for chapter, payload in metrics.items():
        for entry in payload.get("headline", []):
            if entry.get("key") in BY_KEY:
                reported[entry["key"]] = (chapter, entry)
    rows = []
    for number in PAPER_NUMBERS:
        paper_text = number.paper_text or _format(number.paper, number.unit)
        chapter, entry = reported.get(number.key, (number.chapter, None))
        if entry is None:
            ours, note = "—", "not run yet"
        else:
            # A spread over one seed is no spread: show it only when there were several.
            std = entry.get("std") if (entry.get("n") or 0) > 1 else None
            ours = _format(entry.get("value"), number.unit, std)
            details = [entry.get("note") or ""]
            if entry.get("n"):
                details.append(f"n = {entry['n']}")
            if entry.get("over_budget"):
                ours += " †"
            note = "; ".join(d for d in details if d)
        rows.append({"Result": number.label, "Paper": paper_text, "This run": ours,
                     "Chapter": chapter, "Notes": note})
    return pd.DataFrame(rows)


def data_used(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Which data each chapter actually used, stand-ins marked."""
    rows = []
    for chapter, payload in metrics.items():
        prov = payload.get("provenance", {})
        data = prov.get("data", {})
        rows.append({
            "Chapter": chapter,
            "Data": data.get("dataset", "—") + (" (stand-in)" if data.get("stand_in") else ""),
            "Seed": prov.get("seed", "—"),
            "Device": prov.get("device", "—"),
            "Git": prov.get("git", "—"),
        })
    return pd.DataFrame(rows)


def missing_chapters(metrics: dict[str, dict[str, Any]], expected: list[str]) -> list[str]:
    return [name for name in expected if name not in metrics]
