"""Chapter 04's (and chapter 06's modern and ablation) GAN runs, trained outside the notebooks, one job per process.

The chapter trains its runs one after another in one kernel. On a 2-core CPU shared with other
work, two single-threaded processes (one per recipe) finish sooner than one two-threaded process,
whose OpenMP threads stall whenever a core is busy elsewhere. Each run goes to the folder the chapter
itself uses (``effgen.gan.run_folder`` under ``runs/<profile>/04-dcgan/``) with the config the chapter
builds from its parameters cell and ``params/<profile>/04-dcgan.yml``, so executing the chapter
afterwards reuses the finished runs, and an interrupted run resumes from its last checkpoint (thawed
from ``_freeze/`` on a fresh clone)::

    effgen jobs gan faithful --threads 1 &
    effgen jobs gan corrected --threads 1 &
    effgen jobs gan modern --threads 1 &     # chapter 06's modern recipe (after the ablation's
                                             # full-recipe run, its first steps)
    effgen jobs gan ablation --threads 1 &   # chapter 06's other leave-one-out runs
    effgen jobs gan winner --threads 1 &     # chapter 06's pilot winner at chapter 04's budget (after
                                             # the pilots: effgen jobs pilots)

The modern, ablation and winner runs are built by the functions chapter 06 builds them with
(``effgen.gan.modern_run_config``, ``ablation_run_configs``, ``effgen.gan.winner``): chapter 04's
steps, "epoch", batch size and seed, chapter 06's architecture, cadence, ablation length and pilots.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from effgen.book.freeze import thaw
from effgen.book.jobs.values import BEYOND, DCGAN, chapter_parameters
from effgen.checkpoints import atomic_write
from effgen.data import gan_dataset
from effgen.errors import ParamsError
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
from effgen.gan.pilots import held_out_batch
from effgen.gan.winner import WINNER_PREFIX, pick_winner, scored_pilots, winner_run_config
from effgen.paths import project_root, runs_dir

GAN_JOBS = ("faithful", "corrected", "corrected-augmented", "modern", "ablation", "winner")
PREFIX_RUN = "ablation-modern"  # the ablation's full-recipe run: the modern run's first steps, when keys match


def run_configs(values: dict[str, Any]) -> dict[str, GanConfig]:
    """Chapter 04's runs, name -> GanConfig, exactly as the chapter builds them from its ``values``."""
    common = {"steps": values["steps"], "batch_size": values["batch_size"], "epoch_steps": values["epoch_steps"],
              "seed": values["seed"], "sample_every": values["sample_every"],
              "checkpoint_every": values["checkpoint_every"]}
    configs = {"faithful": preset("faithful", **common), "corrected": preset("corrected", **common)}
    if values["augment"]:
        configs["corrected-augmented"] = preset("corrected", augment=True, **common)
    return configs


def modern_config(values: dict[str, Any], beyond: dict[str, Any]) -> GanConfig:
    """Chapter 06's modern run: chapter 04's budget and seed, chapter 06's shape and cadence."""
    return modern_run_config(beyond["modern_architecture"], steps=values["steps"],
                             epoch_steps=values["epoch_steps"], batch_size=values["batch_size"],
                             seed=values["seed"], checkpoint_every=beyond["gan_checkpoint_every"],
                             sample_every=beyond["gan_sample_every"])


def beyond_runs(values: dict[str, Any], beyond: dict[str, Any], which: str) -> dict[str, GanConfig]:
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


def winner_runs(values: dict[str, Any], beyond: dict[str, Any], out: Path) -> dict[str, GanConfig]:
    """Folder prefix -> config of the pilots' winner at chapter 04's budget: ``{"winner-P3": ...}``, from the
    pilots scored under ``out`` (chapter 06's ``pilots`` at its ``pilot_steps``); a one-line error when
    they have not all run or none beat the control."""
    scored = scored_pilots(out, beyond["pilots"], beyond["pilot_steps"])
    missing = sorted(set(beyond["pilots"]) - {result["pilot"] for result in scored})
    if missing:
        raise ParamsError(f"the pilots {', '.join(missing)} have no score under {out}: run them first "
                          "(effgen jobs pilots)")
    winner = pick_winner(scored)
    if winner is None:
        raise ParamsError("no pilot beat the control (P0, the corrected DCGAN): there is no winner to run")
    config = winner_run_config(winner, steps=values["steps"], epoch_steps=values["epoch_steps"],
                               batch_size=values["batch_size"], seed=values["seed"],
                               checkpoint_every=beyond["gan_checkpoint_every"],
                               sample_every=beyond["gan_sample_every"])
    return {f"{WINNER_PREFIX}-{winner}": config}


def run_key(config: GanConfig) -> str:
    """The run key ``run_folder`` ends a folder's name with (the steps are not part of it)."""
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
    # last, and whole: a copy cut short leaves no checkpoint behind
    atomic_write(folder / "checkpoint.pt", lambda tmp: shutil.copy2(source, tmp))
    return True


def chapter_runs(profile: str, which: str) -> tuple[str, dict[str, GanConfig]]:
    """(chapter, folder prefix -> config) of the job ``which`` (one of ``GAN_JOBS``), in training order."""
    values = chapter_parameters(profile)
    if which in ("modern", "ablation"):
        return BEYOND, beyond_runs(values, chapter_parameters(profile, BEYOND), which)
    if which == "winner":
        return BEYOND, winner_runs(values, chapter_parameters(profile, BEYOND), runs_dir(profile, BEYOND))
    runs = run_configs(values)
    if which not in runs:
        hint = " (chapter 04 trains it only with augment: true)" if which == "corrected-augmented" else ""
        raise ParamsError(f"unknown GAN job {which!r}{hint}; "
                          f"choose one of {', '.join([*runs, 'modern', 'ablation', 'winner'])}")
    return DCGAN, {which: runs[which]}


def train_ahead(profile: str, which: str, threads: int) -> None:
    """Train the runs of the job ``which`` on the CPU with ``threads`` torch threads, into their chapter's
    run folder; a finished run reloads, an interrupted one resumes."""
    torch.set_num_threads(threads)
    chapter, runs = chapter_runs(profile, which)
    root = project_root()
    # A fresh clone has the in-progress checkpoints only in _freeze/ (effgen snapshot): bring them back first.
    thawed = thaw(root, profile, chapter)
    if thawed:
        print(f"thawed {thawed} file(s) of {chapter} from _freeze/{profile}/", flush=True)
    values = chapter_parameters(profile)
    data = gan_dataset(values["dataset"], "train", allow_stand_in=values["allow_stand_in"])
    # Chapter 06 reads D's output on held-out images in every run's diagnostics, as its pilots log it.
    held_out = held_out_batch(data.provenance["dataset"]) if chapter == BEYOND else None
    for name, config in runs.items():
        folder = run_folder(runs_dir(profile, chapter), name, config)
        if name == "gan-modern" and PREFIX_RUN in runs:
            prefix = run_folder(runs_dir(profile, chapter), PREFIX_RUN, runs[PREFIX_RUN])
            if start_from_prefix(folder, prefix):
                print(f"{name}: starts from {prefix.name}, its first {runs[PREFIX_RUN].steps:,} steps", flush=True)
        print(f"{name}: {config.steps:,} steps into {Path(folder).relative_to(root)} "
              f"on {data.provenance['dataset']}, {threads} thread(s)", flush=True)
        run = train_gan(config, data.images, folder, torch.device("cpu"), provenance=data.provenance,
                        show_progress=False, keep_raw_generator=keeps_raw_generator(name), held_out=held_out)
        print(f"{name}: step {run.step:,}/{config.steps:,}, {run.seconds:.0f} s this call", flush=True)
