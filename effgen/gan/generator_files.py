"""Generator files: a trained generator's weights and metadata, kept apart from its training state.

A generator file (``generator.pt``) is what chapters 05 and 06 and ``effgen fid`` score, so it
must rebuild its network without the run's configuration. It records the ``architecture`` and
the shape list that class is built from (DCGAN files written before the record existed are read
as DCGAN). This module knows every savable class; the network modules know nothing of files,
so no network module imports another through here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from effgen.checkpoints import atomic_torch_save, load_module_state, read_checkpoint
from effgen.errors import CheckpointError, ParamsError
from effgen.gan.baselines import FCGenerator
from effgen.gan.models import Generator, RebalancedGenerator
from effgen.gan.resnet import ResNetGenerator

# The ``architecture`` a generator file records -> its class, the constructor argument holding
# its shape, and how many entries that shape list has.
GENERATOR_CLASSES: dict[str, tuple[type[nn.Module], str, int]] = {
    "dcgan": (Generator, "widths", 3),
    "resnet": (ResNetGenerator, "widths", 4),
    "fc": (FCGenerator, "hidden", 2),
    "rebalanced": (RebalancedGenerator, "widths", 4),
}
GENERATOR_KINDS = tuple(GENERATOR_CLASSES)


def savable_kind(generator: nn.Module) -> str | None:
    """The architecture ``save_generator`` records for ``generator``, or None if it cannot."""
    return next((kind for kind, (cls, _, _) in GENERATOR_CLASSES.items()
                 if isinstance(generator, cls)), None)


def generator_kind(generator: nn.Module) -> str:
    """Which architecture ``save_generator`` records for ``generator``; ParamsError if none."""
    kind = savable_kind(generator)
    if kind is None:
        raise ParamsError(f"save_generator stores {', '.join(GENERATOR_KINDS)} generators, "
                          f"not {type(generator).__name__}")
    return kind


def save_generator(generator: nn.Module, path: Path, extra: dict[str, Any] | None = None) -> None:
    """A weights-only checkpoint: the state dict plus plain-typed metadata, written atomically."""
    kind = generator_kind(generator)
    _, shape_key, _ = GENERATOR_CLASSES[kind]
    payload: dict[str, Any] = {
        "architecture": kind,
        "state_dict": generator.state_dict(),
        "latent_dim": generator.latent_dim,
        "extra": extra or {},
        shape_key: list(getattr(generator, shape_key)),
    }
    atomic_torch_save(payload, Path(path))


def read_generator_file(path: Path) -> dict[str, Any]:
    """The checked payload of a generator file, on the CPU.

    A damaged or foreign file raises ``CheckpointError``.
    """
    payload = read_checkpoint(path, "generator file", ("state_dict", "latent_dim"))
    kind = payload.get("architecture", "dcgan")
    if kind not in GENERATOR_CLASSES:
        raise CheckpointError(f"{path}: generator architecture {kind!r} is unknown; "
                              f"expected one of {', '.join(GENERATOR_KINDS)}")
    _, shape_key, shape_length = GENERATOR_CLASSES[kind]
    shape = payload.get(shape_key)
    if (not isinstance(shape, (list, tuple)) or not all(isinstance(w, int) and w > 0 for w in shape)
            or len(shape) != shape_length):
        raise CheckpointError(f"{path}: not an effgen generator file ({shape_key} is {shape!r})")
    if not isinstance(payload["latent_dim"], int) or payload["latent_dim"] < 1:
        raise CheckpointError(f"{path}: not an effgen generator file "
                              f"(latent_dim is {payload['latent_dim']!r})")
    if not isinstance(payload.get("extra", {}), dict):
        raise CheckpointError(f"{path}: not an effgen generator file "
                              "(its metadata is not a mapping)")
    return payload


def generator_extra(path: Path) -> dict[str, Any]:
    """The metadata saved with a generator (recipe, steps, output_range, sample_mode...)."""
    return dict(read_generator_file(path).get("extra", {}))


def load_generator(path: Path, device: torch.device | str = "cpu") -> nn.Module:
    """The saved generator, rebuilt as the class its file records, on ``device``, in eval mode."""
    payload = read_generator_file(path)
    cls, shape_key, _ = GENERATOR_CLASSES[payload.get("architecture", "dcgan")]
    generator = cls(payload["latent_dim"], tuple(payload[shape_key]))
    load_module_state(generator, payload["state_dict"], Path(path), "generator")
    return generator.to(device).eval()
