"""A re-freeze compares its results with those frozen before (effgen.book.freeze.reproduced)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from effgen.book.freeze.reproduced import compare_metrics, read_metrics, results


def metrics(mean: float, seconds: float = 10.0, folder: str = "/work/a/runs", git: str = "abc1234") -> dict:
    return {"chapter": "02", "provenance": {"git": git, "date": "2026-12-06 14:40 UTC", "device": "cpu"},
            "metrics": {"tuned": {"mean": mean, "per_seed": [mean - 1, mean + 1], "verdict": "holds"},
                        "seconds_per_1000_steps": seconds, "shapes": [{"ms / step": seconds, "params": 5}],
                        "storage": f"sqlite:///{folder}/optuna.db", "folder": folder}}


def test_results_set_aside_provenance_costs_and_locations() -> None:
    leaves = results(metrics(80.0))
    assert leaves == {"chapter": "02", "metrics › tuned › mean": 80.0, "metrics › tuned › per_seed › 0": 79.0,
                      "metrics › tuned › per_seed › 1": 81.0, "metrics › tuned › verdict": "holds",
                      "metrics › shapes › 0 › params": 5}


def test_same_results_on_another_machine_and_checkout_reproduce() -> None:
    outcome = compare_metrics(metrics(80.0), metrics(80.0 + 1e-13, seconds=99.0, folder="/elsewhere", git="fff0000"))
    assert outcome.same and outcome.results == 6
    assert outcome.against == {"at": "2026-12-06 14:40 UTC", "git": "abc1234"}
    assert outcome.describe().startswith("all 6 results as frozen before (executed 2026-12-06 14:40 UTC, git abc1234")


def test_a_changed_number_verdict_or_key_is_reported() -> None:
    now = metrics(80.5)
    now["metrics"]["tuned"]["verdict"] = "partly"
    now["metrics"]["extra"] = 1
    del now["metrics"]["shapes"]
    outcome = compare_metrics(metrics(80.0), now)
    assert not outcome.same
    assert [path for path, _, _ in outcome.changed] == ["metrics › tuned › mean", "metrics › tuned › per_seed › 0",
                                                       "metrics › tuned › per_seed › 1", "metrics › tuned › verdict"]
    assert outcome.changed[0][1:] == (80.0, 80.5)
    assert outcome.new == ["metrics › extra"] and outcome.gone == ["metrics › shapes › 0 › params"]
    line = outcome.describe(limit=1)
    assert "4 of 5 results differ (metrics › tuned › mean: 80.0 -> 80.5; and 3 more)" in line
    assert "1 new (metrics › extra)" in line and "1 no longer written (metrics › shapes › 0 › params)" in line
    record = outcome.as_dict(limit=2)
    assert record["changed"] == 4 and len(record["first_changes"]) == 2
    assert record["first_new"] == ["metrics › extra"] and record["first_gone"] == ["metrics › shapes › 0 › params"]
    assert json.loads(json.dumps(record)) == record


def test_booleans_are_not_numbers_and_nan_equals_nan() -> None:
    before, now = metrics(float("nan")), metrics(float("nan"))
    before["metrics"]["flag"], now["metrics"]["flag"] = True, 1
    outcome = compare_metrics(before, now)
    assert [path for path, _, _ in outcome.changed] == ["metrics › flag"]


def test_read_metrics_plain_gzipped_absent_or_unreadable(tmp_path: Path) -> None:
    assert read_metrics(tmp_path) is None
    (tmp_path / "metrics.json.gz").write_bytes(gzip.compress(json.dumps(metrics(1.0)).encode()))
    assert read_metrics(tmp_path) == metrics(1.0)
    (tmp_path / "metrics.json").write_text("{not json")
    assert read_metrics(tmp_path) is None
