"""Where a study lives: a storage URL or path turned into an Optuna storage, checked up front.

Accepted forms:

- ``""``: the default, SQLite at ``runs/<profile>/03-tuning/optuna.db``;
- ``sqlite:///relative.db`` or ``sqlite:////absolute.db``, ``postgresql://...``, ``mysql://...``:
  any SQLAlchemy URL Optuna's RDB storage takes (an RDB server is how machines share a study);
- ``journal:///absolute/path.log`` or ``journal://relative/path.log``: Optuna's journal file,
  for many processes on one machine or on a shared file system without working ``fcntl`` locks;
- a bare path: a journal file if it ends in ``.log``, ``.jsonl`` or ``.journal``, SQLite otherwise.

RDB storages get a heartbeat, so a trial whose worker was killed is marked FAIL once it has
been silent for ``grace_period`` seconds (Optuna's own stale-trial check). A journal file
has no heartbeat: a killed worker's trial stays RUNNING until a worker on the same machine
sees that its process is gone (``study.fail_dead_workers_trials``). Neither case loses a finished
trial, and a failed trial never counts towards ``n_trials``.

A URL whose database driver is not installed is refused before anything runs (:func:`check_driver`),
naming the package to install.
"""
from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy.engine
import sqlalchemy.exc

from effgen.errors import ParamsError
from effgen.paths import project_root, runs_dir

CHAPTER = "03-tuning"
JOURNAL_SUFFIXES: tuple[str, ...] = (".log", ".jsonl", ".journal")
SQLITE_TIMEOUT_S = 60  # concurrent SQLite writers wait this long for the file lock
CONNECT_ATTEMPTS = 5
_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>.*)$", re.IGNORECASE)
# The pip package behind each database driver module SQLAlchemy imports (its default drivers included:
# psycopg for postgresql://, MySQLdb for mysql:// and mariadb://).
DRIVER_PACKAGES: dict[str, str] = {
    "psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pg8000": "pg8000", "asyncpg": "asyncpg",
    "MySQLdb": "mysqlclient", "pymysql": "PyMySQL", "mysql": "mysql-connector-python", "mariadb": "mariadb",
    "oracledb": "oracledb", "cx_Oracle": "cx_Oracle", "pyodbc": "pyodbc", "pymssql": "pymssql",
}


@dataclass(frozen=True)
class StorageSpec:
    kind: str  # "rdb" | "journal"
    target: str  # the SQLAlchemy URL, or the journal file's path
    heartbeat_interval: int = 30
    grace_period: int = 120

    def describe(self) -> str:
        """The storage for a reader: a file inside the project by its path from the project's root."""
        if self.kind == "journal":
            return f"journal file {_within_project(self.target)}"
        if self.target.startswith(SQLITE):
            return f"SQLite file {_within_project(self.target.removeprefix(SQLITE))}"
        return _redact(self.target)


SQLITE = "sqlite:///"


def _within_project(path: str) -> str:
    try:
        return Path(path).resolve().relative_to(project_root()).as_posix()
    except (ValueError, OSError):
        return path


def default_storage(profile: str) -> str:
    return f"sqlite:///{runs_dir(profile, CHAPTER) / 'optuna.db'}"


def parse_storage(storage: str, profile: str, heartbeat_interval: int = 30,
                  grace_period: int = 120) -> StorageSpec:
    """Classify ``storage`` without touching it; raises ParamsError on a form it cannot be."""
    if not isinstance(storage, str):
        raise ParamsError(f"storage must be a string (URL or path), got {storage!r}")
    if heartbeat_interval < 1 or grace_period <= heartbeat_interval:
        raise ParamsError(f"heartbeat: need interval >= 1 s and grace period > interval, "
                          f"got {heartbeat_interval} and {grace_period}")
    text = storage.strip() or default_storage(profile)
    beat = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period}
    match = _URL.match(text)
    if match is None:  # a bare path
        if text.lower().endswith(JOURNAL_SUFFIXES):
            return StorageSpec("journal", str(Path(text).expanduser()), **beat)
        return StorageSpec("rdb", f"sqlite:///{Path(text).expanduser()}", **beat)
    scheme = match["scheme"].lower()
    if scheme == "journal":
        if not match["rest"]:
            raise ParamsError(f"storage {storage!r}: a journal URL needs a path, e.g. journal:///tmp/study.log")
        return StorageSpec("journal", match["rest"], **beat)
    dialect = scheme.split("+", 1)[0]
    if dialect in ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql"):
        if dialect == "postgres":
            raise ParamsError(f"storage {_redact(storage)!r}: SQLAlchemy spells it postgresql://")
        return StorageSpec("rdb", text, **beat)
    raise ParamsError(f"storage {_redact(storage)!r}: unknown scheme {scheme!r}; use sqlite:///, "
                      "postgresql://, mysql://, journal:///path, or a file path")


def check_driver(spec: StorageSpec) -> None:
    """Import the database driver an RDB storage URL needs, without connecting; a missing one is one
    ``ParamsError`` line naming the package to install (Optuna would raise a bare ``ImportError``)."""
    if spec.kind != "rdb":
        return
    try:
        sqlalchemy.engine.make_url(spec.target).get_dialect().import_dbapi()
    except ImportError as err:
        module = (err.name or "").split(".")[0]
        install = f"pip install {DRIVER_PACKAGES.get(module, module)}" if module else "install it"
        raise ParamsError(f"storage {spec.describe()}: its database driver {module or '(unnamed)'} is not "
                          f"installed; {install}") from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ParamsError(f"storage {spec.describe()}: {first}") from None


def open_storage(spec: StorageSpec) -> optuna.storages.BaseStorage:
    """Connect (creating the SQLite or journal file and its folder); errors become ParamsError."""
    if spec.kind == "journal":
        path = Path(spec.target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        except OSError as err:
            raise ParamsError(f"storage {spec.describe()}: cannot open: {err}") from None
    check_driver(spec)
    engine_kwargs = {}
    if spec.target.lower().startswith("sqlite"):
        database = spec.target.split(":///", 1)[1] if ":///" in spec.target else ""
        if database and database != ":memory:":
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise ParamsError(f"storage {spec.describe()}: cannot create its folder: {err}") from None
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # the heartbeat arguments are flagged experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(spec.target, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=spec.heartbeat_interval,
                                                  grace_period=spec.grace_period)
        except (sqlalchemy.exc.SQLAlchemyError, ValueError) as err:  # the user needs the first line only
            # Workers started together race to create the schema of a new database (IntegrityError,
            # "table already exists"); the loser finds it made on the next attempt.
            if attempt + 1 < CONNECT_ATTEMPTS and isinstance(
                    err, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError)):
                time.sleep(0.5 * (attempt + 1))
                continue
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ParamsError(f"storage {spec.describe()}: cannot connect: {first}") from None
    raise AssertionError("unreachable")


def _redact(url: str) -> str:
    """Hide a password in ``scheme://user:password@host`` before it reaches a message."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)
