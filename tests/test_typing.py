"""The library type-checks: mypy over effgen/, as configured in pyproject.toml ([tool.mypy])."""
from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]


def test_the_library_type_checks(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # mypy reads [tool.mypy] and keeps its cache (.mypy_cache) in the project root
    stdout, stderr, status = api.run([])
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 0 and not errors, "\n".join(errors[:20]) or stdout + stderr
