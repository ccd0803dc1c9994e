"""Frozen results, Quarto's ``freeze: auto`` for papermill chapters: fingerprints, freeze, thaw, status.

Each executed chapter is kept under ``_freeze/<profile>/<chapter>/``:

* ``notebook.ipynb``: the executed notebook, which the renderer uses instead of executing;
* ``runs/``: a filtered mirror of ``runs/<profile>/<chapter>/`` holding its small artifacts
  (see ``KEEP_SUFFIXES``; finished checkpoints are slimmed, see ``filter_run_file``);
* ``fingerprint.json``: what produced them, part by part, so ``--status`` can say why a
  chapter is stale, plus when, on which git revision and in how long it ran.

The fingerprint of a chapter has five parts:

* ``notebook``: its code and markdown cell sources (and cell tags), not outputs or metadata;
* ``params``: the bytes of ``params/<profile>/<chapter>.yml`` (no file is a valid state);
* ``library``: one hash per ``effgen`` module the notebook imports, transitively (a static scan
  of ``import``/``from`` statements, relative ones included). A module's hash is that of its
  syntax tree without docstrings, so comments, docstrings and formatting do not count;
* ``results_version``: ``RESULTS_VERSION`` below;
* ``upstream``: for a chapter that reads another's outputs (``chapter.artifact("04-dcgan", ...)``,
  and the summary page, which reads every chapter), the execution it read.

The rule (DEVELOPING.md, "Frozen results"):

* ``notebook``, ``params`` or ``upstream`` changed: stale, re-executed; except that a notebook
  whose change is in prose only (markdown cells; its code cells and their tags are as executed)
  is re-frozen without executing: its new markdown is spliced between the frozen outputs;
* ``library`` changed: stale, re-executed, cheaply: the chapter's frozen runs are thawed into
  ``runs/`` first, and the training code reuses every finished run;
* ``RESULTS_VERSION`` bumped: stale, and the frozen runs are *not* thawed (the chapter's old
  ``runs/`` folder is set aside), so the chapter is recomputed from scratch. Bump it when a change
  alters results, e.g. a fixed bug in a loss.
"""
from __future__ import annotations

import ast
import datetime as _dt
import gzip
import hashlib
import io
import json
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effgen.book.run_progress import chapter_runs, summarise
from effgen.book.runner import (
    SUMMARY_PAGE,
    ChapterJob,
    chapter_name,
    execute,
    execution_order,
    plan,
    select,
)
from effgen.checkpoints import LOCK_FILE, TWIN_SUFFIX, copy_unpacked, twin_pointer, unpacked
from effgen.paths import FREEZE_DIR, GZIP_SUFFIXES, RUNS_MIRROR

# Bump when a change to the library alters results: every chapter is then recomputed from scratch.
RESULTS_VERSION = 1

# Profiles whose _freeze/ is committed (.gitignore keeps the others out). A chapter of these that was
# never executed runs only when named on the command line or with --execute-missing: it costs hours.
COMMITTED_PROFILES: tuple[str, ...] = ("paper",)

PACKAGE = "effgen"
PACKAGE_DIR = Path(__file__).resolve().parent  # tests point this at a fake package

NOTEBOOK_FILE = "notebook.ipynb"
FINGERPRINT_FILE = "fingerprint.json"
# Written into runs/<profile>/<chapter>/ before each execution: which RESULTS_VERSION made these runs.
RUNS_VERSION_FILE = ".results-version"
SUPERSEDED_DIR = ".superseded"  # runs/<profile>/.superseded/<chapter>.results-vN: runs of an older version

# Small artifacts: metrics, histories, configs, sample grids, weights, test predictions, Optuna studies.
KEEP_SUFFIXES = frozenset({".json", ".csv", ".yml", ".yaml", ".png", ".pt", ".npy", ".db"})
MAX_FILE_BYTES = 15 * 2**20
MAX_TOTAL_BYTES = 60 * 2**20  # for a committed profile
GZIP_OVER_BYTES = 64 * 2**10  # CSV, JSON and NumPy files above this are stored gzipped (FILE.gz), thawed back
# A mirror file this large whose bytes another mirror file already holds is stored as a pointer, FILE.twin
# (effgen.checkpoints): chapters share classifier runs (effgen.classifier.twins), and they would count twice
# against MAX_TOTAL_BYTES. Which copy is real: chapter TWIN_HOLDER's, then the first in book order.
TWIN_OVER_BYTES = 64 * 2**10
TWIN_HOLDER = "02-classifier"  # the paper model's runs; `effgen evaluate classifier` is pointed at its weights
GAN_FINAL_FILE = "final.pt"  # a finished GAN run's generator weights when it has no generator.pt
GAN_FINAL_FORMAT = "effgen-gan-final-1"

# papermill's cell of the parameters a chapter was executed with; the source has none.
INJECTED_TAG = "injected-parameters"
PROSE = "prose"  # the stale reason of a prose-only notebook change
# A markdown cell with Quarto inline code (`{python} expr`) is computed when it is executed.
_INLINE_CODE = re.compile(r"`\{python\}")
_ARTIFACT_CALL = re.compile(r"""\.artifact\(\s*["']([^"']+)["']""")
_IMPORT_LINE = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][\w.]*)", re.MULTILINE)


# ---------------------------------------------------------------- fingerprint parts

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def notebook_digest(path: Path) -> str:
    """Hash of the cells' types, sources and tags: outputs, ids, counts and metadata do not count."""
    cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    parts = []
    for cell in cells:
        if cell.get("cell_type") not in ("code", "markdown"):
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        tags = sorted(cell.get("metadata", {}).get("tags", []))
        parts.append([cell["cell_type"], source, tags])
    return _sha256(json.dumps(parts).encode())


def _cells(path: Path) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _tags(cell: dict[str, Any]) -> list[str]:
    return sorted(cell.get("metadata", {}).get("tags", []))


def _executes(cell: dict[str, Any]) -> bool:
    """Whether executing the notebook runs this cell (and its outputs come from that run)."""
    if cell.get("cell_type") == "code":
        return INJECTED_TAG not in _tags(cell)
    return cell.get("cell_type") == "markdown" and bool(_INLINE_CODE.search(_source(cell)))


def code_digest(cells: list[dict[str, Any]]) -> str:
    """Hash of what an execution depends on in a notebook: its executed cells' sources and tags, in order.

    The same for a chapter's source and for its executed copy (papermill's injected cell is left out).
    """
    return _sha256(json.dumps([[cell["cell_type"], _source(cell), _tags(cell)]
                               for cell in cells if _executes(cell)]).encode())


def prose_only_change(source: Path, executed: Path) -> bool:
    """Whether ``source`` differs from the notebook that made ``executed`` in markdown cells only."""
    return code_digest(_cells(source)) == code_digest(_cells(executed))


def splice_prose(source: Path, executed: Path) -> bytes:
    """The executed notebook with ``source``'s cells in place of its own where they are not executed.

    For a prose-only change (``prose_only_change``): every executed cell, its outputs and papermill's
    injected parameters stay as they ran; markdown is taken from the source, in the source's order.
    """
    notebook = json.loads(Path(executed).read_text(encoding="utf-8"))
    ran = [cell for cell in notebook.get("cells", []) if cell.get("cell_type") == "code" or _executes(cell)]
    cells, position = [], 0
    for cell in _cells(source):
        if not _executes(cell):
            cells.append(cell)
            continue
        while position < len(ran) and INJECTED_TAG in _tags(ran[position]):  # papermill's, kept where it ran
            cells.append(ran[position])
            position += 1
        cells.append(ran[position])
        position += 1
        while position < len(ran) and INJECTED_TAG in _tags(ran[position]):
            cells.append(ran[position])
            position += 1
    notebook["cells"] = cells
    return (json.dumps(notebook, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def params_digest(path: Path) -> str:
    """Hash of the parameters file's bytes; ``"absent"`` when there is none (the summary page)."""
    path = Path(path)
    return _sha256(path.read_bytes()) if path.is_file() else "absent"


def _code_cells(notebook: Path) -> list[str]:
    cells = json.loads(Path(notebook).read_text(encoding="utf-8")).get("cells", [])
    sources = []
    for cell in cells:
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            sources.append("".join(source) if isinstance(source, list) else source)
    return sources


def notebook_imports(notebook: Path, package: str = PACKAGE) -> set[str]:
    """Module names of ``package`` the notebook's code cells import (``from a.b import c`` gives a.b and a.b.c)."""
    names: set[str] = set()
    for source in _code_cells(notebook):
        # IPython magics and shell escapes are not Python; blank them so the cell still parses.
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        try:
            tree = ast.parse(code)
        except SyntaxError:
            names.update(m for m in _IMPORT_LINE.findall(code) if m.split(".")[0] == package)
            continue
        names.update(_imported(tree, None, package))
    return names


def _imported(tree: ast.AST, current_package: str | None, package: str) -> set[str]:
    """Absolute module names imported anywhere in ``tree`` (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if current_package is None:
                    continue
                parts = current_package.split(".")
                if node.level - 1 >= len(parts):
                    continue
                base = ".".join(parts[:len(parts) - (node.level - 1)])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    return {name for name in found if name.split(".")[0] == package}


def _lazy_submodules(tree: ast.Module, package_name: str) -> set[str]:
    """Submodules a package's ``__init__`` loads on first use from its ``_EXPORTS`` table (PEP 562).

    ``importlib.import_module`` with a computed name is invisible to the import scan, so without this a
    chapter's ``from effgen.data import load_addnist`` would not depend on ``effgen/data/addnist.py``.
    Every submodule of the table counts: the chapter stales a little more often, never less.
    """
    found: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else []
        if not any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets) \
                or not isinstance(node.value, ast.Dict):
            continue
        for value in node.value.values:
            if isinstance(value, ast.Tuple) and value.elts and isinstance(value.elts[0], ast.Constant) \
                    and isinstance(value.elts[0].value, str):
                found.add(f"{package_name}.{value.elts[0].value}")
    return found


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


class Library:
    """The package's modules: which file a module name is, what it imports, and its hash (memoised)."""

    def __init__(self, package_dir: Path | None = None, package: str = PACKAGE) -> None:
        self.package_dir = Path(package_dir or PACKAGE_DIR)
        self.package = package
        self._imports: dict[str, set[str]] = {}
        self._digests: dict[Path, str] = {}

    def file_of(self, module: str) -> Path | None:
        parts = module.split(".")
        if parts[0] != self.package:
            return None
        base = self.package_dir.joinpath(*parts[1:])
        if (base / "__init__.py").is_file():
            return base / "__init__.py"
        if len(parts) > 1 and base.with_suffix(".py").is_file():
            return base.with_suffix(".py")
        return None  # a name imported from a module, not a module

    def key(self, path: Path) -> str:
        """``effgen/gan/train.py``: the module's path as shown in fingerprints."""
        return path.relative_to(self.package_dir.parent).as_posix()

    def imports_of(self, module: str) -> set[str]:
        if module not in self._imports:
            path = self.file_of(module)
            found: set[str] = set()
            if path is not None:
                try:
                    tree = ast.parse(path.read_text(encoding="utf-8"))
                except SyntaxError:
                    tree = None
                if tree is not None:
                    current = module if path.name == "__init__.py" else module.rpartition(".")[0]
                    found = _imported(tree, current, self.package)
                    if path.name == "__init__.py":
                        found |= _lazy_submodules(tree, module)
            self._imports[module] = found
        return self._imports[module]

    def closure(self, modules: Iterable[str]) -> list[Path]:
        """Files of ``modules``, their parent packages and everything they import inside the package."""
        pending = list(modules)
        seen: set[str] = set()
        files: set[Path] = set()
        while pending:
            name = pending.pop()
            parts = name.split(".")
            for end in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                prefix = ".".join(parts[:end])
                if prefix in seen:
                    continue
                seen.add(prefix)
                path = self.file_of(prefix)
                if path is not None:
                    files.add(path)
                    pending.extend(self.imports_of(prefix))
        return sorted(files)

    def digest(self, path: Path) -> str:
        if path not in self._digests:
            text = path.read_text(encoding="utf-8")
            try:
                normal = ast.dump(_strip_docstrings(ast.parse(text)))
            except SyntaxError:
                normal = text
            self._digests[path] = _sha256(normal.encode())
        return self._digests[path]

    def digests(self, notebook: Path) -> dict[str, str]:
        return {self.key(p): self.digest(p) for p in self.closure(notebook_imports(notebook, self.package))}


def depends_on(root: Path, notebook: str) -> list[str]:
    """Chapters whose outputs this one reads: ``chapter.artifact("NN-name", ...)`` calls; the summary page reads all."""
    names = [chapter_name(nb) for nb in execution_order(root) if nb != SUMMARY_PAGE]
    if notebook == SUMMARY_PAGE:
        return names
    found = set()
    for source in _code_cells(root / notebook):
        found.update(_ARTIFACT_CALL.findall(source))
    return [name for name in names if name in found and name != chapter_name(notebook)]


@dataclass
class Fingerprint:
    notebook: str
    params: str
    library: dict[str, str]
    results_version: int
    upstream: dict[str, str | None]  # chapter -> the digest of its frozen execution that this one read

    def as_dict(self) -> dict[str, Any]:
        return {"notebook": self.notebook, "params": self.params, "library": self.library,
                "results_version": self.results_version, "upstream": self.upstream}

    def differences(self, old: dict[str, Any]) -> list[str]:
        """Why a chapter frozen with ``old`` is stale now; empty when it is current."""
        reasons = []
        if old.get("results_version") != self.results_version:
            reasons.append(f"results-version {old.get('results_version')} -> {self.results_version}")
        if old.get("notebook") != self.notebook:
            reasons.append("notebook")
        if old.get("params") != self.params:
            reasons.append("params")
        old_lib = old.get("library", {})
        changed = sorted(k for k in set(old_lib) | set(self.library) if old_lib.get(k) != self.library.get(k))
        if changed:
            reasons.append("library: " + ", ".join(changed))
        old_up = old.get("upstream", {})
        moved = sorted(k for k in set(old_up) | set(self.upstream) if old_up.get(k) != self.upstream.get(k))
        if moved:
            reasons.append("upstream: " + ", ".join(moved))
        return reasons


def freeze_dir(root: Path, profile: str, chapter: str | None = None) -> Path:
    base = Path(root) / FREEZE_DIR / profile
    return base / chapter if chapter else base


def runs_folder(root: Path, profile: str, chapter: str) -> Path:
    return Path(root) / "runs" / profile / chapter


def read_record(root: Path, profile: str, chapter: str) -> dict[str, Any] | None:
    path = freeze_dir(root, profile, chapter) / FINGERPRINT_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def execution_digest(root: Path, profile: str, chapter: str) -> str | None:
    """Identity of a chapter's frozen execution (its executed notebook's hash); None when not frozen."""
    record = read_record(root, profile, chapter)
    return (record or {}).get("executed", {}).get("notebook_sha256")


def fingerprint(root: Path, profile: str, notebook: str, library: Library | None = None) -> Fingerprint:
    root = Path(root)
    library = library or Library()
    return Fingerprint(
        notebook=notebook_digest(root / notebook),
        params=params_digest(root / "params" / profile / f"{chapter_name(notebook)}.yml"),
        library=library.digests(root / notebook),
        results_version=RESULTS_VERSION,
        upstream={up: execution_digest(root, profile, up) for up in depends_on(root, notebook)},
    )


# ---------------------------------------------------------------- status

@dataclass
class ChapterStatus:
    name: str
    notebook: str  # as listed in _quarto.yml
    state: str  # "frozen" | "stale" | "missing"
    reasons: list[str] = field(default_factory=list)
    record: dict[str, Any] | None = None
    depends_on: list[str] = field(default_factory=list)
    fingerprint: Fingerprint | None = None

    def describe(self) -> str:
        record = self.record or {}
        if self.state == "missing":
            snap = record.get("runs")
            extra = (f"; a snapshot of its runs from {snap.get('at', '?')} will be thawed"
                     if snap and snap.get("results_version") == RESULTS_VERSION else "")
            return f"missing (never executed for this profile{extra})"
        executed = record.get("executed", {})
        when = f"executed {executed.get('at', '?')} in {_duration(executed.get('seconds'))}, git {executed.get('git', '?')}"
        if self.reasons == [PROSE]:
            return f"stale: prose only; the next run re-freezes it without executing ({when})"
        if self.state == "stale":
            return f"stale: {'; '.join(self.reasons)} ({when})"
        return f"frozen ({when})"


def status(root: Path, profile: str, requested: Sequence[str] = ()) -> list[ChapterStatus]:
    """Each selected chapter as frozen (current), stale (with reasons) or missing, in execution order."""
    root = Path(root)
    library = Library()
    result = []
    for notebook in select(root, requested):
        name = chapter_name(notebook)
        record = read_record(root, profile, name)
        current = fingerprint(root, profile, notebook, library)
        frozen = (record is not None and "fingerprint" in record
                  and (freeze_dir(root, profile, name) / NOTEBOOK_FILE).is_file())
        if not frozen:
            state, reasons = "missing", []
        else:
            reasons = current.differences(record["fingerprint"])
            if reasons == ["notebook"] and prose_only_change(root / notebook,
                                                             freeze_dir(root, profile, name) / NOTEBOOK_FILE):
                reasons = [PROSE]
            state = "stale" if reasons else "frozen"
        result.append(ChapterStatus(name, notebook, state, reasons, record, depends_on(root, notebook), current))
    return result


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def folder_bytes(folder: Path) -> tuple[int, int, list[tuple[int, Path]]]:
    """(total bytes, file count, files over MAX_FILE_BYTES) under ``folder``."""
    total, count, big = 0, 0, []
    for path in folder.rglob("*") if folder.is_dir() else []:
        if path.is_file():
            size = path.stat().st_size
            total += size
            count += 1
            if size > MAX_FILE_BYTES:
                big.append((size, path))
    return total, count, big


def size_report(root: Path, profile: str) -> list[str]:
    """One line on the size of ``_freeze/<profile>/``, plus a warning per limit it breaks."""
    folder = freeze_dir(root, profile)
    total, count, big = folder_bytes(folder)
    lines = [f"{folder.relative_to(root)}: {total / 2**20:.1f} MB in {count} files"
             + (f" (limit {MAX_TOTAL_BYTES // 2**20} MB, {MAX_FILE_BYTES // 2**20} MB a file)"
                if profile in COMMITTED_PROFILES else "")]
    if profile in COMMITTED_PROFILES and total > MAX_TOTAL_BYTES:
        lines.append(f"warning: {folder.relative_to(root)} is over {MAX_TOTAL_BYTES // 2**20} MB: "
                     "remove obsolete run folders from runs/ and re-freeze (effgen run --force CHAPTER)")
    for size, path in big:
        lines.append(f"warning: {path.relative_to(root)} is {size / 2**20:.1f} MB, over the "
                     f"{MAX_FILE_BYTES // 2**20} MB limit for one file")
    return lines


def format_status(root: Path, profile: str, statuses: Sequence[ChapterStatus]) -> str:
    width = max((len(s.name) for s in statuses), default=0)
    lines = [f"profile {profile}, results version {RESULTS_VERSION}"]
    for chapter in statuses:
        lines.append(f"  {chapter.name:<{width}}  {chapter.describe()}")
        if chapter.state != "frozen":  # a chapter computed across sessions: how far its runs have got
            runs = summarise(chapter_runs(runs_folder(root, profile, chapter.name),
                                          freeze_dir(root, profile, chapter.name) / RUNS_MIRROR))
            if runs:
                lines.append(f"  {'':<{width}}  runs: {runs}")
    lines += size_report(root, profile)
    return "\n".join(lines)


# ---------------------------------------------------------------- the small-artifacts filter

@dataclass
class MirrorReport:
    written: int = 0  # files (re)written in the mirror
    kept: int = 0  # files in the mirror after syncing
    bytes: int = 0
    slimmed: list[str] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)  # {"path", "reason", "bytes"}
    twins: list[dict[str, Any]] = field(default_factory=list)  # {"path", "holder", "bytes"}: stored as pointers

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.kept, "bytes": self.bytes, "slimmed": self.slimmed, "dropped": self.dropped,
                "twins": self.twins}


def _torch_bytes(payload: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _sqlite_bytes(path: Path) -> bytes:
    """A consistent copy of an SQLite database even while a study writes to it (else the bytes as they are)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.db"
        try:
            source = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
        except sqlite3.Error:
            return Path(path).read_bytes()
        return copy.read_bytes()


def filter_run_file(path: Path, relative: str) -> tuple[dict[str, bytes], str]:
    """What the mirror keeps of one file of a run folder: {mirror relative path: bytes}, and a note.

    * a finished classifier ``checkpoint.pt`` is slimmed: Adam and sampler state are dropped
      (``train_classifier`` reloads it as a finished run: weights, history, RNG);
    * a finished GAN ``checkpoint.pt`` is dropped: the run keeps ``generator.pt`` (or gets
      ``final.pt``, its generator's weights, when it has none), ``history.csv`` and ``config.json``,
      from which ``train_gan`` reloads it;
    * in-progress checkpoints are kept whole, so a thawed run resumes;
    * large CSV and JSON files are gzipped (thawed back); SQLite files are copied consistently.
    The note is "" for a plain copy, "slimmed", or "dropped: <why>".
    """
    suffix = path.suffix
    if suffix not in KEEP_SUFFIXES:
        return {}, "dropped: not a small artifact"
    if path.name == "checkpoint.pt":
        return _filter_checkpoint(path, relative)
    data = _sqlite_bytes(path) if suffix == ".db" else path.read_bytes()
    if suffix in GZIP_SUFFIXES and len(data) > GZIP_OVER_BYTES:
        return {relative + ".gz": gzip.compress(data, mtime=0)}, ""
    return {relative: data}, ""


def _filter_checkpoint(path: Path, relative: str) -> tuple[dict[str, bytes], str]:
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable file is kept as it is, and the note says so
        return {relative: path.read_bytes()}, ""
    if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
        return {relative: path.read_bytes()}, ""
    steps = payload["config"].get("steps")
    finished = isinstance(steps, int) and int(payload.get("step", 0)) >= steps
    if "data_fingerprint" in payload and "model" in payload:  # a classifier (effgen.classifier.loop)
        if not (finished or payload.get("finished")) or "optimizer" not in payload:
            return {relative: path.read_bytes()}, ""
        slim = {k: v for k, v in payload.items() if k not in ("optimizer", "sampler")}
        return {relative: _torch_bytes({**slim, "slim": True})}, "slimmed"
    if "generator" in payload and "discriminator" in payload:  # a GAN run (effgen.gan.train)
        folder = path.parent
        if not finished or not (folder / "history.csv").is_file() or not (folder / "config.json").is_file():
            return {relative: path.read_bytes()}, ""
        if (folder / "generator.pt").is_file():
            return {}, "dropped: finished GAN run; generator.pt keeps its weights"
        final = {"format": GAN_FINAL_FORMAT, "config": payload["config"], "step": int(payload["step"]),
                 "dataset": payload.get("dataset", ""), "generator": payload["generator"]}
        final_rel = str(Path(relative).with_name(GAN_FINAL_FILE).as_posix())
        return {final_rel: _torch_bytes(final)}, f"dropped: finished GAN run; {GAN_FINAL_FILE} keeps its generator"
    return {relative: path.read_bytes()}, ""


def _write_if_changed(path: Path, data: bytes) -> bool:
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def _pointer_record(pointer: Path) -> tuple[Path, str] | None:
    """The file a twin pointer names and its recorded sha256, unchecked; None when it is unreadable.

    Not ``checkpoints.twin_target``: that hashes the target, which indexing every pointer need not do.
    Kept here rather than in ``checkpoints`` because chapters import that module, and a change there
    makes every frozen chapter stale (its fingerprint), for code no chapter runs.
    """
    try:
        record = json.loads(pointer.read_text())
        return pointer.parent / str(record["path"]), str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _holder_rank(chapter: str) -> tuple[bool, str]:
    return (chapter != TWIN_HOLDER, chapter)


class _Twins:
    """The profile's mirror files that may hold bytes for another (by hash), and the pointers to each."""

    def __init__(self, profile_dir: Path, chapter: str) -> None:
        self.held: dict[str, Path] = {}  # sha256 -> a real file of a chapter ranked before ``chapter``
        self.pointers: dict[Path, list[tuple[Path, str]]] = {}  # real file -> (pointer, recorded sha256)
        for folder in sorted(profile_dir.glob(f"*/{RUNS_MIRROR}")):
            for path in sorted(folder.rglob("*")):
                if not path.is_file():
                    continue
                if path.suffix == TWIN_SUFFIX:
                    # unchecked here: release() checks the one target it is about to copy
                    record = _pointer_record(path)
                    if record is not None:  # an unreadable pointer stands for nothing that could be lost
                        self.pointers.setdefault(record[0].resolve(), []).append((path, record[1]))
                elif (_holder_rank(folder.parent.name) < _holder_rank(chapter)
                      and path.stat().st_size >= TWIN_OVER_BYTES):
                    self.held.setdefault(_sha256(path.read_bytes()), path)

    def release(self, path: Path) -> None:
        """Before ``path`` goes or changes: every pointer standing for it becomes a real copy of it."""
        pointers = self.pointers.pop(path.resolve(), [])
        data = path.read_bytes() if pointers else b""
        held = _sha256(data) if pointers else ""
        for pointer, digest in pointers:
            if pointer.is_file() and held == digest:  # a pointer already broken is left as it is
                _write_if_changed(pointer.with_suffix(""), data)
                pointer.unlink()


def sync_mirror(root: Path, profile: str, chapter: str, replace: bool) -> MirrorReport:
    """Copy the small artifacts of ``runs/<profile>/<chapter>/`` into the chapter's frozen mirror.

    ``replace`` (after a successful execution) makes the mirror exactly the filtered run folder;
    otherwise (a snapshot) files are added and updated, and none is removed. A file of
    ``TWIN_OVER_BYTES`` or more that a higher-ranked chapter's mirror (or an earlier file of this one)
    already holds is written as a pointer to it; a file that pointers stand for is copied into
    their places before it is removed or rewritten, so no chapter's mirror loses a file.
    """
    source = runs_folder(root, profile, chapter)
    mirror = freeze_dir(root, profile, chapter) / RUNS_MIRROR
    twins = _Twins(freeze_dir(root, profile), chapter)
    report = MirrorReport()
    produced: set[Path] = set()

    def remove(path: Path) -> None:
        if path.is_file():
            twins.release(path)
            path.unlink()

    def write(target: Path, data: bytes) -> None:
        produced.add(target)
        if target.is_file() and target.stat().st_size == len(data) and target.read_bytes() == data:
            return  # unchanged: nothing to write, no pointer to release
        twins.release(target)
        report.written += _write_if_changed(target, data)

    for path in sorted(source.rglob("*")) if source.is_dir() else []:
        if not path.is_file() or path.name.endswith(".tmp") or path.name in (RUNS_VERSION_FILE, LOCK_FILE):
            continue
        relative = path.relative_to(source).as_posix()
        outputs, note = filter_run_file(path, relative)
        if note == "slimmed":
            report.slimmed.append(relative)
        elif note.startswith("dropped") and not outputs:
            report.dropped.append({"path": relative, "reason": note.split(": ", 1)[1], "bytes": path.stat().st_size})
        elif note.startswith("dropped"):
            report.slimmed.append(f"{relative} ({note.split(': ', 1)[1]})")
        # What an earlier snapshot may have made of this file and it no longer makes (e.g. the
        # in-progress checkpoint of a run that has finished since) must go, or a thaw would revive it.
        candidates = {relative, relative + ".gz"}
        if path.name == "checkpoint.pt":
            candidates.add(Path(relative).with_name(GAN_FINAL_FILE).as_posix())
        candidates |= {name + TWIN_SUFFIX for name in candidates}
        for name, data in outputs.items():
            if len(data) > MAX_FILE_BYTES:
                report.dropped.append({"path": name, "reason": f"over {MAX_FILE_BYTES // 2**20} MB",
                                       "bytes": len(data)})
                candidates.discard(name)  # an earlier copy that fitted stays: an older resumable state
                continue
            digest = _sha256(data) if len(data) >= TWIN_OVER_BYTES else ""
            holder = twins.held.get(digest) if digest else None
            if holder is not None:
                pointer = mirror / (name + TWIN_SUFFIX)
                write(pointer, twin_pointer(pointer, holder, digest))
                report.twins.append({"path": name, "holder": holder.relative_to(root).as_posix(),
                                     "bytes": len(data)})
                candidates.discard(name + TWIN_SUFFIX)
                continue
            write(mirror / name, data)
            candidates.discard(name)
            if digest:
                twins.held[digest] = mirror / name  # a later file of this chapter with these bytes points here
        for stale in candidates:
            remove(mirror / stale)
    if replace and mirror.is_dir():
        for path in sorted(mirror.rglob("*"), reverse=True):
            if path.is_file() and path not in produced:
                remove(path)
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    files = [p for p in mirror.rglob("*") if p.is_file()] if mirror.is_dir() else []
    report.kept, report.bytes = len(files), sum(p.stat().st_size for p in files)
    return report


# ---------------------------------------------------------------- freeze, snapshot, thaw

def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _git(root: Path) -> str:
    from effgen.book.provenance import git_revision

    return git_revision(root)


def _write_record(root: Path, profile: str, chapter: str, record: dict[str, Any]) -> None:
    _write_if_changed(freeze_dir(root, profile, chapter) / FINGERPRINT_FILE,
                      (json.dumps(record, indent=2) + "\n").encode())


def freeze_chapter(root: Path, job: ChapterJob, print_: Fingerprint, seconds: float) -> MirrorReport:
    """After a successful execution: keep the executed notebook, mirror its runs, record the fingerprint.

    ``print_`` is the fingerprint taken just before the execution started.
    """
    root = Path(root)
    profile = job.parameters["profile"]
    folder = freeze_dir(root, profile, job.name)
    notebook = job.output.read_bytes()
    _write_if_changed(folder / NOTEBOOK_FILE, notebook)
    mirror = sync_mirror(root, profile, job.name, replace=True)
    git = _git(root)
    record = {
        "chapter": job.name,
        "profile": profile,
        "notebook": job.source.relative_to(root).as_posix(),
        "fingerprint": print_.as_dict(),
        "executed": {"at": _now(), "seconds": round(seconds, 1), "git": git,
                     "notebook_sha256": _sha256(notebook)},
        "runs": {"kind": "final", "at": _now(), "git": git, "results_version": RESULTS_VERSION,
                 **mirror.as_dict()},
    }
    _write_record(root, profile, job.name, record)
    return mirror


def refreeze_prose(root: Path, profile: str, st: ChapterStatus) -> None:
    """A prose-only change: splice the source's markdown into the frozen notebook, record the new digest.

    The execution's identity (``executed.notebook_sha256``, which readers' ``upstream`` parts record)
    stays that of the notebook as executed: new prose changes no output, so no reader goes stale.
    """
    if st.state != "stale" or st.reasons != [PROSE] or st.record is None or st.fingerprint is None:
        raise ValueError(f"{st.name}: not a prose-only change ({st.state}: {st.reasons})")
    frozen = freeze_dir(root, profile, st.name) / NOTEBOOK_FILE
    _write_if_changed(frozen, splice_prose(root / st.notebook, frozen))
    record = dict(st.record)
    record["fingerprint"] = {**record["fingerprint"], "notebook": st.fingerprint.notebook}
    record["prose"] = {"at": _now(), "git": _git(root)}
    _write_record(root, profile, st.name, record)


def snapshot(root: Path, profile: str, requested: Sequence[str] = (),
             log: Callable[[str], None] = print) -> list[str]:
    """Copy the resumable state of chapters that are not frozen and current from ``runs/`` to ``_freeze/``.

    For a long run to cross sessions: commit ``_freeze/<profile>/`` afterwards, and the next
    ``effgen run`` thaws these files and the training code resumes from the checkpoints.
    Returns the chapters snapshotted.
    """
    root = Path(root)
    done = []
    for st in status(root, profile, requested):
        source = runs_folder(root, profile, st.name)
        if st.state == "frozen":
            log(f"{st.name}: frozen and current, nothing to snapshot")
            continue
        if not source.is_dir() or not any(source.iterdir()):
            log(f"{st.name}: nothing in {source.relative_to(root)} to snapshot")
            continue
        record = st.record or {"chapter": st.name, "profile": profile, "notebook": st.notebook}
        old_runs = record.get("runs") or {}
        # Runs of an older RESULTS_VERSION are obsolete: this snapshot replaces them.
        mirror = sync_mirror(root, profile, st.name, replace=old_runs.get("results_version") != RESULTS_VERSION)
        record["runs"] = {"kind": "snapshot", "at": _now(), "git": _git(root), "results_version": RESULTS_VERSION,
                          **mirror.as_dict()}
        _write_record(root, profile, st.name, record)
        done.append(st.name)
        log(f"{st.name}: snapshot of {mirror.kept} files ({mirror.bytes / 2**20:.1f} MB, "
            f"{mirror.written} updated) in {freeze_dir(root, profile, st.name).relative_to(root)}"
            + (f"; dropped {len(mirror.dropped)}: " + ", ".join(d["path"] for d in mirror.dropped)
               if mirror.dropped else ""))
    for line in size_report(root, profile):
        log(line)
    return done


def thaw(root: Path, profile: str, chapter: str) -> int:
    """Copy the frozen mirror into ``runs/<profile>/<chapter>/`` where a file is absent; returns files copied.

    Never overwrites a file in ``runs/`` (it may be newer work). Does nothing when the mirror was
    made under another ``RESULTS_VERSION``.
    """
    record = read_record(root, profile, chapter) or {}
    if (record.get("runs") or {}).get("results_version") != RESULTS_VERSION:
        return 0
    mirror = freeze_dir(root, profile, chapter) / RUNS_MIRROR
    target = runs_folder(root, profile, chapter)
    copied = 0
    for path in sorted(mirror.rglob("*")) if mirror.is_dir() else []:
        if not path.is_file():
            continue
        dest = target / unpacked(path.relative_to(mirror))
        if not dest.exists() and copy_unpacked(path, dest):
            copied += 1
    return copied


def prepare_runs(root: Path, profile: str, chapter: str, upstream: Sequence[str],
                 log: Callable[[str], None] = print) -> None:
    """Before a chapter executes: set aside runs of another RESULTS_VERSION, thaw, mark the folder."""
    folder = runs_folder(root, profile, chapter)
    marker = folder / RUNS_VERSION_FILE
    if marker.is_file() and marker.read_text().strip() != str(RESULTS_VERSION):
        old = marker.read_text().strip()
        # Out of the summary page's sight (it reads runs/<profile>/*/metrics.json), but kept.
        aside = folder.parent / SUPERSEDED_DIR / f"{chapter}.results-v{old}"
        n = 1
        while aside.exists():
            n += 1
            aside = aside.with_name(f"{chapter}.results-v{old}-{n}")
        aside.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(aside)
        log(f"  {chapter}: runs of results version {old} set aside in {aside.relative_to(root)}; recomputing")
    for name in [*upstream, chapter]:
        copied = thaw(root, profile, name)
        if copied:
            log(f"  thawed {copied} frozen files into {runs_folder(root, profile, name).relative_to(root)}")
    folder.mkdir(parents=True, exist_ok=True)
    # A folder without a marker predates it: its runs are adopted as the current version's.
    marker.write_text(f"{RESULTS_VERSION}\n")


def place_frozen_notebooks(root: Path, profile: str, names: Iterable[str] | None = None) -> list[str]:
    """Copy frozen notebooks to ``_build/<profile>/``, where the renderer reads executed notebooks."""
    root = Path(root)
    wanted = set(names) if names is not None else None
    placed = []
    for notebook in execution_order(root):
        name = chapter_name(notebook)
        frozen = freeze_dir(root, profile, name) / NOTEBOOK_FILE
        if (wanted is None or name in wanted) and frozen.is_file():
            _write_if_changed(root / "_build" / profile / notebook, frozen.read_bytes())
            placed.append(name)
    return placed


def place_new_prose(root: Path, profile: str, statuses: Iterable[ChapterStatus]) -> None:
    """Put prose-only-stale chapters into ``_build/<profile>/`` with their new markdown; ``_freeze/`` is untouched."""
    for st in statuses:
        if st.reasons == [PROSE]:
            spliced = splice_prose(root / st.notebook, freeze_dir(root, profile, st.name) / NOTEBOOK_FILE)
            _write_if_changed(root / "_build" / profile / st.notebook, spliced)


# ---------------------------------------------------------------- run: what to execute, then execute it

@dataclass
class Planned:
    job: ChapterJob
    status: ChapterStatus
    action: str  # "execute" | "frozen" | "skip" | "prose" (re-frozen with new markdown, not executed)
    why: str


def plan_run(root: Path, profile: str, requested: Sequence[str] = (), force: bool = False,
             execute_missing: bool = False) -> list[Planned]:
    """Decide, per selected chapter, whether it executes; validates every parameters file first."""
    jobs = plan(root, profile, requested)  # raises before anything runs
    statuses = {s.name: s for s in status(root, profile, requested)}
    executing: set[str] = set()
    planned = []
    for job in jobs:
        st = statuses[job.name]
        ups = [u for u in st.depends_on if u in executing]
        if force:
            action, why = "execute", "forced"
        elif st.state == "stale" and st.reasons != [PROSE]:
            action, why = "execute", "stale: " + "; ".join(st.reasons)
        elif st.state == "missing":
            if profile in COMMITTED_PROFILES and not requested and not execute_missing:
                action, why = "skip", "not frozen; needs --execute-missing or its name on the command line"
            else:
                action, why = "execute", "not frozen yet"
        elif ups:
            action, why = "execute", "upstream executes first: " + ", ".join(ups)
        elif st.state == "stale":
            action, why = "prose", "prose changed (markdown only): new text between the frozen outputs"
        else:
            action, why = "frozen", "frozen and current"
        if action == "execute":
            executing.add(job.name)
        planned.append(Planned(job, st, action, why))
    return planned


def _cost(item: Planned) -> str:
    executed = (item.status.record or {}).get("executed")
    if executed:
        took = f"; last execution took {_duration(executed.get('seconds'))}"
        if any(r.startswith("results-version") for r in item.status.reasons):
            return took + ", and everything is recomputed"
        return took + ", finished runs are reused"
    snap = (item.status.record or {}).get("runs")
    if snap:
        return f"; resumes from a snapshot of {snap.get('at', '?')}"
    return ""


def describe_plan(root: Path, profile: str, planned: Sequence[Planned]) -> list[str]:
    width = max((len(p.job.name) for p in planned), default=0)
    lines = []
    for item in planned:
        verb = {"execute": "execute", "frozen": "frozen ", "skip": "SKIP   ", "prose": "prose  "}[item.action]
        lines.append(f"  {item.job.name:<{width}}  {verb}  {item.why}"
                     + (_cost(item) if item.action == "execute" else ""))
    skipped = [p.job.name for p in planned if p.action == "skip"]
    if skipped:
        lines.append(
            f"{len(skipped)} chapter(s) of profile {profile!r} are not frozen and are NOT executed: they run the "
            "paper's budgets (hours on a CPU). They render unexecuted. To compute them, add --execute-missing "
            f"or name them (effgen run {skipped[0].split('-', 1)[0]} --profile {profile}).")
    later = _downstream_left_stale(root, planned)
    if later:
        lines.append(f"afterwards stale (not selected): {', '.join(later)}")
    return lines


def _downstream_left_stale(root: Path, planned: Sequence[Planned]) -> list[str]:
    executing = {p.job.name for p in planned if p.action == "execute"}
    selected = {p.job.name for p in planned}
    if not executing:
        return []
    others = [nb for nb in execution_order(root) if chapter_name(nb) not in selected]
    return [chapter_name(nb) for nb in others if executing & set(depends_on(root, nb))]


def run_book(root: Path, profile: str, requested: Sequence[str] = (), force: bool = False,
             execute_missing: bool = False, log: Callable[[str], None] = print) -> list[Planned]:
    """``effgen run``: execute what is stale or missing (or everything with ``force``), freeze each success.

    Frozen, current chapters are not executed: their frozen notebook goes to ``_build/<profile>/``.
    """
    root = Path(root)
    planned = plan_run(root, profile, requested, force, execute_missing)
    prose = sum(p.action == "prose" for p in planned)
    log(f"profile {profile}: {sum(p.action == 'execute' for p in planned)} to execute, "
        f"{sum(p.action == 'frozen' for p in planned)} frozen, {sum(p.action == 'skip' for p in planned)} skipped"
        + (f", {prose} with new prose only" if prose else ""))
    for line in describe_plan(root, profile, planned):
        log(line)
    for item in planned:
        if item.action == "prose":
            refreeze_prose(root, profile, item.status)
            log(f"  {item.job.name}: re-frozen with its new prose; nothing executed")
    place_frozen_notebooks(root, profile, [p.job.name for p in planned if p.action in ("frozen", "prose")])
    to_run = [p for p in planned if p.action == "execute"]
    prints: dict[str, Fingerprint] = {}
    library = Library()

    def before(job: ChapterJob) -> None:
        prints[job.name] = fingerprint(root, profile, job.source.relative_to(root).as_posix(), library)
        item = next(p for p in to_run if p.job.name == job.name)
        prepare_runs(root, profile, job.name, item.status.depends_on, log)

    def after(job: ChapterJob, seconds: float) -> None:
        mirror = freeze_chapter(root, job, prints[job.name], seconds)
        dropped = f"; dropped {', '.join(d['path'] for d in mirror.dropped)}" if mirror.dropped else ""
        log(f"  frozen into {freeze_dir(root, profile, job.name).relative_to(root)}: notebook and "
            f"{mirror.kept} run files, {mirror.bytes / 2**20:.1f} MB{dropped}")

    if to_run:
        execute([p.job for p in to_run], root, log=log, before=before, after=after)
        for line in size_report(root, profile):
            if line.startswith("warning"):
                log(line)
    return planned

