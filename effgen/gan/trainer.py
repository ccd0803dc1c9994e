"""One GAN run's state and its training step: models, optimisers, data order, random streams, logs.

Every step is one discriminator (critic) update and one generator update; a WGAN-GP step takes
``n_critic`` critic updates. ``Trainer.state_dict`` holds everything a step depends on (models,
optimisers, schedulers, data order and every random stream), so a run resumed from it continues
bit for bit; ``effgen.gan.loop`` decides when to save and resume.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from effgen.data.batches import InMemoryBatches
from effgen.errors import ParamsError
from effgen.gan.augment import flip_and_crop
from effgen.gan.baselines import gradient_penalty
from effgen.gan.config import GanConfig
from effgen.gan.diagnostics import DIAGNOSTIC_COLUMNS, diagnostics_row
from effgen.gan.diffaugment import diff_augment
from effgen.gan.ema import recompute_batchnorm
from effgen.gan.losses import hinge_d_loss, hinge_g_loss
from effgen.gan.models import LATENT_DIM
from effgen.gan.networks import build_models
from effgen.gan.sampling import to_unit_range
from effgen.gan.schedules import after_epoch, set_rates
from effgen.runtime import ModelEma, keep_freed_memory_on, memory_format, place, seed_everything

HISTORY_COLUMNS = ("step", "loss_d", "loss_g", "d_real", "d_fake", "lr_g", "lr_d")
# Seeds of the separate CPU streams, offsets from config.seed: each stays reproducible alone.
NOISE_STREAM, AUGMENT_STREAM, FIXED_NOISE_STREAM, DIFFAUGMENT_STREAM, EMA_BN_STREAM = 1, 2, 3, 5, 6


def from_minus_one_one(images: torch.Tensor, data_range: str) -> torch.Tensor:
    """Real images in [-1, 1] -> the range the recipe trains on."""
    return (images + 1) / 2 if data_range == "zero_one" else images


def _stream(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Trainer:
    """Holds one run's state; ``effgen.gan.loop.train_gan`` is its public face."""

    def __init__(self, config: GanConfig, images: torch.Tensor, device: torch.device,
                 held_out: torch.Tensor | None = None) -> None:
        self.config = config
        self.device = device
        if config.precision == "bf16" and device.type not in ("cpu", "cuda"):
            raise ParamsError("GAN setting precision='bf16' runs on a CPU or CUDA device, "
                              f"not {device.type}")
        seed_everything(config.seed)
        self.generator, self.discriminator = build_models(config)
        # NHWC lets oneDNN pick faster convolution kernels on CPU (bench/bench_gan.py measures it).
        self.layout = memory_format(device)
        keep_freed_memory_on(device)
        place(self.generator, device)
        place(self.discriminator, device)
        betas = (config.beta1, config.beta2)
        # The fused kernel updates every tensor in one pass instead of ~10 ops per parameter tensor.
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.g_lr, betas=betas,
                                      fused=True)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.d_lr, betas=betas,
                                      fused=True)
        self.schedulers = [torch.optim.lr_scheduler.StepLR(opt, step_size=config.step_size,
                                                           gamma=config.gamma)
                           for opt in (self.opt_g, self.opt_d)]
        if not config.shuffle:
            # The original walked torchvision's stored CIFAR order, which mixes the classes, the
            # same way every epoch. Image-folder trees come sorted by class, so "no shuffle" here
            # means one seeded mixed order, fixed for the whole run.
            images = images[torch.randperm(images.shape[0], generator=_stream(config.seed))]
        self.batches = InMemoryBatches(images.to(device), batch_size=config.batch_size,
                                       shuffle=config.shuffle, seed=config.seed)
        self.noise = _stream(config.seed + NOISE_STREAM)
        self.augment_rng = _stream(config.seed + AUGMENT_STREAM)
        self.diffaugment_rng = _stream(config.seed + DIFFAUGMENT_STREAM)
        self.ema = ModelEma(self.generator, config.ema_decay) if config.ema_decay > 0 else None
        fixed_stream = _stream(config.seed + FIXED_NOISE_STREAM)
        self.fixed_noise = torch.randn(config.n_fixed, LATENT_DIM, 1, 1,
                                       generator=fixed_stream).to(device)
        self.held_out = None if held_out is None else self._as_trained(held_out.to(device))
        # Per-step (loss_d, loss_g, d_real, d_fake) stay on the device until written out, so the
        # loop never waits for the GPU; the learning rates are plain floats.
        self.rows: list[torch.Tensor] = []
        self.lrs: list[tuple[float, float]] = []
        self.diagnostics: list[tuple[float, ...]] = []
        self.ones = torch.ones(config.batch_size, device=device)
        self.zeros = torch.zeros(config.batch_size, device=device)
        # (step, the EMA generator with its BatchNorm re-estimated at that step)
        self._sampler: tuple[int, nn.Module] | None = None

    def _forward_precision(self) -> torch.autocast:
        """bf16 autocast around G's and D's forward passes when the run asks, else a no-op."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.config.precision == "bf16")

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
            "diagnostics": torch.tensor(self.diagnostics, dtype=torch.float64).reshape(
                -1, len(DIAGNOSTIC_COLUMNS)),
            # Only the runs that use them store these, so older runs' checkpoints stay as they were.
            **({"diffaugment_rng": self.diffaugment_rng.get_state()}
               if self.config.diffaugment else {}),
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
        # Checkpoints written before diagnostics existed have none; logging starts from here.
        saved = state.get("diagnostics", torch.empty(0, 0))
        self.diagnostics = [tuple(row) for row in saved.tolist()]
        self._sampler = None

    def history_tensor(self) -> torch.Tensor:
        if not self.rows:
            return torch.empty(0, len(HISTORY_COLUMNS), dtype=torch.float64)
        stats = torch.stack(self.rows).cpu().double()
        steps = torch.arange(1, len(self.rows) + 1, dtype=torch.float64)[:, None]
        return torch.cat([steps, stats, torch.tensor(self.lrs, dtype=torch.float64)], dim=1)

    def history(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.history_tensor().numpy(), columns=list(HISTORY_COLUMNS))
        return frame.astype({"step": "int64"})

    def diagnostics_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.diagnostics, columns=list(DIAGNOSTIC_COLUMNS))
        return frame.astype({"step": "int64"})

    # -- one step
    def _as_trained(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> the range and memory layout D is trained on."""
        scaled = from_minus_one_one(images, self.config.data_range)
        return scaled.contiguous(memory_format=self.layout)

    def _real_batch(self) -> torch.Tensor:
        (real,) = self.batches.next()
        if self.config.augment:
            real = flip_and_crop(real, self.augment_rng)
        return self._as_trained(real)

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
        set_rates(step, config, (self.opt_g, self.opt_d))
        lr_g, lr_d = self.opt_g.param_groups[0]["lr"], self.opt_d.param_groups[0]["lr"]
        for _ in range(config.n_critic):
            real = self._real_batch()
            with self._forward_precision():
                # .float(): the losses (and WGAN-GP's interpolates) are fp32 whatever the precision.
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
        self.rows.append(torch.stack([loss_d.detach(), loss_g.detach(),
                                      self._scores(real_out.detach()),
                                      self._scores(fake_out.detach())]).float())
        self.lrs.append((lr_g, lr_d))
        if (step + 1) % config.diagnostics_every == 0:
            self.diagnostics.append(diagnostics_row(step + 1, self.discriminator, self.generator,
                                                    real, fake, self.held_out, (lr_g, lr_d)))
        if (step + 1) % config.epoch_steps == 0:
            after_epoch((step + 1) // config.epoch_steps, config, self.schedulers)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator a run is judged by: the EMA copy when there is one.

        With ``ema_bn_passes`` the EMA copy's BatchNorm statistics are re-estimated first, on a
        copy (the EMA state itself goes on averaging), once per step at most.
        """
        if self.ema is None:
            return self.generator
        if self.config.ema_bn_passes == 0:
            return self.ema.model
        if self._sampler is None or self._sampler[0] != len(self.rows):
            model = recompute_batchnorm(self.ema.model, self.config.ema_bn_passes,
                                        self.config.batch_size, self.config.seed + EMA_BN_STREAM,
                                        self.device)
            self._sampler = (len(self.rows), model)
        return self._sampler[1]

    @torch.no_grad()
    def sample_fixed(self) -> torch.Tensor:
        """The fixed-noise grid in [0, 1]; train mode (the original's) updates BN running stats."""
        generator = self.sampling_generator
        was_training = generator.training
        generator.train(self.config.sample_mode == "train")
        try:
            images = generator(self.fixed_noise)
        finally:
            generator.train(was_training)
        return to_unit_range(images.float(), self.config.output_range).cpu()
