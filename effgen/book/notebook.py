"""Helpers a chapter notebook calls: its run folder, provenance callout, metrics and Markdown output.

A chapter starts with ``chapter = start_chapter("02-classifier", profile, seed, device)`` and
ends with ``chapter.write_metrics(...)``. Everything it shows comes out as Markdown so that
tables and callouts survive both the HTML and the PDF.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from IPython.display import Markdown

from effgen.book import paper
from effgen.book.provenance import environment
from effgen.budget import BudgetReport
from effgen.errors import MissingArtifactError
from effgen.paths import runs_dir
from effgen.runtime import describe, pick_device


@dataclass
class Chapter:
    name: str
    profile: str
    seed: int
    device: torch.device
    run_dir: Path
    env: dict[str, str] = field(default_factory=environment)

    def artifact(self, chapter: str, relative: str) -> Path:
        """An earlier chapter's output; fails with the chapter to run first when it is missing."""
        path = runs_dir(self.profile, chapter) / relative
        if not path.exists():
            raise MissingArtifactError(
                f"{self.name} needs {path} from chapter {chapter}; run it first: "
                f"effgen run {chapter} --profile {self.profile}"
            )
        return path

    def provenance(self, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {
            "chapter": self.name,
            "profile": self.profile,
            "seed": self.seed,
            "device": describe(self.device),
            **self.env,
            "data": dict(data or {}),
        }

    def provenance_callout(self, data: Mapping[str, Any] | None = None) -> Markdown:
        """The callout every chapter shows near its top (DESIGN.md, Provenance).

        ``data`` carries at least ``dataset``; a stand-in also sets ``stand_in=True``,
        ``requested`` (the paper's dataset) and ``reason``, and the callout becomes a warning.
        """
        data = dict(data or {})
        stand_in = bool(data.get("stand_in"))
        kind = "warning" if stand_in else "note"
        lines = [f"::: {{.callout-{kind}}}", "## What produced this chapter", ""]
        if data:
            dataset = data.get("dataset", "?")
            if stand_in:
                lines.append(
                    f"- **Data: {dataset}, a stand-in** for {data.get('requested', 'the paper’s dataset')}. "
                    f"{data.get('reason', '')}".rstrip()
                )
            else:
                lines.append(f"- **Data:** {dataset}")
            if detail := data.get("detail"):
                lines.append(f"- **Data detail:** {detail}")
        lines += [
            # Chapters use ``seed`` for different things (a data rebuild, latents, one run); several
            # also train over a list of seeds, which their results name. So the callout says which it is.
            (f"- **Profile:** `{self.profile}`; **`seed` parameter:** {self.seed} (what it seeds: see the "
             f"parameters above); **device:** {describe(self.device)}"),
            (f"- **Code:** effgen {self.env['effgen']}, git `{self.env['git']}`, torch {self.env['torch']}, "
             f"run {self.env['date']}"),
            ":::",
        ]
        return Markdown("\n".join(lines))

    def write_metrics(self, metrics: Mapping[str, Any], headline: list[dict[str, Any]] | None = None,
                      data: Mapping[str, Any] | None = None) -> None:
        """Write ``metrics.json`` (in ``run_dir``); ``headline`` entries feed the summary table.

        Returns nothing, so that a chapter's last line does not print a path into the book.
        """
        for entry in headline or []:
            if entry["key"] not in paper.BY_KEY:
                raise KeyError(f"unknown headline key {entry['key']!r}; add it to effgen.book.paper first")
        payload = {
            "chapter": self.name,
            "provenance": self.provenance(data),
            "headline": headline or [],
            "metrics": dict(metrics),
        }
        path = self.run_dir / "metrics.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=_jsonable))
        tmp.replace(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (Path,)):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # e.g. a stats.Comparison
        return dataclasses.asdict(value)
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in metrics.json")


def start_chapter(name: str, profile: str, seed: int, device: str = "auto") -> Chapter:
    folder = runs_dir(profile, name)
    folder.mkdir(parents=True, exist_ok=True)
    return Chapter(name=name, profile=profile, seed=seed, device=pick_device(device), run_dir=folder)


def headline(key: str, value: float | str | None, *, std: float | None = None, n: int | None = None,
             note: str = "", steps: int | None = None, seeds: int | None = None,
             budget: BudgetReport | None = None, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One result for the summary table.

    ``n`` is the number of values behind ``std`` (seeds or samples). The structured fields let
    the summary page say what produced the number instead of trusting free text: ``steps``
    (optimisation steps per run), ``seeds`` (training seeds behind the value), ``budget`` (the
    measured ``BudgetReport`` of the run: its steps, and the only source of the over-budget
    dagger) and ``data`` (a provenance dict, when it differs from the chapter's own).
    """
    if budget is not None and steps is None:
        steps = budget.steps
    return {"key": key, "value": value, "std": std, "n": n, "note": note, "steps": steps, "seeds": seeds,
            "budget": budget.as_dict() if budget is not None else None,
            "over_budget": bool(budget is not None and budget.over_budget),
            "data": _data_summary(data) if data is not None else None}


def _data_summary(data: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a provenance dict the summary needs: what was used, and whether it stood in."""
    return {"dataset": data.get("dataset", "?"), "stand_in": bool(data.get("stand_in")),
            "requested": data.get("requested", "")}


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".2f", index: bool = False, intfmt: str = "") -> Markdown:
    """``frame`` as a Markdown table; ``intfmt=","`` shows integers with thousands separators."""
    return Markdown(frame.to_markdown(index=index, floatfmt=floatfmt, intfmt=intfmt))


def md(text: str) -> Markdown:
    return Markdown(text)
