"""Chapter 05: its parameter files validate (its execution is tested on the smoke book: test_book_e2e.py)."""
from __future__ import annotations

import pytest
from conftest import REPO

from effgen.book.runner import plan

CHAPTER = "05-evaluation"


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_parameter_files_validate(profile: str) -> None:
    jobs = plan(REPO, profile, [CHAPTER])
    assert [job.name for job in jobs] == [CHAPTER]
