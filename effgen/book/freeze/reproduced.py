"""Did a chapter's new execution reproduce the results frozen before it?

``freeze_chapter`` compares the chapter's ``metrics.json`` as frozen before with the one it freezes now,
records the outcome in ``fingerprint.json`` (``reproduced``) and ``effgen run`` prints it. A re-freeze that
reuses every run must leave every result as it was, so a changed number after a library edit is caught
at the freeze, not by a reader.

Compared are the metrics' leaves (numbers, strings, booleans), with three kinds set aside because they
describe the execution, not its results: ``provenance`` (machine, versions, git, date), costs (any key
naming a time: seconds, hours, minutes, ms / step) and locations (strings that are absolute paths or URLs).
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effgen.checkpoints import read_unpacked

METRICS_FILE = "metrics.json"
COST_KEY = re.compile(r"second|hour|minute|ms / step", re.IGNORECASE)
_LOCATION = re.compile(r"^(/|[a-z][a-z0-9+]*:/)", re.IGNORECASE)
REL_TOL = 1e-9  # float noise of a re-computation, far below any precision the book prints


@dataclass(frozen=True)
class Reproduced:
    """The outcome of comparing two executions' results, leaf by leaf (paths joined with " › ")."""

    against: dict[str, Any]  # the earlier execution: {"at", "git"}
    results: int  # results the two executions share
    changed: list[tuple[str, Any, Any]] = field(default_factory=list)  # (path, before, now)
    new: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (self.changed or self.new or self.gone)

    def as_dict(self, limit: int = 20) -> dict[str, Any]:
        return {"against": self.against, "results": self.results, "changed": len(self.changed),
                "new": len(self.new), "gone": len(self.gone),
                "first_changes": [{"result": path, "before": before, "now": now}
                                  for path, before, now in self.changed[:limit]],
                "first_new": self.new[:limit], "first_gone": self.gone[:limit]}

    def describe(self, limit: int = 3) -> str:
        """One line for ``effgen run``."""
        when = f"executed {self.against.get('at', '?')}, git {self.against.get('git', '?')}"
        if self.same:
            return f"all {self.results} results as frozen before ({when}; costs and provenance aside)"
        parts = []
        if self.changed:
            shown = "; ".join(f"{path}: {before!r} -> {now!r}" for path, before, now in self.changed[:limit])
            more = f"; and {len(self.changed) - limit} more" if len(self.changed) > limit else ""
            parts.append(f"{len(self.changed)} of {self.results} results differ ({shown}{more})")
        for paths, what in ((self.new, "new"), (self.gone, "no longer written")):
            if paths:
                more = f"; and {len(paths) - limit} more" if len(paths) > limit else ""
                parts.append(f"{len(paths)} {what} ({'; '.join(paths[:limit])}{more})")
        return "CHANGED against the execution frozen before (" + when + "): " + ", ".join(parts)


def read_metrics(runs_mirror: Path) -> dict[str, Any] | None:
    """A chapter's ``metrics.json`` from its frozen runs folder (stored gzipped when large); None if absent."""
    found = [path for path in (runs_mirror / METRICS_FILE, runs_mirror / (METRICS_FILE + ".gz")) if path.is_file()]
    if not found:
        return None
    try:
        metrics = json.loads(read_unpacked(found[0]))
    except json.JSONDecodeError:
        return None
    return metrics if isinstance(metrics, dict) else None


def results(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The comparable leaves of a chapter's metrics, by path: provenance, costs and locations aside."""
    return dict(_leaves(metrics, ()))


def _leaves(value: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key != "provenance" and not COST_KEY.search(str(key)):
                yield from _leaves(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, str(index)))
    elif not (isinstance(value, str) and _LOCATION.match(value)):
        yield " › ".join(path), value


def _equal(before: Any, now: Any) -> bool:
    if isinstance(before, bool) or isinstance(now, bool):
        return before is now
    if isinstance(before, int | float) and isinstance(now, int | float):
        if math.isnan(before) and math.isnan(now):
            return True
        return math.isclose(before, now, rel_tol=REL_TOL, abs_tol=1e-12)
    return bool(before == now)


def compare_metrics(before: Mapping[str, Any], now: Mapping[str, Any]) -> Reproduced:
    """Compare two executions' metrics, the earlier one named by its own provenance (date and git)."""
    old, new = results(before), results(now)
    shared = [path for path in new if path in old]
    provenance = before.get("provenance")
    provenance = provenance if isinstance(provenance, Mapping) else {}
    against = {"at": provenance.get("date", "?"), "git": provenance.get("git", "?")}
    return Reproduced(against, len(shared),
                      [(path, old[path], new[path]) for path in shared if not _equal(old[path], new[path])],
                      [path for path in new if path not in old], [path for path in old if path not in new])
