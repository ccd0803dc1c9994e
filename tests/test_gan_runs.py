"""effgen.book.jobs.gan_runs (`effgen jobs gan`): chapter 06's runs trained ahead of the chapter, the
ablation's full-recipe run shared with the long modern run."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from effgen.book.jobs import gan_runs
from effgen.book.jobs.values import BEYOND, chapter_parameters
from effgen.gan import preset, run_folder, train_gan


def test_a_longer_run_continues_from_the_same_run_stopped_earlier(tmp_path: Path) -> None:
    images = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    config = preset("modern", steps=4, batch_size=4, epoch_steps=2, sample_every=2, checkpoint_every=100, n_fixed=4)
    straight = train_gan(config, images, tmp_path / "straight", show_progress=False)
    short = dataclasses.replace(config, steps=2)
    prefix = run_folder(tmp_path / "runs", "ablation-modern", short)
    train_gan(short, images, prefix, show_progress=False)
    folder = run_folder(tmp_path / "runs", "gan-modern", config)
    assert gan_runs.start_from_prefix(folder, prefix)
    continued = train_gan(config, images, folder, show_progress=False)
    assert continued.resumed_from == 2 and continued.finished
    assert np.array_equal(straight.history.to_numpy(), continued.history.to_numpy())
    for a, b in ((straight.generator, continued.generator), (straight.raw_generator, continued.raw_generator)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert sorted(p.name for p in (folder / "samples").iterdir()) == ["step-000002.png", "step-000004.png"]
    assert not gan_runs.start_from_prefix(folder, prefix)  # it has its own checkpoint now
    other = run_folder(tmp_path / "runs", "gan-modern", dataclasses.replace(config, g_lr=1e-3))
    assert not gan_runs.start_from_prefix(other, prefix) and not other.exists()  # another run: not its prefix


def test_the_paper_modern_job_trains_the_ablations_full_run_first_and_the_ablation_job_skips_it() -> None:
    values = chapter_parameters("paper")
    beyond = chapter_parameters("paper", BEYOND)
    modern = gan_runs.beyond_runs(values, beyond, "modern")
    ablation = gan_runs.beyond_runs(values, beyond, "ablation")
    assert list(modern) == [gan_runs.PREFIX_RUN, "gan-modern"]
    assert modern[gan_runs.PREFIX_RUN].steps == beyond["ablation_steps"] < modern["gan-modern"].steps
    assert gan_runs.run_key(modern[gan_runs.PREFIX_RUN]) == gan_runs.run_key(modern["gan-modern"])
    assert gan_runs.PREFIX_RUN not in ablation and len(ablation) == 4
    longer_grids = {**beyond, "gan_sample_every": 2_500}  # another sample cadence: another run, nothing shared
    assert list(gan_runs.beyond_runs(values, longer_grids, "modern")) == ["gan-modern"]
    assert gan_runs.PREFIX_RUN in gan_runs.beyond_runs(values, longer_grids, "ablation")
