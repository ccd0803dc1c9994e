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
    python bench/paper/gan_runs.py modern --threads 1 &     # chapter 06's modern recipe (after the
                                                            # ablation's full-recipe run, its first steps)
    python bench/paper/gan_runs.py ablation --threads 1 &   # chapter 06's other leave-one-out runs

The modern and ablation runs are built by the functions chapter 06 builds them with
(``effgen.gan.modern_run_config``, ``ablation_run_configs``): chapter 04's steps, "epoch", batch size
and seed, chapter 06's architecture, cadence and ablation length.
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import torch

from effgen.book.freeze import thaw
from effgen.book.params import declared_parameters, load_params_file
from effgen.data import gan_dataset
from effgen.gan import (
    GanConfig,
    ablation_folder,
    ablation_run_configs,
    keeps_raw_generator,
    modern_run_config,
    preset,
    run_folder,
    train_gan,
)
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


def modern_config(values: dict, beyond: dict) -> GanConfig:
    """Chapter 06's modern run: chapter 04's budget and seed, chapter 06's shape and cadence."""
    return modern_run_config(beyond["modern_architecture"], steps=values["steps"],
                             epoch_steps=values["epoch_steps"], batch_size=values["batch_size"],
                             seed=values["seed"], checkpoint_every=beyond["gan_checkpoint_every"],
                             sample_every=beyond["gan_sample_every"])


PREFIX_RUN = "ablation-modern"  # the ablation's full-recipe run: the modern run's first steps, when keys match


def beyond_runs(values: dict, beyond: dict, which: str) -> dict[str, GanConfig]:
    """Folder prefix -> config of chapter 06's ``which`` runs ("modern" or "ablation"), in training order.

    The ablation's full-recipe run differs from the modern run only in its length when both have the
    same run key (``run_folder`` leaves the steps out). It is then the modern run's first
    ``ablation_steps`` steps: the "modern" job trains it first and continues it into the long run
    (``start_from_prefix``), and the "ablation" job leaves it out.
    """
    modern = modern_config(values, beyond)
    ablation = ({} if beyond["ablation_steps"] <= 0 else
                {ablation_folder(name): config
                 for name, config in ablation_run_configs(modern, beyond["ablation_steps"]).items()})
    shared = PREFIX_RUN in ablation and run_key(ablation[PREFIX_RUN]) == run_key(modern) \
        and ablation[PREFIX_RUN].steps < modern.steps
    if which == "modern":
        return {PREFIX_RUN: ablation[PREFIX_RUN], "gan-modern": modern} if shared else {"gan-modern": modern}
    return {name: config for name, config in ablation.items() if not (shared and name == PREFIX_RUN)}


def run_key(config: GanConfig) -> str:
    return run_folder(Path("."), "run", config).name.rsplit("-", 1)[1]


def start_from_prefix(folder: Path, prefix: Path) -> bool:
    """Begin ``folder``'s run where ``prefix``, the same run (same key) stopped after fewer steps, ended.

    Training is the same whatever a run's length (``steps`` only says where it stops), so the
    longer run continues from the shorter one's last checkpoint, sample grids included, exactly as
    if it had been interrupted there. Nothing is done when ``folder`` has a checkpoint already.
    """
    source = prefix / "checkpoint.pt"
    if (folder / "checkpoint.pt").exists() or not source.is_file() \
            or folder.name.rsplit("-", 1)[1] != prefix.name.rsplit("-", 1)[1]:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    if (prefix / "samples").is_dir():
        shutil.copytree(prefix / "samples", folder / "samples", dirs_exist_ok=True)
    tmp = folder / f"checkpoint.pt.{os.getpid()}.tmp"
    shutil.copy2(source, tmp)
    tmp.replace(folder / "checkpoint.pt")  # last: a copy cut short leaves no checkpoint behind
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="faithful | corrected | corrected-augmented | modern | ablation")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")),
                        help="torch threads (default: OMP_NUM_THREADS, which work_queue.py sets, else 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    values = chapter_parameters(args.profile)
    chapter, runs = CHAPTER, run_configs(values)
    if args.run in ("modern", "ablation"):
        chapter, runs = BEYOND, beyond_runs(values, chapter_parameters(args.profile, BEYOND), args.run)
    elif args.run in runs:
        runs = {args.run: runs[args.run]}
    else:
        parser.error(f"unknown run {args.run!r}; choose one of {', '.join(runs)}, modern, ablation")
    # A fresh clone has the in-progress checkpoints only in _freeze/ (effgen snapshot): bring them back first.
    thawed = thaw(project_root(), args.profile, chapter)
    if thawed:
        print(f"thawed {thawed} file(s) of {chapter} from _freeze/{args.profile}/", flush=True)
    data = gan_dataset(values["dataset"], "train", allow_stand_in=values["allow_stand_in"])
    for name, config in runs.items():
        folder = run_folder(runs_dir(args.profile, chapter), name, config)
        if name == "gan-modern" and PREFIX_RUN in runs:
            prefix = run_folder(runs_dir(args.profile, chapter), PREFIX_RUN, runs[PREFIX_RUN])
            if start_from_prefix(folder, prefix):
                print(f"{name}: starts from {prefix.name}, its first {runs[PREFIX_RUN].steps:,} steps", flush=True)
        print(f"{name}: {config.steps:,} steps into {Path(folder).relative_to(project_root())} "
              f"on {data.provenance['dataset']}, {args.threads} thread(s)", flush=True)
        run = train_gan(config, data.images, folder, torch.device("cpu"), provenance=data.provenance,
                        show_progress=False, keep_raw_generator=keeps_raw_generator(name))
        print(f"{name}: step {run.step:,}/{config.steps:,}, {run.seconds:.0f} s this call", flush=True)


if __name__ == "__main__":
    main()
