"""The paper's claims, C1..Cn, each with a verdict computed from the chapters' ``metrics.json``.

A verdict is one of five words, and each claim's rule below says which data decide it:

- **holds** / **does not hold**: the test the rule names came out one way beyond seed noise
  (``effgen.stats``: a paired t-test where both sides ran the same seeds, else Welch's; for one run
  of a changed setting, the 95 % prediction interval of one more seed of the reference);
- **partly**: a claim made of several parts (two models, two changes, two ladder steps) holds for
  some parts and not, or not measurably, for the others;
- **cannot tell**: the test ran but the seeds cannot resolve it; the verdict then says how many seeds
  per setting would (``verdicts.seeds_needed``);
- **cannot be tested here**: this book lacks what the claim needs (the paper's data for an absolute
  number, a run or measurement it does not make).

Absolute numbers (84.95 %, FID 44.46) are compared only on the paper's data or on AddNIST rebuilt from
all of MNIST with the published recipe; claims about which setting is better are tested on the data at
hand. Nothing here is typed from a result: every number comes from the metrics passed in, so the
verdicts follow the chapters when they are re-executed.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from effgen import stats
from effgen.book.paper import BY_KEY, LPIPS_SPREAD, PAPER_RETRAIN_RANGE, paper_value
from effgen.book.summary import (
    budget_note,
    chapter_ref,
    dataset_name,
    fixed,
    flag_of,
    resize_shift,
    stand_ins,
    unbreakable,
    with_spread,
)
from effgen.book.verdicts import (
    CANNOT_TELL,
    FAILS,
    HOLDS,
    PARTLY,
    POWER,
    UNTESTABLE,
    VERDICTS,
    Outcome,
    combine,
    compare,
    gain,
    mean_of,
    no_gain,
    sd_of,
    seeds_clause,
)
from effgen.errors import EffgenError

Metrics = Mapping[str, Mapping[str, Any]]
# Results of committed device runs (``summary_tables.device_results``): {"classifier": [...], "fid": [...], "folder": str}
Device = Mapping[str, Any]
NO_DEVICE: Device = {}

ACTIVATION_NAMES = {"swish": "Swish", "relu": "ReLU", "softplus": "Softplus"}
# AddNIST built the paper's way: the official files, or the published recipe over all of MNIST.
COMPARABLE_ADDNIST = frozenset({"official", "mnist"})
SATURATED = 0.05  # D's mean output this close to 0 on generated (1 on real) batches: it has won (as chapter 04)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    book: str  # this book's value, short enough for one table line
    why: str  # one short sentence for the table; a "cannot tell" says how many seeds would tell
    detail: str = ""  # the tests and numbers behind it, listed under the table


@dataclass(frozen=True)
class Claim:
    number: int
    short: str  # a few words, for the bottom line
    text: str
    paper: str
    section: str
    rule: Callable[[Metrics, Device], Verdict]

    @property
    def label(self) -> str:
        return f"C{self.number}"


# ---- reading the metrics ---------------------------------------------------------------------------

def section(metrics: Metrics, chapter: str) -> Mapping[str, Any]:
    return (metrics.get(chapter) or {}).get("metrics") or {}


def headline(metrics: Metrics, chapter: str, key: str) -> Mapping[str, Any] | None:
    return next((h for h in (metrics.get(chapter) or {}).get("headline", []) if h.get("key") == key), None)


def data_of(metrics: Metrics, chapter: str) -> Mapping[str, Any]:
    return ((metrics.get(chapter) or {}).get("provenance") or {}).get("data") or {}


def per_seed(summary: Mapping[str, Any] | None) -> dict[str, float]:
    return {str(k): float(v) for k, v in ((summary or {}).get("per_seed") or {}).items()}


def device_seeds(device: Device, dataset: str | None) -> str:
    """A clause citing the committed device runs of the tuned classifier on the same data, if any."""
    runs = [r for r in device.get("classifier", []) if r.get("data") == dataset and "test_accuracy" in r]
    if len(runs) < 2:
        return ""
    values = [100 * r["test_accuracy"] for r in runs]
    where = runs[0].get("device", "a GPU")
    where = where[where.find("(") + 1:where.rfind(")")] if "(" in where else where  # "cuda (NVIDIA H200)"
    return (f"{len(values)} more seeds, trained on a lent {where}, score "
            f"{_pct(mean_of(values), sd_of(values), len(values))}")


def device_fid(device: Device, dataset: str | None) -> str:
    """A clause citing a committed device run of the corrected DCGAN scored against the same test set."""
    scored = [r for r in device.get("fid", []) if dataset and f"{dataset}:test" in r.get("command", "")]
    if not scored:
        return ""
    return f"a second run of the corrected recipe, trained on a lent GPU, scores {fixed(scored[0]['fid'], 1)}"


def not_run(*chapters: str) -> Verdict:
    names = " and ".join(chapter_ref(name) for name in chapters)
    return Verdict(CANNOT_TELL, "—", f"{names} has not written its results for this profile yet")


def _pct(value: float, spread: float | None = None, n: int | None = None) -> str:
    return with_spread(value, spread, n, " %", single=1)


# ---- the rules, one per claim -----------------------------------------------------------------------

def budget_rule(chapter: str, params_key: str, steps_key: str) -> Callable[[Metrics, Device], Verdict]:
    """The model's counted parameters and steps against the paper's and its limits."""
    def rule(metrics: Metrics, device: Device = NO_DEVICE) -> Verdict:
        params, steps = headline(metrics, chapter, params_key), headline(metrics, chapter, steps_key)
        if params is None or params.get("value") is None:
            return not_run(chapter)
        counted, paper = int(params["value"]), int(paper_value(params_key))
        run_steps = steps.get("value") if steps else None
        book = unbreakable(f"{counted:,}" + (f"; {int(run_steps):,} steps" if run_steps is not None else ""))
        limit = BY_KEY[params_key].limit
        if counted != paper:
            return Verdict(FAILS, book, f"the model built here counts {counted:,} parameters ({limit})")
        return Verdict(HOLDS, book, f"counted from the built model ({limit}); steps are checked before training")
    return rule


def test_accuracy(metrics: Metrics, device: Device = NO_DEVICE) -> Verdict:
    """C2: the paper's single run of 84.95 % against the prediction interval of this book's seeds."""
    summary = section(metrics, "02-classifier").get("test_accuracy")
    if not summary:
        return not_run("02-classifier")
    seeds = per_seed(summary)
    paper = paper_value("cls_test_acc")
    entry = headline(metrics, "02-classifier", "cls_test_acc") or {}
    book = unbreakable(_pct(summary["mean"], summary.get("std"), summary.get("n")) + flag_of(entry))
    low, high = PAPER_RETRAIN_RANGE
    inside = sum(low <= v <= high for v in seeds.values())
    data = data_of(metrics, "02-classifier")
    notes = [f"{inside} of {len(seeds)} seeds fall in the paper's {low:g}-{high:g} % retraining range",
             device_seeds(device, data.get("dataset"))]
    if data.get("stand_in") and data.get("source") not in COMPARABLE_ADDNIST:
        pool = (data.get("pool_sizes") or {}).get("train")
        digits = f"{pool:,} training digits" if pool else "other digits"
        return Verdict(UNTESTABLE, book, f"the stand-in draws on {digits}, not MNIST's, so its accuracy does "
                       "not test the paper's number", _join(notes))
    interval = stats.prediction_interval(list(seeds.values())) if len(seeds) >= 2 else None
    if interval is None:
        return Verdict(CANNOT_TELL, book, "one seed: at least 2 are needed for a prediction interval", _join(notes))
    place = interval.place(paper)
    notes.insert(0, f"{interval.level:.0%} prediction interval of one more seed: {fixed(interval.low, 1)} to "
                    f"{fixed(interval.high, 1)} % (n = {interval.n} seeds)")
    if place == "above":
        return Verdict(FAILS, book, "the paper's run lies above where another seed would fall", _join(notes))
    mean_test = stats.paired(list(seeds.values()), [paper] * len(seeds))  # a one-sample t-test of the seeds
    notes.append(f"the seeds against {paper:g}: {mean_test.describe()}")
    if mean_test.verdict == stats.BEHIND:
        return Verdict(PARTLY, book, "one seed can reach the paper's run, but the mean is below it", _join(notes))
    return Verdict(HOLDS, book, f"the paper's run lies {place} the seeds' prediction interval", _join(notes))


def swish_best(metrics: Metrics, device: Device = NO_DEVICE) -> Verdict:
    """C3: on each model, Swish against every other activation, as chapter 01's verdict rule does:
    best when every rival is behind at p < 0.05 (intersection-union), beaten when a rival is ahead at
    p < 0.05 / rivals (Bonferroni)."""
    results = section(metrics, "01-activations").get("results") or {}
    models = sorted({key.split(" / ")[0] for key in results}, key=lambda m: m != "SE + IR")
    found = [(model, outcome) for model in models if (outcome := _swish_on(model, results)) is not None]
    if not found:
        return not_run("01-activations")
    book = " and ".join(f"{lead:+.1f}" for _, (_, lead) in found)
    return Verdict(combine(o.verdict for _, (o, _) in found), unbreakable(book),
                   "Swish's lead over the next activation, " + "; ".join(
                       f"{model} {lead:+.1f} points, {o.verdict}" + (f" ({o.need})" if o.need else "")
                       for model, (o, lead) in found),
                   _join(f"{model}: {o.test}" for model, (o, _) in found))


def _swish_on(model: str, results: Mapping[str, Any]) -> tuple[Outcome, float] | None:
    """Swish on one model (its outcome and its lead over the runner-up); None when it lacks the runs."""
    swish = per_seed(results.get(f"{model} / swish"))
    rivals = {key.split(" / ")[1]: per_seed(s) for key, s in results.items()
              if key.startswith(f"{model} / ") and not key.endswith("/ swish")}
    if not swish or not rivals:
        return None
    outcomes = {name: gain(swish, seeds) for name, seeds in rivals.items()}
    tests = {name: compare(swish, seeds) for name, seeds in rivals.items()}
    alpha = (1 - stats.LEVEL) / len(rivals)
    runner_up = max(rivals, key=lambda name: mean_of(rivals[name].values()))
    against = "; ".join(f"against {ACTIVATION_NAMES.get(name, name)}, {o.test}" for name, o in outcomes.items())
    if any(t is not None and t.tested and t.diff < 0 and t.p is not None and t.p < alpha
           for t in tests.values()):
        outcome = Outcome(FAILS, test=against)
    elif all(o.verdict == HOLDS for o in outcomes.values()):
        outcome = Outcome(HOLDS, test=against)
    else:
        outcome = Outcome(CANNOT_TELL, outcomes[runner_up].need or seeds_clause(swish, rivals[runner_up]), against)
    return outcome, mean_of(swish.values()) - mean_of(rivals[runner_up].values())


def ladder(metrics: Metrics, device: Device = NO_DEVICE) -> Verdict:
    """C4: each rung of the ladder beats the one below it, over the chapter's seeds."""
    runs = section(metrics, "02-classifier").get("runs") or {}
    rungs = [per_seed(runs.get(name)) for name in ("plain", "se-ir-untuned", "tuned")]
    if not all(rungs):
        return not_run("02-classifier")
    steps = {"SE + IR blocks": gain(rungs[1], rungs[0]), "tuning": gain(rungs[2], rungs[1])}
    book = " → ".join(fixed(mean_of(r.values()), 1) for r in rungs) + " %"
    return Verdict(combine(o.verdict for o in steps.values()), unbreakable(book),
                   "; ".join(o.short(name) for name, o in steps.items()),
                   _join([f"{name}: {o.test}" for name, o in steps.items()]
                         + [f"tuning is against {untuned_setting(metrics)}; the paper does not give its plain "
                            f"CNN's layers, so its {BY_KEY['cls_plain_cnn_acc'].paper} % is no target"]))


def untuned_setting(metrics: Metrics) -> str:
    config = (section(metrics, "02-classifier").get("configs") or {}).get("se-ir-untuned") or {}
    if "lr" not in config:
        return "the untuned setting"
    decay = config.get("weight_decay") or 0
    return f"learning rate {config['lr']:.3g}" + (f", weight decay {decay:.3g}" if decay else " without weight decay")


def tuning_helps(metrics: Metrics, device: Device = NO_DEVICE) -> Verdict:
    """C5: tuning (learning rate and weight decay) beats the untuned setting; and a fresh search on
    validation data finds nothing better than the paper's setting (else only partly)."""
    runs = section(metrics, "02-classifier").get("runs") or {}
    tuned, untuned = per_seed(runs.get("tuned")), per_seed(runs.get("se-ir-untuned"))
    if not tuned or not untuned:
        return not_run("02-classifier")
    helps = gain(tuned, untuned)
    verdict, why = helps.verdict, [helps.short("tuning")]
    details = [f"tuned against {untuned_setting(metrics)}: {helps.test}"]
    book = f"{mean_of(tuned.values()) - mean_of(untuned.values()):+.1f}"
    confirm = section(metrics, "03-tuning").get("confirm") or {}
    ours, theirs = per_seed(confirm.get("tuned")), per_seed(confirm.get("paper"))
    if ours and theirs:
        flag = flag_of(headline(metrics, "03-tuning", "tuned_test_acc") or {})
        search = gain(ours, theirs)
        book += f"; re-tuned {mean_of(ours.values()) - mean_of(theirs.values()):+.1f}{flag}"
        why.append(search.short("a fresh search beats the paper's setting"))
        details.append(f"the fresh search's setting against the paper's, same seeds: {search.test}"
                       + ("; it sees more images per step (‡)" if flag else ""))
        if verdict == HOLDS and search.verdict == HOLDS:
            verdict = PARTLY  # tuning helps, but the paper's search stopped short of the best setting
    return Verdict(verdict, unbreakable(book), "; ".join(why), _join(details))


def scalability(metrics: Metrics, device: Device = NO_DEVICE) -> Verdict:
    """C6: neither 20,000 steps nor a fourth IR block beats the tuned model (``no_gain``)."""
    runs = section(metrics, "02-classifier").get("runs") or {}
    tuned = per_seed(runs.get("tuned"))
    longer, wider = runs.get("long"), runs.get("extra-block")
    if not tuned or not longer or not wider:
        return not_run("02-classifier")
    changes = {"more steps": longer, "a fourth block": wider}
    outcomes = {name: no_gain(per_seed(run), tuned) for name, run in changes.items()}
    book = "; ".join(_pct(run["mean"], run.get("std"), run.get("n")) + (f" {run['flag']}" if run.get("flag") else "")
                     for run in changes.values())
    return Verdict(combine(o.verdict for o in outcomes.values()), unbreakable(book),
                   "; ".join(o.short(name) for name, o in outcomes.items()),
                   _join(f"{name}, against the {len(tuned)} tuned seeds: {o.test}" for name, o in outcomes.items()))


def fid_44(metrics: Metrics, device: Device = NO_DEVICE) -> Verdict:
    """C8: the FID of the faithful DCGAN, sampled as the original sampled, against 44.46."""
    fids = section(metrics, "05-evaluation").get("fid") or {}
    faithful = next((row for label, row in fids.items() if label.startswith("faithful")), None)
    if faithful is None:
        return not_run("05-evaluation")
    book = unbreakable(f"{fixed(faithful['fid_test'], 1)} faithful")
    corrected = fids.get("corrected", {}).get("fid_test")
    shift = resize_shift(section(metrics, "05-evaluation"))
    notes = [f"the corrected recipe scores {fixed(corrected, 1)}" if corrected is not None else "",
             device_fid(device, section(metrics, "05-evaluation").get("dataset")),
             "" if shift is None else (f"clean-fid's bicubic resize in place of pytorch-fid's moves the corrected "
                                       f"recipe's FID by {shift[0]:+.1f} ({shift[1]:,} images per side)")]
    data = data_of(metrics, "05-evaluation")
    if data.get("stand_in") or data.get("dataset") != data.get("requested", data.get("dataset")):
        library = ("pytorch-fid is not clean-fid" if shift is None
                   else f"clean-fid's resize alone moves the FID by {shift[0]:+.1f}")
        return Verdict(UNTESTABLE, book, f"{dataset_name(data.get('dataset', 'other images'))} is not "
                       f"{dataset_name(data.get('requested', 'cifar100'))}, and {library}", _join(notes))
    return Verdict(CANNOT_TELL, book, "one training seed per recipe: at least 2, to measure a GAN's spread",
                   _join(notes))


def steplr(metrics: Metrics, device: Device = NO_DEVICE) -> Verdict:
    """C9: StepLR "stabilised" training; no run here trains the DCGAN without it."""
    final = section(metrics, "04-dcgan").get("final") or {}
    scheduled = {name: final[name] for name in ("faithful", "corrected") if name in final}
    if not scheduled:
        return not_run("04-dcgan")
    ends = ", ".join(f"{name} {fixed(row['D(G(z))'], 3)}" for name, row in scheduled.items())
    won = all(row["D(G(z))"] < SATURATED and row["D(x)"] > 1 - SATURATED for row in scheduled.values())
    return Verdict(UNTESTABLE, unbreakable("no run without it"), "no DCGAN is trained here without the schedule",
                   f"with it, the discriminator's mean output on generated batches over the last tenth of training "
                   f"is {ends}" + ("; it tells real from generated batches almost without error, so the schedule "
                                   "did not keep the two networks in balance" if won else ""))


def augmentation(metrics: Metrics, device: Device = NO_DEVICE) -> Verdict:
    """C10: flips and crops "harshly" reduced image quality: the augmented corrected recipe's FID."""
    fids = section(metrics, "05-evaluation").get("fid") or {}
    if not fids:
        return not_run("05-evaluation")
    plain, augmented = fids.get("corrected"), fids.get("corrected + flips/crops")
    if augmented is None or plain is None:
        return Verdict(UNTESTABLE, unbreakable("not run"), "this profile does not train the corrected recipe with flips and crops")
    a, b = augmented["fid_test"], plain["fid_test"]
    return Verdict(CANNOT_TELL, unbreakable(f"{fixed(a, 1)} vs {fixed(b, 1)}"),
                   "one training seed per recipe: at least 2 each, to measure a GAN's spread",
                   f"FID with flips and crops {fixed(a, 1)}, without {fixed(b, 1)}: "
                   f"{'worse' if a > b else 'better'} with them, by {fixed(abs(a - b), 1)}")


def dismissed_gans(metrics: Metrics, device: Device = NO_DEVICE) -> Verdict:
    """C11: the WGAN-GP "kept experiencing mode collapse" and the fully connected GAN was "too noisy"."""
    fids = section(metrics, "05-evaluation").get("fid") or {}
    found = {label: fids[label] for label in ("WGAN-GP", "FC-GAN") if label in fids}
    if not found:
        return not_run("05-evaluation")
    scores = ", ".join(f"{label} {fixed(row['fid_test'], 1)}"
                       + (f" after {int(row['steps']):,} steps" if row.get("steps") is not None else "")
                       for label, row in found.items())
    return Verdict(UNTESTABLE, unbreakable("; ".join(fixed(row["fid_test"], 1) for row in found.values())),
                   "no measure of mode collapse or noise is taken, only FID",
                   f"FID {scores}: each at its own budget, unlike the DCGAN's 50,000 steps")


def lpips(metrics: Metrics, device: Device = NO_DEVICE) -> Verdict:
    """C12: "mean LPIPS 0.686 ± 0.09" as evidence of diverse samples unlike their nearest neighbours."""
    chapter = section(metrics, "05-evaluation")
    if not chapter:
        return not_run("05-evaluation")
    result = chapter.get("lpips") or {}
    if "diversity_mean" not in result and "original_mean" not in result:
        return Verdict(UNTESTABLE, unbreakable("not measured"), "no pretrained LPIPS backbone in this build")
    notes = []
    if "diversity_mean" in result:
        notes.append(f"mean pairwise LPIPS ({result.get('net', '?')}) of {result.get('n_diversity', 0):,} generated "
                     f"images {fixed(result['diversity_mean'], 3)}; closest generated-training pair "
                     f"{fixed(result.get('memorisation_min', math.nan), 3)}")
    book = unbreakable(fixed(result["diversity_mean"], 3) if "diversity_mean" in result else "—")
    if "original_mean" not in result:
        return Verdict(CANNOT_TELL, book, "the original's computation was not repeated", _join(notes))
    zeros = int(result.get("original_zeros", 0))
    notes.insert(0, f"the original's computation repeated gives {fixed(result['original_mean'], 3)} with {zeros} "
                    f"exact zeros (the paper: {BY_KEY['lpips_diversity'].paper} ± {LPIPS_SPREAD})")
    if zeros > 0:
        return Verdict(FAILS, book, "the number compares training images with training images, themselves "
                       "included", _join(notes))
    return Verdict(CANNOT_TELL, book, "the original's computation, repeated, shows no self-matches", _join(notes))


def _join(parts: Iterable[str]) -> str:
    return "; ".join(part for part in parts if part)


CLAIMS: tuple[Claim, ...] = (
    Claim(1, "classifier budget", "The classifier has 86,692 parameters and trains for 10,000 steps",
          unbreakable("86,692; 10,000 steps"), "@sec-classifier-model",
          budget_rule("02-classifier", "cls_params", "cls_steps")),
    Claim(2, "84.95 % test accuracy", "It reaches 84.95 % test accuracy at 10,000 steps",
          unbreakable("84.95 %"), "@sec-classifier-seeds", test_accuracy),
    Claim(3, "Swish is best", "Swish gives higher test accuracy than ReLU and Softplus",
          "—", "@sec-activations-verdict", swish_best),
    Claim(4, "ablation ladder", "Plain CNN, then SE + IR blocks, then tuning: each step raises accuracy",
          unbreakable("43.2 → 65.0 → 84.95 %"), "@sec-classifier-ladder", ladder),
    Claim(5, "tuning helps", "Tuning the learning rate and regularisation with Optuna raised accuracy "
          "dramatically, to the optimal setting", unbreakable("65.0 → 84.95 %"), "@sec-tuning-confirm", tuning_helps),
    Claim(6, "more steps or a fourth block do not help", "Neither 20,000 steps nor a fourth IR block raises "
          "test accuracy: the tuning overfit its search space", unbreakable("83.1 %; 83.0 %"),
          "@sec-classifier-scalability", scalability),
    Claim(7, "DCGAN budget", "The DCGAN has 967,072 parameters and trains for 50,000 steps",
          unbreakable("967,072; 50,000 steps"), "@sec-dcgan-architecture",
          budget_rule("04-dcgan", "gan_params", "gan_steps")),
    Claim(8, "FID 44.46", "The DCGAN reaches an FID of 44.46 against the CIFAR-100 test set",
          unbreakable("44.46"), "@sec-evaluation-fid", fid_44),
    Claim(9, "StepLR stabilises training", "StepLR stabilised training and kept the generator and "
          "discriminator in balance", "—", "@sec-dcgan-training", steplr),
    Claim(10, "augmentation hurts", "Training-set transformations harshly reduced image quality",
          "—", "@sec-dcgan-augmentation", augmentation),
    Claim(11, "WGAN-GP mode-collapses", "A WGAN-GP kept collapsing to few modes; a fully connected GAN's "
          "images were too noisy", "—", "@sec-dcgan-baselines", dismissed_gans),
    Claim(12, "LPIPS 0.686", "Mean LPIPS 0.686 ± 0.09 shows diverse samples, unlike their nearest "
          "training images", unbreakable(f"{BY_KEY['lpips_diversity'].paper} ± {LPIPS_SPREAD}"),
          "@sec-evaluation-lpips", lpips),
)


def assess(metrics: Metrics, device: Device = NO_DEVICE,
           claims: Iterable[Claim] = CLAIMS) -> list[tuple[Claim, Verdict]]:
    """Every claim with its verdict; a rule that meets metrics it cannot read says so, not crashes."""
    out = []
    for claim in claims:
        try:
            verdict = claim.rule(metrics, device)
        except (KeyError, TypeError, ValueError, ZeroDivisionError, EffgenError) as err:
            verdict = Verdict(CANNOT_TELL, "—", f"the chapter's metrics lack what this rule reads ({err!r})")
        out.append((claim, verdict))
    return out


def claims_frame(assessed: list[tuple[Claim, Verdict]]) -> pd.DataFrame:
    """The claims table: one row per claim; the tests behind each verdict are ``details_markdown``."""
    return pd.DataFrame([{"": claim.label, "Claim": claim.text, "Paper": claim.paper, "This book": v.book,
                          "Verdict": v.verdict, "Why": _sentence(v.why), "Where": claim.section}
                         for claim, v in assessed])


def details_markdown(assessed: list[tuple[Claim, Verdict]]) -> str:
    """The tests and numbers behind the verdicts, one item per claim that has any."""
    return "\n".join(f"- **{claim.label}.** {_sentence(v.detail)}" for claim, v in assessed if v.detail)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def bottom_line(assessed: list[tuple[Claim, Verdict]], metrics: Metrics) -> str:
    """One line for the data that stood in, then one per verdict that some claim received."""
    data, footnote = data_line(metrics)
    groups = {v: [f"{c.label} {c.short}" for c, verdict in assessed if verdict.verdict == v] for v in VERDICTS}
    words = {HOLDS: "Holds", PARTLY: "Holds in part", FAILS: "Does not hold",
             CANNOT_TELL: "Cannot tell yet", UNTESTABLE: "Cannot be tested here"}
    shown = [f"**{words[v]}:** {', '.join(groups[v])}." for v in VERDICTS if groups[v]]
    lines = "\n".join(f"- {line}" for line in [data] + shown)
    return lines + (f"\n\n{footnote}" if footnote else "")


def data_line(metrics: Metrics) -> tuple[str, str]:
    """Which data stood in, said once for the whole page, and the caveat as a footnote (or "")."""
    used = stand_ins(metrics)
    if not any(payload.get("headline") for payload in metrics.values()):
        return "**Data:** no chapter has written its results yet.", ""
    if not used:
        return "**Data:** the paper's own, AddNIST and CIFAR-100.", ""
    parts = [" and ".join(dataset_name(d["dataset"]) + (" (JPEG-compressed)" if d["jpeg"] else "") for d in sets)
             + f" stood in for {requested}" for requested, sets in used.items()]
    return ("**Data:** " + "; ".join(parts) + ".[^stand-in]",
            "[^stand-in]: Every number of this book comes from the data named here (@sec-data); the tables "
            "below call them stand-in data. Claims that one setting beats another are tested on these data; "
            "the paper's absolute numbers are compared only on AddNIST itself or AddNIST rebuilt from all of "
            "MNIST with the published recipe.")


def rules_text() -> str:
    """How the verdicts are reached, said once under the claims table; the levels come from the code."""
    alpha = 1 - stats.LEVEL
    return (f"**How the verdicts are reached.** *Holds* and *does not hold*: the claim's test came out one way at "
            f"the {alpha:.0%} level: a paired t-test where both settings ran the same seeds, Welch's t-test "
            f"otherwise, and for a single run of a changed setting, whether it falls outside the "
            f"{stats.LEVEL:.0%} prediction interval of one more seed of the reference. *Partly*: a claim of "
            "several parts (two models, two changes, two steps) holds for some of them. *Cannot tell*: the test "
            "ran, but the seeds cannot resolve it; the seeds that would are the smallest number per setting at "
            f"which a two-sided t-test at the {alpha:.0%} level detects the observed gap with {POWER:.0%} power, "
            "taking the observed spread as the truth. *Cannot be tested here*: this book lacks the data, run or "
            "measurement the claim needs. " + budget_note())
