"""FID speed: effgen's in-memory path vs pytorch-fid's ``calculate_fid_given_paths`` on PNG files.

Same images, same weights, one run. effgen feeds tensors to Inception in channels_last (CPU);
pytorch-fid decodes PNGs through a DataLoader and runs NCHW. Both FIDs are printed too, so the
speed-up is shown to change nothing in the number.

    .venv/bin/python bench/bench_fid.py --n 200          # images per side
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from effgen.book.provenance import machine_summary
from effgen.metrics.fid import FidStats, frechet_distance, inception_features, subsample
from effgen.runtime import describe, pick_device


def two_image_sets(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Two disjoint sets of n real images in [0, 1] (CIFAR-10 test if present, else uniform noise)."""
    try:
        from effgen.data import images

        test = images("cifar10", "test", download=False)
        picked = (subsample(test.images, 2 * n, seed) + 1) / 2
        return picked[0::2], picked[1::2], test.provenance["detail"]
    except Exception as err:  # noqa: BLE001 - a benchmark runs on whatever images exist
        rng = torch.Generator().manual_seed(seed)
        return torch.rand(n, 3, 32, 32, generator=rng), torch.rand(n, 3, 32, 32, generator=rng), f"noise ({err})"


def write_pngs(images01: torch.Tensor, folder: Path) -> None:
    folder.mkdir(parents=True)
    pixels = (images01.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images per side")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = pick_device(args.device)
    a, b, source = two_image_sets(args.n, args.seed)
    inception_features(a[:2], device)  # load the network (and convert weights if needed) outside the timing

    start = time.perf_counter()
    fa = inception_features(a, device, args.batch_size)
    fb = inception_features(b, device, args.batch_size)
    ours_features_s = time.perf_counter() - start
    ours_fid = frechet_distance(FidStats.from_features(fa), FidStats.from_features(fb))
    ours_total_s = time.perf_counter() - start

    from pytorch_fid.fid_score import calculate_fid_given_paths

    with tempfile.TemporaryDirectory() as tmp:
        write_pngs(a, Path(tmp) / "a")
        write_pngs(b, Path(tmp) / "b")
        start = time.perf_counter()
        theirs_fid = calculate_fid_given_paths([str(Path(tmp) / "a"), str(Path(tmp) / "b")], args.batch_size,
                                               str(device), 2048, num_workers=0)
        theirs_total_s = time.perf_counter() - start

    total_images = 2 * args.n
    print(f"machine: {machine_summary()}; device {describe(device)}")
    print(f"images: {args.n} vs {args.n} from {source}")
    print(f"effgen  Inception features: {total_images / ours_features_s:6.2f} img/s "
          f"({ours_features_s:.1f} s); end to end {ours_total_s:.1f} s; FID {ours_fid:.4f}")
    print(f"pytorch-fid calculate_fid_given_paths (PNG, NCHW, sqrtm): {total_images / theirs_total_s:6.2f} img/s "
          f"end to end ({theirs_total_s:.1f} s); FID {theirs_fid:.4f}")
    print(f"speed ratio, end to end (pytorch-fid time / effgen time): {theirs_total_s / ours_total_s:.2f}x")
    print(f"|FID difference|: {abs(ours_fid - theirs_fid):.2e}")
    if np.isnan(ours_fid) or np.isnan(theirs_fid):
        raise SystemExit("a FID is NaN")


if __name__ == "__main__":
    main()
