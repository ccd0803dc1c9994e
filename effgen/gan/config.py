"""What one GAN run is: every setting, checked before anything runs, and the key of its folder.

A run folder is named by a hash of its settings (``run_folder``), so the configuration is also the
identity of every stored run. Two rules keep old runs findable as settings are added:

* ``RESUMABLE_CHANGES`` never enter the key: they change how long a run goes or what it writes on
  the side, not what it computes, so raising ``steps`` resumes the same run.
* ``LATER_SETTINGS`` enter the key only when they differ from the value that reproduces the runs
  stored before they existed; a checkpoint without them reads as having that value.

The configuration is a pydantic dataclass in the house style (strict types, ``Literal`` choices,
bounds, finite floats); a bad value is one ``ParamsError`` line naming the file and the key.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

import pydantic
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from effgen.checkpoints import config_key
from effgen.errors import ParamsError, one_line_validation_error
from effgen.gan.diffaugment import parse_policy

# dcgan | dcgan_layernorm (WGAN-GP critic) | fc | dcgan_sn (D without BatchNorm) | resnet |
# rebalanced (wider G, narrower BatchNorm D) | sngan_small (rebalanced G, SNGAN standard-CNN D)
Architecture = Literal["dcgan", "dcgan_layernorm", "fc", "dcgan_sn", "resnet", "rebalanced",
                       "sngan_small"]
Loss = Literal["sigmoid_bce", "logits_bce", "wgan_gp", "hinge"]
DataRange = Literal["zero_one", "minus_one_one"]
# original and per_epoch: StepLR (see effgen.gan.schedules); linear and cosine: decay to 0 between
# lr_decay_start and lr_decay_end; none: constant.
LrSchedule = Literal["original", "per_epoch", "none", "linear", "cosine"]
SampleMode = Literal["train", "eval"]
Precision = Literal["fp32", "bf16"]

ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
LOSSES: tuple[str, ...] = get_args(Loss)
OUTPUT_RANGES: tuple[str, ...] = get_args(DataRange)
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)
DECAY_SCHEDULES: tuple[str, ...] = ("linear", "cosine")
SAMPLE_MODES: tuple[str, ...] = get_args(SampleMode)
PRECISIONS: tuple[str, ...] = get_args(Precision)
# Discriminators normalised by batch statistics, which the per-sample gradient penalty forbids.
BATCHNORM_CRITICS = ("dcgan", "rebalanced")

# Settings a finished or interrupted run may be continued with, unchanged results otherwise.
RESUMABLE_CHANGES = frozenset({"steps", "checkpoint_every", "diagnostics_every"})
# Settings added after runs were stored, with the value that reproduces those runs. At that value
# they are left out of the run-folder key, and a checkpoint without them reads as having it.
LATER_SETTINGS: dict[str, Any] = {"spectral_norm": False, "diffaugment": "", "ema_decay": 0.0,
                                  "precision": "fp32", "lr_decay_start": 0, "lr_decay_end": 0,
                                  "ema_bn_passes": 0}

_STYLE = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


@pydantic.dataclasses.dataclass(frozen=True, config=_STYLE)
class GanConfig:
    """Every setting of a GAN run. Build one with ``preset(name)`` or ``config_from_dict``."""

    # A label (the preset it started from); the switches below define the run.
    recipe: str = Field(default="corrected", min_length=1)
    architecture: Architecture = "dcgan"
    loss: Loss = "logits_bce"  # sigmoid_bce is the original's
    # What real images are scaled to; zero_one is the original's.
    data_range: DataRange = "minus_one_one"
    shuffle: bool = True  # reshuffle every pass; False walks one fixed order, as the original
    dcgan_init: bool = True  # N(0, 0.02) weights (DCGAN); False keeps PyTorch's (original)
    lr_schedule: LrSchedule = "per_epoch"
    sample_mode: SampleMode = "eval"  # how G draws the fixed-noise grids; train: the original
    augment: bool = False  # random flips and 4-pixel-padded crops of the real images
    steps: int = Field(default=50_000, ge=1)  # optimisation steps (one D and one G update each)
    batch_size: int = Field(default=64, ge=1)
    g_lr: float = Field(default=7.508e-4, gt=0)
    d_lr: float = Field(default=4.540e-4, gt=0)
    beta1: float = Field(default=0.5, ge=0, lt=1)
    beta2: float = Field(default=0.99, ge=0, lt=1)
    step_size: int = Field(default=6, ge=1)  # StepLR step size, in epochs
    gamma: float = Field(default=0.2078, gt=0)  # StepLR decay factor
    epoch_steps: int = Field(default=1_000, ge=1)  # optimisation steps per "epoch", as the original
    n_critic: int = Field(default=1, ge=1)  # discriminator updates per step
    gp_weight: float = Field(default=10.0, ge=0)  # WGAN-GP penalty weight
    seed: int = 0
    sample_every: int = Field(default=1_000, ge=1)  # steps between fixed-noise sample grids
    checkpoint_every: int = Field(default=1_000, ge=1)  # steps between checkpoints
    n_fixed: int = Field(default=64, ge=1)  # images in each fixed-noise grid
    # Later additions (see LATER_SETTINGS): their defaults reproduce every run stored before them.
    spectral_norm: bool = False  # spectral normalisation on every layer of D
    # DiffAugment policy for everything D sees, e.g. "translation,cutout"; "" = off
    diffaugment: str = ""
    # EMA of G's weights (e.g. 0.999, warmed up); the run's generator is the EMA; 0 = off
    ema_decay: float = Field(default=0.0, ge=0, lt=1)
    # bf16: G's and D's forward passes under bf16 autocast; weights, optimiser and losses stay fp32.
    precision: Precision = "fp32"
    # linear and cosine schedules: the rate holds until lr_decay_start, then falls to 0 at
    # lr_decay_end (0-based steps). A horizon of its own, not ``steps``, so that a run continued
    # to more steps keeps the rates it has already used.
    lr_decay_start: int = Field(default=0, ge=0)
    lr_decay_end: int = Field(default=0, ge=0, validate_default=True)
    # Forward passes (of batch_size latents, in train mode) that re-estimate the EMA generator's
    # BatchNorm statistics before it draws samples or is saved; 0 keeps the averaged statistics.
    ema_bn_passes: int = Field(default=0, ge=0, le=10_000)
    diagnostics_every: int = Field(default=1_000, ge=1)  # steps between rows of diagnostics.csv

    @field_validator("loss")
    @classmethod
    def _critic_fits_the_loss(cls, loss: str, info: ValidationInfo) -> str:
        if loss == "wgan_gp" and info.data.get("architecture") in BATCHNORM_CRITICS:
            raise ValueError("the WGAN-GP loss needs a critic without BatchNorm: "
                             "use architecture='dcgan_layernorm' or 'fc'")
        return loss

    @field_validator("diffaugment")
    @classmethod
    def _known_policy(cls, policy: str) -> str:
        try:
            parse_policy(policy)
        except ParamsError as err:
            raise ValueError(f"the {err}") from None
        return policy

    @field_validator("lr_decay_end")
    @classmethod
    def _decay_window(cls, end: int, info: ValidationInfo) -> int:
        start = info.data.get("lr_decay_start", 0)
        if info.data.get("lr_schedule") in DECAY_SCHEDULES:
            if end <= start:
                raise ValueError(f"the {info.data['lr_schedule']} schedule decays to 0 at "
                                 f"lr_decay_end, which must come after lr_decay_start ({start})")
        elif end or start:
            raise ValueError("lr_decay_start and lr_decay_end belong to the linear and cosine "
                             "schedules; leave them at 0")
        return end

    @field_validator("ema_bn_passes")
    @classmethod
    def _only_with_an_ema(cls, passes: int, info: ValidationInfo) -> int:
        if passes and not info.data.get("ema_decay"):
            raise ValueError("re-estimates the EMA generator's BatchNorm statistics: "
                             "set ema_decay above 0, or leave this at 0")
        return passes

    @property
    def output_range(self) -> str:
        """The range G learned to draw: that of the real images it was shown."""
        return self.data_range

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(GanConfig))


def validated(make: Any, source: str) -> GanConfig:
    """``make()``, which builds a ``GanConfig``; a validation error becomes one ParamsError line."""
    try:
        return make()
    except pydantic.ValidationError as err:
        raise one_line_validation_error(err, source) from None


def settings_key(config: GanConfig) -> str:
    """Eight hex digits that identify what a run computes (see the module docstring)."""
    settings = {k: v for k, v in config.as_dict().items()
                if k not in RESUMABLE_CHANGES
                and not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])}
    return config_key(settings)


def run_folder(base: Path, name: str, config: GanConfig) -> Path:
    """``base/<name>-<8 hex>``: a changed setting gets a fresh folder instead of a resume error."""
    return Path(base) / f"{name}-{settings_key(config)}"


def changed_settings(saved: Mapping[str, Any], config: GanConfig) -> list[str]:
    """The settings in which a stored run (``saved``: its config.json) differs from ``config``."""
    wanted = config.as_dict()
    return [key for key in wanted
            if key not in RESUMABLE_CHANGES
            and saved.get(key, LATER_SETTINGS.get(key)) != wanted[key]]
