"""The C kernels under ``csrc/``: built once per machine with its C compiler, loaded with ctypes.

``effgen.kernels.norm_act`` (batch norm with its activation), ``effgen.kernels.depthwise`` (a 3x3 depthwise
convolution's backward pass) and ``effgen.kernels.squeeze_excite`` (squeeze-and-excitation's backward pass) call
them on the CPU, where PyTorch's own kernels make more passes over memory than the work needs. The sources are compiled with ``-O3 -march=native -fopenmp``
into one shared library, cached under ``~/.cache/effgen/kernels`` (``EFFGEN_KERNEL_CACHE`` moves
it) by a key of the sources, flags, compiler version and CPU. OpenMP threads come from the
runtime PyTorch has already loaded, and each call is given ``torch.get_num_threads()``.

No compiler, a failed build or ``EFFGEN_CPU_KERNELS=0``: ``library()`` is None and every caller falls
back to PyTorch's kernels, slower; a failed build warns once.

The fallback computes the same thing, rounded differently, so its numbers are close but not the same.
Each kernel agrees with PyTorch's to float32 rounding, and one training step's loss to within 1e-6 relative;
the differences then compound as training goes on. Measured on one thread, 40 steps of the paper model
at batch 64 on AddNIST: training losses differed by up to 4e-4 relative (2.7803202 against 2.7795303
at the last step), validation accuracy by one sample in 512, and single weights by up to 0.1. The stated
tolerance, tested in ``tests/test_faults.py``: 1e-5 relative on the first step's loss, 1e-3 over 40 steps.
A long run on the other path is therefore another run of the same recipe, not a replay: results repeat
bit for bit only on the same path and thread count, which is why a chapter's fingerprint records the
C sources its run loaded (``PACKAGE_FILES_USED``; empty when PyTorch's kernels ran).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from effgen.checkpoints import atomic_write

SOURCE_DIR = Path(__file__).with_name("csrc")
SOURCES: tuple[str, ...] = ("bn_act.c", "channel_scale.c", "depthwise.c")
# The sources behind the library this process loaded: a frozen chapter's fingerprint records these
# (effgen.book.runner reads PACKAGE_FILES_USED of every loaded module), so editing a kernel makes
# exactly the chapters that trained through it stale. Empty when PyTorch's kernels ran instead.
PACKAGE_FILES_USED: set[str] = set()
COMPILE_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC")

_enabled = os.environ.get("EFFGEN_CPU_KERNELS", "1") != "0"


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """PyTorch's own kernels inside the block (for comparisons and benchmarks)."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


def library() -> ctypes.CDLL | None:
    """The built kernels when switched on and buildable here, else None."""
    return _build() if _enabled else None


def loaded() -> ctypes.CDLL:
    """The built kernels, for code that ``takes`` has admitted: they are switched on and built."""
    lib = library()
    if lib is None:
        raise RuntimeError("effgen's C kernels were called, but they are switched off or not built here")
    return lib


def takes(x: torch.Tensor, *weights: torch.Tensor) -> ctypes.CDLL | None:
    """``library()`` if its kernels can read ``x`` and ``weights``, else None.

    Every kernel walks float32 (N, C, H, W) tensors on the CPU in channels_last order. Under
    ``torch.compile`` the callers keep to PyTorch's ops, which the compiler can trace.
    """
    readable = (x.device.type == "cpu" and x.dim() == 4 and x.dtype == torch.float32
                and all(weight.dtype == torch.float32 for weight in weights)
                and x.is_contiguous(memory_format=torch.channels_last) and not torch.compiler.is_compiling())
    return library() if readable else None


@functools.cache
def _build() -> ctypes.CDLL | None:
    sources = [SOURCE_DIR / name for name in SOURCES]
    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in sources]
    compiler = shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc")
    if compiler is None:
        _fall_back(f"no C compiler ({os.environ.get('CC') or 'cc or gcc'}) on PATH")
        return None
    key = hashlib.sha256("\n".join([*digests, *COMPILE_FLAGS]).encode()
                         + _compiler_version(compiler) + _cpu_identity()).hexdigest()[:16]
    built = _cache_dir() / f"effgen-kernels-{key}.so"
    if not built.is_file():
        try:
            built.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            _fall_back(f"cannot create the kernel cache {built.parent} ({err.strerror}); "
                       "set EFFGEN_KERNEL_CACHE to a writable folder")
            return None
        # Linked to a temporary name and renamed: two processes building at once both succeed.
        # Compiling and linking are separate steps so that no math flag can bring a
        # process-wide floating-point mode into the link.
        with tempfile.TemporaryDirectory(dir=built.parent) as scratch:
            objects = [Path(scratch) / f"{path.stem}.o" for path in sources]
            try:
                for path, obj in zip(sources, objects):
                    _run_compiler([compiler, *COMPILE_FLAGS, "-c", str(path), "-o", str(obj)])
                atomic_write(built, lambda tmp: _run_compiler([compiler, "-shared", "-fopenmp", *map(str, objects),
                                                          "-lm", "-o", str(tmp)]))
            except _BuildError as err:
                _fall_back(str(err))
                return None
    lib = _declare(ctypes.CDLL(str(built)))
    PACKAGE_FILES_USED.update(str(path) for path in sources)
    return lib


class _BuildError(Exception):
    """A compiler or linker command failed; the message is the command and the end of its errors."""


def _run_compiler(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise _BuildError(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    pointer, size, real, integer = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int
    signatures = {
        "bn_act_forward": [pointer, pointer, size, size, pointer, pointer, real, integer, real, pointer,
                           pointer, pointer, integer],
        "bn_act_backward": [pointer, pointer, pointer, size, size, pointer, pointer, pointer, pointer,
                            integer, real, pointer, pointer, integer],
        "channel_scale_gate_grad": [pointer, pointer, pointer, size, size, size, integer],
        "channel_scale_input_grad": [pointer, pointer, pointer, pointer, size, size, size, integer],
        "depthwise3x3_backward": [pointer, pointer, pointer, pointer, pointer, size, size, size, size, size,
                                  integer],
    }
    for name, arguments in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = arguments, None
    return lib


def _fall_back(reason: str) -> None:
    warnings.warn(f"effgen.kernels.build: {reason}; PyTorch's own CPU kernels are used instead (slower, and "
                  "rounded differently: results agree to about 1e-3 relative, not bit for bit)", RuntimeWarning,
                  stacklevel=3)


def _cache_dir() -> Path:
    if env := os.environ.get("EFFGEN_KERNEL_CACHE"):
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "effgen" / "kernels"


def _compiler_version(compiler: str) -> bytes:
    return subprocess.run([compiler, "--version"], capture_output=True).stdout


def _cpu_identity() -> bytes:
    """What -march=native compiles for: a library built on another CPU model may not run here."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor().encode()
    lines = {line for line in info.splitlines() if line.startswith(("model name", "flags"))}
    return "\n".join(sorted(lines)).encode()
