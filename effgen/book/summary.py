"""The summary page's "paper vs this run" table, built from every chapter's ``metrics.json``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from effgen.book.paper import BY_KEY, PAPER_NUMBERS, PaperNumber
from effgen.paths import runs_dir


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
    """One row per paper number; this run's value where a chapter reported it, else '—'.

    The notes are built from the headline's structured fields, so a reader never sees this
    run's number beside the paper's without what produced it (``run_note``).
    """
    reported: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
    for chapter, payload in metrics.items():
        for entry in payload.get("headline", []):
            if entry.get("key") in BY_KEY:
                reported[entry["key"]] = (chapter, entry, payload.get("provenance", {}))
    rows = []
    for number in PAPER_NUMBERS:
        paper_text = number.paper_text or _format(number.paper, number.unit)
        chapter, entry, provenance = reported.get(number.key, (number.chapter, None, {}))
        if entry is None:
            ours, note = "—", "not run yet"
        else:
            # A spread over one seed is no spread: show it only when there were several.
            std = entry.get("std") if (entry.get("n") or 0) > 1 else None
            ours = _format(entry.get("value"), number.unit, std)
            if over_budget(entry):
                ours += " †"
            elif more_images(entry):
                ours += " ‡"
            note = run_note(number, entry, provenance)
        rows.append({"Result": number.label, "Paper": paper_text, "This run": ours,
                     "Chapter": chapter, "Notes": note})
    return pd.DataFrame(rows)


def over_budget(entry: dict[str, Any]) -> bool:
    """The dagger: only the run's measured budget sets it, never a declared intention."""
    budget = entry.get("budget") or {}
    return bool(budget.get("over_budget"))


def more_images(entry: dict[str, Any]) -> bool:
    """The double dagger: within the step limit, but more images seen than the paper's steps x batch 64."""
    budget = entry.get("budget") or {}
    images, allowed = budget.get("images"), budget.get("max_images")
    return images is not None and allowed is not None and images > allowed


def run_note(number: PaperNumber, entry: dict[str, Any], provenance: dict[str, Any]) -> str:
    """What produced this run's number: steps (or a budget row's limit), data, seeds, the chapter's note.

    A budget row (a parameter or step count) gives the paper's limit: it depends on no data or
    seeds. A result that was not measured (value None) gives only the chapter's reason. Every
    other row gives the steps per run, the data (a stand-in named as one) and the number of
    seeds; a field the chapter did not record says so rather than being left out.
    """
    details: list[str] = []
    if entry.get("value") is None:
        pass  # nothing was measured: the chapter's note says why, and nothing else applies
    elif number.limit:
        details.append(number.limit)
    else:
        steps = entry.get("steps")
        details.append(f"{steps:,} steps per run" if isinstance(steps, int) else "steps not recorded")
        details.append(_data_text(entry.get("data") or provenance.get("data") or {}))
        seeds = entry.get("seeds")
        details.append(f"{seeds} seed{'s' if seeds != 1 else ''}" if isinstance(seeds, int)
                       else "seeds not recorded")
        if seeds is None and entry.get("n"):
            details.append(f"n = {entry['n']:,}")
    if entry.get("note"):
        details.append(entry["note"])
    return "; ".join(details)


def _data_text(data: dict[str, Any]) -> str:
    if not data.get("dataset"):
        return "data not recorded"
    if data.get("stand_in"):
        return f"{data['dataset']}, a stand-in for {data.get('requested') or 'the paper’s data'}"
    return str(data["dataset"])


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
