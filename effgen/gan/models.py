"""Generator and discriminator exactly as the authors built them (SPEC §3): 303,776 + 663,296 params.

No layer has a bias: every convolution is followed by BatchNorm, or is the output layer,
and the original left biases off throughout. The discriminator returns *logits*; the
faithful recipe applies the original's sigmoid + BCE, the corrected one a stable logits loss.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from effgen.checkpoints import atomic_write, load_module_state, read_checkpoint
from effgen.errors import CheckpointError, ParamsError

LATENT_DIM = 100


class Generator(nn.Module):
    """z (N, 100, 1, 1) -> image (N, 3, 32, 32) in [-1, 1]."""

    def __init__(self, latent_dim: int = LATENT_DIM, widths: tuple[int, int, int] = (96, 64, 48)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.latent_dim = latent_dim
        self.widths = widths
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, w1, 4, 1, 0, bias=False),  # (N, 96, 4, 4)
            nn.BatchNorm2d(w1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w1, w2, 4, 2, 1, bias=False),  # (N, 64, 8, 8)
            nn.BatchNorm2d(w2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w2, w3, 4, 2, 1, bias=False),  # (N, 48, 16, 16)
            nn.BatchNorm2d(w3),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w3, 3, 4, 2, 1, bias=False),  # (N, 3, 32, 32)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:  # accept flat (N, 100) latents as well as (N, 100, 1, 1)
            z = z[:, :, None, None]
        return self.net(z)

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, 1, 1, generator=generator)
        return z.to(device)


class Discriminator(nn.Module):
    """image (N, 3, 32, 32) -> real/fake logit (N,).

    ``batchnorm=False`` is the SN-DCGAN shape (architecture ``dcgan_sn``): the same convolutions
    without BatchNorm, each with a bias instead (662,977 params), for spectral normalisation
    to replace the batch statistics.
    """

    def __init__(self, widths: tuple[int, int, int] = (64, 128, 256), slope: float = 0.2,
                 batchnorm: bool = True) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.widths = widths
        bias = not batchnorm

        def norm(channels: int) -> list[nn.Module]:
            return [nn.BatchNorm2d(channels)] if batchnorm else []

        self.net = nn.Sequential(
            nn.Conv2d(3, w1, 4, 2, 1, bias=bias),  # (N, 64, 16, 16)
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(w1, w2, 4, 2, 1, bias=bias),  # (N, 128, 8, 8)
            *norm(w2),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(w2, w3, 4, 2, 1, bias=bias),  # (N, 256, 4, 4)
            *norm(w3),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(w3, 1, 4, 1, 0, bias=bias),  # (N, 1, 1, 1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image).flatten()  # (N,) logits


def dcgan_init_(module: nn.Module) -> None:
    """The DCGAN paper's N(0, 0.02) convolutions and N(1, 0.02) BatchNorm scales (corrected recipe)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


# The ``architecture`` a generator file records, and how many entries its shape list has.
GENERATOR_SHAPES = {"dcgan": ("widths", 3), "resnet": ("widths", 4), "fc": ("hidden", 2)}
GENERATOR_KINDS = tuple(GENERATOR_SHAPES)


def savable_kind(generator: nn.Module) -> str | None:
    """The architecture ``save_generator`` records for ``generator`` ("dcgan", "resnet", "fc"), or None."""
    from effgen.gan.baselines import FCGenerator  # imported here: baselines imports this module
    from effgen.gan.resnet import ResNetGenerator

    classes = {"dcgan": Generator, "resnet": ResNetGenerator, "fc": FCGenerator}
    return next((kind for kind, cls in classes.items() if isinstance(generator, cls)), None)


def generator_kind(generator: nn.Module) -> str:
    """Which architecture ``save_generator`` records for ``generator``: "dcgan", "resnet" or "fc"."""
    kind = savable_kind(generator)
    if kind is None:
        raise ParamsError(f"save_generator stores DCGAN, ResNet and FC generators, not {type(generator).__name__}")
    return kind


def save_generator(generator: nn.Module, path: Path, extra: dict[str, Any] | None = None) -> None:
    """A weights-only checkpoint: the state dict plus plain-typed metadata, written atomically.

    A DCGAN or ResNet file holds ``latent_dim`` and ``widths``, as DCGAN files always have; an
    FC-GAN file holds ``hidden`` instead. Each names its ``architecture`` (files without one are
    DCGAN files), so ``load_generator`` rebuilds the right class.
    """
    kind = generator_kind(generator)
    shape_key, _ = GENERATOR_SHAPES[kind]
    payload: dict[str, Any] = {
        "architecture": kind,
        "state_dict": generator.state_dict(),
        "latent_dim": generator.latent_dim,
        "extra": extra or {},
        shape_key: list(getattr(generator, shape_key)),
    }
    atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))


def read_generator_file(path: Path) -> dict[str, Any]:
    """The checked payload of a generator file (on the CPU); a damaged or foreign file raises ``CheckpointError``."""
    payload = read_checkpoint(path, "generator file", ("state_dict", "latent_dim"))
    kind = payload.get("architecture", "dcgan")
    if kind not in GENERATOR_SHAPES:
        raise CheckpointError(f"{path}: generator architecture {kind!r} is unknown; "
                              f"expected one of {', '.join(GENERATOR_KINDS)}")
    shape_key, shape_length = GENERATOR_SHAPES[kind]
    shape = payload.get(shape_key)
    if (not isinstance(shape, (list, tuple)) or not all(isinstance(w, int) and w > 0 for w in shape)
            or len(shape) != shape_length):
        raise CheckpointError(f"{path}: not an effgen generator file ({shape_key} is {shape!r})")
    if not isinstance(payload["latent_dim"], int) or payload["latent_dim"] < 1:
        raise CheckpointError(f"{path}: not an effgen generator file (latent_dim is {payload['latent_dim']!r})")
    if not isinstance(payload.get("extra", {}), dict):
        raise CheckpointError(f"{path}: not an effgen generator file (its metadata is not a mapping)")
    return payload


def generator_extra(path: Path) -> dict[str, Any]:
    """The metadata saved with a generator (recipe, steps, output_range, sample_mode, batch_size...)."""
    return dict(read_generator_file(path).get("extra", {}))


def load_generator(path: Path, device: torch.device | str = "cpu") -> nn.Module:
    """A saved DCGAN ``Generator``, ``ResNetGenerator`` or ``FCGenerator``, on ``device`` and in eval mode."""
    payload = read_generator_file(path)
    kind = payload.get("architecture", "dcgan")
    if kind == "dcgan":
        generator: nn.Module = Generator(payload["latent_dim"], tuple(payload["widths"]))
    elif kind == "resnet":
        from effgen.gan.resnet import ResNetGenerator

        generator = ResNetGenerator(payload["latent_dim"], tuple(payload["widths"]))
    else:
        from effgen.gan.baselines import FCGenerator

        generator = FCGenerator(payload["latent_dim"], tuple(payload["hidden"]))
    load_module_state(generator, payload["state_dict"], Path(path), "generator")
    return generator.to(device).eval()


def layer_table(module: nn.Module, input_shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """One row per leaf layer: its name, its output shape for one input, and its parameter count.

    The paper's Figure 3 drew the architecture; this is the same information, measured by
    running ``module`` once on zeros of ``input_shape`` (batch dimension included).
    """
    rows: list[dict[str, Any]] = []
    hooks = []
    for name, layer in module.named_modules():
        if any(True for _ in layer.children()):
            continue  # containers: their leaves are listed instead

        def record(layer: nn.Module, _inputs: Any, output: torch.Tensor, name: str = name) -> None:
            rows.append({"layer": name, "type": describe_layer(layer), "output": tuple(output.shape[1:]),
                         "params": sum(p.numel() for p in layer.parameters())})

        hooks.append(layer.register_forward_hook(record))
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(torch.zeros(input_shape, device=next(module.parameters()).device))
    finally:
        module.train(was_training)
        for hook in hooks:
            hook.remove()
    return rows


def describe_layer(layer: nn.Module) -> str:
    """A short label: ``ConvTranspose2d 100->96, k4 s1 p0``, ``BatchNorm2d 96``, ``LeakyReLU 0.2``."""
    kind = type(layer).__name__
    if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        return (f"{kind} {layer.in_channels}->{layer.out_channels}, k{layer.kernel_size[0]} "
                f"s{layer.stride[0]} p{layer.padding[0]}")
    if isinstance(layer, nn.BatchNorm2d):
        return f"{kind} {layer.num_features}"
    if isinstance(layer, nn.GroupNorm):
        return f"{kind} {layer.num_groups} group, {layer.num_channels}"
    if isinstance(layer, nn.Linear):
        return f"{kind} {layer.in_features}->{layer.out_features}"
    if isinstance(layer, nn.LeakyReLU):
        return f"{kind} {layer.negative_slope:g}"
    return kind
