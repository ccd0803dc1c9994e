"""The summary page's tables beside the claims: the deviations from the paper's protocol, the compute
each chapter took (and the committed device runs), the authors' code's flaws, and chapter 06's results
with their budgets. Each is built from the chapters' ``metrics.json`` and freeze records only.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from effgen.book.paper import BY_KEY, ORIGINAL_FLAWS, PAPER_PROTOCOL, code_link
from effgen.book.summary import (
    BEYOND_NAMES,
    chapter_ref,
    dataset_name,
    fixed,
    flag_of,
    resize_shift,
    with_spread,
)
from effgen.budget import CLASSIFIER_LIMITS, GAN_LIMITS, Limits
from effgen.checkpoints import read_unpacked

DEVICE_RESULTS = Path("bench") / "device" / "results"


def _budget_flag(params: int | None, steps: int | None, batch: int | None, limits: Limits) -> str:
    if params is None or steps is None:
        return ""
    if params >= limits.max_params or steps > limits.max_steps:
        return " †"
    return " ‡" if batch is not None and steps * batch > limits.max_images else ""


# ---- how this book departs from the paper ----------------------------------------------------------

def _section(metrics: Mapping[str, Any], chapter: str) -> Mapping[str, Any]:
    return (metrics.get(chapter) or {}).get("metrics") or {}


def _data(metrics: Mapping[str, Any], chapter: str) -> Mapping[str, Any]:
    return ((metrics.get(chapter) or {}).get("provenance") or {}).get("data") or {}


def _splits(data: Mapping[str, Any]) -> str:
    sizes = data.get("sizes") or {}
    pools = data.get("pool_sizes") or {}
    text = " / ".join(f"{sizes[s]:,}" for s in ("train", "valid", "test") if s in sizes)
    if pools:
        text += " images from " + " / ".join(f"{pools[s]:,}" for s in ("train", "valid", "test") if s in pools)
        text += " MNIST digits"
    return text


def deviations(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """What this book did where the paper did otherwise: data, seeds, budgets, tuning, FID, LPIPS."""
    rows = []
    cls = _data(metrics, "02-classifier")
    if cls:
        rows.append(("classifier data", f"{cls.get('dataset', '?')}: {_splits(cls)}".rstrip(": ")))
    gan = _data(metrics, "04-dcgan")
    if gan:
        images = _section(metrics, "00-data").get("gan_data", {}).get("images")
        jpeg = ", JPEG-compressed" if gan.get("jpeg") else ""
        rows.append(("generator data", f"{dataset_name(gan.get('dataset', '?'))} training set"
                     + (f", {images:,} images" if images else "") + jpeg))
    rows.append(("seeds", _seeds_text(metrics)))
    rows.append(("budgets", _budgets_text(metrics)))
    tuning = _section(metrics, "03-tuning")
    if tuning:
        rounds = tuning.get("round_bounds") or {}
        searched = ", ".join(str(k).replace("_", " ") for k in (next(iter(rounds.values()), {}) or {}))
        rows.append(("tuning", f"{tuning.get('finished_trials', '?')} trials in {tuning.get('rounds', '?')} rounds "
                     f"of {tuning.get('steps', 0):,} steps, scored on validation accuracy; bounds narrowed by a "
                     f"fixed rule; searched: {searched}; the best {len(tuning.get('confirm_top') or []) or 1} "
                     f"retrained at {tuning.get('final_steps', 0):,} steps"))
    evaluation = _section(metrics, "05-evaluation")
    if evaluation:
        shift = resize_shift(evaluation)
        resize_note = (f"; clean-fid's bicubic resize instead moves the corrected DCGAN's FID by {shift[0]:+.1f} "
                       f"({shift[1]:,} per side)" if shift else "")
        rows.append(("FID", f"pytorch-fid's Inception network and formula ({evaluation.get('inception_weights', '?')}), "
                     f"{evaluation.get('n_fid', 0):,} generated vs {evaluation.get('n_fid', 0):,} "
                     f"{dataset_name(evaluation.get('dataset', '?'))} test images{resize_note}"))
        lpips = evaluation.get("lpips") or {}
        rows.append(("LPIPS", f"{lpips.get('net', '?')}: pairs of generated images, and each generated image's "
                     "nearest training image; the original's computation repeated beside them"
                     if "diversity_mean" in lpips else "not computed: no pretrained backbone in this build"))
    return pd.DataFrame([{"": what, "Paper": PAPER_PROTOCOL.get(what, "—"), "This book": ours}
                         for what, ours in rows])


def _seeds_text(metrics: Mapping[str, Any]) -> str:
    parts = []
    runs = _section(metrics, "02-classifier").get("runs") or {}
    if "tuned" in runs:
        parts.append(f"tuned classifier {runs['tuned'].get('n', '?')}")
    if "plain" in runs:
        parts.append(f"ladder rungs {runs['plain'].get('n', '?')}")
    if "long" in runs:
        parts.append(f"scalability runs {runs['long'].get('n', '?')}")
    activations = _section(metrics, "01-activations").get("seeds")
    if activations:
        parts.append(f"activations {len(activations)}")
    confirm = (_section(metrics, "03-tuning").get("confirm") or {}).get("seeds")
    if confirm:
        parts.append(f"tuned vs paper setting {len(confirm)}")
    if _section(metrics, "04-dcgan"):
        parts.append("each GAN recipe 1")
    return ("seeds per setting: " + ", ".join(parts) + "; every run fixes its seed") if parts else "—"


def _budgets_text(metrics: Mapping[str, Any]) -> str:
    flagged: dict[str, list[str]] = {"†": [], "‡": []}
    for payload in metrics.values():
        for entry in payload.get("headline", []):
            flag = flag_of(entry).strip()
            if flag and entry.get("key") in BY_KEY:
                label = BY_KEY[entry["key"]].label.removesuffix(", test accuracy")
                flagged[flag].append(label[0].lower() + label[1:])
    text = "the paper's limits, enforced before training"
    if flagged["†"]:
        text += f"; over them on purpose (†): {'; '.join(flagged['†'])}"
    if flagged["‡"]:
        text += f"; more images seen (‡): {'; '.join(flagged['‡'])}"
    return text


# ---- compute ---------------------------------------------------------------------------------------

_RUN_KEY = re.compile(r"seed\d+-[0-9a-f]{8}$")  # a run-store entry's name, the tail of older run folders


def training_seconds(folders: Mapping[str, Path], records: Mapping[str, Mapping[str, Any] | None] | None = None,
                     store: Path | None = None) -> dict[str, float]:
    """Seconds of training each chapter's run histories record (``history.csv``, plain or gzipped): the
    runs in its folder, and the entries of the run ``store`` its freeze record lists (``records``).

    A run that two chapters share (same configuration and data: the same store entry) counts once,
    for the first chapter in the order given. Only runs that log ``seconds`` count: the classifier runs.
    """
    seen: set[str] = set()
    totals: dict[str, float] = {}
    for chapter, folder in folders.items():
        total = 0.0
        entries = ((records or {}).get(chapter) or {}).get("store", [])
        histories = sorted(Path(folder).rglob("history.csv*")) + (
            [Path(store) / e / "history.csv" for e in entries] if store is not None else [])
        for history in histories:
            if history.name not in ("history.csv", "history.csv.gz") or not history.is_file():
                continue
            match = _RUN_KEY.search(history.parent.name)
            key = match.group(0) if match else f"{chapter}/{history.parent.relative_to(folder)}"
            if key in seen:
                continue
            seen.add(key)
            total += _history_seconds(history)
        totals[chapter] = total
    return totals


def _history_seconds(path: Path) -> float:
    text = read_unpacked(path).decode("utf-8", "replace")
    rows = csv.DictReader(io.StringIO(text))
    return sum(float(row["seconds"]) for row in rows if row.get("seconds"))


def duration(seconds: float | None) -> str:
    """A duration in the unit a reader thinks in: "40 s", "14 min", "3.2 h"."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:,.1f} h"


def compute_table(metrics: Mapping[str, Any], records: Mapping[str, Mapping[str, Any] | None],
                  trained: Mapping[str, float], device: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Per chapter: the data, the machine, its last execution and the training its runs record.

    ``records`` are the chapters' freeze records (``freeze.read_record``); ``trained`` comes from
    ``training_seconds``. A last execution that reused finished runs is short: the training column
    is the cost of the runs themselves. Committed device runs (``device_results``) add their rows.
    """
    rows = []
    for chapter in records:
        provenance = (metrics.get(chapter) or {}).get("provenance") or {}
        data = provenance.get("data") or {}
        executed = ((records.get(chapter) or {}).get("executed") or {}).get("seconds")
        rows.append({"Chapter": chapter_ref(chapter), "Data": dataset_name(data.get("dataset", "—")),
                     "Machine": provenance.get("device", "—"),
                     "Last execution": duration(executed),
                     "Training recorded by its runs": duration(trained.get(chapter)) if trained.get(chapter) else "—"})
    for label, seconds, machine, data in (device or {}).get("timings", []):
        rows.append({"Chapter": label, "Data": dataset_name(data), "Machine": machine,
                     "Last execution": duration(seconds), "Training recorded by its runs": "—"})
    return pd.DataFrame(rows)


def device_results(root: Path) -> dict[str, Any]:
    """The committed device runs under ``bench/device/results/`` (the newest folder), for citation.

    Their JSON files hold one or several objects one after another, as the device script wrote them.
    """
    base = Path(root) / DEVICE_RESULTS
    folders = sorted(p for p in base.glob("*") if p.is_dir()) if base.is_dir() else []
    if not folders:
        return {}
    folder = folders[-1]
    classifier = _json_objects(folder / "classifier-seeds.json")
    fid = _json_objects(folder / "fid-scored-here.json")
    machine = next((r.get("device") for r in classifier if r.get("device")), "a GPU")
    classifier_data = next((r.get("data") for r in classifier if r.get("data")), "—")
    fid_data = next((m.group(1) for r in fid if (m := re.search(r"(\w+):test", r.get("command", "")))), "—")
    timings = []
    for name, what, data in (("classifier-timing.json", "classifier seeds, on a lent GPU", classifier_data),
                             ("gan-timing.json", "corrected DCGAN, on a lent GPU",
                              f"{fid_data} (part of its training set)")):
        for record in _json_objects(folder / name):
            if isinstance(record.get("wall_s"), (int, float)):
                timings.append((what, float(record["wall_s"]), machine, data))
    return {"folder": folder.relative_to(root).as_posix(), "classifier": classifier, "fid": fid,
            "timings": timings}


def _json_objects(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    text, decoder, found, at = path.read_text(encoding="utf-8"), json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        try:
            value, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            break
        if isinstance(value, dict):
            found.append(value)
    return found


# ---- the authors' code, and the results beyond the paper ------------------------------------------

def flaws_markdown(metrics: Mapping[str, Any]) -> str:
    """The authors' code's flaws as one list, each with the code cell and the section that shows it."""
    lines = []
    for flaw in ORIGINAL_FLAWS:
        lines.append(f"- **{flaw.title}**: {flaw.detail}. Code: {code_link(flaw.notebook, flaw.cell)}; "
                     f"evidence: {flaw.evidence}{_measured(flaw.measured, metrics)}.")
    return "\n".join(lines)


def _measured(what: str, metrics: Mapping[str, Any]) -> str:
    """What this book measured about a flaw (``Flaw.measured``), where its metrics hold it."""
    if what == "batch mean":
        test = _section(metrics, "02-classifier").get("test_accuracy") or {}
        if "mean_batch_accuracy_mean" in test:
            gap = test["mean_batch_accuracy_mean"] - test["mean"]
            return f" (on this book's test split the two measures differ by {gap:+.3f} points)"
    if what == "schedule":
        step = _section(metrics, "04-dcgan").get("faithful_first_decay_step_at_paper_budget")
        if isinstance(step, int):
            return f" (the decay comes at step {step:,})"
    if what == "train mode":
        fid = _section(metrics, "05-evaluation").get("fid") or {}
        modes = [fid.get(f"faithful, {mode} mode", {}).get("fid_test") for mode in ("train", "eval")]
        if all(isinstance(v, (int, float)) for v in modes):
            return f" (the faithful generator's FID: {fixed(modes[0], 1)} in train mode, {fixed(modes[1], 1)} in eval mode)"
    if what == "lpips zeros":
        lpips = _section(metrics, "05-evaluation").get("lpips") or {}
        if "original_zeros" in lpips:
            return f" (repeated here: {lpips['original_zeros']} exact zeros)"
    return ""


def _shared_runs(accuracy: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    """", the runs of seeds 0, 1, 2 of @sec-classifier-seeds" when these are chapter 02's own runs, so
    the page's two numbers for one model say which is which."""
    mine = accuracy.get("per_seed") or {}
    tuned = (_section(metrics, "02-classifier").get("test_accuracy") or {}).get("per_seed") or {}
    if not mine or len(mine) >= len(tuned) or any(tuned.get(seed) != value for seed, value in mine.items()):
        return ""
    return f": seeds {', '.join(map(str, mine))} of the {len(tuned)} in @sec-classifier-seeds"


def beyond_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Chapter 06's models beside the paper's, each with the budget it used (parameters, steps, batch)."""
    chapter = _section(metrics, "06-beyond")
    rows = []
    for name, run in (chapter.get("classifiers") or {}).items():
        config = run.get("config") or {}
        acc = run.get("test_accuracy") or {}
        flag = _budget_flag(run.get("params"), run.get("steps"), config.get("batch_size"), CLASSIFIER_LIMITS)
        rows.append({"Model": f"classifier: {BEYOND_NAMES.get(name, name)}", "Parameters": f"{run.get('params', 0):,}",
                     "Steps × batch": f"{run.get('steps', 0):,} × {config.get('batch_size', '?')}",
                     "Result": with_spread(acc.get("mean", math.nan), acc.get("std"), acc.get("n"), " %")
                     + f" test accuracy ({acc.get('n', '?')} seeds{_shared_runs(acc, metrics)})" + flag})
    for label, run in (chapter.get("gan") or {}).items():
        flag = _budget_flag(run.get("params"), run.get("steps"), 64, GAN_LIMITS)
        rows.append({"Model": f"generator: {label}", "Parameters": f"{run.get('params', 0):,}",
                     "Steps × batch": f"{run.get('steps', 0):,} × 64",
                     "Result": f"FID {fixed(run.get('fid', math.nan), 1)} (1 seed, {run.get('n', 0):,} images)" + flag})
    rows += _pilot_rows(chapter)
    ablation = chapter.get("ablation") or {}
    if ablation.get("fid"):
        best = min(ablation["fid"], key=ablation["fid"].get)
        name = "all five additions" if best == "modern" else best.replace("no ", "without ", 1).replace("_", " ")
        rows.append({"Model": "modern recipe, one addition left out at a time", "Parameters": "as above",
                     "Steps × batch": f"{ablation.get('steps', 0):,} × 64",
                     "Result": f"best: {name}, FID {fixed(ablation['fid'][best], 1)} "
                               f"(1 seed, {ablation.get('n_fid', 0):,} images)"})
    return pd.DataFrame(rows)


def _pilot_rows(chapter: Mapping[str, Any]) -> list[dict[str, str]]:
    """The pilot study's best recipe (mean FID over its seeds) and, if one earned it, the winner's full run."""
    pilots = chapter.get("pilots") or []
    if not pilots:
        return []
    fids: dict[str, list[float]] = {}
    for result in pilots:
        fids.setdefault(result["pilot"], []).append(float(result["fid"]))
    best = min(fids, key=lambda name: sum(fids[name]) / len(fids[name]))
    n_seeds = len(fids[best])
    rows = [{"Model": f"generator recipes: {len(fids)} pilots at a quarter of the budget",
             "Parameters": "< 1,000,000 each", "Steps × batch": f"{pilots[0]['steps']:,} × 64",
             "Result": f"best: {best}, FID {fixed(sum(fids[best]) / n_seeds, 1)} "
                       f"({n_seeds} {'seed' if n_seeds == 1 else 'seeds'}, {pilots[0]['n_fake']:,} images)"}]
    winner = chapter.get("winner")
    if winner:
        flag = _budget_flag(winner.get("params"), winner.get("steps"), 64, GAN_LIMITS)
        rows.append({"Model": f"generator: pilot {winner['pilot']} at full length, the pilots' winner",
                     "Parameters": f"{winner.get('params', 0):,}", "Steps × batch": f"{winner.get('steps', 0):,} × 64",
                     "Result": f"FID {fixed(winner.get('fid', math.nan), 1)} (1 seed, {winner.get('n', 0):,} images)"
                               + flag})
    return rows
