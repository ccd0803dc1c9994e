"""``effgen train gan --params FILE --out DIR``: one GAN run outside the book.

The YAML file holds ``GanConfig`` settings (``recipe: faithful`` picks that preset, the other
keys override it) plus two data keys: ``dataset`` (default ``cifar100``; any name
``effgen.data.images`` accepts, or ``folder:/path``) and ``allow_stand_in`` (default true).
Running the same command again resumes from ``DIR/checkpoint.pt``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from effgen.checkpoints import read_yaml
from effgen.errors import ParamsError

DATA_KEYS = {"dataset": str, "allow_stand_in": bool}


def register(models: argparse._SubParsersAction) -> None:
    parser = models.add_parser(
        "gan", help="train the DCGAN (or a baseline, or the modern recipe) from a YAML parameters file",
        description="Train one GAN run; re-running the same command resumes it. The parameters file "
                    "holds effgen.gan.GanConfig keys (recipe: faithful | corrected | fc_gan | "
                    "wgan_gp | modern | rebalanced | sngan_small, "
                    "steps, g_lr, architecture, ...) and optionally dataset and allow_stand_in.")
    parser.add_argument("--params", type=Path, required=True, help="YAML file of GAN settings")
    parser.add_argument("--out", type=Path, required=True, help="run folder: checkpoint, history, samples")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    parser.set_defaults(func=run)


def read_params(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(GanConfig settings, data settings) from a YAML file; malformed input raises ParamsError."""
    values = read_yaml(path, "parameters file")
    data = {"dataset": "cifar100", "allow_stand_in": True}
    for key, kind in DATA_KEYS.items():
        if key in values:
            value = values.pop(key)
            if not isinstance(value, kind):
                raise ParamsError(f"{path}: {key} must be {kind.__name__}, got {value!r}")
            data[key] = value
    return values, data


def run(args: argparse.Namespace) -> int:
    from effgen.data import gan_dataset
    from effgen.gan import check_gan_budget, config_from_dict, train_gan
    from effgen.runtime import pick_device

    settings, data = read_params(args.params)
    config = config_from_dict(settings, source=str(args.params))
    budget = check_gan_budget(config)  # before the data loads
    device = pick_device(args.device)
    dataset = gan_dataset(data["dataset"], "train", allow_stand_in=data["allow_stand_in"])
    provenance = dataset.provenance
    if provenance.get("stand_in"):
        print(f"effgen: note: training on {provenance['dataset']}, a stand-in for {provenance['requested']}: "
              f"{provenance.get('reason', '')}")
    result = train_gan(config, dataset.images, args.out, device, provenance=provenance)
    last = result.history.iloc[-1]
    print(f"{config.recipe}: {result.step:,}/{config.steps:,} steps ({result.step - result.resumed_from:,} "
          f"this call, {result.seconds:.1f} s) on {device}; {budget.params:,} params; "
          f"loss D {last.loss_d:.3f}, G {last.loss_g:.3f}; outputs in {args.out}")
    return 0
