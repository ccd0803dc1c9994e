"""Short runs of the modern GAN recipe beside the corrected DCGAN, scored as chapter 05 scores them.

Two sub-commands, so that training can run as several single-threaded processes (on a shared
2-core CPU these finish sooner than one two-threaded process) and scoring afterwards:

    python bench/gan_modern.py train corrected modern --out /tmp/gm/runs --threads 1
    python bench/gan_modern.py fid corrected modern --out /tmp/gm/runs

Runs (all at chapter 04's quick profile unless ``--steps`` etc. say otherwise: 400 steps of
batch 64, "epochs" of 8 steps, seed 0): ``corrected``; ``modern`` (the preset, DCGAN shapes);
``modern-resnet``; ``modern-betas0`` (Adam betas (0, 0.9)); and the leave-one-out ablation
``no-hinge``, ``no-spectral_norm``, ``no-ttur``, ``no-diffaugment``, ``no-ema`` of
``effgen.gan.modern_ablation``. A run folder is ``effgen.gan.run_folder(out, name, config)``,
so training again resumes or reloads.

FID follows chapter 05: ``n`` generated images (latent seed 0, the generator's own output
range) against ``n`` seeded images of the test split of the dataset the run trained on, with
``effgen.metrics`` (pytorch-fid's Inception; reference statistics cached under
``<data>/fid-stats``, the generators' under ``OUT/fid-stats``). One JSON line per run is appended to ``OUT/fid.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from effgen.data import gan_dataset, images
from effgen.gan import (
    generated_images,
    load_generator,
    modern_ablation,
    preset,
    run_folder,
    train_gan,
)
from effgen.gan.config import GanConfig
from effgen.gan.interpolate import checkpoint_output_range
from effgen.metrics import cached_stats, frechet_distance, image_set_stats
from effgen.paths import data_root


def configs(steps: int, epoch_steps: int, batch_size: int, seed: int) -> dict[str, GanConfig]:
    common = {"steps": steps, "epoch_steps": epoch_steps, "batch_size": batch_size, "seed": seed,
              "sample_every": max(1, steps // 4), "checkpoint_every": max(1, steps // 4)}
    modern = preset("modern", **common)
    runs = {"corrected": preset("corrected", **common), "modern": modern,
            "modern-resnet": preset("modern", architecture="resnet", **common),
            "modern-betas0": preset("modern", beta1=0.0, beta2=0.9, **common)}
    for name, config in modern_ablation(modern).items():
        if name != "modern":
            runs[name.replace(" ", "-")] = config
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("train", "fid", "list"))
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--out", type=Path, default=Path("/tmp/gm/runs"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--epoch-steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("-n", type=int, default=1000, help="images per side for FID")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = configs(args.steps, args.epoch_steps, args.batch_size, args.seed)
    if args.action == "list":
        print("\n".join(runs))
        return
    unknown = sorted(set(args.runs) - set(runs))
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(runs)}")
    data = gan_dataset("cifar100", "train")
    for name in args.runs:
        config = runs[name]
        folder = run_folder(args.out, name, config)
        if args.action == "train":
            run = train_gan(config, data.images, folder, "cpu", provenance=data.provenance, show_progress=False)
            print(json.dumps({"run": name, "folder": str(folder), "steps": run.step, "params": run.budget.params,
                              "seconds_this_call": round(run.seconds, 1)}), flush=True)
            continue
        dataset = data.provenance["dataset"]
        started = time.perf_counter()
        test_stats = image_set_stats(images(dataset, "test"), data_root() / "fid-stats", n=args.n, seed=args.seed)
        path = folder / "generator.pt"
        fake = generated_images(load_generator(path), args.n, args.seed, "cpu", checkpoint_output_range(path))
        fake_stats = cached_stats(fake, {"dataset": f"gan-modern-{name}", "split": folder.name},
                                  args.out / "fid-stats")
        result = {"run": name, "folder": folder.name, "fid_test": frechet_distance(fake_stats, test_stats),
                  "n": args.n, "dataset": dataset, "steps": config.steps, "seconds": round(time.perf_counter() - started)}
        raw = folder / "generator-raw.pt"
        if raw.is_file():
            raw_images = generated_images(load_generator(raw), args.n, args.seed, "cpu", checkpoint_output_range(raw))
            raw_stats = cached_stats(raw_images, {"dataset": f"gan-modern-{name}-raw", "split": folder.name},
                                     args.out / "fid-stats")
            result["fid_test_raw"] = frechet_distance(raw_stats, test_stats)
        print(json.dumps(result), flush=True)
        with (args.out / "fid.jsonl").open("a") as handle:
            handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
