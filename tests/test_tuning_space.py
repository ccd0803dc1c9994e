"""The narrowing rule, the search-space and settings checks, and storage URL parsing (no training)."""
from __future__ import annotations

import random

import pytest

from effgen.errors import ParamsError
from effgen.tuning import (
    Bound,
    NarrowingRule,
    TuningSettings,
    narrow,
    narrow_bound,
    parse_space,
    top_trials,
)
from effgen.tuning.storage import default_storage, open_storage, parse_storage

RULE = NarrowingRule(top_fraction=0.2, min_top=3, margin=0.05, min_keep=0.25)


# ---- the narrowing rule ------------------------------------------------------------------------


def test_top_trials_takes_a_fifth_but_at_least_min_top():
    assert RULE.n_top(50) == 10  # the paper's rounds of fifty: the ten best
    assert RULE.n_top(10) == 3  # min_top wins
    assert RULE.n_top(2) == 2  # fewer complete trials than min_top: all of them
    assert RULE.n_top(0) == 0
    values = [0.5, 0.9, 0.1, 0.9, 0.7]
    assert top_trials(values, RULE) == [1, 3, 4]  # best first; the tie keeps the earlier trial first
    assert top_trials(values, RULE, maximize=False) == [2, 0, 4]


def test_log_bound_spans_the_best_values_plus_margin():
    bound = Bound("lr", 1e-4, 1e-2, log=True)  # width ln(100)
    new = narrow_bound(bound, [1e-3, 2e-3], RULE)
    # span [1e-3, 2e-3] in log space, padded by 5% of ln(100) on each side
    assert new.low == pytest.approx(1e-3 * 100 ** -0.05)
    assert new.high == pytest.approx(2e-3 * 100 ** 0.05)
    assert new.log and not new.integer


def test_agreeing_best_trials_keep_min_keep_of_the_width_centred_on_them():
    bound = Bound("dropout", 0.0, 0.4)
    new = narrow_bound(bound, [0.2, 0.2, 0.2], RULE)
    assert (new.low, new.high) == pytest.approx((0.15, 0.25))  # 25% of 0.4, centred on 0.2


def test_interval_is_shifted_not_cut_at_the_edge():
    bound = Bound("dropout", 0.0, 0.4)
    new = narrow_bound(bound, [0.0, 0.01], RULE)
    assert new.low == 0.0
    assert new.high == pytest.approx(0.1)  # still 25% of the old width, now starting at the edge


def test_disagreeing_best_trials_keep_the_whole_width():
    bound = Bound("weight_decay", 1e-6, 1e-3, log=True)
    assert narrow_bound(bound, [1e-6, 1e-3], RULE) == bound
    assert narrow_bound(bound, [], RULE) == bound


def test_integer_bounds_round_outwards_and_keep_the_best_values():
    bound = Bound("batch_size", 32, 128, log=True, integer=True)
    new = narrow_bound(bound, [60, 64, 70], RULE)
    assert new.integer and new.low == int(new.low) and new.high == int(new.high)
    assert 32 <= new.low <= 60 and 70 <= new.high <= 128
    assert new.high - new.low < 128 - 32


def test_narrow_uses_only_the_best_trials_of_the_round():
    space = parse_space({"lr": {"low": 1e-4, "high": 1e-1, "log": True},
                         "dropout": {"low": 0.0, "high": 0.5}})
    # ten trials: the three best sit at lr 1e-3, dropout 0.1..0.2; the rest are elsewhere and worse
    trials = [({"lr": 1e-3, "dropout": 0.1}, 0.9), ({"lr": 1.2e-3, "dropout": 0.2}, 0.8),
              ({"lr": 0.9e-3, "dropout": 0.15}, 0.85)]
    trials += [({"lr": 5e-2, "dropout": 0.45}, 0.1 + 0.01 * i) for i in range(7)]
    new = narrow(space, trials, RULE)
    assert new["lr"].low < 0.9e-3 and new["lr"].high > 1.2e-3 and new["lr"].high < 5e-3
    assert new["dropout"].low <= 0.1 and new["dropout"].high >= 0.2 and new["dropout"].high < 0.45
    assert narrow(space, [], RULE) == space


def test_narrowing_never_grows_never_leaves_the_box_and_keeps_the_best():
    rng = random.Random(0)
    for _ in range(200):
        log = rng.random() < 0.5
        low = 10 ** rng.uniform(-5, -1) if log else rng.uniform(-1, 1)
        bound = Bound("lr" if log else "dropout", low, low * 10 if log else low + rng.uniform(0.1, 2), log)
        values = [bound.from_unit(rng.uniform(bound.to_unit(bound.low), bound.to_unit(bound.high)))
                  for _ in range(rng.randint(1, 6))]
        new = narrow_bound(bound, values, RULE)
        assert bound.low <= new.low <= new.high <= bound.high
        assert new.width >= RULE.min_keep * bound.width - 1e-9
        assert all(new.low - 1e-12 <= v <= new.high + 1e-12 for v in values)


def test_rule_constants_are_checked():
    with pytest.raises(ParamsError, match="top_fraction"):
        NarrowingRule(top_fraction=0)
    with pytest.raises(ParamsError, match="min_keep"):
        NarrowingRule(min_keep=1.5)


# ---- search space and settings ----------------------------------------------------------------


def test_parse_space_rejects_what_cannot_be_tuned():
    with pytest.raises(ParamsError, match="'momentum' cannot be tuned"):
        parse_space({"momentum": {"low": 0.1, "high": 0.9}})
    with pytest.raises(ParamsError, match="'se_reduction' cannot be tuned"):
        parse_space({"se_reduction": {"low": 4, "high": 16}})
    with pytest.raises(ParamsError, match="low must be > 0"):
        parse_space({"lr": {"low": 0.0, "high": 0.1, "log": True}})
    with pytest.raises(ParamsError, match="takes keys low, high, log"):
        parse_space({"lr": {"low": 1e-3, "hi": 0.1}})
    with pytest.raises(ParamsError, match="whole numbers"):
        parse_space({"batch_size": {"low": 16.5, "high": 64}})
    assert parse_space({"batch_size": {"low": 16, "high": 64, "log": True}})["batch_size"].integer


def test_settings_reject_unknown_keys_and_wrong_types():
    with pytest.raises(ParamsError, match=r"^tuning settings: unknown key\(s\) n_trails \(allowed keys: .*n_trials"):
        TuningSettings.from_dict({"n_trails": 3})
    with pytest.raises(ParamsError, match=r"^p.yml: steps: input should be a valid integer \(got 'many'\)$"):
        TuningSettings.from_dict({"steps": "many"}, source="p.yml")
    with pytest.raises(ParamsError, match="fixed: lr both searched"):
        TuningSettings.from_dict({"fixed": {"lr": 1e-3}})


@pytest.mark.parametrize("values, problem", [
    ({"n_trials": True}, "n_trials: input should be a valid integer"),
    ({"top_fraction": float("nan")}, "top_fraction: input should be a finite number"),
    ({"margin": float("inf")}, "margin: input should be a finite number"),
    ({"min_keep": 0}, "min_keep: input should be greater than 0"),
    ({"pruner": "hyperband"}, "pruner: input should be 'median' or 'none'"),
    ({"addnist_sizes": [10, 10]}, "addnist_sizes: list should have at least 3 items"),
    ({"addnist_sizes": [10, 0, 10]}, "addnist_sizes.1: input should be greater than 0"),
    ({"grace_period": 30}, "grace_period: must be longer than heartbeat_interval"),
    ({"fixed": {"steps": 3}}, "fixed: set steps at the top level"),
    ({"space": {"lr": {"low": 1e-3, "high": float("nan"), "log": True}}}, "space: search space 'lr' needs finite"),
])
def test_settings_are_checked_one_line_each(values, problem):
    with pytest.raises(ParamsError) as err:
        TuningSettings.from_dict(values, source="params/quick/03-tuning.yml")
    assert str(err.value).startswith(f"params/quick/03-tuning.yml: {problem}") and "\n" not in str(err.value)
    settings = TuningSettings.from_dict({"profile": "quick", "confirm_seeds": [0, 1], "n_trials": 5})
    assert settings.n_trials == 5  # chapter-only keys are accepted and ignored
    assert "n_trials" not in settings.study_config() and "storage" not in settings.study_config()


# ---- storage ----------------------------------------------------------------------------------


def test_storage_forms(tmp_path):
    assert parse_storage("", "smoke").target == default_storage("smoke")
    assert default_storage("smoke").endswith("runs/smoke/03-tuning/optuna.db")
    assert parse_storage("sqlite:///x.db", "quick").target == "sqlite:///x.db"
    bare = parse_storage(str(tmp_path / "s.db"), "quick")
    assert (bare.kind, bare.target) == ("rdb", f"sqlite:///{tmp_path / 's.db'}")
    journal = parse_storage(f"journal://{tmp_path / 's.log'}", "quick")
    assert (journal.kind, journal.target) == ("journal", str(tmp_path / "s.log"))
    assert parse_storage(str(tmp_path / "s.log"), "quick").kind == "journal"
    assert parse_storage("postgresql://u:secret@db.example/optuna", "quick").kind == "rdb"
    # as the chapter shows it: a file in the project by its path from the root, never the machine's
    assert parse_storage("", "smoke").describe() == "SQLite file runs/smoke/03-tuning/optuna.db"
    assert bare.describe() == f"SQLite file {tmp_path / 's.db'}"
    assert parse_storage("postgresql://u:secret@db.example/optuna", "quick").describe() == \
        "postgresql://u:***@db.example/optuna"


def test_bad_storage_is_a_one_line_params_error(tmp_path):
    with pytest.raises(ParamsError, match="unknown scheme 'redis'"):
        parse_storage("redis://localhost", "quick")
    with pytest.raises(ParamsError, match="postgresql://"):
        parse_storage("postgres://u@host/db", "quick")
    with pytest.raises(ParamsError) as err:
        open_storage(parse_storage("mysql+nosuchdriver://u:secret@localhost/db", "quick"))
    assert "secret" not in str(err.value) and "\n" not in str(err.value)


def test_storage_files_are_created_with_their_folders(tmp_path):
    open_storage(parse_storage(str(tmp_path / "a" / "b.db"), "quick"))
    open_storage(parse_storage(f"journal://{tmp_path / 'c' / 'd.log'}", "quick"))
    assert (tmp_path / "a" / "b.db").is_file() and (tmp_path / "c" / "d.log").is_file()
