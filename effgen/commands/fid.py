"""``effgen fid REAL FAKE [-n N]``: FID between two image sources, printed as JSON.

Each side is one of: ``dataset:split`` (e.g. ``cifar10:test``, any name ``effgen.data.images``
knows), a folder of images, a statistics ``.npz`` (ours or pytorch-fid's), or a generator
checkpoint ``.pt`` written by ``effgen.gan.save_generator``. Dataset and folder statistics
are cached under ``<data>/fid-stats/`` by content, so a second call reuses them.

A generator samples the way its file records (``sample_mode``: the faithful recipe's G ran in
train mode, in batches of its training batch size); ``--sample-mode`` overrides that, and the
JSON output says which mode each generator side used.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from effgen.errors import DataError, ParamsError
from effgen.paths import data_root

DEFAULT_GENERATED = 10_000  # the paper's protocol: 10k generated images


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fid", help="FID between two image sources (datasets, folders, .npz statistics, generators)",
        description="Fréchet Inception Distance with pytorch-fid's Inception (2048-d pool features). "
                    "Each side is dataset:split, a folder of images, a statistics .npz, or a generator .pt.",
    )
    parser.add_argument("real", help="e.g. cifar10:test, path/to/images/, stats.npz, generator.pt")
    parser.add_argument("fake", help="same forms as REAL")
    parser.add_argument("-n", type=int, default=None,
                        help="images per side: a seeded subset of a dataset/folder, or the number to "
                             f"generate (default: all images; {DEFAULT_GENERATED:,} from a generator)")
    parser.add_argument("--seed", type=int, default=0, help="seed for subsets and generator latents")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps ...")
    parser.add_argument("--batch-size", type=int, default=50, help="Inception batch size")
    parser.add_argument("--stats-dir", type=Path, default=None,
                        help="cache for dataset statistics (default: <data>/fid-stats)")
    parser.add_argument("--sample-mode", choices=("recorded", "train", "eval"), default="recorded",
                        help="BatchNorm mode of a generator side: as its file records (default; the "
                             "faithful recipe: train mode at its batch size), train, or eval")
    parser.set_defaults(func=run)


def side_kind(spec: str) -> str:
    """Which kind of source ``spec`` names; checked for both sides before any work starts."""
    path = Path(spec).expanduser()
    if spec.endswith(".npz"):
        kind = "stats"
    elif spec.endswith(".pt"):
        kind = "generator"
    elif path.is_dir():
        return "folder"
    elif ":" in spec and not path.exists():
        return "dataset"
    else:
        raise DataError(f"{spec!r}: not a dataset:split, an existing folder, a .npz or a .pt file")
    if not path.is_file():
        raise DataError(f"{spec}: file not found")
    return kind


def load_side(spec: str, n: int | None, seed: int, device: Any, batch_size: int,
              stats_dir: Path, sample_mode: str = "recorded") -> tuple[Any, dict[str, Any] | None]:
    """The FID statistics of one side, and for a generator how it was sampled (else None)."""
    from effgen.metrics.fid import FidStats, image_set_stats, inception_features

    kind = side_kind(spec)
    if kind == "stats":
        return FidStats.load(Path(spec).expanduser()), None
    if kind == "generator":
        from effgen.gan.sampling import sample_saved_generator

        path = Path(spec).expanduser()
        count = n or DEFAULT_GENERATED
        images, sampling, extra = sample_saved_generator(path, count, seed, device,
                                                         None if sample_mode == "recorded" else sample_mode)
        provenance: dict[str, Any] = {"generator": str(path), "seed": seed, **sampling.as_dict(),
                                      **{k: extra[k] for k in ("recipe", "steps", "dataset") if k in extra}}
        features = inception_features(images, device, batch_size, desc=f"Inception: {path.name}")
        return FidStats.from_features(features, provenance), sampling.as_dict()
    from effgen.data import images as load_images

    if kind == "folder":
        image_set = load_images(f"folder:{Path(spec).expanduser()}", "train")
    else:
        name, split = spec.rsplit(":", 1)
        image_set = load_images(name, split)
    return image_set_stats(image_set, stats_dir, n=n, seed=seed, device=device, batch_size=batch_size), None


def run(args: argparse.Namespace) -> int:
    from effgen.metrics.fid import frechet_distance, sample_caveats
    from effgen.runtime import pick_device

    if args.n is not None and args.n < 2:
        raise ParamsError(f"-n must be at least 2 (FID needs a covariance), got {args.n}")
    if args.batch_size < 1:
        raise ParamsError(f"--batch-size must be positive, got {args.batch_size}")
    for spec in (args.real, args.fake):
        side_kind(spec)  # fail on a bad side before computing the other one
    device = pick_device(args.device)
    stats_dir = args.stats_dir or data_root() / "fid-stats"
    real, real_sampling = load_side(args.real, args.n, args.seed, device, args.batch_size, stats_dir,
                                    args.sample_mode)
    fake, fake_sampling = load_side(args.fake, args.n, args.seed, device, args.batch_size, stats_dir,
                                    args.sample_mode)
    result: dict[str, Any] = {"fid": frechet_distance(real, fake), "n_real": real.n, "n_fake": fake.n,
                              "notes": sample_caveats(real.n, fake.n)}
    for side, sampling in (("real", real_sampling), ("fake", fake_sampling)):
        if sampling is not None:  # a generator side: which BatchNorm mode and batch size drew it
            result[f"{side}_sampling"] = sampling
    print(json.dumps(result))
    return 0
