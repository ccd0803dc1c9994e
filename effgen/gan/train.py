"""Step-budgeted GAN training: the paper's DCGAN recipes and its dismissed baselines, one loop.

A run is described by a ``GanConfig``. Named presets fix every switch:

* ``faithful``: the authors' notebook as it ran (SPEC §3): images in [0, 1] against a tanh
  output, data never shuffled, PyTorch's default initialisation, sigmoid + ``BCELoss``,
  ``scheduler.step()`` called only once every ``step_size`` epochs (so StepLR, which itself
  waits ``step_size`` calls, first decays after step_size**2 epochs: step 36,000), and the
  fixed-noise samples drawn with G left in train mode.
* ``corrected``: the same networks and hyperparameters done as the paper describes and as
  DCGAN intends [Radford et al. 2016]: images in [-1, 1], shuffled batches, N(0, 0.02)
  initialisation, StepLR stepped once per epoch, sampling in eval mode, and the same
  objective through the numerically stable ``BCEWithLogitsLoss``.
* ``fc_gan`` and ``wgan_gp``: the baselines of ``effgen.gan.baselines``.
* ``modern``: a present-day recipe inside the same budget (issue 11): hinge loss
  (``effgen.gan.losses``), spectral norm on every layer of D (``effgen.gan.spectral``), two
  time-scale learning rates, DiffAugment on everything D sees (``effgen.gan.diffaugment``)
  and an EMA of G's weights (``effgen.gan.ema``), on the DCGAN shapes without D's BatchNorm
  (``dcgan_sn``) or on a small ResNet (``resnet``, ``effgen.gan.resnet``). Each piece is its
  own ``GanConfig`` switch; ``effgen.gan.ablation.modern_ablation`` lists the on/off runs.

An "epoch" is the original's 1,000 optimisation steps (``epoch_steps``), not a pass over the
data. Every step is one discriminator (critic) update and one generator update; a WGAN-GP step
takes ``n_critic`` critic updates. The run checkpoints its whole state (models, optimisers,
schedulers, data order and every RNG), so a resumed run continues bit for bit.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from effgen.budget import GAN_LIMITS, BudgetReport, check_budget, count_params
from effgen.checkpoints import atomic_write, exclusive_run, load_module_state, read_checkpoint
from effgen.data.batches import InMemoryBatches
from effgen.errors import CheckpointError, DataError, ParamsError
from effgen.gan.augment import flip_and_crop
from effgen.gan.baselines import FCDiscriminator, FCGenerator, LayerNormCritic, gradient_penalty
from effgen.gan.diffaugment import diff_augment, parse_policy
from effgen.gan.ema import ModelEma
from effgen.gan.losses import hinge_d_loss, hinge_g_loss
from effgen.gan.models import (
    LATENT_DIM,
    Discriminator,
    Generator,
    dcgan_init_,
    load_generator,
    read_generator_file,
    savable_kind,
    save_generator,
)
from effgen.gan.resnet import ResNetDiscriminator, ResNetGenerator
from effgen.gan.spectral import spectral_norm_
from effgen.runtime import keep_freed_memory_on, memory_format, progress, seed_everything

ARCHITECTURES = ("dcgan", "dcgan_layernorm", "fc", "dcgan_sn", "resnet")
LOSSES = ("sigmoid_bce", "logits_bce", "wgan_gp", "hinge")
OUTPUT_RANGES = ("zero_one", "minus_one_one")
LR_SCHEDULES = ("original", "per_epoch", "none")
SAMPLE_MODES = ("train", "eval")
PRECISIONS = ("fp32", "bf16")
HISTORY_COLUMNS = ("step", "loss_d", "loss_g", "d_real", "d_fake", "lr_g", "lr_d")
# Settings a finished or interrupted run may be continued with, unchanged results otherwise.
RESUMABLE_CHANGES = frozenset({"steps", "checkpoint_every"})
# Settings added after runs were stored, with the value that reproduces those runs. At that value
# they are left out of the run-folder key, and a checkpoint without them reads as having it.
LATER_SETTINGS: dict[str, Any] = {"spectral_norm": False, "diffaugment": "", "ema_decay": 0.0, "precision": "fp32"}
CHECKPOINT_KEYS = ("config", "step", "generator", "discriminator", "opt_g", "opt_d", "schedulers", "batches",
                   "noise", "augment_rng", "history", "dataset")


@dataclass(frozen=True)
class GanConfig:
    """Every setting of a GAN run. Build one with ``preset(name)`` or ``GanConfig.from_dict``."""

    recipe: str = "corrected"  # a label; the switches below define the run
    # dcgan | dcgan_layernorm (WGAN-GP critic) | fc | dcgan_sn (D without BatchNorm) | resnet
    architecture: str = "dcgan"
    loss: str = "logits_bce"  # sigmoid_bce (original) | logits_bce | wgan_gp | hinge
    data_range: str = "minus_one_one"  # what real images are scaled to: zero_one (original) | minus_one_one
    shuffle: bool = True  # reshuffle the data every pass; False walks one fixed order, as the original
    dcgan_init: bool = True  # N(0, 0.02) weights (DCGAN); False keeps PyTorch's defaults (original)
    lr_schedule: str = "per_epoch"  # per_epoch | original (stepped every step_size epochs) | none
    sample_mode: str = "eval"  # how G runs when drawing the fixed-noise grids: eval | train (original)
    augment: bool = False  # random flips and 4-pixel-padded crops of the real images
    steps: int = 50_000  # optimisation steps (one D and one G update each)
    batch_size: int = 64
    g_lr: float = 7.508e-4
    d_lr: float = 4.540e-4
    beta1: float = 0.5
    beta2: float = 0.99
    step_size: int = 6  # StepLR step size, in epochs
    gamma: float = 0.2078  # StepLR decay factor
    epoch_steps: int = 1_000  # optimisation steps per "epoch", as the original counted them
    n_critic: int = 1  # discriminator updates per step
    gp_weight: float = 10.0  # WGAN-GP penalty weight
    seed: int = 0
    sample_every: int = 1_000  # steps between fixed-noise sample grids
    checkpoint_every: int = 1_000  # steps between checkpoints
    n_fixed: int = 64  # images in each fixed-noise grid
    # Later additions (see LATER_SETTINGS): their defaults reproduce every run stored before them.
    spectral_norm: bool = False  # spectral normalisation on every layer of D
    diffaugment: str = ""  # DiffAugment policy applied to all D inputs, e.g. "translation,cutout"; "" = off
    ema_decay: float = 0.0  # EMA of G's weights (e.g. 0.999, warmed up); the run's generator is the EMA; 0 = off
    # fp32 | bf16: G's and D's forward passes under bf16 autocast (CPU or CUDA); weights, optimiser
    # and losses stay fp32. Faster where the hardware has bf16 units, with different rounding.
    precision: str = "fp32"

    def __post_init__(self) -> None:
        choices = {"architecture": ARCHITECTURES, "loss": LOSSES, "data_range": OUTPUT_RANGES,
                   "lr_schedule": LR_SCHEDULES, "sample_mode": SAMPLE_MODES, "precision": PRECISIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ParamsError(f"GAN setting {name}={getattr(self, name)!r}: choose one of {', '.join(allowed)}")
        for name in ("steps", "batch_size", "step_size", "epoch_steps", "n_critic", "sample_every",
                     "checkpoint_every", "n_fixed"):
            if getattr(self, name) < 1:
                raise ParamsError(f"GAN setting {name}={getattr(self, name)} must be at least 1")
        for name in ("g_lr", "d_lr", "gamma"):
            if not getattr(self, name) > 0:
                raise ParamsError(f"GAN setting {name}={getattr(self, name)} must be positive")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ParamsError(f"GAN setting {name}={getattr(self, name)} must lie in [0, 1)")
        if self.gp_weight < 0:
            raise ParamsError(f"GAN setting gp_weight={self.gp_weight} must not be negative")
        if not 0 <= self.ema_decay < 1:
            raise ParamsError(f"GAN setting ema_decay={self.ema_decay} must lie in [0, 1) (0 switches the EMA off)")
        parse_policy(self.diffaugment)
        if self.loss == "wgan_gp" and self.architecture == "dcgan":
            raise ParamsError("the WGAN-GP loss needs a critic without BatchNorm: "
                              "use architecture='dcgan_layernorm' or 'fc'")

    @property
    def output_range(self) -> str:
        """The range G learned to draw: that of the real images it was shown."""
        return self.data_range

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GanConfig:
        """Start from the preset named by ``values['recipe']`` (default corrected), then override.

        Unknown keys and wrong types raise ``ParamsError`` before anything runs.
        """
        if not isinstance(values, Mapping):
            raise ParamsError(f"GAN parameters must be a mapping, not {type(values).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ParamsError(f"unknown GAN parameter(s): {', '.join(unknown)}; "
                              f"known: {', '.join(fields)}")
        checked = {name: _checked_value(name, value, fields[name].type) for name, value in values.items()}
        recipe = checked.pop("recipe", "corrected")
        return preset(recipe, **checked)


def _checked_value(name: str, value: Any, annotation: Any) -> Any:
    kind = {"int": int, "float": float, "str": str, "bool": bool}[str(annotation)]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ParamsError(f"GAN parameter {name} must be {kind.__name__}, got {value!r} "
                          f"({type(value).__name__})")
    return value


_BASE = GanConfig()
PRESETS: dict[str, GanConfig] = {
    "corrected": _BASE,
    "faithful": dataclasses.replace(
        _BASE, recipe="faithful", loss="sigmoid_bce", data_range="zero_one", shuffle=False,
        dcgan_init=False, lr_schedule="original", sample_mode="train"),
    # Goodfellow-style MLP GAN with the DCGAN paper's Adam settings.
    "fc_gan": dataclasses.replace(
        _BASE, recipe="fc_gan", architecture="fc", dcgan_init=False, lr_schedule="none",
        g_lr=2e-4, d_lr=2e-4, beta1=0.5, beta2=0.999),
    # Gulrajani et al.'s CIFAR settings: Adam(1e-4, 0, 0.9), five critic updates, lambda 10.
    "wgan_gp": dataclasses.replace(
        _BASE, recipe="wgan_gp", architecture="dcgan_layernorm", loss="wgan_gp", dcgan_init=False,
        lr_schedule="none", g_lr=1e-4, d_lr=1e-4, beta1=0.0, beta2=0.9, n_critic=5),
    # Issue 11: hinge loss, spectral norm in D, two time-scale learning rates (D twice G's, after
    # Heusel et al. 2017), DiffAugment translation + cutout (Zhao et al. 2020) and a G weight EMA;
    # no learning-rate decay. One D and one G update per step, like the DCGAN recipes.
    "modern": dataclasses.replace(
        _BASE, recipe="modern", architecture="dcgan_sn", loss="hinge", spectral_norm=True,
        lr_schedule="none", g_lr=2e-4, d_lr=4e-4, beta1=0.5, beta2=0.999,
        diffaugment="translation,cutout", ema_decay=0.999),
}


def preset(name: str, **overrides: Any) -> GanConfig:
    """A named recipe, with any settings overridden (``preset("corrected", augment=True)``)."""
    if name not in PRESETS:
        raise ParamsError(f"unknown GAN recipe {name!r}; choose one of {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(GanConfig)})
    if unknown:
        raise ParamsError(f"unknown GAN parameter(s): {', '.join(unknown)}")
    return dataclasses.replace(PRESETS[name], **overrides)


# ---------------------------------------------------------------- learning-rate schedule

def lr_decays(step: int, config: GanConfig) -> int:
    """How many times StepLR has decayed the learning rate before optimisation step ``step`` (0-based).

    ``per_epoch``: ``scheduler.step()`` after every epoch, so a decay every ``step_size`` epochs.
    ``original``: ``scheduler.step()`` only after every ``step_size``-th epoch. StepLR counts its
    own calls and decays every ``step_size`` of them, so the first decay comes after
    ``step_size**2`` epochs: with 6 and epochs of 1,000 steps, at step 36,000, and no other
    within 50,000 steps.
    """
    epochs_done = step // config.epoch_steps
    if config.lr_schedule == "per_epoch":
        return epochs_done // config.step_size
    if config.lr_schedule == "original":
        return (epochs_done // config.step_size) // config.step_size
    return 0


def lr_at(step: int, config: GanConfig) -> tuple[float, float]:
    """(generator, discriminator) learning rates used by step ``step`` (0-based)."""
    factor = config.gamma ** lr_decays(step, config)
    return config.g_lr * factor, config.d_lr * factor


def _after_epoch(epoch: int, config: GanConfig, schedulers: list[torch.optim.lr_scheduler.StepLR]) -> None:
    """Call the schedulers as the recipe did at the end of epoch ``epoch`` (1-based)."""
    if config.lr_schedule == "per_epoch" or (config.lr_schedule == "original" and epoch % config.step_size == 0):
        for scheduler in schedulers:
            scheduler.step()


# ---------------------------------------------------------------- models and sampling

def build_models(config: GanConfig) -> tuple[nn.Module, nn.Module]:
    """Fresh (generator, discriminator) for ``config``, seeded by the caller."""
    if config.architecture == "fc":
        generator, discriminator = FCGenerator(), FCDiscriminator()
    elif config.architecture == "dcgan_layernorm":
        generator, discriminator = Generator(), LayerNormCritic()
    elif config.architecture == "dcgan_sn":
        generator, discriminator = Generator(), Discriminator(batchnorm=False)
    elif config.architecture == "resnet":
        generator, discriminator = ResNetGenerator(), ResNetDiscriminator()
    else:
        generator, discriminator = Generator(), Discriminator()
    if config.dcgan_init and config.architecture != "resnet":  # the ResNets initialise themselves
        dcgan_init_(generator)
        dcgan_init_(discriminator)
    if config.spectral_norm:
        spectral_norm_(discriminator)  # after initialisation: it reparametrises the weights
    return generator, discriminator


def to_unit_range(images: torch.Tensor, output_range: str) -> torch.Tensor:
    """Generator output -> displayable images in [0, 1].

    ``minus_one_one``: (x + 1) / 2. ``zero_one``: G was trained on [0, 1] data, so its
    tanh output is read as is and clipped, as the original's PNG export clipped negatives to black.
    """
    if output_range == "minus_one_one":
        return ((images + 1) / 2).clamp(0, 1)
    if output_range == "zero_one":
        return images.clamp(0, 1)
    raise ParamsError(f"unknown output_range {output_range!r}; choose one of {', '.join(OUTPUT_RANGES)}")


def from_minus_one_one(images: torch.Tensor, data_range: str) -> torch.Tensor:
    """Real images in [-1, 1] -> the range the recipe trains on."""
    return (images + 1) / 2 if data_range == "zero_one" else images


@torch.no_grad()
def generated_images(generator: nn.Module, n: int, seed: int, device: torch.device | str = "cpu",
                     output_range: str = "minus_one_one", batch_size: int = 500,
                     bn_mode: str = "eval") -> torch.Tensor:
    """``n`` images in [0, 1], (n, 3, 32, 32) float32 on the CPU, from latents seeded by ``seed``.

    ``bn_mode="eval"`` uses BatchNorm's running statistics. ``"train"`` normalises each batch
    by its own statistics, as the original sampled; it runs on a copy, leaving ``generator`` untouched.
    The same ``seed`` and ``n`` give the same latents whatever ``batch_size`` is.
    """
    if bn_mode not in SAMPLE_MODES:
        raise ParamsError(f"bn_mode {bn_mode!r}: choose one of {', '.join(SAMPLE_MODES)}")
    device = torch.device(device)
    generator.to(device)
    was_training = generator.training
    model = copy.deepcopy(generator).train() if bn_mode == "train" else generator.eval()
    latent_dim = getattr(generator, "latent_dim", LATENT_DIM)
    latents = torch.randn(n, latent_dim, 1, 1, generator=torch.Generator().manual_seed(seed))
    chunks = []
    try:
        for start in range(0, n, batch_size):
            z = latents[start:start + batch_size].to(device)
            chunks.append(to_unit_range(model(z).float(), output_range).cpu())
    finally:
        generator.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, 3, 32, 32)


def image_grid(images: torch.Tensor, columns: int = 8, gap: int = 2) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> one (H', W', 3) uint8 grid image, white gaps between tiles."""
    n, channels, height, width = images.shape
    rows = math.ceil(n / columns)
    grid = torch.ones(channels, rows * (height + gap) - gap, columns * (width + gap) - gap)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        grid[:, r * (height + gap):r * (height + gap) + height, c * (width + gap):c * (width + gap) + width] = image
    return (grid.permute(1, 2, 0) * 255).round().to(torch.uint8)


def save_grid(images: torch.Tensor, path: Path, columns: int = 8) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images, columns).numpy()).save(path)


# ---------------------------------------------------------------- the loop

@dataclass
class GanRun:
    """What a finished (or stopped) run leaves: models, history and where its files are."""

    config: GanConfig
    generator: nn.Module
    discriminator: nn.Module
    history: pd.DataFrame  # one row per step: HISTORY_COLUMNS
    run_dir: Path | None
    budget: BudgetReport
    resumed_from: int  # the step this call started from (0: a fresh run)
    seconds: float  # wall time this call spent training
    samples: dict[int, Path] = field(default_factory=dict)  # step -> fixed-noise grid PNG
    dataset: str = ""  # provenance["dataset"] of the images it trained on, "" when not given
    # The trained weights themselves. ``generator`` is the EMA copy when ``config.ema_decay`` > 0
    # (the one to sample and score), and the same object as this one otherwise.
    raw_generator: nn.Module | None = None

    def __post_init__(self) -> None:
        if self.raw_generator is None:
            self.raw_generator = self.generator

    @property
    def step(self) -> int:
        return len(self.history)

    @property
    def finished(self) -> bool:
        return self.step >= self.config.steps

    @property
    def generator_path(self) -> Path | None:
        """``generator.pt``: the EMA generator when the run keeps one, else the trained one."""
        return self.run_dir / "generator.pt" if self.run_dir else None

    @property
    def raw_generator_path(self) -> Path | None:
        """``generator-raw.pt`` (the trained, un-averaged weights) when the run keeps an EMA, else ``generator.pt``."""
        if not self.run_dir:
            return None
        return self.run_dir / ("generator-raw.pt" if self.config.ema_decay > 0 else "generator.pt")


def check_gan_budget(config: GanConfig) -> BudgetReport:
    """Parameters of G + D and the step count against the paper's limits, before any compute."""
    generator, discriminator = build_models(dataclasses.replace(config, dcgan_init=False))
    return check_budget(count_params(generator, discriminator), config.steps, GAN_LIMITS)


def _validate_images(images: torch.Tensor, config: GanConfig) -> None:
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, 32, 32):
        raise DataError(f"GAN training needs images of shape (N, 3, 32, 32), got {tuple(images.shape)}")
    if images.shape[0] < config.batch_size:
        raise DataError(f"{images.shape[0]} images cannot fill one batch of {config.batch_size}")
    if not images.is_floating_point() or images.min() < -1.0001 or images.max() > 1.0001:
        raise DataError("GAN training expects float images scaled to [-1, 1] (as effgen.data returns them)")


class _Trainer:
    """Holds one run's state; ``train_gan`` is its public face."""

    def __init__(self, config: GanConfig, images: torch.Tensor, device: torch.device) -> None:
        self.config = config
        self.device = device
        if config.precision == "bf16" and device.type not in ("cpu", "cuda"):
            raise ParamsError(f"GAN setting precision='bf16' runs on a CPU or CUDA device, not {device.type}")
        seed_everything(config.seed)
        self.generator, self.discriminator = build_models(config)
        # NHWC lets oneDNN pick faster convolution kernels on CPU (bench/bench_gan.py measures it).
        self.layout = memory_format(device)
        keep_freed_memory_on(device)
        self.generator.to(device=device, memory_format=self.layout)
        self.discriminator.to(device=device, memory_format=self.layout)
        betas = (config.beta1, config.beta2)
        # The fused kernel updates every tensor in one pass instead of ~10 ops per parameter tensor.
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.g_lr, betas=betas, fused=True)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.d_lr, betas=betas, fused=True)
        self.schedulers = [torch.optim.lr_scheduler.StepLR(opt, step_size=config.step_size, gamma=config.gamma)
                           for opt in (self.opt_g, self.opt_d)]
        if not config.shuffle:
            # The original walked torchvision's stored CIFAR order, which mixes the classes, the
            # same way every epoch. Image-folder trees come sorted by class, so "no shuffle" here
            # means one seeded mixed order, fixed for the whole run.
            images = images[torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(config.seed))]
        # Separate CPU streams for data order, latents and augmentation keep each reproducible alone.
        self.batches = InMemoryBatches(images.to(device), batch_size=config.batch_size,
                                       shuffle=config.shuffle, seed=config.seed)
        self.noise = torch.Generator().manual_seed(config.seed + 1)
        self.augment_rng = torch.Generator().manual_seed(config.seed + 2)
        self.diffaugment_rng = torch.Generator().manual_seed(config.seed + 5)
        self.ema = ModelEma(self.generator, config.ema_decay) if config.ema_decay > 0 else None
        self.fixed_noise = torch.randn(config.n_fixed, LATENT_DIM, 1, 1,
                                       generator=torch.Generator().manual_seed(config.seed + 3)).to(device)
        # Per-step (loss_d, loss_g, d_real, d_fake) stay on the device until written out, so the
        # loop never waits for the GPU; the learning rates are plain floats.
        self.rows: list[torch.Tensor] = []
        self.lrs: list[tuple[float, float]] = []
        self.ones = torch.ones(config.batch_size, device=device)
        self.zeros = torch.zeros(config.batch_size, device=device)

    def _forward_precision(self) -> torch.autocast:
        """bf16 autocast around G's and D's forward passes when the run asks for it (a no-op for fp32)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16")

    # -- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.as_dict(),
            "step": len(self.rows),
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
            "batches": self.batches.state_dict(),
            "noise": self.noise.get_state(),
            "augment_rng": self.augment_rng.get_state(),
            "history": self.history_tensor(),
            # Only the runs that use them store these, so older runs' checkpoints stay as they were.
            **({"diffaugment_rng": self.diffaugment_rng.get_state()} if self.config.diffaugment else {}),
            **({"generator_ema": self.ema.state_dict()} if self.ema is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)
        self.batches.load_state_dict(state["batches"])
        self.noise.set_state(state["noise"])
        self.augment_rng.set_state(state["augment_rng"])
        if self.config.diffaugment:
            self.diffaugment_rng.set_state(state["diffaugment_rng"])
        if self.ema is not None:
            self.ema.load_state_dict(state["generator_ema"])
        history = state["history"]
        self.rows = list(history[:, 1:5].float().to(self.device).unbind(0))
        self.lrs = [(float(g), float(d)) for g, d in history[:, 5:7].tolist()]

    def history_tensor(self) -> torch.Tensor:
        if not self.rows:
            return torch.empty(0, len(HISTORY_COLUMNS), dtype=torch.float64)
        stats = torch.stack(self.rows).cpu().double()
        steps = torch.arange(1, len(self.rows) + 1, dtype=torch.float64)[:, None]
        return torch.cat([steps, stats, torch.tensor(self.lrs, dtype=torch.float64)], dim=1)

    def history(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.history_tensor().numpy(), columns=list(HISTORY_COLUMNS))
        return frame.astype({"step": "int64"})

    # -- one step
    def _real_batch(self) -> torch.Tensor:
        (real,) = self.batches.next()
        if self.config.augment:
            real = flip_and_crop(real, self.augment_rng)
        return from_minus_one_one(real, self.config.data_range).contiguous(memory_format=self.layout)

    def _d_input(self, images: torch.Tensor) -> torch.Tensor:
        """What D is shown: with DiffAugment, every real and generated batch is augmented afresh."""
        if not self.config.diffaugment:
            return images
        return diff_augment(images, self.config.diffaugment, self.diffaugment_rng)

    def _latents(self) -> torch.Tensor:
        # Drawn on the CPU stream (reproducible everywhere); the copy overlaps compute on CUDA.
        z = torch.randn(self.config.batch_size, LATENT_DIM, 1, 1, generator=self.noise)
        return z.to(self.device, non_blocking=True)

    def _d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor, real: torch.Tensor,
                fake: torch.Tensor) -> torch.Tensor:
        loss = self.config.loss
        if loss == "sigmoid_bce":
            return (F.binary_cross_entropy(torch.sigmoid(real_out), self.ones)
                    + F.binary_cross_entropy(torch.sigmoid(fake_out), self.zeros))
        if loss == "logits_bce":
            return (F.binary_cross_entropy_with_logits(real_out, self.ones)
                    + F.binary_cross_entropy_with_logits(fake_out, self.zeros))
        if loss == "hinge":
            return hinge_d_loss(real_out, fake_out)
        penalty = gradient_penalty(self.discriminator, real, fake, self.noise)
        return fake_out.mean() - real_out.mean() + self.config.gp_weight * penalty

    def _g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "sigmoid_bce":
            return F.binary_cross_entropy(torch.sigmoid(fake_out), self.ones)
        if self.config.loss == "logits_bce":
            return F.binary_cross_entropy_with_logits(fake_out, self.ones)
        if self.config.loss == "hinge":
            return hinge_g_loss(fake_out)
        return -fake_out.mean()

    def _scores(self, out: torch.Tensor) -> torch.Tensor:
        """D(x) as logged: a probability for the BCE losses, the raw score for WGAN-GP and hinge."""
        return out.mean() if self.config.loss in ("wgan_gp", "hinge") else torch.sigmoid(out).mean()

    def step(self) -> None:
        config = self.config
        step = len(self.rows)
        lr_g, lr_d = self.opt_g.param_groups[0]["lr"], self.opt_d.param_groups[0]["lr"]
        for _ in range(config.n_critic):
            real = self._real_batch()
            with self._forward_precision():
                # .float(): the losses (and WGAN-GP's interpolates) are computed in fp32 whatever the precision.
                fake = self.generator(self._latents()).float()
                real_out = self.discriminator(self._d_input(real)).float()
                fake_out = self.discriminator(self._d_input(fake.detach())).float()
            loss_d = self._d_loss(real_out, fake_out, real, fake)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        # The generator update reuses the last fake batch, as the PyTorch DCGAN recipe does. D's
        # weights are frozen for it: the gradient must flow through D, but D's own weight
        # gradients would be discarded, and computing them costs ~a tenth of the step.
        self.discriminator.requires_grad_(False)
        try:
            with self._forward_precision():
                fake_out_g = self.discriminator(self._d_input(fake)).float()
            loss_g = self._g_loss(fake_out_g)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        finally:
            self.discriminator.requires_grad_(True)
        self.opt_g.step()
        if self.ema is not None:
            self.ema.update(self.generator)
        self.rows.append(torch.stack([loss_d.detach(), loss_g.detach(), self._scores(real_out.detach()),
                                      self._scores(fake_out.detach())]).float())
        self.lrs.append((lr_g, lr_d))
        if (step + 1) % config.epoch_steps == 0:
            _after_epoch((step + 1) // config.epoch_steps, config, self.schedulers)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator a run is judged by: the EMA copy when there is one."""
        return self.ema.model if self.ema is not None else self.generator

    @torch.no_grad()
    def sample_fixed(self) -> torch.Tensor:
        """The fixed-noise grid in [0, 1]. In train mode (the original) this updates BN running stats."""
        generator = self.sampling_generator
        was_training = generator.training
        generator.train(self.config.sample_mode == "train")
        try:
            images = generator(self.fixed_noise)
        finally:
            generator.train(was_training)
        return to_unit_range(images.float(), self.config.output_range).cpu()


def _compatible(saved: Mapping[str, Any], config: GanConfig) -> list[str]:
    wanted = config.as_dict()
    return [key for key in wanted
            if key not in RESUMABLE_CHANGES and saved.get(key, LATER_SETTINGS.get(key)) != wanted[key]]


def run_folder(base: Path, name: str, config: GanConfig) -> Path:
    """``base/<name>-<8 hex>``: a changed setting gets a fresh folder instead of a resume error.

    ``steps`` and ``checkpoint_every`` are left out of the key, so raising the budget resumes
    the same run rather than starting again. Settings added later (``LATER_SETTINGS``) enter
    the key only when they differ from the value that reproduces older runs, so those runs
    keep their folders.
    """
    settings = {k: v for k, v in config.as_dict().items()
                if k not in RESUMABLE_CHANGES and not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return Path(base) / f"{name}-{key}"


def train_gan(config: GanConfig, images: torch.Tensor, run_dir: Path | None = None,
              device: torch.device | str = "cpu", *, stop_at: int | None = None,
              provenance: Mapping[str, Any] | None = None, show_progress: bool = True,
              keep_raw_generator: bool = True) -> GanRun:
    """Train (or resume, or just reload) one GAN run on ``images`` (N, 3, 32, 32) in [-1, 1].

    With ``run_dir`` the run keeps ``checkpoint.pt`` (full state), ``history.csv``,
    ``samples/step-NNNNNN.png`` and, once finished, ``generator.pt`` (``save_generator``
    format, for the DCGAN, ResNet and FC generators). With an EMA (``ema_decay`` > 0) ``generator.pt``
    and ``GanRun.generator`` hold the EMA weights, and ``generator-raw.pt`` and
    ``GanRun.raw_generator`` the trained ones. Calling again with the same config continues from the
    checkpoint; a finished run is reloaded without training. Only ``steps`` and
    ``checkpoint_every`` may change between calls. ``keep_raw_generator=False`` skips
    ``generator-raw.pt`` for a caller that scores only the EMA generator (1.2 MB less to keep);
    reloaded without it, the run's ``raw_generator`` is its EMA one. ``stop_at`` ends this call early after
    checkpointing that step, as an interruption would. One process at a time trains in
    ``run_dir`` (``effgen.checkpoints.exclusive_run``).
    """
    device = torch.device(device)
    budget = check_gan_budget(config)  # raises BudgetError before any data moves
    _validate_images(images, config)
    with exclusive_run(run_dir):
        return _train_gan(config, images, run_dir, device, budget, stop_at, provenance, show_progress,
                          keep_raw_generator)


def _train_gan(config: GanConfig, images: torch.Tensor, run_dir: Path | None, device: torch.device,
               budget: BudgetReport, stop_at: int | None, provenance: Mapping[str, Any] | None,
               show_progress: bool, keep_raw_generator: bool) -> GanRun:
    if run_dir is not None and (frozen := _reload_frozen_run(config, Path(run_dir), device, budget, provenance)):
        return frozen
    trainer = _Trainer(config, images, device)
    dataset = str((provenance or {}).get("dataset", ""))
    checkpoint = run_dir / "checkpoint.pt" if run_dir else None
    if checkpoint and checkpoint.exists():
        # Onto the CPU whatever the device: the RNG states must stay CPU ByteTensors (effgen.checkpoints).
        state = read_checkpoint(checkpoint, "GAN checkpoint", CHECKPOINT_KEYS)
        try:
            dataset = _resume(trainer, state, config, run_dir, dataset)
        except (KeyError, IndexError, RuntimeError, ValueError, TypeError, AttributeError) as err:
            raise CheckpointError(f"{checkpoint}: a damaged GAN checkpoint ({type(err).__name__}: "
                                  f"{' '.join(str(err).split())[:120]}); delete it to start afresh") from None
    resumed_from = len(trainer.rows)
    target = config.steps if stop_at is None else min(stop_at, config.steps)
    samples = _existing_samples(run_dir)
    started = time.perf_counter()
    trainer.generator.train()
    trainer.discriminator.train()
    bar_options: dict[str, Any] = {} if show_progress else {"disable": True}
    bar = (progress(total=config.steps, initial=resumed_from, desc=config.recipe, **bar_options)
           if target > resumed_from else None)
    try:
        for step in range(resumed_from + 1, target + 1):
            trainer.step()
            if step % config.sample_every == 0 or step == config.steps:
                grid = trainer.sample_fixed()
                if run_dir:
                    samples[step] = run_dir / "samples" / f"step-{step:06d}.png"
                    save_grid(grid, samples[step])
            if checkpoint and (step % config.checkpoint_every == 0 or step == target):
                _atomic_save({**trainer.state_dict(), "dataset": dataset}, checkpoint)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started
    run = GanRun(config=config, generator=trainer.sampling_generator, discriminator=trainer.discriminator,
                 history=trainer.history(), run_dir=run_dir, budget=budget, resumed_from=resumed_from,
                 seconds=seconds, samples=samples, dataset=dataset, raw_generator=trainer.generator)
    if run_dir:
        _write_outputs(run, keep_raw_generator)
    return run


def seconds_per_step(config: GanConfig, images: torch.Tensor, device: torch.device | str = "cpu",
                     steps: int = 5, warmup: int = 2) -> float:
    """Wall-clock seconds of one training step of ``config`` on ``device``, after ``warmup`` untimed steps.

    The first steps pay for allocation and kernel selection, so a short ``train_gan`` run's
    ``seconds`` overstates the steady rate. Nothing is written and no run folder is touched.
    """
    if steps < 1 or warmup < 0:
        raise ParamsError(f"seconds_per_step needs steps >= 1 and warmup >= 0, not {steps} and {warmup}")
    check_gan_budget(config)
    _validate_images(images, config)
    trainer = _Trainer(config, images, torch.device(device))
    for _ in range(warmup):
        trainer.step()
    _synchronize(trainer.device)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    _synchronize(trainer.device)
    return (time.perf_counter() - started) / steps


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reload_frozen_run(config: GanConfig, run_dir: Path, device: torch.device, budget: BudgetReport,
                       provenance: Mapping[str, Any] | None) -> GanRun | None:
    """A finished run kept without ``checkpoint.pt`` (``effgen.book.freeze`` drops it), reloaded untrained; else None.

    Such a folder holds ``history.csv``, ``config.json``, the sample grids and the generator's
    weights, in ``generator.pt`` or, for generators ``save_generator`` cannot store, in
    ``final.pt`` (``{"format", "config", "step", "dataset", "generator"}``). The generator and
    the history come back; the discriminator is freshly built from the seed, *not* restored,
    and the run cannot be continued to more steps.
    """
    weights = next((run_dir / name for name in ("generator.pt", "final.pt") if (run_dir / name).is_file()), None)
    if (run_dir / "checkpoint.pt").exists() or weights is None or not (run_dir / "history.csv").is_file() \
            or not (run_dir / "config.json").is_file():
        return None
    if changed := _compatible(json.loads((run_dir / "config.json").read_text()), config):
        raise ParamsError(f"{run_dir} holds a run with different settings ({', '.join(changed)}); "
                          "choose another run folder or delete it to start afresh")
    history = pd.read_csv(run_dir / "history.csv").astype({"step": "int64"})[list(HISTORY_COLUMNS)]
    if len(history) != config.steps:
        raise ParamsError(f"{run_dir} holds a finished {len(history):,}-step run kept without its training "
                          f"state, which cannot become a {config.steps:,}-step run; ask for {len(history):,} "
                          "steps, or delete the folder to train afresh")
    if weights.name == "generator.pt":
        payload = read_generator_file(weights)
        saved_dataset, state = str(payload.get("extra", {}).get("dataset", "")), payload["state_dict"]
    else:
        payload = read_checkpoint(weights, "finished GAN run", ("generator",))
        saved_dataset, state = str(payload.get("dataset", "")), payload["generator"]
    dataset = str((provenance or {}).get("dataset", ""))
    if dataset and saved_dataset and dataset != saved_dataset:
        raise ParamsError(f"{run_dir} holds a run trained on {saved_dataset}, not {dataset}; "
                          "choose another run folder or delete it to start afresh")
    seed_everything(config.seed)
    generator, discriminator = build_models(config)
    raw_generator = None
    if config.ema_decay > 0 and (run_dir / "generator-raw.pt").is_file():
        # generator.pt holds the EMA weights; the trained ones are kept beside them.
        raw_generator = load_generator(run_dir / "generator-raw.pt", device).train()
    load_module_state(generator, state, weights, "generator")
    generator.to(device).train()
    discriminator.to(device).train()
    return GanRun(config=config, generator=generator, discriminator=discriminator, history=history,
                  run_dir=run_dir, budget=budget, resumed_from=len(history), seconds=0.0,
                  samples=_existing_samples(run_dir), dataset=dataset or saved_dataset, raw_generator=raw_generator)


def _resume(trainer: _Trainer, state: dict[str, Any], config: GanConfig, run_dir: Path, dataset: str) -> str:
    """Check a saved run against ``config`` and load it into ``trainer``; returns the run's dataset."""
    if changed := _compatible(state["config"], config):
        raise ParamsError(
            f"{run_dir} holds a run with different settings ({', '.join(changed)}); "
            "choose another run folder or delete it to start afresh")
    if dataset and state["dataset"] and dataset != state["dataset"]:
        raise ParamsError(f"{run_dir} holds a run trained on {state['dataset']}, not {dataset}; "
                          "choose another run folder or delete it to start afresh")
    if state["step"] > config.steps:
        raise ParamsError(f"{run_dir} already holds {state['step']:,} steps, more than the "
                          f"{config.steps:,} asked for; ask for at least that many")
    trainer.load_state_dict(state)
    return dataset or str(state["dataset"])


def _existing_samples(run_dir: Path | None) -> dict[int, Path]:
    if not run_dir or not (run_dir / "samples").is_dir():
        return {}
    return {int(p.stem.split("-")[1]): p for p in sorted((run_dir / "samples").glob("step-*.png"))}


def _atomic_save(payload: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def _write_outputs(run: GanRun, keep_raw_generator: bool = True) -> None:
    assert run.run_dir is not None
    run.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run.run_dir / "history.csv", lambda tmp: run.history.to_csv(tmp, index=False))
    text = json.dumps(run.config.as_dict(), indent=2)
    atomic_write(run.run_dir / "config.json", lambda tmp: tmp.write_text(text))
    if run.finished and savable_kind(run.generator) is not None:
        save_generator(run.generator, run.run_dir / "generator.pt", extra=generator_metadata(run))
        if keep_raw_generator and run.raw_generator is not run.generator:  # the trained weights beside the EMA
            save_generator(run.raw_generator, run.run_dir / "generator-raw.pt",
                           extra={**generator_metadata(run), "weights": "raw"})


def generator_metadata(run: GanRun) -> dict[str, Any]:
    """The ``extra`` stored with a generator checkpoint; chapter 05 reads it."""
    return {
        "recipe": run.config.recipe,
        "steps": run.step,
        "seed": run.config.seed,
        "dataset": run.dataset,
        "output_range": run.config.output_range,
        "sample_mode": run.config.sample_mode,
        "batch_size": run.config.batch_size,  # train-mode sampling normalises batches of this size
        "augment": run.config.augment,
        "architecture": run.config.architecture,
        "params_g_plus_d": run.budget.params,
        "weights": "ema" if run.raw_generator is not run.generator else "raw",
        "ema_decay": run.config.ema_decay,
    }
