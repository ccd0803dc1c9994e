"""Device choice and the per-device speed settings (channels_last on CPU, bf16 autocast on CUDA)."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .errors import EffgenError


def pick_device(preference: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else must name an available device."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except RuntimeError as err:
        raise EffgenError(f"device {preference!r} is not a valid torch device: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EffgenError(f"device {preference!r} requested but CUDA is not available here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise EffgenError(f"device {preference!r} requested but MPS is not available here")
    return device


def memory_format(device: torch.device) -> torch.memory_format:
    # Depthwise and 1x1 convolutions run ~1.8x faster in NHWC on x86 CPUs (SPEC §6).
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast on CUDA only: on CPU it was measured slower, and MPS bf16 support varies."""
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
