"""Fréchet Inception Distance on in-memory image tensors [@heusel2017ttur].

The network, its weights and the distance formula are pytorch-fid's own (``InceptionV3([3])``:
2048-d pool features; bilinear resize to 299; inputs in [0, 1]). What this module adds:

- images go straight from tensors to the network, in batches, channels_last on CPU; they are
  first rounded to 8-bit levels, so a set scores exactly as its PNG files would in pytorch-fid;
- statistics of a dataset split are cached as ``.npz`` (``mu``, ``sigma``, ``n``, a JSON
  ``provenance``, optionally the ``features``), readable by ``python -m pytorch_fid`` too;
- an exact, faster trace term when one side has at most 2,048 samples (see ``frechet_distance``);
- clean-fid's resize as an option (``resize="clean"``): each channel of the 8-bit image upsampled to
  299x299 by PIL's bicubic filter [@parmar2022cleanfid], so what that resize alone moves can be measured
  with the same network and formula.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch import nn

from effgen.checkpoints import atomic_write
from effgen.errors import DataError
from effgen.metrics.inception_weights import fid_inception_network
from effgen.runtime import keep_freed_memory_on, memory_format, progress

FEATURE_DIM = 2048
TTUR_MIN_N = 10_000          # Heusel et al. advise at least this many samples per side
FULL_RANK_MIN_N = FEATURE_DIM + 1  # fewer samples cannot give a full-rank 2048x2048 covariance
STATS_VERSION = 1            # bump when the cached statistics change meaning
PARTIAL_SAVE_SECONDS = 300.0  # how often a long feature pass keeps what it has (see inception_features)
INCEPTION_SIZE = 299
RESIZES = ("pytorch-fid", "clean")  # pytorch-fid's bilinear resize inside the network; clean-fid's PIL bicubic


class ImageSetLike(Protocol):
    images: torch.Tensor          # (N, 3, H, W) in [-1, 1]
    provenance: dict[str, Any]


def quantise(images01: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> the nearest 8-bit level, as saving to PNG (and reading back) would give."""
    return images01.clamp(0, 1).mul(255).round().div(255)


def clean_resize(images01: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) images in [0, 1] -> (N, 3, 299, 299) in [0, 1], as clean-fid's "clean" mode resizes.

    Each channel of the 8-bit image is resized on its own as a float image (PIL mode "F") with the
    bicubic filter and clipped to [0, 255]. pytorch-fid's network then sees a 299x299 input, for which
    its own bilinear resize is the identity.
    """
    levels = quantise(images01.float()).mul(255).round().numpy().astype(np.float32)  # (N, 3, H, W) in 0..255
    size = (INCEPTION_SIZE, INCEPTION_SIZE)
    out = np.empty((len(levels), 3, *size), dtype=np.float32)
    for i, image in enumerate(levels):
        for c, channel in enumerate(image):
            resized = Image.fromarray(channel, mode="F").resize(size, resample=Image.Resampling.BICUBIC)
            out[i, c] = np.asarray(resized).clip(0, 255)
    return torch.from_numpy(out).div_(255)


def _check_resize(resize: str) -> None:
    if resize not in RESIZES:
        raise DataError(f"unknown FID resize {resize!r} (choose from {', '.join(RESIZES)})")


@lru_cache(maxsize=2)
def _inception(device: str) -> nn.Module:
    from pytorch_fid.inception import InceptionV3

    device_ = torch.device(device)
    # pytorch-fid's network with the resolved weights file loaded explicitly: never a download.
    net = fid_inception_network(InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]).to(device_)
    return net.to(memory_format=memory_format(device_))


@torch.no_grad()
def inception_features(images01: torch.Tensor, device: torch.device | str = "cpu", batch_size: int = 50,
                       desc: str = "Inception features", partial: Path | None = None,
                       resize: str = "pytorch-fid") -> np.ndarray:
    """(N, 3, H, W) images in [0, 1] -> (N, 2048) float32 pool features, resized to 299x299 as ``resize``
    says (``RESIZES``).

    fp32 throughout: bf16 would move FID by more than the 0.05 it is checked to.

    10,000 images take about two hours on one core of a small CPU, longer than a session may
    last. With ``partial``, the features computed so far are written to that ``.npy`` file every
    ``PARTIAL_SAVE_SECONDS`` or so, and a later call for the same images continues after them, in
    the same batches, so the result is what one uninterrupted pass gives. The caller names the
    file by the images' content (``cached_stats`` does) and deletes it afterwards.
    """
    if images01.dim() != 4 or images01.shape[1] != 3:
        raise DataError(f"FID needs (N, 3, H, W) RGB images, got shape {tuple(images01.shape)}")
    _check_resize(resize)
    device = torch.device(device)
    net = _inception(str(device))
    layout = memory_format(device)
    keep_freed_memory_on(device)
    out = np.empty((len(images01), FEATURE_DIM), dtype=np.float32)
    done = _read_partial(partial, out, batch_size) if partial is not None else 0
    starts = range(done, len(images01), batch_size)
    saved_at = time.monotonic()
    for start in progress(starts, desc=desc, total=len(starts), unit="batch"):
        batch = quantise(images01[start:start + batch_size].float())
        if resize == "clean":
            batch = clean_resize(batch)
        batch = batch.to(device).contiguous(memory_format=layout)
        out[start:start + len(batch)] = net(batch)[0].flatten(1).cpu().numpy()
        if partial is not None and time.monotonic() - saved_at >= PARTIAL_SAVE_SECONDS:
            _write_partial(partial, out[:start + len(batch)])
            saved_at = time.monotonic()
    return out


def _read_partial(partial: Path, out: np.ndarray, batch_size: int) -> int:
    """Fill the head of ``out`` from an earlier pass's ``partial`` file; returns how many rows."""
    if not partial.is_file():
        return 0
    try:
        earlier = np.load(partial, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        warnings.warn(f"ignoring unreadable partial Inception features {partial}: {type(err).__name__}",
                      stacklevel=3)
        return 0
    if earlier.ndim != 2 or earlier.shape[1] != FEATURE_DIM or len(earlier) > len(out) \
            or len(earlier) % batch_size and len(earlier) != len(out):  # other batches: other float bits
        warnings.warn(f"ignoring partial Inception features {partial} of shape {earlier.shape}: they do not "
                      f"continue {len(out)} images in batches of {batch_size}", stacklevel=3)
        return 0
    out[:len(earlier)] = earlier
    return len(earlier)


def _write_partial(partial: Path, features: np.ndarray) -> None:
    def save(tmp: Path) -> None:
        with tmp.open("wb") as handle:  # a handle: given a name, np.save would append ".npy" to it
            np.save(handle, features)

    atomic_write(partial, save)


@dataclass
class FidStats:
    """Mean and covariance of the Inception features of ``n`` images, and where they came from."""

    mu: np.ndarray                       # (2048,) float64
    sigma: np.ndarray                    # (2048, 2048) float64
    n: int | None                        # None only for statistics files that do not record it
    provenance: dict[str, Any] = field(default_factory=dict)
    features: np.ndarray | None = None   # (n, 2048) float32, kept for the exact small-n path

    @classmethod
    def from_features(cls, features: np.ndarray, provenance: dict[str, Any] | None = None,
                      keep_features: bool = True) -> FidStats:
        if len(features) < 2:
            raise DataError(f"FID statistics need at least 2 images, got {len(features)}")
        wide = features.astype(np.float64)
        return cls(wide.mean(axis=0), np.cov(wide, rowvar=False), len(features), dict(provenance or {}),
                   features if keep_features else None)

    def save(self, path: Path) -> Path:
        arrays: dict[str, Any] = {"mu": self.mu, "sigma": self.sigma, "n": np.int64(self.n or -1),
                                  "provenance": np.array(json.dumps(self.provenance))}
        if self.features is not None:
            arrays["features"] = self.features

        def save(tmp: Path) -> None:
            with tmp.open("wb") as handle:  # a handle: given a name, np.savez would append ".npz" to it
                np.savez(handle, **arrays)

        return atomic_write(path, save)

    @classmethod
    def load(cls, path: Path) -> FidStats:
        """Our files, or pytorch-fid's own (``mu`` and ``sigma`` only: ``n`` is then unknown)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if not hasattr(data, "files"):  # a bare .npy saved under an .npz name
                    raise ValueError("a single array, not an .npz archive")
                mu, sigma = data["mu"], data["sigma"]
                n = int(data["n"]) if "n" in data.files else -1
                provenance = json.loads(str(data["provenance"])) if "provenance" in data.files else {}
                features = data["features"] if "features" in data.files else None
        except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, zlib.error) as err:
            reason = " ".join(str(err).split())[:120]
            raise DataError(f"{path}: not a FID statistics file, or a damaged one (needs arrays mu and sigma; "
                            f"{type(err).__name__}: {reason})") from None
        if mu.shape != (FEATURE_DIM,) or sigma.shape != (FEATURE_DIM, FEATURE_DIM):
            raise DataError(f"{path}: mu {mu.shape} / sigma {sigma.shape} are not 2048-d Inception statistics")
        if not isinstance(provenance, dict):
            raise DataError(f"{path}: its provenance is not a JSON object")
        if features is not None and (features.ndim != 2 or features.shape[1] != FEATURE_DIM
                                     or (n > 0 and len(features) != n)):
            raise DataError(f"{path}: features {features.shape} do not match n = {n} 2048-d samples")
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise DataError(f"{path}: mu or sigma holds NaN or infinite values")
        provenance.setdefault("source", str(path))
        return cls(mu.astype(np.float64), sigma.astype(np.float64), n if n > 0 else None, provenance, features)


def _trace_sqrt_product_small(a: np.ndarray, b: np.ndarray) -> float:
    """tr sqrt(Σa Σb) from features, exactly, when ``a`` has few rows.

    With centred features X (n x d), Σ = XᵀX / (n - 1). The non-zero eigenvalues of ΣaΣb equal
    those of the n_a x n_a matrix Xa Σb Xaᵀ / (n_a - 1): symmetric and PSD, so ``eigvalsh`` gives
    them quickly and stably. That avoids a 2048 x 2048 ``sqrtm``, which takes 10-45 s on 2 cores.
    """
    xa = a.astype(np.float64) - a.mean(axis=0, dtype=np.float64)
    xb = b.astype(np.float64) - b.mean(axis=0, dtype=np.float64)
    sigma_b = xb.T @ xb / (len(b) - 1)
    small = xa @ sigma_b @ xa.T / (len(a) - 1)
    eigenvalues = np.linalg.eigvalsh((small + small.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance(a: FidStats, b: FidStats, method: str = "auto") -> float:
    """FID between two sets of statistics.

    ``pytorch-fid`` calls pytorch-fid's ``calculate_frechet_distance`` (scipy ``sqrtm``).
    ``exact-small-n`` uses the features and the identity in ``_trace_sqrt_product_small``; the two
    agree to ~1e-6 relative (tested). ``auto`` takes the second when both sides carry features
    and one has at most 2,048 samples, the first otherwise.
    """
    have_features = a.features is not None and b.features is not None
    if method == "auto":
        method = "exact-small-n" if have_features and min(a.n or 0, b.n or 0) <= FEATURE_DIM else "pytorch-fid"
    if method == "pytorch-fid":
        from pytorch_fid.fid_score import calculate_frechet_distance

        return float(calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma))
    if method != "exact-small-n":
        raise ValueError(f"unknown FID method {method!r}")
    if a.features is None or b.features is None:
        raise DataError("the exact small-n FID needs the features of both sides, not only mu and sigma")
    small, other = (a.features, b.features) if len(a.features) <= len(b.features) else (b.features, a.features)
    trace = _trace_sqrt_product_small(small, other)
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * trace)


def sample_caveats(n_real: int | None, n_fake: int | None) -> list[str]:
    """What a reader must know about the sample sizes behind one FID."""
    notes = []
    smallest = min(x for x in (n_real, n_fake) if x is not None) if (n_real or n_fake) else None
    if smallest is None:
        return ["Sample size unknown."]
    if smallest < FULL_RANK_MIN_N:
        notes.append(f"N = {smallest:,} ≤ 2,048: the covariance is rank-deficient, so this FID is "
                     f"strongly biased upwards and only comparable at equal N.")
    if smallest < TTUR_MIN_N:
        notes.append(f"N = {smallest:,} < 10,000, the minimum TTUR advises; FID falls as N grows.")
    return notes


def subset_indices(total: int, n: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of ``n`` of ``total`` rows drawn by ``seed`` (all rows when ``n`` is None or too big).

    Folders are stored class by class, so taking the first ``n`` would skew the class mix.
    """
    if n is None or n >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def subsample(images: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """The rows ``subset_indices`` picks; the same call finds them again for display."""
    if n is None or n >= len(images):
        return images
    return images[subset_indices(len(images), n, seed)]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[-60:] or "images"


def _content_key(pixels: torch.Tensor, resize: str = "pytorch-fid") -> str:
    key = hashlib.sha1(pixels.mul(255).round().to(torch.uint8).numpy().tobytes())
    key.update(f"v{STATS_VERSION}".encode())
    if resize != "pytorch-fid":  # the default's keys predate the option and stay as they were
        key.update(f"resize={resize}".encode())
    return key.hexdigest()


def _suffix(pixels: torch.Tensor, key: str) -> str:
    return f"-n{len(pixels)}-{key[:12]}.npz"


def find_cached_stats(images01: torch.Tensor, cache_dir: Path, preferred: Path | None = None,
                      resize: str = "pytorch-fid") -> FidStats | None:
    """The cached statistics of exactly these images (in [0, 1]) under ``resize``, or None; no Inception
    is run.

    Any file under ``cache_dir`` with their content key will do (``preferred`` is tried first):
    chapter 06 scores chapter 04's generators as chapter 05 did, under other names.
    """
    pixels = quantise(images01.float())
    suffix = _suffix(pixels, _content_key(pixels, resize))
    same_content = sorted(Path(cache_dir).glob(f"*{suffix}")) if Path(cache_dir).is_dir() else []
    first = [preferred] if preferred is not None and preferred.is_file() else []
    for candidate in first + [c for c in same_content if c != preferred]:
        try:
            stats = FidStats.load(candidate)
        except DataError as err:
            warnings.warn(f"recomputing damaged FID statistics cache: {err}", stacklevel=3)
            continue
        if stats.n == len(pixels) and stats.features is not None:
            stats.provenance["cached"] = str(candidate)
            return stats
        warnings.warn(f"recomputing FID statistics cache {candidate}: it holds {stats.n} samples "
                      f"{'without' if stats.features is None else 'with'} features, not {len(pixels)}",
                      stacklevel=3)
    return None


def cached_stats(images01: torch.Tensor, provenance: dict[str, Any], cache_dir: Path,
                 device: torch.device | str = "cpu", batch_size: int = 50, resize: str = "pytorch-fid") -> FidStats:
    """Statistics (with features) of images in [0, 1], cached under ``cache_dir`` by exact content.

    The key is a hash of the 8-bit pixels Inception sees (and of ``resize``, where it is not the
    default), so changed data, a different subset or a retrained generator can never reuse stale
    statistics; the provenance is stored beside them.
    """
    _check_resize(resize)
    pixels = quantise(images01.float())
    key = _content_key(pixels, resize)
    provenance = dict(provenance, **({"resize": resize} if resize != "pytorch-fid" else {}))
    name = "-".join(str(provenance[k]) for k in ("dataset", "split", "resize") if provenance.get(k)) or "images"
    path = Path(cache_dir) / f"{_slug(name)}{_suffix(pixels, key)}"
    stats = find_cached_stats(pixels, cache_dir, preferred=path, resize=resize)
    if stats is not None:
        return stats
    # Named by content alone, so a pass interrupted under one name continues under any other.
    partial = Path(cache_dir) / f"partial{_suffix(pixels, key).removesuffix('.npz')}.npy"
    features = inception_features(pixels, device, batch_size, desc=f"Inception: {name}", partial=partial,
                                  resize=resize)
    provenance.update(n=len(pixels), content_sha1=key)
    stats = FidStats.from_features(features, provenance)
    stats.save(path)
    partial.unlink(missing_ok=True)
    return stats


def image_set_pixels(image_set: ImageSetLike, n: int | None = None, seed: int = 0) -> torch.Tensor:
    """The ``n`` seeded images of a dataset split that ``image_set_stats`` scores, in [0, 1]."""
    return (subsample(image_set.images, n, seed).float() + 1) / 2


def image_set_stats(image_set: ImageSetLike, cache_dir: Path, n: int | None = None, seed: int = 0,
                    device: torch.device | str = "cpu", batch_size: int = 50) -> FidStats:
    """Cached statistics of ``n`` seeded images of a dataset split (``images`` in [-1, 1])."""
    provenance = {**image_set.provenance, "subset_seed": seed}
    return cached_stats(image_set_pixels(image_set, n, seed), provenance, cache_dir, device, batch_size)


def fid_vs_n(a: np.ndarray, b: np.ndarray, sizes: list[int], seed: int = 0) -> list[dict[str, float]]:
    """FID between seeded subsets of two feature sets, for each N in ``sizes`` (N ≤ both sides)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        if n > min(len(a), len(b)) or n < 2:
            continue
        pick_a = np.sort(rng.choice(len(a), n, replace=False))
        pick_b = np.sort(rng.choice(len(b), n, replace=False))
        value = frechet_distance(FidStats.from_features(a[pick_a]), FidStats.from_features(b[pick_b]))
        rows.append({"n": n, "fid": value})
    return rows
