"""A frozen chapter's fingerprint: what produced it, part by part, and its record on disk.

The parts (DEVELOPING.md, "Frozen results", has the rule each one follows):

* ``notebook``: its code and markdown cell sources (and cell tags), not outputs or metadata;
* ``params``: the bytes of ``params/<profile>/<chapter>.yml`` (no file is a valid state);
* ``library``: one hash per ``effgen`` file the chapter's kernel actually ran: every module in its
  ``sys.modules`` when the last cell finished, and the package files (the C sources) those modules
  declared in ``PACKAGE_FILES_USED``. Recorded at execution, so a lazy import, a call through
  ``importlib`` or a function-level import counts exactly when it ran. A Python file's hash is that
  of its syntax tree without docstrings, so comments, docstrings and formatting do not count;
* ``results_version``: ``RESULTS_VERSION`` below;
* ``upstream``: for a chapter that reads another's outputs (``chapter.artifact("04-dcgan", ...)``,
  and the summary page, which reads every chapter), the execution it read.

Beside the fingerprint, a record lists the run-store entries the chapter's kernel used (``store``;
``effgen.book.freeze.store``). Every ``fingerprint.json`` is validated on read: a file that does not
parse or lacks a part is ``FreezeDamaged``, never "missing", so no command mistakes a damaged freeze
for one to recompute.
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effgen.book.runner import SUMMARY_PAGE, chapter_name, execution_order
from effgen.errors import EffgenError
from effgen.paths import FREEZE_DIR, STORE_ENTRY

# Bump when a change to the library alters results: every chapter is then recomputed from scratch.
RESULTS_VERSION = 1

PACKAGE = "effgen"
PACKAGE_DIR = Path(__file__).resolve().parents[2]  # tests point this at a fake package

NOTEBOOK_FILE = "notebook.ipynb"
FINGERPRINT_FILE = "fingerprint.json"
REMOVED = "removed"  # the library digest of a file a chapter ran that no longer exists
LISTED = 4  # changed library files named in a stale reason; the rest are counted

# papermill's cell of the parameters a chapter was executed with; the source has none.
INJECTED_TAG = "injected-parameters"
PROSE = "prose"  # the stale reason of a prose-only notebook change
# A markdown cell with Quarto inline code (`{python} expr`) is computed when it is executed.
_INLINE_CODE = re.compile(r"`\{python\}")
_ARTIFACT_CALL = re.compile(r"""\.artifact\(\s*["']([^"']+)["']""")


class FreezeDamaged(EffgenError):
    """A file under ``_freeze/`` that cannot be read as what it claims to be; nothing runs over it."""

    exit_code = 3


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def notebook_digest(path: Path) -> str:
    """Hash of the cells' types, sources and tags: outputs, ids, counts and metadata do not count."""
    parts = []
    for cell in _cells(path):
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
    sources = []
    for cell in _cells(notebook):
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            sources.append("".join(source) if isinstance(source, list) else source)
    return sources


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(path: Path) -> str:
    """A Python file's syntax tree without docstrings, any other file's bytes.

    Remembered per file content for the life of the process: a book run fingerprints the same library
    files once per chapter, and parsing them, not reading them, is most of a status call.
    """
    data = Path(path).read_bytes()
    raw = _sha256(data)
    if Path(path).suffix != ".py":
        return raw
    if (known := _SYNTAX_DIGESTS.get(raw)) is None:
        try:
            known = _sha256(ast.dump(_strip_docstrings(ast.parse(data))).encode())
        except SyntaxError:
            known = raw
        _SYNTAX_DIGESTS[raw] = known
    return known


_SYNTAX_DIGESTS: dict[str, str] = {}  # a Python file's bytes digest -> its syntax digest


def library_key(path: Path) -> str | None:
    """``effgen/gan/loop.py`` for a file of the package, None for any other file."""
    try:
        return Path(path).resolve().relative_to(PACKAGE_DIR.parent).as_posix()
    except ValueError:
        return None


def library_digests(files: Iterable[str | Path]) -> dict[str, str]:
    """The library part for the files a chapter ran (absolute paths; those outside the package are left out)."""
    keys = sorted({key for f in files if (key := library_key(Path(f))) is not None
                   and key.split("/", 1)[0] == PACKAGE})
    return current_library(keys)


def current_library(keys: Iterable[str]) -> dict[str, str]:
    """Today's digests of the files a frozen execution ran; ``removed`` for one that is gone."""
    digests = {}
    for key in keys:
        path = PACKAGE_DIR.parent / key
        digests[key] = source_digest(path) if path.is_file() else REMOVED
    return digests


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

    def differences(self, old: Mapping[str, Any]) -> list[str]:
        """Why a chapter frozen with ``old`` is stale now; empty when it is current."""
        reasons = []
        if old["results_version"] != self.results_version:
            reasons.append(f"results-version {old['results_version']} -> {self.results_version}")
        if old["notebook"] != self.notebook:
            reasons.append("notebook")
        if old["params"] != self.params:
            reasons.append("params")
        changed = sorted(k for k, v in old["library"].items() if self.library.get(k) != v)
        if changed:
            removed = sum(self.library.get(k) == REMOVED for k in changed)
            shown = ", ".join(changed[:LISTED]) + (f" and {len(changed) - LISTED} more" if len(changed) > LISTED else "")
            reasons.append(f"library: {shown}" + (f" ({removed} of them removed)" if removed else ""))
        old_up = old["upstream"]
        moved = sorted(k for k in set(old_up) | set(self.upstream) if old_up.get(k) != self.upstream.get(k))
        if moved:
            reasons.append("upstream: " + ", ".join(moved))
        return reasons


def freeze_dir(root: Path, profile: str, chapter: str | None = None) -> Path:
    base = Path(root) / FREEZE_DIR / profile
    return base / chapter if chapter else base


def runs_folder(root: Path, profile: str, chapter: str) -> Path:
    return Path(root) / "runs" / profile / chapter


_PARTS: dict[str, type | tuple[type, ...]] = {"notebook": str, "params": str, "library": dict,
                                               "results_version": int, "upstream": dict}


def read_record(root: Path, profile: str, chapter: str) -> dict[str, Any] | None:
    """The chapter's ``fingerprint.json``, validated; None only when there is no such file.

    A record may hold only ``runs`` (a snapshot of a chapter never executed); one that holds a
    ``fingerprint`` must hold every part of it and the ``executed`` notebook's hash. ``store``, when
    present, is a list of run-store entries (``<kind>/<name>``).
    """
    path = freeze_dir(root, profile, chapter) / FINGERPRINT_FILE
    if not path.exists():
        return None
    record = read_frozen_json(root, path)
    if not isinstance(record, dict):
        raise _damaged(root, path, "not a JSON object")
    if not isinstance(record.get("runs", {}), dict):
        raise _damaged(root, path, "'runs' is not an object")
    store = record.get("store", [])
    if not isinstance(store, list) or not all(isinstance(e, str) and STORE_ENTRY.fullmatch(e) for e in store):
        raise _damaged(root, path, "'store' is not a list of run-store entries (<kind>/<name>)")
    if "fingerprint" not in record:
        if "executed" in record:
            raise _damaged(root, path, "it records an execution but no fingerprint")
        return record
    print_ = record["fingerprint"]
    if not isinstance(print_, dict):
        raise _damaged(root, path, "'fingerprint' is not an object")
    for part, kind in _PARTS.items():
        if not isinstance(print_.get(part), kind) or isinstance(print_.get(part), bool):
            raise _damaged(root, path, f"fingerprint part {part!r} is missing or of the wrong type")
    executed = record.get("executed")
    if not isinstance(executed, dict) or not isinstance(executed.get("notebook_sha256"), str):
        raise _damaged(root, path, "'executed.notebook_sha256' is missing")
    return record


def check_frozen_notebook(root: Path, profile: str, chapter: str, record: Mapping[str, Any]) -> None:
    """Raise ``FreezeDamaged`` unless the frozen notebook is the one the record names, byte for byte."""
    path = freeze_dir(root, profile, chapter) / NOTEBOOK_FILE
    if not path.is_file():
        raise _damaged(root, path, "missing, though fingerprint.json records an execution")
    expected = record.get("notebook_file_sha256") or (None if "prose" in record
                                                      else record["executed"]["notebook_sha256"])
    data = path.read_bytes()
    if expected is not None and _sha256(data) != expected:
        raise _damaged(root, path, "its sha256 is not the one fingerprint.json records")
    try:
        json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _damaged(root, path, "not readable JSON") from None


def read_frozen_json(root: Path, path: Path) -> Any:
    """A committed JSON file of the freeze; ``FreezeDamaged`` when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _damaged(root, path, f"not readable JSON ({type(err).__name__})") from None


def _damaged(root: Path, path: Path, why: str) -> FreezeDamaged:
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    return FreezeDamaged(f"{shown} is damaged ({why}); nothing is executed or re-frozen over it. "
                         f"Restore it with: git checkout -- {shown}")


def execution_digest(root: Path, profile: str, chapter: str) -> str | None:
    """Identity of a chapter's frozen execution (its executed notebook's hash); None when not frozen."""
    record = read_record(root, profile, chapter)
    return (record or {}).get("executed", {}).get("notebook_sha256")


def fingerprint(root: Path, profile: str, notebook: str, library: Iterable[str] = ()) -> Fingerprint:
    """The chapter's fingerprint now. ``library``: the files to hash (the ones its last execution ran)."""
    root = Path(root)
    return Fingerprint(
        notebook=notebook_digest(root / notebook),
        params=params_digest(root / "params" / profile / f"{chapter_name(notebook)}.yml"),
        library=current_library(library),
        results_version=RESULTS_VERSION,
        upstream={up: _upstream_digest(root, profile, up) for up in depends_on(root, notebook)},
    )


def _upstream_digest(root: Path, profile: str, chapter: str) -> str | None:
    """An upstream chapter's execution; its own status reports a damaged record, the reader is only stale."""
    try:
        return execution_digest(root, profile, chapter)
    except FreezeDamaged:
        return "damaged"
