"""Run keys stay put: every stored classifier and tuning configuration rebuilds to the same dictionary.

A run folder's key, a tuning run's tag and a resumed study's check all hash or compare a config's
``to_dict()``. If rebuilding a stored configuration gave a different dictionary (a float turned int,
a key added, an order changed), every frozen run would silently become a stranger to its chapter and
be trained again. ``fixtures/config-dicts.json`` was recorded from the code that made the frozen runs.
"""
from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from effgen.checkpoints import read_checkpoint
from effgen.classifier import ClassifierConfig, run_key
from effgen.commands.tune import read_tuning_params
from effgen.tuning import TuningSettings
from effgen.tuning.classifier import check_space_budget, config_tag

REPO = Path(__file__).resolve().parent.parent
FROZEN = REPO / "_freeze" / "paper"
RECORDED = json.loads((Path(__file__).parent / "fixtures" / "config-dicts.json").read_text())
CONFIG_EXTRAS = ("params", "over_budget")  # written beside the config in config.yml, not part of it
# Run folders named by tuning.config_tag: trialN-stepsS-TAG (confirmation), stepsS-lrL-seedK-TAG (sweep).
TAGGED_FOLDER = re.compile(r"^(trial\d+-steps\d+|steps\d+-lr[0-9.e+-]+-seed\d+)-(?P<tag>[0-9a-f]{8})$")


def _frozen_config_files() -> list[Path]:
    """Every frozen classifier run's config: in the run store, and in chapter 03's own tuning runs."""
    return sorted([*FROZEN.glob("*/runs/**/config.yml"), *FROZEN.glob("store/**/config.yml")])


def _rebuilt(stored: dict) -> dict:
    return ClassifierConfig.from_dict(stored).to_dict()


def test_the_frozen_book_has_classifier_runs_to_check() -> None:
    assert len(_frozen_config_files()) > 30


@pytest.mark.parametrize("path", _frozen_config_files(), ids=lambda p: str(p.relative_to(FROZEN)))
def test_a_frozen_run_config_rebuilds_to_the_same_json(path: Path) -> None:
    stored = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k not in CONFIG_EXTRAS}
    rebuilt = _rebuilt(stored)
    assert json.dumps(rebuilt) == json.dumps(stored)  # values, types and key order
    if match := TAGGED_FOLDER.match(path.parent.name):
        assert config_tag(ClassifierConfig.from_dict(stored)) == match["tag"]


def test_every_frozen_classifier_checkpoint_config_rebuilds_to_the_same_json() -> None:
    checkpoints = sorted(p for pattern in ("*/runs/**/checkpoint.pt", "*/runs/**/weights.pt", "store/**/*.pt")
                         for p in FROZEN.glob(pattern) if (p.parent / "config.yml").is_file())
    assert checkpoints
    for path in checkpoints:
        stored = read_checkpoint(path, "classifier checkpoint", ("config",))["config"]
        assert json.dumps(_rebuilt(stored)) == json.dumps(stored), path


def test_the_frozen_best_setting_rebuilds_to_the_same_json() -> None:
    stored = yaml.safe_load((FROZEN / "03-tuning" / "runs" / "best.yml").read_text())["classifier"]
    assert json.dumps(_rebuilt(stored)) == json.dumps(stored)


def _stored_study_configs(chapter: str) -> list[dict]:
    """The settings of every study in the chapter's frozen storage (one per AddNIST source it ran on)."""
    with sqlite3.connect(f"file:{FROZEN / chapter / 'runs' / 'optuna.db'}?mode=ro", uri=True) as db:
        rows = db.execute("select value_json from study_user_attributes where key = 'effgen_config'").fetchall()
    assert rows
    return [json.loads(text) for (text,) in rows]


def test_the_paper_settings_differ_from_the_frozen_study_only_in_its_data() -> None:
    """The frozen study ran on another AddNIST source; the paper settings name a study of their own."""
    settings = TuningSettings.from_dict(read_tuning_params(REPO / "params" / "paper" / "03-tuning.yml"))
    ours = json.loads(json.dumps(settings.study_config()))
    for stored in _stored_study_configs("03-tuning"):
        assert {k for k in stored if stored[k] != ours.get(k)} <= {"addnist_source"}
    assert settings.resolved_study_name("paper") == f"effgen-03-tuning-paper-{settings.addnist_source}"


@pytest.mark.parametrize("chapter", ["03-tuning", "06-beyond"])
def test_a_frozen_studys_settings_rebuild_to_the_same_config(chapter: str) -> None:
    for stored in _stored_study_configs(chapter):
        settings = TuningSettings.from_dict(stored)
        assert json.dumps(settings.study_config(), sort_keys=True) == json.dumps(stored, sort_keys=True)
        check_space_budget(settings)  # its trials' classifier configs are valid ones


@pytest.mark.parametrize("name", sorted(RECORDED["classifier"]))
def test_a_preset_config_keeps_its_dict_and_tag(name: str) -> None:
    recorded = RECORDED["classifier"][name]
    config = ClassifierConfig.from_dict(recorded["dict"])
    assert json.dumps(config.to_dict(), sort_keys=True) == json.dumps(recorded["dict"], sort_keys=True)
    assert config_tag(config) == recorded["tag"]


def test_run_keys_are_those_the_runs_were_stored_under() -> None:
    g = torch.Generator().manual_seed(0)
    data = SimpleNamespace(train=(torch.rand(20, 3, 28, 28, generator=g), torch.arange(20) % 10),
                           valid=(torch.rand(8, 3, 28, 28, generator=g), torch.arange(8) % 10))
    for name, key in RECORDED["run_key"].items():
        assert run_key(ClassifierConfig.from_dict(RECORDED["classifier"][name]["dict"]), data) == key, name


def test_the_default_configs_are_unchanged() -> None:
    assert ClassifierConfig().to_dict() == RECORDED["classifier"]["default"]["dict"]
    settings = TuningSettings()
    assert json.loads(json.dumps(settings.study_config())) == RECORDED["tuning"]["default"]["study"]
    assert json.loads(json.dumps(settings.base_config())) == RECORDED["tuning"]["default"]["base"]
