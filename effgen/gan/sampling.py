"""Drawing images from a generator, and sampling a saved one the way its recipe sampled.

``generated_images`` draws seeded latents through any generator. A generator file records how
its recipe drew images (``sample_mode``) and at what batch size.
The faithful recipe left G in train mode, so BatchNorm normalised every batch of samples by
that batch's own statistics, in batches of 64; its images, and so its FID, depend on that.
The corrected recipe samples in eval mode, with BatchNorm's running statistics, where the
batch size changes nothing. ``sample_saved_generator`` honours the record by default.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effgen.errors import ParamsError
from effgen.gan.config import OUTPUT_RANGES, SAMPLE_MODES
from effgen.gan.generator_files import generator_extra, load_generator
from effgen.gan.models import LATENT_DIM

ORIGINAL_BATCH = 64  # the original's batch size, for generator files that do not record theirs
EVAL_BATCH = 500  # in eval mode the batch size does not change the images; larger is faster


def to_unit_range(images: torch.Tensor, output_range: str) -> torch.Tensor:
    """Generator output -> displayable images in [0, 1].

    ``minus_one_one``: (x + 1) / 2. ``zero_one``: G was trained on [0, 1] data, so its
    tanh output is read as is and clipped, as the original's PNG export clipped negatives to black.
    """
    if output_range == "minus_one_one":
        return ((images + 1) / 2).clamp(0, 1)
    if output_range == "zero_one":
        return images.clamp(0, 1)
    raise ParamsError(f"unknown output_range {output_range!r}; "
                      f"choose one of {', '.join(OUTPUT_RANGES)}")


@torch.no_grad()
def generated_images(generator: nn.Module, n: int, seed: int, device: torch.device | str = "cpu",
                     output_range: str = "minus_one_one", batch_size: int = 500,
                     bn_mode: str = "eval") -> torch.Tensor:
    """``n`` images in [0, 1], (n, 3, 32, 32) float32 on the CPU, from latents seeded by ``seed``.

    ``bn_mode="eval"`` uses BatchNorm's running statistics. ``"train"`` normalises each batch
    by its own statistics, as the original sampled; it runs on a copy, leaving ``generator``
    untouched.
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


@dataclass(frozen=True)
class Sampling:
    """How a generator's images were drawn."""

    bn_mode: str  # "train" (batch statistics) or "eval" (running statistics)
    batch_size: int  # images per forward pass; in train mode, the batch BatchNorm normalises over
    output_range: str  # how the output maps to pixels: "minus_one_one" or "zero_one"
    recorded_mode: str  # the sample_mode the generator file records ("eval" when it records none)
    architecture: str = "dcgan"  # the run's architecture; "fc" has no BatchNorm, so its mode changes nothing

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.architecture == "fc":
            return f"{self.bn_mode} mode (no BatchNorm: both modes agree)"
        if self.bn_mode == "train":
            return f"train mode (BatchNorm batch statistics, batches of {self.batch_size})"
        return "eval mode (BatchNorm running statistics)"


def sampling_for(extra: dict[str, Any], bn_mode: str | None = None) -> Sampling:
    """The ``Sampling`` a generator file's metadata asks for, or ``bn_mode`` when given."""
    if bn_mode is not None and bn_mode not in SAMPLE_MODES:
        raise ParamsError(f"sample mode {bn_mode!r}: choose one of {', '.join(SAMPLE_MODES)}")
    recorded = str(extra.get("sample_mode", "eval"))
    if recorded not in SAMPLE_MODES:
        recorded = "eval"
    mode = bn_mode or recorded
    batch = int(extra.get("batch_size") or ORIGINAL_BATCH) if mode == "train" else EVAL_BATCH
    return Sampling(bn_mode=mode, batch_size=batch, output_range=str(extra.get("output_range", "minus_one_one")),
                    recorded_mode=recorded, architecture=str(extra.get("architecture", "dcgan")))


def sample_saved_generator(path: Path, n: int, seed: int, device: torch.device | str = "cpu",
                           bn_mode: str | None = None) -> tuple[torch.Tensor, Sampling, dict[str, Any]]:
    """``n`` images in [0, 1] from the generator saved at ``path``, its ``Sampling`` and its metadata.

    ``bn_mode`` None samples as the file records (the faithful recipe: train mode, batches of 64).
    """
    extra = generator_extra(path)
    sampling = sampling_for(extra, bn_mode)
    generator = load_generator(path, device)
    images = generated_images(generator, n, seed, device, sampling.output_range,
                              batch_size=sampling.batch_size, bn_mode=sampling.bn_mode)
    return images, sampling, extra


# Chapter 04's generators, in the order the evaluation reports them, and their names in tables.
GENERATOR_LABELS: dict[str, str] = {
    "faithful": "faithful",
    "corrected": "corrected",
    "corrected_augment": "corrected + flips/crops",
    "fc_gan": "FC-GAN",
    "wgan_gp": "WGAN-GP",
}


def generator_key(extra: dict[str, Any], hint: str = "") -> str:
    """A saved generator's key in ``GENERATOR_LABELS``: its recipe, ``corrected_augment`` when it
    trained on flipped and cropped images. ``hint`` (a file or run-folder name) stands in for
    metadata that files written before ``augment`` was recorded lack."""
    recipe = str(extra.get("recipe") or hint.split("-")[0] or "generator")
    augmented = extra.get("augment", "augment" in hint)
    return f"{recipe}_augment" if augmented else recipe


def saved_generators(files: dict[str, Path]) -> dict[str, Path]:
    """``{key: path}`` for generator files named ``{hint: path}``, in ``GENERATOR_LABELS`` order.

    The first file of each key wins; unknown recipes follow the known ones.
    """
    found: dict[str, Path] = {}
    for hint, path in files.items():
        found.setdefault(generator_key(generator_extra(path), hint), Path(path))
    order = {key: i for i, key in enumerate(GENERATOR_LABELS)}
    return dict(sorted(found.items(), key=lambda item: order.get(item[0], len(order))))
