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

from ..errors import DataError

LATENT_DIM = 100


class Generator(nn.Module):
    """z (N, 100, 1, 1) -> image (N, 3, 32, 32) in [-1, 1]."""

    kind = "dcgan"  # recorded by ``save_generator``

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


def save_generator(generator: nn.Module, path: Path, extra: dict[str, Any] | None = None) -> None:
    """A weights-only checkpoint: the state dict plus plain-typed metadata, written atomically.

    ``architecture`` names the generator class (``"dcgan"``: ``Generator``; ``"resnet"``:
    ``effgen.gan.resnet.ResNetGenerator``) so that ``load_generator`` rebuilds either; files
    written before it existed hold DCGAN generators and load as such.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "state_dict": generator.state_dict(),
        "architecture": getattr(generator, "kind", "dcgan"),
        "latent_dim": generator.latent_dim,
        "widths": list(generator.widths),
        "extra": extra or {},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_generator(path: Path, device: torch.device | str = "cpu") -> nn.Module:
    """The generator in a ``save_generator`` file, on ``device``, in eval mode."""
    from .resnet import ResNetGenerator

    payload = torch.load(path, map_location=device, weights_only=True)
    classes = {"dcgan": Generator, "resnet": ResNetGenerator}
    architecture = payload.get("architecture", "dcgan")
    if architecture not in classes:
        raise DataError(f"{path}: unknown generator architecture {architecture!r}")
    generator = classes[architecture](payload["latent_dim"], tuple(payload["widths"]))
    generator.load_state_dict(payload["state_dict"])
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
