"""How a computation runs here: on which device and with which speed settings (channels_last on CPU,
bf16 autocast on CUDA, freed host memory kept for reuse), seeded how, showing its progress how, and
the moving average of a model's weights that both model families can train with (``ModelEma``).

Progress bars suit both an interactive notebook and a batch run: a widget in Jupyter, text lines
under papermill, in CI and in a terminal, and nothing where the runner sets ``EFFGEN_PROGRESS=0``,
so that no bar ends up as stderr noise in the rendered book.
"""
from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import os
import random
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn
from tqdm import std

from effgen.errors import EffgenError


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


ModuleT = TypeVar("ModuleT", bound=nn.Module)

_flushing = 0  # depth of nested flush_denormals blocks


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Inside the block, CPU arithmetic treats subnormal floats (magnitude below 1.2e-38) as zero.

    Long high-rate runs with weight decay leave the weights of channels they stopped using in the
    subnormal range, where each floating-point operation on x86 takes a slow microcode path. Measured
    here: after 6,000 steps at lr 1e-2, 9 % of the paper model's values were subnormal, and one training
    step from that checkpoint took 0.92 s instead of 0.21 s flushed; ``bench/bench_denormals.py`` times
    committed weights of that kind (a step 1.6-1.75x slower than a fresh model's unless flushed).
    Flushing changes only values already within 1.2e-38 of zero. Blocks nest; PyTorch's default
    (subnormals kept) returns when the outermost one ends.
    """
    global _flushing
    if _flushing == 0:
        torch.set_flush_denormal(True)
    _flushing += 1
    try:
        yield
    finally:
        _flushing -= 1
        if _flushing == 0:
            torch.set_flush_denormal(False)


def place(module: ModuleT, device: torch.device) -> ModuleT:
    """``module`` moved to ``device``, in the memory layout that is fastest there (``memory_format``)."""
    # Module.to accepts memory_format at run time; PyTorch's type stubs do not declare it.
    module.to(device=device, memory_format=memory_format(device))  # type: ignore[call-overload]
    return module


# glibc mallopt parameters, and the values that keep a training step's freed activations in the heap.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEPT_MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed mmap threshold (64-bit)
_KEPT_TRIM_THRESHOLD = 1 << 30
_GLIBC_MMAP_THRESHOLD = _GLIBC_TRIM_THRESHOLD = 128 << 10  # glibc's own starting values


def keep_freed_memory(keep: bool = True) -> bool:
    """Let freed host memory stay in the process for reuse (glibc only).

    A CPU training step allocates and frees the same activations every time. glibc hands blocks of
    a few MB and more to the kernel when they are freed and maps fresh zeroed pages for the next
    step, so each classifier step page-faulted ~7,000 pages here: ~10-15% of a lone step's time
    (``bench/bench_classifier.py``), nothing measurable beside a GAN run sharing the memory bus.
    Raising the mmap and trim thresholds keeps those blocks in the heap. The process then holds
    its peak step memory, and no computed number changes. ``keep=False`` sets glibc's starting
    values back, but not its adaptive threshold: that is gone for the process once changed.
    Returns False where the C library is not glibc (macOS, Windows, musl): nothing is changed.
    """
    libc = _glibc()
    if libc is None:
        return False
    mmap_threshold = _KEPT_MMAP_THRESHOLD if keep else _GLIBC_MMAP_THRESHOLD
    trim_threshold = _KEPT_TRIM_THRESHOLD if keep else _GLIBC_TRIM_THRESHOLD
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD,
                                                                                       trim_threshold))


def keep_freed_memory_on(device: torch.device) -> None:
    """``keep_freed_memory()`` where it matters: host memory, i.e. a CPU run (see there)."""
    if device.type == "cpu":
        keep_freed_memory()


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (loaded once), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it; musl's mallopt ignores these
    except (OSError, AttributeError):
        return None
    return libc


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
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' if threads != 1 else ''})"
    return str(device)


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed every global RNG and return a dedicated CPU generator for data order."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def ema_decay_at(updates: int, decay: float, offset: int = 0) -> float:
    """The decay of EMA update number ``updates`` (1-based): TensorFlow's warm-up
    ``min(decay, (1 + t) / (10 + t))`` with ``t = updates - 1 + offset``."""
    t = max(updates - 1 + offset, 0)
    return min(decay, (1 + t) / (10 + t))


class ModelEma:
    """A frozen copy of ``model`` that follows it by an exponential moving average [Polyak & Juditsky
    1992; Karras et al. 2018; Yazıcı et al. 2019].

    After every optimisation step, each float tensor of the copy moves towards the live one:
    ``ema = d * ema + (1 - d) * live``. The decay ``d`` warms up as TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)`` does (:func:`ema_decay_at`), so a short run is not
    dominated by its first, untrained weights: with ``decay`` 0.999 the average spans ~45 steps
    after 400 updates and ~1,000 after 50,000. ``offset`` shifts that ramp by whole updates: the GAN
    counts the updates before this one (0), the classifier this one too (1); each keeps its own so
    that its stored runs repeat.

    BatchNorm running means and variances are float buffers and are averaged the same way (as
    timm's ``ModelEmaV2`` does); integer buffers (``num_batches_tracked``) are copied. The copy
    never trains: it is used in eval mode. ``state_dict`` holds ``model``, ``updates`` and ``decay``.
    """

    def __init__(self, model: nn.Module, decay: float, offset: int = 0) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.offset = offset
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def _pairs(self, live: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor],
                                               list[torch.Tensor], list[torch.Tensor]]:
        ema_state, live_state = self.model.state_dict(), live.state_dict()
        if ema_state.keys() != live_state.keys():
            raise ValueError("the EMA copy and the live model have different state-dict keys")
        floats = [k for k, v in ema_state.items() if v.is_floating_point()]
        others = [k for k, v in ema_state.items() if not v.is_floating_point()]
        return ([ema_state[k] for k in floats], [live_state[k].detach() for k in floats],
                [ema_state[k] for k in others], [live_state[k] for k in others])

    @torch.no_grad()
    def update(self, live: nn.Module) -> float:
        """Move every float tensor of the copy towards ``live``'s; returns the decay used."""
        self.updates += 1
        decay = ema_decay_at(self.updates, self.decay, self.offset)
        ema_floats, live_floats, ema_other, live_other = self._pairs(live)
        torch._foreach_lerp_(ema_floats, live_floats, 1.0 - decay)
        for target, source in zip(ema_other, live_other):
            target.copy_(source)
        return decay

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])


T = TypeVar("T")


# Papermill's injected cell starts with this comment (after any ``#|`` options the runner adds).
PAPERMILL_HEADER = "# Parameters"
TEXT_MININTERVAL = 10.0  # seconds between text updates: an executed notebook or a CI log keeps every one


def progress_enabled() -> bool:
    return os.environ.get("EFFGEN_PROGRESS", "1") != "0"


def parameters_injected() -> bool:
    """True in a kernel whose notebook papermill parameterised: the runner's, or papermill by hand.

    Papermill runs its injected cell through the kernel like any other, so the kernel's input
    history holds it; nothing else tells a batch execution from a person's Run All in Jupyter
    (both are nbclient driving an ipykernel). Outside IPython it is False.
    """
    shell = ipython_shell()
    if shell is None:
        return False
    return any(_first_code_line(source).startswith(PAPERMILL_HEADER) for source in shell.user_ns.get("In", []))


def ipython_shell() -> Any | None:
    """The running IPython shell, without importing IPython into a process that has not."""
    module = sys.modules.get("IPython")
    return module.get_ipython() if module is not None else None


def _first_code_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith("#|"):
            return line.lstrip()
    return ""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> std.tqdm:
    """A bar over ``iterable``: a widget in Jupyter, text under papermill, in CI and in a terminal.

    Papermill and CI get text even in a kernel: their output is a saved notebook or a log, where a
    widget is only its placeholder text. Text updates come at most every ``TEXT_MININTERVAL``
    seconds there, so a long run does not fill the notebook or log with updates.
    """
    if not progress_enabled():
        # tqdm.auto would still probe for ipywidgets and warn on stderr, which lands in the book.
        return std.tqdm(iterable, **{**kwargs, "disable": True})
    kwargs.setdefault("dynamic_ncols", True)
    if _in_ci() or parameters_injected():
        kwargs.setdefault("mininterval", TEXT_MININTERVAL)
        return std.tqdm(iterable, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)
