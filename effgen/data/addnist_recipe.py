"""The AddNIST recipe (Geada et al., 2024): three MNIST digits as R, G, B; label = r + g + b - 1.

Each digit is normalised with MNIST's mean 0.1307 and std 0.3081 *before* stacking, so
values run from about -0.42 to 2.82. Only digit sums 1..20 are kept, giving labels 0..19.
Drawing triples uniformly would make the sums very unbalanced (the extremes have one triple,
the middle 63), so each image first picks a label and then one of that label's valid triples.
"""
from __future__ import annotations

import numpy as np

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
N_CLASSES = 20
OFFICIAL_SIZES: tuple[int, int, int] = (45_000, 15_000, 10_000)
RECIPE_VERSION = "addnist-recipe-2"  # 2: the mnist source draws train and valid from disjoint digits
# Where AddNIST can come from (effgen.data.addnist); kept here, free of torch, for the CLI's --help.
SOURCES: tuple[str, ...] = ("auto", "official", "mnist", "mnist-5k")


def normalise(digits01: np.ndarray) -> np.ndarray:
    """Digits in [0, 1] -> the normalised float32 values AddNIST stores."""
    return ((np.asarray(digits01, dtype=np.float32) - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)).astype(
        np.float32, copy=False)


def label_of(r: np.ndarray | int, g: np.ndarray | int, b: np.ndarray | int) -> np.ndarray | int:
    return r + g + b - 1


def triples_by_label() -> list[np.ndarray]:
    """For each label 0..19, the (k, 3) array of digit triples (r, g, b) whose sum is label + 1."""
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(10), np.arange(10), indexing="ij"), -1).reshape(-1, 3)
    labels = grid.sum(1) - 1
    return [grid[labels == label] for label in range(N_CLASSES)]


def balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels, each class ``n // 20`` times (the remainder on random classes), shuffled."""
    labels = np.repeat(np.arange(N_CLASSES), n // N_CLASSES)
    extra = rng.choice(N_CLASSES, size=n % N_CLASSES, replace=False)
    labels = np.concatenate([labels, extra])
    return rng.permutation(labels).astype(np.int64)


def sample_split(digit_labels: np.ndarray, pool: np.ndarray, n: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` AddNIST items from the digits ``pool`` (indices into ``digit_labels``).

    Returns ``y`` (n,) int64 and ``digit_index`` (n, 3) int64: the indices of the digits
    that become the R, G and B channels.
    """
    y = balanced_labels(n, rng)
    triples = triples_by_label()
    choice = rng.random(n)
    values = np.empty((n, 3), dtype=np.int64)
    for label, options in enumerate(triples):
        rows = np.flatnonzero(y == label)
        values[rows] = options[(choice[rows] * len(options)).astype(np.int64)]
    digit_index = np.empty((n, 3), dtype=np.int64)
    pool_labels = digit_labels[pool]
    for digit in range(10):
        members = pool[pool_labels == digit]
        if len(members) == 0:
            raise ValueError(f"the digit pool has no {digit}s; it cannot make every AddNIST class")
        where = values == digit
        digit_index[where] = members[rng.integers(len(members), size=int(where.sum()))]
    return y, digit_index


def assemble(normalised_digits: np.ndarray, digit_index: np.ndarray) -> np.ndarray:
    """Stack the chosen digits channels-first: (n, 3) indices -> float32 (n, 3, 28, 28)."""
    return normalised_digits[digit_index]


def split_pools(digit_labels: np.ndarray, fractions: tuple[float, ...],
                rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Disjoint pools, one per fraction, split class by class so each pool keeps every digit."""
    if len(fractions) < 2 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"pool fractions must be positive numbers summing to 1, not {fractions}")
    pools: tuple[list[np.ndarray], ...] = tuple([] for _ in fractions)
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(digit_labels == digit))
        cuts = np.cumsum([round(f * len(members)) for f in fractions[:-1]])
        for pool, part in zip(pools, np.split(members, cuts)):
            pool.append(part)
    return tuple(np.sort(np.concatenate(p)) for p in pools)
