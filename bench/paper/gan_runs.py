"""Train chapter 04's (and chapter 06's modern) paper-profile GAN runs outside the notebook, one per process.

The chapter trains its runs one after another in one kernel. On a 2-core CPU shared with
other work, two single-threaded processes (one per recipe) finish sooner than one
two-threaded process, whose OpenMP threads stall whenever a core is busy elsewhere. Each run
goes to the folder the chapter itself uses (``effgen.gan.run_folder`` under
``runs/paper/04-dcgan/``) with the config the chapter builds from its parameters cell and
``params/paper/04-dcgan.yml``, so executing the chapter afterwards reuses the finished runs,
and an interrupted run resumes from its last checkpoint (thawed from ``_freeze/`` on a fresh clone).

    python bench/paper/gan_runs.py faithful --threads 1 &
    python bench/paper/gan_runs.py corrected --threads 1 &
    python bench/paper/gan_runs.py modern --threads 1 &   # chapter 06's modern recipe

The modern run is built as chapter 06 builds it: chapter 04's steps, "epoch", batch size and seed,
chapter 06's architecture and checkpoint/sample cadence.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from effgen.data import gan_dataset
from effgen.freeze import thaw
from effgen.gan import preset, run_folder, train_gan
from effgen.params import declared_parameters, load_params_file
from effgen.paths import project_root, runs_dir

CHAPTER = "04-dcgan"
BEYOND = "06-beyond"  # the modern recipe's chapter


def chapter_parameters(profile: str, chapter: str = CHAPTER) -> dict:
    """A chapter's parameter values for ``profile``: notebook defaults, then the params file."""
    root = project_root()
    values = {name: p.default for name, p in declared_parameters(root / "chapters" / f"{chapter}.ipynb").items()}
    params_file = root / "params" / profile / f"{chapter}.yml"
    if params_file.is_file():
        values.update(load_params_file(params_file))
    return values


def run_configs(values: dict) -> dict:
    """name -> GanConfig, exactly as the chapter builds them."""
    common = {"steps": values["steps"], "batch_size": values["batch_size"], "epoch_steps": values["epoch_steps"],
              "seed": values["seed"], "sample_every": values["sample_every"],
              "checkpoint_every": values["checkpoint_every"]}
    configs = {"faithful": preset("faithful", **common), "corrected": preset("corrected", **common)}
    if values["augment"]:
        configs["corrected-augmented"] = preset("corrected", augment=True, **common)
    return configs


def modern_config(values: dict, beyond: dict):
    """Chapter 06's modern run: chapter 04's budget and seed, chapter 06's shape and cadence."""
    return preset("modern", architecture=beyond["modern_architecture"], steps=values["steps"],
                  epoch_steps=values["epoch_steps"], batch_size=values["batch_size"], seed=values["seed"],
                  checkpoint_every=beyond["gan_checkpoint_every"],
                  sample_every=min(beyond["gan_sample_every"], values["steps"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="faithful | corrected | corrected-augmented | modern")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    values = chapter_parameters(args.profile)
    configs = run_configs(values)
    chapter, name = CHAPTER, args.run
    if args.run == "modern":
        chapter, name = BEYOND, "gan-modern"  # the folder chapter 06 trains it in
        configs["modern"] = modern_config(values, chapter_parameters(args.profile, BEYOND))
    if args.run not in configs:
        parser.error(f"unknown run {args.run!r}; choose one of {', '.join(configs)}, modern")
    config = configs[args.run]
    # A fresh clone has the in-progress checkpoints only in _freeze/ (effgen snapshot): bring them back first.
    thawed = thaw(project_root(), args.profile, chapter)
    if thawed:
        print(f"thawed {thawed} file(s) of {chapter} from _freeze/{args.profile}/", flush=True)
    data = gan_dataset(values["dataset"], "train", allow_stand_in=values["allow_stand_in"])
    folder = run_folder(runs_dir(args.profile, chapter), name, config)
    print(f"{args.run}: {config.steps:,} steps into {Path(folder).relative_to(project_root())} "
          f"on {data.provenance['dataset']}, {args.threads} thread(s)", flush=True)
    run = train_gan(config, data.images, folder, torch.device("cpu"), provenance=data.provenance,
                    show_progress=False)
    print(f"{args.run}: step {run.step:,}/{config.steps:,}, {run.seconds:.0f} s this call", flush=True)


if __name__ == "__main__":
    main()
