"""The smoke book end to end: `effgen report --profile smoke` over every chapter, once, and every test
that reads its outputs.

The book is executed in a copy of the project with its own empty data/ and runs/, as on a fresh clone,
so whatever stand-in data the chapters fall back to offline is exercised too. All of it lives in this
one file so that `pytest -n 2 --dist loadfile` (`make test`) executes the book once, on one worker; a
test that changes a run works on a copy of its chapter (`copy_chapter`).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import torch
import yaml
from conftest import REPO, reader_text

from effgen.book.runner import book_notebooks, chapter_name
from effgen.gan import (
    FCGenerator,
    generated_images,
    generator_extra,
    load_generator,
    run_folder,
    saved_generators,
)
from effgen.gan.winner import TARGET_FID
from effgen.metrics import inception_weights as iw
from effgen.tuning import load_best

pytestmark = pytest.mark.slow
BOOK_SOURCES = ("_quarto.yml", "references.bib", "index.ipynb", "chapters", "params")
STUDY = "effgen-03-tuning-smoke-mnist-5k"  # the default name carries the smoke profile's data


# What the book inherits from conftest: no package index, its temporary folder, and under xdist one thread
# per kernel (a kernel with the machine's threads spin-waits against the other worker's process, several
# times slower).
BOOK_ENV = ("PIP_NO_INDEX", "PIP_FIND_LINKS", "OMP_NUM_THREADS", "TMPDIR")


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("book")
    for name in BOOK_SOURCES:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, root / name)
    env = {"EFFGEN_ROOT": str(root), "EFFGEN_DATA": str(root / "data"), "PATH": "/usr/bin:/bin",
           "HOME": str(Path.home()),
           **{name: os.environ[name] for name in BOOK_ENV if name in os.environ}}
    result = subprocess.run([sys.executable, "-m", "effgen", "report", "--profile", "smoke"], cwd=root,
                            env=env, capture_output=True, text=True, timeout=1500, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root


def copy_chapter(book: Path, chapter: str, root: Path) -> Path:
    """A one-chapter project at ``root`` holding ``book``'s smoke notebook, params and finished runs (its own
    folder's and the run store's)."""
    (root / "chapters").mkdir(parents=True)
    (root / "params/smoke").mkdir(parents=True)
    (root / "_quarto.yml").write_text(f"book:\n  chapters:\n    - chapters/{chapter}.ipynb\n")
    shutil.copy(book / "chapters" / f"{chapter}.ipynb", root / "chapters")
    shutil.copy(book / "params/smoke" / f"{chapter}.yml", root / "params/smoke")
    shutil.copytree(book / "runs/smoke" / chapter, root / "runs/smoke" / chapter)
    shutil.copytree(book / "runs/smoke/store", root / "runs/smoke/store")
    return root


def launch_chapter(root: Path, chapter: str, data: Path, out: Path, *extra: str) -> subprocess.Popen:
    """Papermill on ``root``'s copy of ``chapter`` at the smoke profile, as `effgen run` would; not waited for
    (its stderr goes to ``out`` with the suffix ``.stderr``).

    Two of these run side by side, so each kernel gets half the cores (one under `pytest -n 2`): more
    OpenMP threads than cores spin-wait on each other."""
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // 2))
    env = {**os.environ, "EFFGEN_ROOT": str(root), "EFFGEN_DATA": str(data), "EFFGEN_PROGRESS": "0",
           "OMP_NUM_THREADS": threads}
    command = [sys.executable, "-m", "papermill", str(root / "chapters" / f"{chapter}.ipynb"), str(out),
               "-f", str(root / "params" / "smoke" / f"{chapter}.yml"), "-p", "profile", "smoke",
               "--cwd", str(root), *extra]
    with open(out.with_suffix(".stderr"), "w") as stderr:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)


CHAPTER_03, CHAPTER_04, CHAPTER_05 = "03-tuning", "04-dcgan", "05-evaluation"


@dataclass(frozen=True)
class SecondRun:
    root: Path  # the one-chapter project it ran in
    checkpoints: dict[Path, int]  # its checkpoint files and their modification times before it ran


@pytest.fixture(scope="module")
def second_runs(smoke_book: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, SecondRun]:
    """Chapters 03 and 04 executed again, each in a copy of its chapter, side by side: 03 asked for one
    more trial than the book ran, 04 as it was."""
    n_trials = yaml.safe_load((smoke_book / "params" / "smoke" / f"{CHAPTER_03}.yml").read_text())["n_trials"]
    extra = {CHAPTER_03: ("-p", "n_trials", str(n_trials + 1)), CHAPTER_04: ()}
    runs, started = {}, []
    try:
        for chapter, parameters in extra.items():
            folder = tmp_path_factory.mktemp(chapter)
            root = copy_chapter(smoke_book, chapter, folder / "project")
            checkpoints = {p: p.stat().st_mtime_ns for p in (root / "runs/smoke" / chapter).rglob("checkpoint.pt")}
            runs[chapter] = SecondRun(root, checkpoints)
            out = folder / "second.ipynb"
            started.append((launch_chapter(root, chapter, smoke_book / "data", out, *parameters), out))
        for process, out in started:
            assert process.wait(timeout=900) == 0, out.with_suffix(".stderr").read_text()[-3000:]
    finally:
        for process, _ in started:
            if process.poll() is None:
                process.kill()
    return runs


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def _text(path: Path) -> str:
    parser = _Text()
    parser.feed(path.read_text())
    return " ".join(parser.chunks)


def test_every_chapter_executes_and_writes_metrics(smoke_book: Path) -> None:
    for notebook in book_notebooks(smoke_book):
        assert (smoke_book / "_build/smoke" / notebook).is_file(), notebook
        if notebook != "index.ipynb":
            metrics = json.loads((smoke_book / "runs/smoke" / chapter_name(notebook) / "metrics.json").read_text())
            assert metrics["provenance"]["profile"] == "smoke"
            assert metrics["provenance"]["seed"] is not None


def test_no_chapter_shows_readers_machine_noise(smoke_book: Path) -> None:
    """No absolute path, download error or timestamp in what a chapter shows (metrics.json keeps them)."""
    from test_claims import NOISE

    for notebook in book_notebooks(smoke_book):
        text = reader_text(json.loads((smoke_book / "_build/smoke" / notebook).read_text()))
        assert not [noise for noise in NOISE if noise in text], notebook


def test_book_renders_to_html_and_pdf(smoke_book: Path) -> None:
    book = smoke_book / "_build/smoke/book"
    index = book / "index.html"
    assert index.is_file()
    summary = _text(index)
    assert "This run" in summary and "84.95" in summary  # the paper-vs-run table with the paper's numbers
    assert "not run yet" not in summary  # every chapter reported its headline numbers
    pages = sorted(book.rglob("*.html"))
    assert len(pages) >= len(book_notebooks(smoke_book))
    for page in pages:
        html = page.read_text()
        assert "#|" not in html, page.name
        assert "?@fig-" not in html and "?@tbl-" not in html and "?@sec-" not in html, page.name
    pdfs = list(book.glob("*.pdf"))
    assert len(pdfs) == 1 and pdfs[0].stat().st_size > 50_000


def _markdown_outputs(notebook: Path) -> str:
    """Every Markdown output of an executed notebook: the prose the chapter generated."""
    cells = json.loads(notebook.read_text())["cells"]
    return "\n".join("".join(out["data"]["text/markdown"]) for cell in cells for out in cell.get("outputs", [])
                     if "text/markdown" in out.get("data", {}))


def test_summary_notes_say_what_produced_each_number(smoke_book: Path) -> None:
    """Item 6: no number of this build sits beside the paper's without its steps, data and seeds."""
    from effgen.book.paper import BY_KEY
    from effgen.book.summary import load_metrics, paper_vs_run

    table = paper_vs_run(load_metrics("smoke", root=smoke_book))
    index_text = " ".join(_text(smoke_book / "_build/smoke/book/index.html").split())
    for _, row in table.iterrows():
        number = next(n for n in BY_KEY.values() if n.label == row["Result"])
        if row["This run"] == "—":
            continue
        if number.limit:
            assert row["Notes"].startswith(number.limit), row
        else:
            assert " steps per run; " in row["Notes"] and " seed" in row["Notes"], row
            # the smoke profile's rebuilt AddNIST and its stand-in for CIFAR-100, named once on the page
            assert "stand-in data" in row["Notes"], row
        assert row["Notes"].replace("'", "’")[:40] in index_text.replace("'", "’"), row
    # the summary page shows no parameter cells; chapters fold theirs, labelled with the profile's file
    index_html = (smoke_book / "_build/smoke/book/index.html").read_text()
    assert "profile = " not in index_html and "profile: str" not in index_html
    chapter = (smoke_book / "_build/smoke/book/chapters/01-activations.html").read_text()
    assert chapter.count('<details class="code-fold">') >= 2
    assert "Parameters of profile &#x27;smoke&#x27;, from params/smoke/01-activations.yml" in chapter


def test_generated_sentences_follow_the_data(smoke_book: Path) -> None:
    """Item 9: sentences that used to be typed in now follow what the run measured."""
    executed = smoke_book / "_build/smoke/chapters"
    runs = smoke_book / "runs/smoke"
    data = json.loads((runs / "00-data/metrics.json").read_text())["metrics"]["addnist"]
    counts = data["class_counts"]
    prose = _markdown_outputs(executed / "00-data.ipynb")
    equal = all(min(c) == max(c) for c in counts.values())
    assert ("Every class is equally represented" in prose) == equal
    n_test = data["sizes"]["test"]
    prose = _markdown_outputs(executed / "02-classifier.ipynb")
    if n_test % 64:
        assert f"partial test batch of {n_test % 64} images" in prose
    else:
        assert "every test batch is full" in prose and "partial test batch of" not in prose
    prose = _markdown_outputs(executed / "03-tuning.ipynb")
    assert "draw the same batches" not in prose or "Batch size is searched" in prose
    assert "Its dropout range, [0.25, 0.35], was searched" in prose
    prose = _markdown_outputs(executed / "04-dcgan.ipynb")
    gan = json.loads((runs / "04-dcgan/metrics.json").read_text())["metrics"]["params"]["total"]
    assert ("exactly the paper's count" in prose) == (gan == 967_072)
    # Item 4: chapter 01 either picks each activation's learning rate or says its verdict favours Swish.
    smoke = yaml.safe_load((smoke_book / "params/smoke/01-activations.yml").read_text())
    prose = _markdown_outputs(executed / "01-activations.ipynb")
    if len(smoke.get("lr_factors", [1.0])) > 1:
        assert "Each activation ran at the learning rate it picked on validation data" in prose
    else:
        assert "biased in Swish's favour" in prose
    # Chapter 06's pilots' winner: its verdict and its leave-one-out sentence follow the numbers it saved.
    beyond = json.loads((runs / "06-beyond/metrics.json").read_text())["metrics"]
    prose = _markdown_outputs(executed / "06-beyond.ipynb")
    winner = beyond["winner"]
    if winner is None:
        assert "no recipe earned a full-length run" in prose
    else:
        gap = winner["fid_vs_corrected"]
        assert ("does not beat the corrected DCGAN" in prose) == (gap >= 0)
        assert f"reaches an FID of **{winner['fid']:.1f}**" in prose
        goal = "reaches it." if winner["fid"] <= TARGET_FID else f"misses it by {winner['fid'] - TARGET_FID:.1f}."
        assert f"an FID of {TARGET_FID:.0f} or lower" in prose and goal in prose
        removals = winner["ablation"]["removals"]
        worse = sum(change > 0 for change in removals.values())
        assert f"{worse} of the {len(removals)} removals make the FID worse" in prose
    # Item 4: the verdicts name their test; no "two standard errors" rule is left.
    for name in ("01-activations.ipynb", "03-tuning.ipynb"):
        prose = _markdown_outputs(executed / name)
        assert "standard error" not in prose.replace("standard errors to count", "")
        assert "t-test" in prose or "no test is possible" in prose.lower()


# Chapter 03: the book's execution, then a second that continues its study.
def finished_trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    return [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]


def test_chapter_03_runs_then_resumes_its_study(smoke_book: Path, second_runs: dict[str, SecondRun]) -> None:
    run_dir = smoke_book / "runs" / "smoke" / CHAPTER_03
    smoke = yaml.safe_load((smoke_book / "params" / "smoke" / f"{CHAPTER_03}.yml").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    finished = finished_trials(run_dir)
    assert len(finished) == smoke["n_trials"]
    # The headline is the carried-forward setting's test accuracy over the confirmation seeds, not a trial's score.
    assert metrics["headline"][0]["key"] == "tuned_test_acc"
    assert metrics["headline"][0]["value"] == pytest.approx(metrics["metrics"]["confirm"]["tuned"]["mean"])
    assert metrics["provenance"]["profile"] == "smoke"
    assert load_best(run_dir / "best.yml").steps == smoke["steps"]

    # Raising the target, in a copy of the chapter, continues the same study instead of starting over.
    again = finished_trials(second_runs[CHAPTER_03].root / "runs" / "smoke" / CHAPTER_03)
    assert len(again) == smoke["n_trials"] + 1
    assert {t.number: t.value for t in finished} == {t.number: t.value for t in again if t.number in
                                                      {f.number for f in finished}}


# Chapter 04: the outputs chapter 05 relies on, and reuse on re-execution.
def test_chapter_04_leaves_what_chapter_05_needs_and_reuses_its_runs(smoke_book: Path,
                                                                      second_runs: dict[str, SecondRun]) -> None:
    run_dir = smoke_book / "runs/smoke" / CHAPTER_04
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {h["key"]: h["value"] for h in metrics["headline"]}["gan_params"] == 967_072
    dataset = metrics["metrics"]["dataset"]
    for recipe, output_range in (("corrected", "minus_one_one"), ("faithful", "zero_one")):
        path = run_dir / metrics["metrics"]["generators"][recipe]
        extra = torch.load(path, weights_only=True)["extra"]
        assert (extra["recipe"], extra["output_range"], extra["dataset"], extra["seed"]) == (
            recipe, output_range, dataset, 0)
        assert extra["steps"] == metrics["metrics"]["steps"][recipe] > 0
        images = generated_images(load_generator(path), 4, seed=1, output_range=extra["output_range"])
        assert images.shape == (4, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    # Every run leaves a generator file chapter 05 can find: the two recipes, augmentation, both baselines.
    files = {**metrics["metrics"]["generators"], **metrics["metrics"]["other_generators"]}
    found = saved_generators({name: run_dir / relpath for name, relpath in files.items()})
    assert list(found) == ["faithful", "corrected", "corrected_augment", "fc_gan", "wgan_gp"]
    assert isinstance(load_generator(found["fc_gan"]), FCGenerator)
    faithful = generator_extra(found["faithful"])
    assert (faithful["sample_mode"], faithful["batch_size"]) == ("train", 16)  # params/smoke/04-dcgan.yml
    if metrics["provenance"]["data"]["stand_in"]:
        text = (smoke_book / "_build/smoke/chapters" / f"{CHAPTER_04}.ipynb").read_text()
        assert "a stand-in" in text and "callout-warning" in text

    # Re-executing (in a copy of the chapter) reuses the finished runs: no checkpoint is rewritten.
    second = second_runs[CHAPTER_04]
    assert len(second.checkpoints) == 5
    run_dir = second.root / "runs/smoke" / CHAPTER_04
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("checkpoint.pt")} == second.checkpoints


# Chapter 05: its generators trained for a few steps on a stand-in, so this checks plumbing (artifacts,
# caching, figures, metrics.json) and asserts no FID value of meaning.
@pytest.mark.skipif(iw.fid_helper_torchscript_path() is None and not iw.pytorch_fid_weights_path().is_file(),
                    reason="no FID Inception weights available offline")
def test_chapter_05_scores_every_generator(smoke_book: Path) -> None:
    root = smoke_book
    metrics = json.loads((root / "runs" / "smoke" / CHAPTER_05 / "metrics.json").read_text())
    (fid_entry,) = [h for h in metrics["headline"] if h["key"] == "fid_test"]
    n_fid = yaml.safe_load((REPO / "params" / "smoke" / f"{CHAPTER_05}.yml").read_text())["n_fid"]
    assert fid_entry["n"] == n_fid and np.isfinite(fid_entry["value"])
    (faithful_entry,) = [h for h in metrics["headline"] if h["key"] == "fid_test_faithful"]
    assert faithful_entry["value"] == metrics["metrics"]["fid"]["faithful, train mode"]["fid_test"]
    assert (faithful_entry["seeds"], fid_entry["seeds"]) == (1, 1)
    assert faithful_entry["steps"] == fid_entry["steps"] == metrics["metrics"]["fid"]["corrected"]["steps"]
    assert metrics["provenance"]["data"]["stand_in"] is True
    # test, train, and six generator sets: the faithful generator twice (train and eval mode); then the
    # corrected generator's and the test images again through clean-fid's resize; chapter 06 adds its own
    # to the same cache later
    written = (root / "runs" / "smoke" / CHAPTER_05 / "metrics.json").stat().st_mtime
    cached = [p.name for p in (root / "data" / "fid-stats").glob("*.npz") if p.stat().st_mtime <= written]
    assert len(cached) == 10 and len([name for name in cached if "-clean-n" in name]) == 2
    by_resize = metrics["metrics"]["fid_by_resize"]
    assert by_resize["n"] == min(n_fid, yaml.safe_load((REPO / "params" / "smoke" / f"{CHAPTER_05}.yml").read_text())
                                 ["clean_fid_n"])
    assert by_resize["pytorch-fid"] == pytest.approx(metrics["metrics"]["fid"]["corrected"]["fid_test"])
    assert np.isfinite(by_resize["clean"]) and by_resize["clean"] != by_resize["pytorch-fid"]
    fid = metrics["metrics"]["fid"]
    assert list(fid) == ["faithful, train mode", "faithful, eval mode", "corrected", "corrected + flips/crops",
                         "FC-GAN", "WGAN-GP"]
    assert fid["faithful, train mode"]["sampling"] == {"bn_mode": "train", "batch_size": 16, "output_range": "zero_one",
                                                       "recorded_mode": "train", "architecture": "dcgan"}
    assert fid["faithful, eval mode"]["sampling"]["bn_mode"] == "eval"
    assert fid["faithful, train mode"]["fid_test"] != fid["faithful, eval mode"]["fid_test"]
    assert all(np.isfinite(row["fid_test"]) and row["n"] == n_fid for row in fid.values())
    assert metrics["metrics"]["generators_missing"] == []
    executed = (root / "_build" / "smoke" / "chapters" / f"{CHAPTER_05}.ipynb").read_text()
    assert "a stand-in" in executed and "rank-deficient" in executed
    for text in ("| FC-GAN", "| WGAN-GP", "| corrected + flips/crops", "| faithful, train mode", "| faithful, eval mode",
                 "the floor", "sampled two ways", "clean-fid's resize gives"):
        assert text in executed, text
    weights = root / "data" / "weights"
    assert [p.name for p in weights.iterdir()] == [iw.CONVERTED_WEIGHTS_NAME] or iw.pytorch_fid_weights_path().is_file()


def test_the_paper_queue_scripts_prepare_exactly_what_chapters_05_and_06_use(smoke_book: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`effgen jobs gan` and `effgen jobs fid-references` (effgen.book.jobs) work ahead of chapters 05 and 06
    in the paper profile's queue: what they train and score must be what the chapters then find, not a near miss."""
    from effgen.book.jobs import fid_references, gan_runs
    from effgen.book.jobs.values import BEYOND, chapter_parameters

    monkeypatch.setenv("EFFGEN_ROOT", str(smoke_book))
    monkeypatch.setenv("EFFGEN_DATA", str(smoke_book / "data"))
    values, beyond = chapter_parameters("smoke"), chapter_parameters("smoke", BEYOND)
    for which in ("modern", "ablation"):
        runs = gan_runs.beyond_runs(values, beyond, which)
        assert runs, which
        for name, config in runs.items():
            folder = run_folder(smoke_book / "runs" / "smoke" / BEYOND, name, config)
            assert (folder / "generator.pt").is_file(), f"chapter 06 trained no {folder.name}"
    dataset, references = fid_references.reference_sets("smoke")
    evaluation = json.loads((smoke_book / "runs" / "smoke" / CHAPTER_05 / "metrics.json").read_text())
    assert dataset == evaluation["provenance"]["data"]["dataset"]
    assert {(ref.split, ref.n) for ref in references} == {("test", 8), ("train", 8)}  # 05 and 06 share the test set
    assert fid_references.missing_sets("smoke") == []
    # Chapter 06's runs log D's output on held-out test images, as its pilots do; chapter 04's need not.
    held_out = {}

    def recorded(config, images, folder, *args, **kwargs):
        held_out[Path(folder).name.rsplit("-", 1)[0]] = kwargs.get("held_out")
        return SimpleNamespace(step=config.steps, seconds=0.0)

    monkeypatch.setattr(gan_runs, "train_gan", recorded)
    for which in ("modern", "corrected"):
        gan_runs.train_ahead("smoke", which, threads=1)
    assert tuple(held_out["gan-modern"].shape) == (64, 3, 32, 32) and held_out["corrected"] is None
