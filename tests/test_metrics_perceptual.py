"""LPIPS plumbing. Every model here has a *random* backbone (pnet_rand=True): these tests check
that our feature-cached distances equal lpips's own forward and that the searches find what they
should. None of their numbers is LPIPS, and none is reported anywhere."""
from __future__ import annotations

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
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_missing_backbone_raises_before_any_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path))
    assert not P.backbone_available("vgg")
    assert P.backbone_file("vgg").parent == tmp_path / "weights"
    with pytest.raises(WeightsError, match="vgg16.ckpt: missing"):
        P.load_lpips("vgg", download=False)


def test_matrix_equals_lpips_forward(random_alex) -> None:
    a, b = _images(3, 0) * 2 - 1, _images(4, 1) * 2 - 1
    matrix = P.lpips_matrix(random_alex, a, b, batch_size=2)
    with torch.no_grad():
        direct = torch.stack([random_alex(a[i:i + 1].expand(4, -1, -1, -1), b).flatten() for i in range(3)])
    np.testing.assert_allclose(matrix, direct.numpy(), rtol=1e-5, atol=1e-6)
    assert (matrix > 0).all()


def test_diversity_counts_each_pair_once(random_alex) -> None:
    images = _images(5, 2)
    distances = P.pairwise_diversity(random_alex, images)
    assert distances.shape == (10,) and (distances > 0).all()
    same = P.pairwise_diversity(random_alex, images[:1].repeat(3, 1, 1, 1))
    np.testing.assert_allclose(same, 0, atol=1e-7)


def test_memorisation_finds_copied_training_images(random_alex) -> None:
    train = _images(12, 3)
    copied = [7, 2, 9]
    generated = train[copied] + 0.0
    features = train.flatten(1).numpy()  # pixel "features" stand in for Inception in this test
    result = P.memorisation(random_alex, generated, train, features[copied], features, k=3)
    assert result.train_index.tolist() == copied
    np.testing.assert_allclose(result.lpips, 0, atol=1e-7)
    assert result.candidates.shape == (3, 3)


def test_original_protocol_contains_the_self_matches(random_alex) -> None:
    train = _images(10, 4)
    matrix = P.original_protocol(random_alex, train, n_queries=4, seed=0)
    assert matrix.shape == (4, 10)
    assert (np.isclose(matrix, 0, atol=1e-7).sum(axis=1) == 1).all()  # each query meets itself once


def test_imagenet_normalisation() -> None:
    x = torch.tensor(P.IMAGENET_MEAN)[:, None, None].expand(3, 2, 2)
    assert torch.allclose(P.imagenet_normalised(x), torch.zeros(3, 2, 2))
