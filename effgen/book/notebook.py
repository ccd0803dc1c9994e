"""Helpers a chapter notebook calls: its run folder, provenance callout, metrics and Markdown output.

A chapter starts with ``chapter = start_chapter("02-classifier", profile, seed, device)`` and
ends with ``chapter.write_metrics(...)``. Everything it shows comes out as Markdown so that
tables and callouts survive both the HTML and the PDF.

A chapter runs two ways. The runner (``effgen run``) executes it with papermill, injecting its
profile's parameters, and freezes what it made. A person opens it in Jupyter, edits the
parameters cell and runs it: ``start_chapter`` then prepares ``runs/<profile>/<chapter>/`` as the
runner does (the frozen runs thawed into it), checks the parameters cell as strictly as the runner
checks a params file, and says what it found before the chapter computes anything. The training
code reuses every run whose key is unchanged and trains the others into ``runs/``; an interactive
run only reads ``_freeze/``, and keeps its metrics out of the summary page's sight.
"""
from __future__ import annotations

import ast
import csv
import dataclasses
import json
import re
import statistics
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from IPython.display import Markdown

from effgen.book import paper
from effgen.book.notebook_file import NotebookError, read_notebook
from effgen.book.provenance import environment
from effgen.book.summary import dataset_name
from effgen.budget import BudgetReport
from effgen.checkpoints import atomic_write
from effgen.errors import EffgenError, MissingArtifactError, ParamsError
from effgen.paths import PROFILES, project_root, runs_dir
from effgen.runtime import describe, ipython_shell, parameters_injected, pick_device

# runs/<profile>/.interactive/<chapter>/metrics.json: an interactive run's metrics. The summary page
# reads runs/<profile>/*/metrics.json, and would publish an experiment's numbers as the chapter's.
INTERACTIVE_DIR = ".interactive"


@dataclass
class Chapter:
    name: str
    profile: str
    seed: int
    device: torch.device
    run_dir: Path
    env: dict[str, str] = field(default_factory=environment)
    interactive: bool = False  # run in Jupyter by a person, not executed by papermill

    @property
    def metrics_path(self) -> Path:
        """Where ``write_metrics`` writes: the run folder, or out of the summary's sight when interactive."""
        if self.interactive:
            return self.run_dir.parent / INTERACTIVE_DIR / self.name / "metrics.json"
        return self.run_dir / "metrics.json"

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
            dataset = dataset_name(data.get("dataset", "?"))
            requested = dataset_name(data.get("requested", "the paper’s dataset"))
            lines.append(f"- **Data:** {dataset}, standing in for {requested}"
                         + ("" if self.name == "00-data" else " (@sec-data says why)") if stand_in
                         else f"- **Data:** {dataset}")
        # Why a download failed, paths and timestamps stay in metrics.json (``write_metrics``): readers get
        # what made the numbers. ``seed`` seeds different things per chapter; its parameters cell says which.
        lines += [f"- **Run:** profile `{self.profile}`, `seed` {self.seed}, {describe(self.device)}, "
                  f"effgen git `{self.env['git']}`", ":::"]
        return Markdown("\n".join(lines))

    def write_metrics(self, metrics: Mapping[str, Any], headline: list[dict[str, Any]] | None = None,
                      data: Mapping[str, Any] | None = None) -> None:
        """Write ``metrics.json`` (at ``metrics_path``); ``headline`` entries feed the summary table.

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
        text = json.dumps(payload, indent=2, default=_jsonable)
        atomic_write(self.metrics_path, lambda tmp: tmp.write_text(text))


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
    """The chapter's run folder, device and provenance; run interactively, also what it will reuse.

    Under papermill (the runner, or papermill by hand) it only makes the folder: the runner has
    prepared it, and a frozen chapter's outputs must be the runner's alone. In Jupyter it checks the
    parameters cell, prepares the folder as ``effgen run`` does and prints what it found, all
    before the chapter loads data or trains; a wrong value stops it here, in one line.
    """
    shell = ipython_shell()
    interactive = shell is not None and not parameters_injected()
    report: list[str] = []
    if shell is not None and interactive:
        _show_effgen_errors_in_one_line(shell)
        report = _prepare_interactive_run(name, profile, shell.user_ns)
    folder = runs_dir(profile, name)
    folder.mkdir(parents=True, exist_ok=True)
    chapter = Chapter(name=name, profile=profile, seed=seed, device=pick_device(device), run_dir=folder,
                      interactive=interactive)
    if interactive:
        report += [f"metrics go to {chapter.metrics_path.relative_to(project_root())}; the summary page "
                   "keeps reading the runner's",
                   "interrupted, a run resumes from its last checkpoint when the chapter runs again"]
        print("\n".join(report), flush=True)
    return chapter


def _show_effgen_errors_in_one_line(shell: Any) -> None:
    """Show an ``EffgenError`` as its one-line message, as the CLI does, not as a traceback.

    Every ``EffgenError`` is a problem the user fixes from its message (effgen.errors); in a
    notebook its traceback would bury that line under the library's frames.
    """
    def one_line(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> list[str]:
        # IPython's exception_only display adds a "use %tb" line and colours; this is the CLI's line.
        shown = [f"{etype.__name__}: {value}"]
        sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # %tb and %debug still work
        shell._showtraceback(etype, value, shown)
        return shown

    shell.set_custom_exc((EffgenError,), one_line)


def _prepare_interactive_run(name: str, profile: str, namespace: Mapping[str, Any]) -> list[str]:
    """Check the parameters, prepare ``runs/<profile>/<name>/`` as ``effgen run`` does; the report's lines.

    The freeze and the parameter checks are imported here, not at the top: the runner fingerprints a
    chapter by the library modules its kernel loaded, and a batch run must not load these.
    """
    from effgen.book import freeze
    from effgen.book.run_progress import chapter_runs, run_progress, summarise

    root = project_root()
    if profile not in PROFILES and not (root / "params" / profile).is_dir():
        raise ParamsError(f"the parameters cell: profile {profile!r} is not a profile of this book "
                          f"({', '.join(PROFILES)})")
    notebook = _notebook_of(root, name)
    values = _checked_parameters(root / notebook, namespace)
    lines = [f"{name}, run interactively at profile {profile!r}: runs in "
             f"{runs_dir(profile, name).relative_to(root)}/ (_freeze/ is only read)"]
    freeze.prepare_runs(root, profile, name, freeze.depends_on(root, notebook),
                        log=lambda line: lines.append(line.strip()))
    folder = freeze.runs_folder(root, profile, name)
    store = freeze.live_store(root, profile)
    entries = (freeze.read_record(root, profile, name) or {}).get("store", [])
    # the chapter's own runs, and the run-store entries its last execution used
    found = [(folder / run.name, run) for run in chapter_runs(folder)]
    found += [(store / entry, run) for entry in entries if (run := run_progress(store / entry, entry))]
    runs = [run for _, run in found]
    on_hand = summarise(runs)
    lines.append(f"runs on hand: {on_hand}; each is reused wherever the chapter asks for its key (configuration "
                 "and data), an unfinished one resumes" if on_hand else "no runs on hand: every run the chapter asks for trains")
    frozen = _executed_parameters(freeze.freeze_dir(root, profile, name) / freeze.NOTEBOOK_FILE)
    changed = _changes(values, frozen or {})
    if frozen is None:
        lines.append(f"nothing of profile {profile!r} is frozen for this chapter")
    elif changed:
        lines.append("changed from the frozen execution: " + "; ".join(changed)
                     + ". Runs whose configuration or data these change train; the rest are reused")
    else:
        lines.append("parameters: those of the frozen execution, so no run should train")
    if dataset := _dataset_of(folder / "metrics.json"):
        # Run keys hash the data too, and ``auto`` sources resolve per machine: say what reuse needs.
        lines.append(f"the runner's last execution used {dataset}; on other data every run trains anew")
    if (frozen is None or changed) and (cost := _training_cost([path for path, run in found if run.finished])):
        lines.append(f"a run to train takes about {cost} (the median finished run here, as its history records)")
    return lines


def _checked_parameters(notebook: Path, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters cell's values, each checked against its declaration as the runner checks a params file."""
    from effgen.book.params import declared_parameters

    declared = declared_parameters(notebook)
    unset = [key for key in declared if key not in namespace]
    if unset:
        raise ParamsError(f"the parameters cell does not set {', '.join(unset)}: run it first (or Run All)")
    for key, parameter in declared.items():
        value = namespace[key]
        if not parameter.accepts(value):
            raise ParamsError(f"the parameters cell: {key} must be {parameter.describe_type}, "
                              f"got {type(value).__name__} {value!r}")
    return {key: namespace[key] for key in declared}


def _notebook_of(root: Path, name: str) -> str:
    """The chapter's notebook, relative to ``root``, as ``_quarto.yml`` lists it."""
    from effgen.book.runner import book_notebooks

    for notebook in book_notebooks(root):
        if Path(notebook).stem == name:
            return notebook
    raise ParamsError(f"chapter {name!r} is not in {root / '_quarto.yml'}")


def _executed_parameters(notebook: Path) -> dict[str, Any] | None:
    """The parameter values a frozen notebook was executed with: its defaults, then papermill's values.

    None when there is no frozen notebook.
    """
    try:
        cells = read_notebook(notebook).cells
    except NotebookError:
        return None
    values: dict[str, Any] = {}
    for cell in cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") == "code" and ("parameters" in tags or "injected-parameters" in tags):
            try:
                values.update(_literal_assignments(cell.source))
            except SyntaxError:
                continue  # not a parameters cell this code can read: its values are unknown, not wrong
    return values


def _literal_assignments(source: str) -> dict[str, Any]:
    """``name = literal`` and ``name: type = literal`` lines of a parameters cell; anything else is skipped."""
    found: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        else:
            continue
        try:
            found[target] = ast.literal_eval(value)
        except ValueError:
            continue
    return found


def _changes(values: Mapping[str, Any], frozen: Mapping[str, Any]) -> list[str]:
    """``key = value (frozen: old)`` for each parameter that differs from the frozen execution."""
    return [f"{key} = {value!r} (frozen: {frozen[key]!r})" if key in frozen else f"{key} = {value!r} (new)"
            for key, value in values.items()
            if key != "profile" and (key not in frozen or frozen[key] != value)]


def _dataset_of(metrics: Path) -> str:
    """The data a chapter's ``metrics.json`` names ("" when there is none to read)."""
    try:
        return str(json.loads(metrics.read_text(encoding="utf-8"))["provenance"]["data"]["dataset"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _training_cost(finished: list[Path]) -> str:
    """The median training time the finished runs' histories record ("" when none records one)."""
    seconds = []
    for run in finished:
        history = run / "history.csv"
        if not history.is_file():
            continue
        with history.open(newline="") as rows:
            times = [float(row["seconds"]) for row in csv.DictReader(rows) if row.get("seconds")]
        if times:
            seconds.append(sum(times))
    if not seconds:
        return ""
    median = statistics.median(seconds)
    if median < 90:
        return f"{median:.0f} s"
    return f"{median / 60:.0f} min" if median < 5400 else f"{median / 3600:.1f} h"


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
    """``frame`` as a Markdown table; ``intfmt=","`` shows integers with thousands separators.

    ``floatfmt`` formats float columns only: a value the chapter already wrote as text ("347.8", at the
    precision its spread allows) stays as written, right-aligned when the whole column reads as numbers.
    """
    columns = ([frame.index] if index else []) + [frame[name] for name in frame.columns]
    written = [i for i, column in enumerate(columns) if not pd.api.types.is_numeric_dtype(column.dtype)]
    align = ["right" if i not in written or column.map(lambda v: bool(NUMBER_TEXT.fullmatch(str(v)))).all()
             else "left" for i, column in enumerate(columns)]
    return Markdown(frame.to_markdown(index=index, floatfmt=floatfmt, intfmt=intfmt, disable_numparse=written,
                                      colalign=align))


# A number as a table writes it: "1,234", "-0.5", "74.8 ± 2.9", "12 %", "3.1×"; "—" for a missing one.
NUMBER_TEXT = re.compile(r"—|[-+−]?[\d,]*\.?\d+(\s*±\s*[\d,]*\.?\d+)?\s*(%|×)?( [†‡])?")


def md(text: str) -> Markdown:
    return Markdown(text)
