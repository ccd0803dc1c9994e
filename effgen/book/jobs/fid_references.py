"""The paper profile's FID reference statistics, computed ahead of chapters 05 and 06.

FID compares a generator's samples with real images. The real side does not depend on any trained
model, but chapters 05 and 06 can compute it only once chapter 04 is done. On the 2-core CPU here that
is about an hour of Inception (10,000 images in 1,420 s on one core beside a classifier job, in this
job's log of 2026-12-03) at the end of the profile, when little else can run beside it. This job
computes the same statistics early, as its own queue job:

- chapter 05: ``n_fid`` seeded images of the test split and of the train split;
- chapter 06: ``n_fid`` test images (the same set when chapter 05 uses the same N and seed) and
  ``ablation_n_fid`` test images for the ablation.

They go to the same content-addressed cache the chapters read (``<data>/fid-stats``, see
``effgen.metrics.cached_stats``), made with the chapters' own calls, so the chapters find them and
compute only the generators' side. A set that is already cached costs only a hash, and a set that only
frozen, current chapters asked for is skipped (their results are kept; ``every`` computes it anyway, e.g.
to re-execute such a chapter on a machine whose cache is empty). ``effgen jobs fid-references --check``
computes nothing and fails if any set still needed is missing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from effgen.book.freeze import status
from effgen.book.jobs.values import BEYOND, EVALUATION, chapter_parameters
from effgen.data import gan_dataset, images
from effgen.metrics import (
    ensure_inception_weights,
    find_cached_stats,
    image_set_pixels,
    image_set_stats,
)
from effgen.paths import data_root, project_root


@dataclass(frozen=True)
class ReferenceSet:
    """One real-image FID reference a chapter computes: ``n`` seeded images of ``split``."""

    chapters: tuple[str, ...]
    split: str
    n: int
    seed: int
    batch_size: int

    def describe(self) -> str:
        return f"{self.split}, {self.n:,} images, seed {self.seed} (chapter {', '.join(self.chapters)})"


def reference_sets(profile: str) -> tuple[str, list[ReferenceSet]]:
    """The GAN dataset chapter 04 trains on, and the reference sets chapters 05 and 06 will ask for."""
    dcgan = chapter_parameters(profile)
    dataset = gan_dataset(dcgan["dataset"], "train", allow_stand_in=dcgan["allow_stand_in"]).provenance["dataset"]
    evaluation, beyond = chapter_parameters(profile, EVALUATION), chapter_parameters(profile, BEYOND)
    wanted = [ReferenceSet(("05",), "test", evaluation["n_fid"], evaluation["seed"], evaluation["batch_size"]),
              ReferenceSet(("05",), "train", evaluation["n_fid"], evaluation["seed"], evaluation["batch_size"]),
              ReferenceSet(("06",), "test", beyond["n_fid"], beyond["seed"], beyond["fid_batch_size"])]
    if beyond["ablation_steps"] > 0:
        wanted.append(ReferenceSet(("06",), "test", beyond["ablation_n_fid"], beyond["seed"], beyond["fid_batch_size"]))
    merged: dict[tuple[str, int, int], ReferenceSet] = {}
    for ref in wanted:  # the same images asked for twice are one set (the batch size does not change them)
        key = (ref.split, ref.n, ref.seed)
        if key in merged:
            ref = ReferenceSet(merged[key].chapters + ref.chapters, ref.split, ref.n, ref.seed, merged[key].batch_size)
        merged[key] = ref
    return dataset, list(merged.values())


def still_needed(profile: str, sets: list[ReferenceSet]) -> list[ReferenceSet]:
    """The sets that a chapter not yet frozen (or stale) will ask for: a frozen chapter reads none."""
    frozen = {s.name.split("-")[0] for s in status(project_root(), profile) if s.state == "frozen"}
    return [ref for ref in sets if not set(ref.chapters) <= frozen]


def missing_sets(profile: str, every: bool = False) -> list[ReferenceSet]:
    """The reference sets still needed (all of them with ``every``) not in the cache yet; no Inception is run."""
    dataset, sets = reference_sets(profile)
    sets = sets if every else still_needed(profile, sets)
    cache, splits = data_root() / "fid-stats", {ref.split: images(dataset, ref.split) for ref in sets}
    return [ref for ref in sets
            if find_cached_stats(image_set_pixels(splits[ref.split], ref.n, ref.seed), cache) is None]


def reference_states(profile: str, every: bool = False) -> tuple[str, list[tuple[str, ReferenceSet]]]:
    """(dataset, [(state, set)]) for every set: "missing", "cached" or "frozen" (only frozen, current
    chapters asked for it, and ``every`` is off); no Inception is run."""
    dataset, every_set = reference_sets(profile)
    wanted = every_set if every else still_needed(profile, every_set)
    missing = missing_sets(profile, every)
    return dataset, [("missing" if ref in missing else "cached" if ref in wanted else "frozen", ref)
                     for ref in every_set]


def compute_references(profile: str, threads: int, every: bool = False) -> None:
    """Compute (or find cached) every set still needed, all of them with ``every``, on the CPU."""
    torch.set_num_threads(threads)
    dataset, every_set = reference_sets(profile)
    sets = every_set if every else still_needed(profile, every_set)
    for ref in every_set:
        if ref not in sets:
            print(f"{dataset} {ref.describe()}: skipped, its chapters are frozen and current", flush=True)
    ensure_inception_weights()
    cache, splits = data_root() / "fid-stats", {ref.split: images(dataset, ref.split) for ref in sets}
    for ref in sets:
        started = time.perf_counter()
        stats = image_set_stats(splits[ref.split], cache, n=ref.n, seed=ref.seed, device="cpu",
                                batch_size=ref.batch_size)
        how = "cached" if "cached" in stats.provenance else f"computed in {time.perf_counter() - started:.0f} s"
        print(f"{dataset} {ref.describe()}: {how}", flush=True)
