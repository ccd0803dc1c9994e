"""Execute chapter notebooks with papermill, in book order, into ``_build/<profile>/``.

Every parameters file is validated before the first notebook starts, so a typo costs
nothing. A failing chapter stops the run and is reported as its one cell's error; the
chapters already executed stay where they are, and so does the failed chapter's partial
notebook, for inspection.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from effgen.book.notebook_file import import_nbformat, read_notebook
from effgen.book.params import declared_parameters, load_params_file, validate
from effgen.checkpoints import read_yaml
from effgen.errors import EffgenError, ParamsError
from effgen.paths import PROFILES

SUMMARY_PAGE = "index.ipynb"


class ChapterFailed(EffgenError):
    """A chapter raised; the message is its failing cell's error."""


@dataclass(frozen=True)
class ChapterJob:
    name: str  # "02-classifier"
    source: Path  # the committed notebook
    output: Path  # the executed copy under _build/<profile>/
    params_file: Path
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ChapterRun:
    name: str
    output: str
    seconds: float
    ok: bool
    error: str = ""


def book_notebooks(root: Path) -> list[str]:
    """Notebook paths of the book, in reading order, as listed in ``_quarto.yml``.

    A Markdown page (an appendix) is left out: it has nothing to execute, and the renderer reads it
    from the sources.
    """
    config_path = root / "_quarto.yml"
    if not config_path.is_file():
        raise EffgenError(f"{root} has no _quarto.yml: not an effgen project folder")
    config = read_yaml(config_path, "Quarto project file")
    entries = config.get("book", {}).get("chapters", [])
    notebooks: list[str] = []
    for entry in entries:  # Quarto allows parts: {part: ..., chapters: [...]}
        notebooks.extend(entry.get("chapters", []) if isinstance(entry, dict) else [entry])
    return [notebook for notebook in notebooks if str(notebook).endswith(".ipynb")]


def execution_order(root: Path) -> list[str]:
    """Chapters in book order, then the summary page, which reads every chapter's metrics."""
    notebooks = book_notebooks(root)
    chapters = [nb for nb in notebooks if nb != SUMMARY_PAGE]
    return chapters + ([SUMMARY_PAGE] if SUMMARY_PAGE in notebooks else [])


def chapter_name(notebook: str) -> str:
    return Path(notebook).stem


def select(root: Path, requested: Sequence[str]) -> list[str]:
    """Resolve names like ``02``, ``classifier``, ``02-classifier`` or a path; keep book order."""
    order = execution_order(root)
    if not requested:
        return order
    chosen: set[str] = set()
    for item in requested:
        key = Path(item).stem
        matches = [nb for nb in order if chapter_name(nb) == key
                   or chapter_name(nb).split("-", 1)[0] == key
                   or chapter_name(nb).split("-", 1)[-1] == key]
        if len(matches) != 1:
            known = ", ".join(chapter_name(nb) for nb in order)
            problem = "matches no chapter" if not matches else "is ambiguous"
            raise ParamsError(f"chapter {item!r} {problem} (chapters: {known})")
        chosen.add(matches[0])
    return [nb for nb in order if nb in chosen]


def plan(root: Path, profile: str, requested: Sequence[str] = ()) -> list[ChapterJob]:
    """Validate every selected chapter's parameters; raise before anything executes."""
    if profile not in PROFILES and not (root / "params" / profile).is_dir():
        raise ParamsError(f"unknown profile {profile!r} (profiles: {', '.join(PROFILES)})")
    jobs = []
    for notebook in select(root, requested):
        source = root / notebook
        if not source.is_file():
            raise EffgenError(f"_quarto.yml lists {notebook}, but {source} does not exist")
        name = chapter_name(notebook)
        params_file = root / "params" / profile / f"{name}.yml"
        if notebook != SUMMARY_PAGE and not params_file.is_file():
            raise ParamsError(f"{params_file.relative_to(root)} is missing: every chapter needs a "
                              f"parameters file for profile {profile!r} (it may be empty)")
        declared = declared_parameters(source)
        if "profile" not in declared:
            raise ParamsError(f"{notebook}: the parameters cell must declare `profile: str`")
        values = validate(load_params_file(params_file), declared, params_file.relative_to(root))
        jobs.append(ChapterJob(
            name=name,
            source=source,
            output=root / "_build" / profile / notebook,
            params_file=params_file,
            parameters={**values, "profile": profile},
        ))
    return jobs


def _cell_error(err: Exception) -> str:
    """The failing cell's exception as one or two lines, instead of papermill's full dump."""
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    cell = getattr(err, "exec_count", None)
    where = f" in cell [{cell}]" if cell is not None else ""
    return f"{ename}{where}: {evalue}"


After = Callable[[ChapterJob, float, list[str], list[str]], None]


def execute(jobs: Sequence[ChapterJob], root: Path, log: Callable[[str], None] = print,
            before: Callable[[ChapterJob], None] | None = None,
            after: After | None = None) -> list[ChapterRun]:
    """Execute ``jobs`` in order; ``before(job)`` runs just before a chapter, ``after(job, seconds, ran,
    store)`` after its success, with ``ran`` the package files its kernel loaded and ``store`` the
    run-store entries it used (``LOADED_TAG``)."""
    import_nbformat()
    import papermill  # imported late: it is slow to import and `plan` must stay fast

    # Papermill's own parameter parser cannot read `X | None` annotations and warns that such
    # keys are unknown; `plan` has already validated every key against the notebook, strictly.
    logging.getLogger("papermill").setLevel(logging.ERROR)

    # Progress bars would land in the book as stderr noise; figures must stay inline. The kernels inherit
    # this environment; the calling process gets its own back afterwards.
    saved = {name: os.environ.get(name) for name in ("EFFGEN_PROGRESS", "MPLBACKEND", "JUPYTER_PATH")}
    os.environ["EFFGEN_PROGRESS"] = "0"
    os.environ.pop("MPLBACKEND", None)
    try:
        return _execute_all(jobs, root, papermill, log, before, after)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _execute_all(jobs: Sequence[ChapterJob], root: Path, papermill: Any, log: Callable[[str], None],
                 before: Callable[[ChapterJob], None] | None, after: After | None) -> list[ChapterRun]:
    _pin_kernel_to_this_python(root)
    runs: list[ChapterRun] = []
    for index, job in enumerate(jobs, start=1):
        job.output.parent.mkdir(parents=True, exist_ok=True)
        log(f"[{index}/{len(jobs)}] {job.name} ...")
        if before is not None:
            before(job)
        start, started_at = time.perf_counter(), time.time()
        recorded = job.output.with_name(job.output.name + ".loaded.json")
        source = _with_loaded_recorder(job.source, recorded)
        try:
            papermill.execute_notebook(
                str(source), str(job.output), parameters=job.parameters, kernel_name="python3",
                cwd=str(root), progress_bar=False, log_output=False, report_mode=False,
            )
        except papermill.PapermillExecutionError as err:
            strip_recorder(job.output)
            seconds = time.perf_counter() - start
            message = _cell_error(err)
            runs.append(ChapterRun(job.name, str(job.output), seconds, False, message))
            _write_log(root, jobs, runs)
            raise ChapterFailed(
                f"chapter {job.name} failed after {seconds:.0f} s: {message} "
                f"(partial notebook: {job.output.relative_to(root)})"
            ) from None
        finally:
            source.unlink(missing_ok=True)
        seconds = time.perf_counter() - start
        ran, store = _loaded_files(recorded)
        strip_recorder(job.output)
        _label_injected_parameters(job, root)
        if edited := edited_since(ran, started_at):
            # The fingerprint hashes these files as they are now, not as the kernel loaded them.
            message = (f"library files changed while it ran: {', '.join(edited[:3])}"
                       + (f" and {len(edited) - 3} more" if len(edited) > 3 else "")
                       + "; not frozen, run it again (its finished runs are reused)")
            runs.append(ChapterRun(job.name, str(job.output), seconds, False, message))
            _write_log(root, jobs, runs)
            raise ChapterFailed(f"chapter {job.name}: {message}")
        runs.append(ChapterRun(job.name, str(job.output), seconds, True))
        log(f"[{index}/{len(jobs)}] {job.name} done in {seconds:.1f} s")
        if after is not None:
            after(job, seconds, ran, store)
    _write_log(root, jobs, runs)
    return runs


def edited_since(files: Sequence[str], since: float) -> list[str]:
    """The files among ``files`` modified after ``since`` (a ``time.time()``), or gone: what a kernel that
    started at ``since`` may not have run as it is now."""
    edited = []
    for name in files:
        try:
            if Path(name).stat().st_mtime > since:
                edited.append(name)
        except OSError:
            edited.append(name)
    return edited


# The last cell of every execution: which package files the kernel ran, and which run-store entries it
# used (effgen.paths.STORE_ENTRIES_USED). It imports nothing of effgen, so it records exactly what the
# chapter's own cells loaded; the runner removes it from the output.
LOADED_TAG = "effgen-loaded-files"
_RECORDER = """import json as _json, sys as _sys
_files, _store = set(), set()
for _name, _module in list(_sys.modules.items()):
    if _name == {package!r} or _name.startswith({package!r} + "."):
        _files.add(getattr(_module, "__file__", None) or "")
        _files.update(str(_f) for _f in getattr(_module, "PACKAGE_FILES_USED", ()))
        _store.update(str(_e) for _e in getattr(_module, "STORE_ENTRIES_USED", ()))
with open({path!r}, "w") as _out:
    _json.dump({{"files": sorted(_f for _f in _files if _f), "store": sorted(_store)}}, _out)
"""
PACKAGE = "effgen"


def _with_loaded_recorder(source: Path, recorded: Path) -> Path:
    """A copy of ``source`` beside ``recorded`` with the recorder cell appended (removed again by ``_loaded_files``)."""
    nbformat = import_nbformat()

    notebook = read_notebook(source)
    recorded.unlink(missing_ok=True)
    cell = nbformat.v4.new_code_cell(_RECORDER.format(package=PACKAGE, path=str(recorded.resolve())),
                                     metadata={"tags": [LOADED_TAG]})
    notebook.cells.append(cell)
    copy = recorded.with_name(source.name)
    copy = copy.with_name(f".{copy.stem}.recording.ipynb")
    nbformat.write(notebook, copy)
    return copy


def _loaded_files(recorded: Path) -> tuple[list[str], list[str]]:
    """The files and run-store entries the recorder cell listed; ``ChapterFailed`` if it did not run (the
    chapter did not finish)."""
    try:
        found = json.loads(recorded.read_text())
        files, store = found["files"], found["store"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ChapterFailed(f"{recorded.name}: the chapter finished without recording which library files it "
                            f"ran; it is not frozen") from None
    finally:
        recorded.unlink(missing_ok=True)
    return [str(f) for f in files], [str(e) for e in store]


def strip_recorder(path: Path) -> None:
    """Remove the recorder cell from an executed notebook, so readers never see it."""
    nbformat = import_nbformat()

    notebook = read_notebook(path)
    kept = [cell for cell in notebook.cells if LOADED_TAG not in cell.metadata.get("tags", [])]
    if len(kept) != len(notebook.cells):
        notebook.cells = kept
        nbformat.write(notebook, path)


def _label_injected_parameters(job: ChapterJob, root: Path) -> None:
    """Say in the book where the injected values came from; papermill only writes ``# Parameters``.

    The injected cell is shown the way its notebook shows the ``parameters`` cell: it takes that
    cell's leading ``#|`` options (``include: false`` hides both, ``code-fold`` folds both), with
    its own ``code-summary``, the label below.
    """
    nbformat = import_nbformat()

    notebook = read_notebook(job.output)
    record = notebook.metadata.get("papermill")
    if record is not None:  # papermill's absolute paths (and the recorder's copy) are this machine's business
        record["input_path"] = job.source.relative_to(root).as_posix()
        record["output_path"] = job.output.relative_to(root).as_posix()
    declared = next((cell for cell in notebook.cells
                     if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", [])), None)
    options = _leading_options(declared.source) if declared is not None else []
    for cell in notebook.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            origin = job.params_file.relative_to(root) if job.params_file.is_file() else "the runner"
            label = f"Parameters of profile {job.parameters['profile']!r}, from {origin}"
            lines = [line for line in cell.source.splitlines() if not line.lstrip().startswith("#|")]
            if lines and lines[0].startswith("# Parameters"):
                lines[0] = f"# {label}"
            kept = [line for line in options if not line.lstrip()[2:].lstrip().startswith("code-summary:")]
            if len(kept) < len(options) or any(line.lstrip()[2:].lstrip().startswith("code-fold:") for line in kept):
                kept.append(f"#| code-summary: {json.dumps(label)}")
            cell.source = "\n".join(kept + lines)
    nbformat.write(notebook, job.output)


def _leading_options(source: str) -> list[str]:
    """The ``#|`` cell-option lines a cell's source starts with."""
    options = []
    for line in source.splitlines():
        if not line.lstrip().startswith("#|"):
            break
        options.append(line.strip())
    return options


def _pin_kernel_to_this_python(root: Path) -> None:
    """Make kernel ``python3`` mean this interpreter, whatever kernelspecs the user has installed.

    Jupyter searches ``JUPYTER_PATH`` first, so a spec written there wins over a user-level
    ``python3`` kernel that may point at another environment without effgen in it.
    """
    spec_dir = root / "_build" / ".jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    # The kernel writes its own log (e.g. a ZMQ race while papermill shuts down a failed chapter)
    # to the stderr it inherits; send that to a file so the CLI prints only the chapter's error.
    log = spec_dir / "kernel-stderr.log"
    launcher = ("import os; "
                f"os.dup2(os.open({str(log)!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND), 2); "
                "from ipykernel import kernelapp; kernelapp.launch_new_instance()")
    spec = {"argv": [sys.executable, "-c", launcher, "-f", "{connection_file}", "--IPKernelApp.log_level=ERROR"],
            "display_name": "Python 3 (effgen)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    paths = [str(spec_dir.parent.parent)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))


def _write_log(root: Path, jobs: Sequence[ChapterJob], runs: Sequence[ChapterRun]) -> None:
    if not jobs:
        return
    profile = jobs[0].parameters["profile"]
    path = root / "_build" / profile / "run-log.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in runs], indent=2))
