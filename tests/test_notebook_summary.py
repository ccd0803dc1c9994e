"""The chapter helpers and the summary page's paper-vs-run table."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from effgen.errors import MissingArtifactError
from effgen.notebook import headline, start_chapter
from effgen.summary import data_used, load_metrics, missing_chapters, paper_vs_run


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "_quarto.yml").write_text("book:\n  chapters: []\n")
    monkeypatch.setenv("EFFGEN_ROOT", str(tmp_path))
    return tmp_path


def test_missing_artifact_names_the_chapter_to_run_first(project: Path) -> None:
    chapter = start_chapter("05-evaluation", "smoke", 0, "cpu")
    with pytest.raises(MissingArtifactError, match=r"run it first: effgen run 04-dcgan --profile smoke"):
        chapter.artifact("04-dcgan", "generator-corrected.pt")


def test_stand_in_data_turns_the_callout_into_a_warning(project: Path) -> None:
    chapter = start_chapter("02-classifier", "smoke", 3, "cpu")
    real = chapter.provenance_callout({"dataset": "AddNIST (official)"}).data
    stand_in = chapter.provenance_callout({"dataset": "mnist-5k", "stand_in": True, "requested": "AddNIST",
                                           "reason": "offline."}).data
    assert real.startswith("::: {.callout-note}") and "**Data:** AddNIST (official)" in real
    assert stand_in.startswith("::: {.callout-warning}")
    assert "a stand-in** for AddNIST. offline." in stand_in
    assert "**seed:** 3" in stand_in and "`smoke`" in stand_in


def test_metrics_feed_the_summary_table(project: Path) -> None:
    chapter = start_chapter("02-classifier", "smoke", 0, "cpu")
    with pytest.raises(KeyError, match="unknown headline key"):
        chapter.write_metrics({}, headline=[headline("made_up", 1.0)])
    chapter.write_metrics({"extra": 1}, data={"dataset": "mnist-5k", "stand_in": True}, headline=[
        headline("cls_test_acc", 81.234, std=1.5, n=5),
        headline("cls_20k_acc", 80.0, over_budget=True),
    ])
    stored = json.loads((project / "runs/smoke/02-classifier/metrics.json").read_text())
    assert stored["provenance"]["seed"] == 0 and stored["metrics"] == {"extra": 1}

    metrics = load_metrics("smoke")
    table = paper_vs_run(metrics).set_index("Result")
    assert table.loc["Tuned classifier test accuracy", "Paper"] == "84.95 %"
    assert table.loc["Tuned classifier test accuracy", "This run"] == "81.23 ± 1.50 %"
    assert table.loc["Tuned classifier test accuracy", "Notes"] == "n = 5"
    assert table.loc["20,000 steps, test accuracy", "This run"] == "80.00 % †"
    assert table.loc["FID vs test split", "This run"] == "—"
    assert table.loc["FID vs test split", "Notes"] == "not run yet"
    assert missing_chapters(metrics, ["01-activations", "02-classifier"]) == ["01-activations"]
    assert data_used(metrics).loc[0, "Data"] == "mnist-5k (stand-in)"


def test_a_skipped_measurement_shows_a_dash_and_why(project: Path) -> None:
    chapter = start_chapter("05-evaluation", "smoke", 0, "cpu")
    chapter.write_metrics({}, headline=[headline("lpips_diversity", None, note="no backbone offline")])
    row = paper_vs_run(load_metrics("smoke")).set_index("Result").loc["LPIPS diversity"]
    assert row["This run"] == "—" and row["Notes"] == "no backbone offline"


def test_half_written_metrics_count_as_missing(project: Path) -> None:
    folder = project / "runs/smoke/04-dcgan"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text('{"chapter": "04-dc')
    assert load_metrics("smoke") == {}


def test_one_seed_shows_no_spread(project: Path) -> None:
    chapter = start_chapter("02-classifier", "smoke", 0, "cpu")
    chapter.write_metrics({}, headline=[headline("cls_extra_block_acc", 83.0, std=0.0, n=1)])
    row = paper_vs_run(load_metrics("smoke")).set_index("Result").loc["Fourth IR block (104,804 params), test accuracy"]
    assert row["This run"] == "83.00 %"
