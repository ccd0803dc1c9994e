"""The summary page's "paper vs this run" table, built from every chapter's ``metrics.json``, and what
the page's other tables share: numbers at the precision their spread allows, the budget marks, the
names the book uses for chapters and datasets, and which data stood in.

The claims and their verdicts are ``effgen.book.claims``; the deviations, compute, flaws and beyond
tables are ``effgen.book.summary_tables``.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from effgen.book.paper import BY_KEY, PAPER_NUMBERS, PaperNumber
from effgen.budget import CLASSIFIER_LIMITS, GAN_LIMITS
from effgen.paths import runs_dir

NBSP = "\u00a0"  # keeps a number with its unit, and a table value on one line in the PDF
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}  # one name per thing, as the prose writes it
# Chapter 06's models, as its tables name them.
BEYOND_NAMES = {"paper": "paper model (SE + IR)", "digitsum": "digit-sum model (sum head)",
                "digitconcat": "shared digits, learned head"}


def chapter_ref(chapter: str) -> str:
    """A chapter as the book numbers it: a cross-reference to its title ("02-classifier" -> Chapter 3)."""
    stem = chapter.split("-", 1)[-1]
    return f"@sec-{stem}" if chapter[:2].isdigit() else chapter


def dataset_name(name: Any) -> str:
    """A dataset as the book names it ("CIFAR-10"), whatever key the data layer used ("cifar10")."""
    return re.sub(r"\bcifar(10|100)\b", lambda m: DATASET_NAMES[m.group(0)], str(name))


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
    """This build's value at the precision its spread allows (``with_spread``); one value of a
    percentage or of ten or more (an FID) to one decimal, a smaller one to three digits."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    suffix = " %" if unit == "%" else ""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}{suffix}"
    if std is not None and std > 0:
        return with_spread(value, std, 2, suffix)
    return (fixed(value, 1) if unit == "%" or abs(value) >= 10 else f"{value:.3g}") + suffix


def _paper_format(value: Any, unit: str) -> str:
    """The paper's number as the paper prints it: 65.0, 43.2, 84.95 (its own decimals, never more)."""
    if value is None:
        return "—"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    decimals = len(repr(float(value)).split(".")[1])
    return f"{value:,.{decimals}f}" + (" %" if unit == "%" else "")


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
        paper_text = number.paper_text or _paper_format(number.paper, number.unit)
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
    """The row's data: its name, or "stand-in data" when it stood in for the paper's, which the page
    names once (``stand_ins``) rather than in every row."""
    if not data.get("dataset"):
        return "data not recorded"
    if data.get("stand_in"):
        return "stand-in data"
    return dataset_name(data["dataset"])


def stand_ins(metrics: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The stand-in datasets behind the headline numbers, by the dataset each stood in for.

    A headline's own data counts where it has one (chapter 06 names one per result), else its
    chapter's; each dataset once, with whether its images are JPEG-compressed.
    """
    found: dict[str, list[dict[str, Any]]] = {}
    for payload in metrics.values():
        chapter_data = (payload.get("provenance") or {}).get("data") or {}
        for entry in payload.get("headline", []):
            data = entry.get("data") or chapter_data
            if not data.get("stand_in") or not data.get("dataset"):
                continue
            requested = dataset_name(data.get("requested") or "the paper's data").removesuffix(" (official)")
            named = found.setdefault(requested, [])
            if all(d["dataset"] != data["dataset"] for d in named):
                jpeg = bool(data.get("jpeg") or (chapter_data.get("dataset") == data["dataset"]
                                                 and chapter_data.get("jpeg")))
                named.append({"dataset": data["dataset"], "jpeg": jpeg})
    return found


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


# ---- numbers at the precision their spread allows -------------------------------------------------

def decimals_for(spread: float) -> int:
    """Decimals that keep one significant digit of a spread, two when that digit is 1 or 2.

    So "74.8 ± 2.9" and "20.49 ± 0.09", not "74.82 ± 2.88": the second decimal of a mean whose seeds
    differ by three points says nothing.
    """
    if not math.isfinite(spread) or spread <= 0:
        return 2
    exponent = math.floor(math.log10(spread))
    leading = spread / 10 ** exponent
    return max(0, -exponent + (1 if leading < 3 else 0))


def fixed(value: float, decimals: int) -> str:
    """``value`` with thousands separators; "—" for a missing or non-finite value."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):,.{decimals}f}"


def with_spread(mean: float, spread: float | None, n: int | None, unit: str = "", single: int = 1) -> str:
    """"mean ± sd unit" at the spread's precision; one value (n < 2) at ``single`` decimals."""
    if spread is None or not n or n < 2 or not math.isfinite(spread) or spread <= 0:
        return fixed(mean, single) + unit
    decimals = decimals_for(spread)
    return f"{fixed(mean, decimals)} ± {fixed(spread, decimals)}{unit}"


def seed_spread(summary: Mapping[str, Any], unit: str = "", single: int = 2) -> str:
    """A seed summary (``{"mean", "std", "n"}``) as ``with_spread`` writes it, "mean ± sd" at the spread's
    precision; one seed: "mean (1 seed)", at ``single`` decimals (a test accuracy's resolution)."""
    n = summary.get("n") or 0
    if n < 2:
        return f"{fixed(summary['mean'], single)}{unit} (1 seed)"
    return with_spread(summary["mean"], summary.get("std"), n, unit, single)


def unbreakable(text: str) -> str:
    """``text`` with non-breaking spaces: a table value the PDF must not split over two lines."""
    return text.replace(" ", NBSP)


def flag_of(entry: Mapping[str, Any]) -> str:
    """" †" over the paper's limits, " ‡" more images seen than its steps x 64, else ""."""
    return " †" if over_budget(entry) else " ‡" if more_images(entry) else ""  # type: ignore[arg-type]


def budget_note() -> str:
    """What † and ‡ mean, said once; the limits come from ``effgen.budget``."""
    return (f"† over the paper's limits (fewer than {CLASSIFIER_LIMITS.max_params:,} parameters and at most "
            f"{CLASSIFIER_LIMITS.max_steps:,} steps for the classifier; fewer than {GAN_LIMITS.max_params:,} and "
            f"at most {GAN_LIMITS.max_steps:,} for the GAN), run on purpose where the paper did. ‡ within the "
            f"step limit, but more images seen than the paper's steps × batch {CLASSIFIER_LIMITS.batch_size} "
            f"({CLASSIFIER_LIMITS.max_images:,} for the classifier): a larger batch spends more data and "
            "compute per step.")


def resize_shift(evaluation: Mapping[str, Any]) -> tuple[float, int] | None:
    """Chapter 05's measured FID shift from clean-fid's resize (clean minus pytorch-fid) and its images per
    side, or None where it was not measured."""
    by_resize = evaluation.get("fid_by_resize") or {}
    if not {"clean", "pytorch-fid", "n"} <= set(by_resize):
        return None
    return by_resize["clean"] - by_resize["pytorch-fid"], int(by_resize["n"])
