"""The README's bottom line quotes the frozen paper book, so a re-freeze that moves a number must move it too."""
from __future__ import annotations

import json
import re

from conftest import REPO

from effgen.book.summary import seed_spread

FROZEN_CLASSIFIER = REPO / "_freeze/paper/02-classifier/runs/metrics.json"


def test_the_bottom_line_quotes_the_frozen_tuned_accuracy() -> None:
    readme = " ".join((REPO / "README.md").read_text().split())
    quoted = re.search(r"the tuned model reaches (\d+\.\d+ ± \d+\.\d+ %) over (\d+) seeds", readme)
    assert quoted, "README's bottom line no longer states the tuned model's accuracy over seeds"
    tuned = json.loads(FROZEN_CLASSIFIER.read_text())["metrics"]["runs"]["tuned"]
    assert quoted.group(1) == seed_spread(tuned, " %")
    assert int(quoted.group(2)) == tuned["n"]
