"""LPIPS over image sets. Every model here has a *random* backbone (pnet_rand=True) and lpips's own
heads: these tests check that distances from cached embeddings equal lpips's own forward, that the
searches find what they should and that the cache is keyed by content. None of their numbers is
LPIPS, and none is reported anywhere."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from effgen.errors import WeightsError
from effgen.metrics import perceptual as P


@pytest.fixture(scope="module")
def random_alex():
    torch.manual_seed(0)
    return P.load_lpips("alex", random_backbone=True)


def _images(n: int, seed: int) -> torch.Tensor:
    """Images on 8-bit levels, as every set LPIPS sees is rounded to them."""
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed)).float() / 255


def _forward(model, a01: torch.Tensor, b01: torch.Tensor, normalisation: str = "lpips") -> np.ndarray:
    with torch.no_grad():
        return model(P.network_input(a01, normalisation), P.network_input(b01, normalisation)).flatten().numpy()


def test_missing_backbone_raises_before_any_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path))
    assert not P.backbone_available("vgg")
    assert P.backbone_file("vgg").parent == tmp_path / "weights"
    with pytest.raises(WeightsError, match="vgg16.ckpt: missing"):
        P.load_lpips("vgg", download=False)


@pytest.mark.parametrize("normalisation", ["lpips", "imagenet"])
def test_embedding_distance_is_lpips(random_alex, normalisation: str) -> None:
    a, b = _images(3, 0), _images(4, 1)
    ea, eb = P.embed(random_alex, a, normalisation, batch_size=2), P.embed(random_alex, b, normalisation)
    direct = np.stack([_forward(random_alex, a[i:i + 1].expand(4, -1, -1, -1), b, normalisation) for i in range(3)])
    np.testing.assert_allclose(P.distances(ea, eb), direct, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(P.pair_distances(ea, eb[:3]), _forward(random_alex, a, b[:3], normalisation),
                               rtol=1e-5, atol=1e-7)
    assert (direct > 0).all()


def test_embedding_leaves_out_zero_weight_channels(random_alex) -> None:
    kept = sum(len(keep) for keep, _ in P._head_scales(random_alex))
    assert kept < sum(lin.model[-1].weight.numel() for lin in random_alex.lins)  # alex's heads zero some
    assert P.embed(random_alex, _images(1, 0)).shape == (1, 29 * 49 + 137 * 9 + 347 + 238 + 251)


def test_a_negative_head_weight_is_refused() -> None:
    torch.manual_seed(0)
    model = P.load_lpips("alex", random_backbone=True)
    with torch.no_grad():
        model.lins[0].model[-1].weight[0, 0] = -0.1
    with pytest.raises(WeightsError, match="negative weight"):
        P.embed(model, _images(1, 0))


def test_random_pairs() -> None:
    disjoint = P.random_pairs(10, 5, seed=0)
    assert disjoint.shape == (5, 2) and len(np.unique(disjoint)) == 10
    everything = P.random_pairs(7, 100, seed=0)
    np.testing.assert_array_equal(everything, np.stack(np.triu_indices(7, k=1), axis=1))
    some = P.random_pairs(50, 400, seed=1)
    assert len({tuple(p) for p in some}) == 400 and (some[:, 0] < some[:, 1]).all() and some.max() < 50
    np.testing.assert_array_equal(some, P.random_pairs(50, 400, seed=1))


def test_diversity(random_alex, tmp_path: Path) -> None:
    images = _images(8, 2)
    spread = P.diversity(random_alex, images, n_pairs=4, seed=0, cache_dir=tmp_path)
    assert spread.disjoint and spread.n_images == 8 and len(spread.distances) == 4 and spread.mean > 0
    assert spread.half_width() is not None and "4 disjoint pairs of 8 images" in spread.describe()
    same = P.diversity(random_alex, images[:1].repeat(3, 1, 1, 1), n_pairs=10, seed=0)
    assert not same.disjoint and len(same.distances) == 3 and same.half_width() is None
    np.testing.assert_allclose(same.distances, 0, atol=1e-12)


def test_nearest_finds_copies_and_agrees_with_brute_force(random_alex) -> None:
    train = P.embed(random_alex, _images(40, 3))
    queries = np.concatenate([train[[7, 31]], P.embed(random_alex, _images(5, 4))])
    found = P.nearest(queries, train, chunk=16)  # chunks that split the references
    assert found.index[:2].tolist() == [7, 31] and (found.distance[:2] == 0).all()
    brute = P.distances(queries, train)
    np.testing.assert_array_equal(found.index, brute.argmin(axis=1))
    np.testing.assert_allclose(found.distance, brute.min(axis=1), rtol=1e-4, atol=1e-6)


def test_embeddings_are_cached_by_content_and_backbone(random_alex, tmp_path: Path) -> None:
    images = _images(6, 5)
    first = P.cached_embedding(random_alex, images, tmp_path, name="set A")
    again = P.cached_embedding(random_alex, images.clone(), tmp_path, name="another name")
    assert not first.cached and again.cached and again.seconds == first.seconds
    np.testing.assert_array_equal(first.vectors, again.vectors)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    assert not P.cached_embedding(random_alex, images.flip(0), tmp_path).cached  # other content
    assert not P.cached_embedding(random_alex, images, tmp_path, normalisation="imagenet").cached
    torch.manual_seed(1)
    other_backbone = P.load_lpips("alex", random_backbone=True)
    assert not P.cached_embedding(other_backbone, images, tmp_path).cached


def test_a_damaged_cache_file_is_recomputed(random_alex, tmp_path: Path) -> None:
    images = _images(3, 6)
    first = P.cached_embedding(random_alex, images, tmp_path)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(b"not an npz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = P.cached_embedding(random_alex, images, tmp_path)
    assert not again.cached and any("damaged LPIPS cache" in str(w.message) for w in caught)
    np.testing.assert_allclose(again.vectors, first.vectors)


def test_original_protocol_meets_itself_and_is_cached(random_alex, tmp_path: Path) -> None:
    train = _images(10, 4)
    result = P.original_protocol(random_alex, train, n_queries=4, seed=0, cache_dir=tmp_path, batch_size=3)
    assert result.distances.shape == (4, 10) and not result.cached
    assert (result.distances[np.arange(4), result.query_rows] == 0).all()
    assert (np.delete(result.distances, result.query_rows, axis=1) > 0).all()  # no other image is the same
    row = result.query_rows[0]
    direct = _forward(random_alex, train[row:row + 1].expand(10, -1, -1, -1), train, "imagenet")
    np.testing.assert_allclose(result.distances[0], direct, rtol=1e-4, atol=1e-6)
    again = P.original_protocol(random_alex, train, n_queries=4, seed=0, cache_dir=tmp_path)
    assert again.cached
    np.testing.assert_array_equal(again.distances, result.distances)
    subset = P.original_protocol(random_alex, train, n_queries=2, n_references=5, seed=0)
    assert subset.distances.shape == (2, 5)


def test_imagenet_normalisation() -> None:
    x = torch.tensor(P.IMAGENET_MEAN)[:, None, None].expand(3, 2, 2)
    assert torch.allclose(P.imagenet_normalised(x), torch.zeros(3, 2, 2))
