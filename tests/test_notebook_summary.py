"""The chapter helpers and the summary page's paper-vs-run table."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from effgen.book.notebook import headline, start_chapter
from effgen.book.summary import data_used, load_metrics, missing_chapters, paper_vs_run
from effgen.budget import CLASSIFIER_LIMITS, BudgetReport, check_budget
from effgen.errors import MissingArtifactError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "_quarto.yml").write_text("book:\n  chapters: []\n")
    monkeypatch.setenv("EFFGEN_ROOT", str(tmp_path))
    return tmp_path


def test_missing_artifact_names_the_chapter_to_run_first(project: Path) -> None:
    chapter = start_chapter("05-evaluation", "smoke", 0, "cpu")
    with pytest.raises(MissingArtifactError, match=r"run it first: effgen run 04-dcgan --profile smoke"):
        chapter.artifact("04-dcgan", "metrics.json")


def test_stand_in_data_turns_the_callout_into_a_warning(project: Path) -> None:
    chapter = start_chapter("02-classifier", "smoke", 3, "cpu")
    real = chapter.provenance_callout({"dataset": "AddNIST (official)"}).data
    stand_in = chapter.provenance_callout({"dataset": "mnist-5k", "stand_in": True, "requested": "AddNIST",
                                           "reason": "offline."}).data
    assert real.startswith("::: {.callout-note}") and "**Data:** AddNIST (official)" in real
    assert stand_in.startswith("::: {.callout-warning}")
    assert "mnist-5k, standing in for AddNIST (@sec-data says why)" in stand_in
    assert "offline." not in stand_in  # why a download failed stays in metrics.json, out of the reader's way
    assert "`seed` 3" in stand_in and "profile `smoke`" in stand_in and "effgen git" in stand_in
    gan = chapter.provenance_callout({"dataset": "cifar10", "stand_in": True, "requested": "cifar100"}).data
    assert "**Data:** CIFAR-10, standing in for CIFAR-100" in gan  # the book's names, not the data layer's keys


def _budget(params: int, steps: int) -> BudgetReport:
    return check_budget(params, steps, CLASSIFIER_LIMITS, over_budget_reason="the paper's scalability test")


STAND_IN = {"dataset": "mnist-5k", "stand_in": True, "requested": "AddNIST (official)"}


def test_metrics_feed_the_summary_table(project: Path) -> None:
    chapter = start_chapter("02-classifier", "smoke", 0, "cpu")
    with pytest.raises(KeyError, match="unknown headline key"):
        chapter.write_metrics({}, headline=[headline("made_up", 1.0)])
    chapter.write_metrics({"extra": 1}, data=STAND_IN, headline=[
        headline("cls_params", 86_692),
        headline("cls_test_acc", 81.234, std=1.5, n=5, seeds=5, budget=_budget(86_692, 200)),
        headline("cls_20k_acc", 80.0, n=1, seeds=1, budget=_budget(86_692, 20_000)),
    ])
    stored = json.loads((project / "runs/smoke/02-classifier/metrics.json").read_text())
    assert stored["provenance"]["seed"] == 0 and stored["metrics"] == {"extra": 1}

    metrics = load_metrics("smoke")
    table = paper_vs_run(metrics).set_index("Result")
    assert table.loc["Tuned classifier test accuracy", "Paper"] == "84.95 %"
    assert table.loc["Tuned classifier test accuracy", "This run"] == "81.2 ± 1.5 %"
    assert table.loc["Tuned classifier test accuracy", "Notes"] == (
        "200 steps per run; stand-in data; 5 seeds")
    assert table.loc["20,000 steps, test accuracy", "This run"] == "80.0 % †"
    assert table.loc["Classifier parameters", "Notes"] == "limit < 100,000"
    assert table.loc["FID vs test split, corrected DCGAN", "This run"] == "—"
    assert table.loc["FID vs test split, corrected DCGAN", "Notes"] == "not run yet"
    assert missing_chapters(metrics, ["01-activations", "02-classifier"]) == ["01-activations"]
    assert data_used(metrics).loc[0, "Data"] == "mnist-5k (stand-in)"


def test_every_result_row_says_steps_data_and_seeds(project: Path) -> None:
    """Item 6: this run's number never sits beside the paper's without what produced it."""
    chapter = start_chapter("01-activations", "smoke", 0, "cpu")
    chapter.write_metrics({}, data=STAND_IN, headline=[
        headline("cls_plain_cnn_acc", 12.5, std=0.4, n=2, seeds=2, budget=_budget(24_996, 200)),
        headline("swish_best", "within noise", seeds=2, budget=_budget(86_692, 200), note="paired t-tests"),
    ])
    chapter = start_chapter("03-tuning", "smoke", 0, "cpu")
    chapter.write_metrics({}, data={"dataset": "AddNIST (official)"}, headline=[
        headline("tuned_test_acc", 90.0, steps=10_000, seeds=1, note="best of 150 trials")])
    table = paper_vs_run(load_metrics("smoke")).set_index("Result")
    assert table.loc["Plain CNN test accuracy", "Notes"] == (
        "200 steps per run; stand-in data; 2 seeds")
    assert table.loc["Swish beats ReLU and Softplus", "Notes"].endswith("; 2 seeds; paired t-tests")
    assert table.loc["Study's setting retrained at 10,000 steps, test accuracy", "Notes"] == (
        "10,000 steps per run; AddNIST (official); 1 seed; best of 150 trials")
    # A headline's own data wins over the chapter's (e.g. a result on other data than the chapter's).
    chapter.write_metrics({}, data=STAND_IN, headline=[
        headline("tuned_test_acc", 90.0, steps=60, seeds=1, data={"dataset": "cifar10", "stand_in": True,
                                                                 "requested": "CIFAR-100"})])
    note = paper_vs_run(load_metrics("smoke")).set_index("Result").loc["Study's setting retrained at 10,000 steps, test accuracy",
                                                                         "Notes"]
    assert note == "60 steps per run; stand-in data; 1 seed"


def test_a_result_without_its_fields_says_so(project: Path) -> None:
    chapter = start_chapter("05-evaluation", "smoke", 0, "cpu")
    chapter.write_metrics({}, data={"dataset": "cifar10", "stand_in": True, "requested": "CIFAR-100"},
                          headline=[headline("fid_test", 250.0, n=2_500, note="pytorch-fid")])
    note = paper_vs_run(load_metrics("smoke")).set_index("Result").loc["FID vs test split, corrected DCGAN", "Notes"]
    assert note == ("steps not recorded; stand-in data; seeds not recorded; n = 2,500; "
                    "pytorch-fid")


def test_both_dcgan_recipes_get_an_fid_row_and_only_the_faithful_one_the_papers_number(project: Path) -> None:
    """The paper's 44.46 came from the authors' code (the faithful recipe); the corrected one it never scored."""
    chapter = start_chapter("05-evaluation", "smoke", 0, "cpu")
    chapter.write_metrics({}, data={"dataset": "cifar10", "stand_in": True, "requested": "CIFAR-100"}, headline=[
        headline("fid_test_faithful", 61.5, n=10_000, steps=50_000, seeds=1, note="train mode"),
        headline("fid_test", 48.25, n=10_000, steps=50_000, seeds=1, note="eval mode")])
    table = paper_vs_run(load_metrics("smoke")).set_index("Result")
    faithful = table.loc["FID vs test split, faithful DCGAN (sampled as the original)"]
    corrected = table.loc["FID vs test split, corrected DCGAN"]
    assert (faithful["Paper"], faithful["This run"]) == ("44.46 (CIFAR-100, clean-fid)", "61.5")
    assert corrected["This run"] == "48.2" and "44.46 is the faithful one's" in corrected["Paper"]
    assert faithful["Notes"] == "50,000 steps per run; stand-in data; 1 seed; train mode"


def test_dagger_comes_from_the_measured_budget_only(project: Path) -> None:
    """Item 5: a run that declares a reason to exceed the limits but fits them carries no dagger."""
    declared_but_within = _budget(86_692, 400)  # the quick profile's "20,000 steps" run
    assert declared_but_within.reason == "" and not declared_but_within.over_budget
    chapter = start_chapter("02-classifier", "smoke", 0, "cpu")
    chapter.write_metrics({}, data=STAND_IN, headline=[
        headline("cls_20k_acc", 80.0, n=1, seeds=1, budget=declared_but_within),
        headline("cls_extra_block_acc", 79.0, n=1, seeds=1, budget=_budget(104_804, 400)),
    ])
    table = paper_vs_run(load_metrics("smoke")).set_index("Result")
    assert table.loc["20,000 steps, test accuracy", "This run"] == "80.0 %"
    assert table.loc["Fourth IR block (104,804 params), test accuracy", "This run"] == "79.0 % †"
    # headline() has no way to set the mark by hand any more
    with pytest.raises(TypeError):
        headline("cls_20k_acc", 80.0, over_budget=True)  # type: ignore[call-arg]


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
    assert row["This run"] == "83.0 %"


def test_markdown_table_separates_thousands_only_when_asked() -> None:
    import pandas as pd

    from effgen.book.notebook import markdown_table

    frame = pd.DataFrame({"run": ["a"], "steps": [50_000], "loss": [1234.5]})
    assert "50000" in markdown_table(frame).data and "50,000" not in markdown_table(frame).data
    assert " 50,000 | 1,234.5 |" in markdown_table(frame, floatfmt=",.1f", intfmt=",").data


def test_a_run_that_sees_more_images_than_the_paper_is_marked() -> None:
    """Within 10,000 steps, but batch 122: about 1.9x the paper's images seen, so the row says so."""
    from effgen.book.summary import more_images
    from effgen.budget import CLASSIFIER_LIMITS, check_budget

    wide = check_budget(86_692, 10_000, CLASSIFIER_LIMITS, batch_size=122)
    assert not wide.over_budget and wide.more_images and wide.flag == "‡"
    assert wide.images == 1_220_000 and wide.max_images == 640_000
    paper = check_budget(86_692, 10_000, CLASSIFIER_LIMITS, batch_size=64)
    assert paper.flag == "" and not more_images({"budget": paper.as_dict()})
    assert more_images({"budget": wide.as_dict()})


def test_a_table_keeps_numbers_the_chapter_wrote_as_text() -> None:
    import pandas as pd

    from effgen.book.notebook import markdown_table

    frame = pd.DataFrame({"pilot": ["P3", "P0"], "mean FID": ["347.8", "360.7"], "ratio": [1.234, 2.0],
                          "accuracy": ["74.8 ± 2.9 %", "—"], "note": ["P1", "0.2"]})
    header, rule, *rows = markdown_table(frame).data.splitlines()
    assert "347.8 " in rows[0] and "347.80" not in rows[0]  # one decimal, as written, not floatfmt's two
    assert "1.23" in rows[0] and "2.00" in rows[1]  # real floats still follow floatfmt
    aligned = ["right" if cell.endswith(":") else "left" for cell in rule.split("|")[1:-1]]
    assert aligned == ["left", "right", "right", "right", "left"]  # numbers right, whether written or not
