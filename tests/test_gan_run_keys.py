"""Run keys are the names of stored runs: a changed key orphans a finished run and trains it again.

The pinned keys below were computed before the GAN code was reorganised; every preset, a few
of their common variants and every frozen run's recorded configuration must keep them. A new
setting stays out of the key while it holds its default, so adding one changes nothing here.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from effgen.gan import PRESETS, GanConfig, preset, run_folder

ROOT = Path(__file__).resolve().parent.parent
FROZEN_CONFIGS = sorted(ROOT.glob("_freeze/paper/0[4-6]*/runs/**/config.json"))

PRESET_KEYS = {
    "corrected": "fc703855",
    "faithful": "4abbcb85",
    "fc_gan": "b32ea36f",
    "wgan_gp": "f1083edd",
    "modern": "cade87ff",
}
VARIANT_KEYS = [
    ("modern", {"architecture": "resnet"}, "cfb07771"),
    ("corrected", {"augment": True}, "b728a2ec"),
    ("corrected", {"precision": "bf16"}, "c7f50dfb"),
    ("modern", {"diffaugment": "color,translation,cutout"}, "76e30c1f"),
]


def key_of(config: GanConfig) -> str:
    return run_folder(Path("runs"), "run", config).name.rsplit("-", 1)[1]


@pytest.mark.parametrize("name", sorted(PRESET_KEYS))
def test_preset_keys_are_unchanged(name: str) -> None:
    assert key_of(PRESETS[name]) == PRESET_KEYS[name]


@pytest.mark.parametrize("name, overrides, key", VARIANT_KEYS)
def test_variant_keys_are_unchanged(name: str, overrides: dict, key: str) -> None:
    assert key_of(preset(name, **overrides)) == key


def test_the_frozen_runs_are_there_to_check() -> None:
    assert len(FROZEN_CONFIGS) >= 10


@pytest.mark.parametrize("path", FROZEN_CONFIGS, ids=lambda p: p.parent.name)
def test_frozen_runs_keep_their_folder_keys(path: Path) -> None:
    stored = json.loads(path.read_text())
    config = GanConfig(**stored)
    assert key_of(config) == path.parent.name.rsplit("-", 1)[1]
    # Stored and rebuilt settings agree: only later settings at their defaults may be added.
    rebuilt = {k: v for k, v in config.as_dict().items() if k in stored}
    assert rebuilt == stored
