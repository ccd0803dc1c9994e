"""Provenance: the git revision a chapter records."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from effgen.book.provenance import git_revision


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "test@example.org")
    _git(tmp_path, "config", "user.name", "test")
    (tmp_path / "effgen.py").write_text("x = 1\n")
    (tmp_path / "_freeze").mkdir()
    (tmp_path / "_freeze" / "metrics.json").write_text("{}\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "start")
    return tmp_path


def test_rewritten_frozen_results_do_not_mark_the_code_dirty(repo: Path) -> None:
    clean = git_revision(repo)
    assert clean and not clean.endswith("+dirty") and clean != "unknown"
    (repo / "_freeze" / "metrics.json").write_text('{"acc": 0.9}\n')
    assert git_revision(repo) == clean


def test_a_changed_source_file_is_dirty(repo: Path) -> None:
    (repo / "effgen.py").write_text("x = 2\n")
    assert git_revision(repo).endswith("+dirty")


def test_outside_git_the_revision_is_unknown(tmp_path: Path) -> None:
    assert git_revision(tmp_path) == "unknown"  # a folder that is no repository: git itself fails
