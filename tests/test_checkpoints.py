"""Checkpoints: resumes load onto the CPU whatever the device, and damaged files fail in one line."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from effgen.checkpoints import atomic_folder, atomic_torch_save, atomic_write
from effgen.classifier import ClassifierConfig, load_classifier, train_classifier
from effgen.commands import main
from effgen.errors import CheckpointError, EffgenError
from effgen.gan import FCGenerator, Generator, load_generator, preset, save_generator, train_gan

CPU = torch.device("cpu")


def gan_images(n: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


def tiny_gan(name: str = "faithful", **overrides: object):
    settings = {"steps": 6, "batch_size": 4, "sample_every": 3, "checkpoint_every": 100, "n_fixed": 4,
                "epoch_steps": 2, "step_size": 2}
    return preset(name, **{**settings, **overrides})


# ---------------------------------------------------------------- item 1: resume off the CPU

def _off_cpu_load(seen: list[object]):
    """``torch.load`` that puts tensors on a non-CPU device unless told ``map_location="cpu"``.

    On a GPU, ``map_location=<the CUDA device>`` delivers CUDA tensors, and a CPU
    ``torch.Generator.set_state`` refuses them ("RNG state must be a torch.ByteTensor"). This
    machine has no GPU, so the "meta" device stands in: any other ``map_location``, the
    training device object included, lands there.
    """
    real_load = torch.load

    def load(f, *args, map_location=None, **kwargs):
        seen.append(map_location)
        on_cpu = isinstance(map_location, str) and map_location == "cpu"
        return real_load(f, *args, map_location="cpu" if on_cpu else "meta", **kwargs)

    return load


@pytest.mark.parametrize("name", ["faithful", "wgan_gp"])  # wgan_gp also restores the penalty's RNG draws
def test_gan_resume_loads_rng_states_onto_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   name: str) -> None:
    config = tiny_gan(name, augment=True, **({"steps": 4, "n_critic": 2} if name == "wgan_gp" else {}))
    whole = train_gan(config, gan_images(), tmp_path / "whole", show_progress=False)
    train_gan(config, gan_images(), tmp_path / "split", stop_at=config.steps // 2, show_progress=False)
    seen: list[object] = []
    monkeypatch.setattr(torch, "load", _off_cpu_load(seen))
    resumed = train_gan(config, gan_images(), tmp_path / "split", show_progress=False)
    assert seen == ["cpu"]
    assert resumed.resumed_from == config.steps // 2
    assert np.array_equal(whole.history.to_numpy(), resumed.history.to_numpy())
    reused = train_gan(config, gan_images(), tmp_path / "whole", show_progress=False)  # what chapter 04 re-runs do
    assert reused.resumed_from == config.steps


class Interrupt(Exception):
    pass


def test_classifier_resume_loads_onto_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(0)
    train = (torch.randn(64, 3, 28, 28, generator=g), torch.randint(0, 20, (64,), generator=g))
    valid = (torch.randn(20, 3, 28, 28, generator=g), torch.randint(0, 20, (20,), generator=g))
    config = ClassifierConfig.from_dict({"model": "baseline", "steps": 6, "steps_per_epoch": 3, "batch_size": 16,
                                         "eval_samples": 20})
    straight = train_classifier(config, train, valid, CPU, tmp_path / "straight")

    def stop(epoch: int, row: dict) -> None:
        raise Interrupt

    with pytest.raises(Interrupt):
        train_classifier(config, train, valid, CPU, tmp_path / "resumed", on_epoch=stop)
    seen: list[object] = []
    monkeypatch.setattr(torch, "load", _off_cpu_load(seen))
    resumed = train_classifier(config, train, valid, CPU, tmp_path / "resumed")
    assert seen == ["cpu"]
    assert np.array_equal(resumed.history["val_loss"], straight.history["val_loss"])


# ---------------------------------------------------------------- item 8: damaged files, one line

DAMAGE = {
    "garbage": lambda path: path.write_bytes(b"not a checkpoint at all"),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "foreign": lambda path: torch.save({"weights": torch.zeros(3)}, path),
    "a tensor": lambda path: torch.save(torch.zeros(3), path),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_gan_checkpoint_is_a_one_line_error(tmp_path: Path, damage: str) -> None:
    config = tiny_gan("corrected")
    train_gan(config, gan_images(), tmp_path, stop_at=3, show_progress=False)
    DAMAGE[damage](tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="checkpoint.pt: ") as caught:
        train_gan(config, gan_images(), tmp_path, show_progress=False)
    assert "\n" not in str(caught.value)


def test_gan_checkpoint_with_a_bad_entry_is_a_one_line_error(tmp_path: Path) -> None:
    config = tiny_gan("corrected")
    train_gan(config, gan_images(), tmp_path, stop_at=3, show_progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    state["generator"] = {"net.0.weight": torch.zeros(2)}
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="damaged GAN checkpoint"):
        train_gan(config, gan_images(), tmp_path, show_progress=False)


@pytest.mark.parametrize("damage", list(DAMAGE) + ["wrong widths", "bad shapes"])
def test_damaged_generator_file_is_a_one_line_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "generator.pt"
    save_generator(Generator(), path, {"recipe": "test"})
    if damage == "wrong widths":
        payload = torch.load(path, weights_only=True)
        torch.save({**payload, "widths": "96,64"}, path)
    elif damage == "bad shapes":
        payload = torch.load(path, weights_only=True)
        torch.save({**payload, "widths": [8, 8, 8]}, path)
    else:
        DAMAGE[damage](path)
    with pytest.raises(CheckpointError) as caught:
        load_generator(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_fid_command_reports_a_damaged_generator_in_one_line(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "g.pt").write_bytes(b"garbage")
    stats = tmp_path / "s.npz"
    np.savez(stats, mu=np.zeros(2048), sigma=np.eye(2048))
    assert main(["fid", str(stats), str(tmp_path / "g.pt"), "-n", "4", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("effgen: error:") and "unreadable generator file" in err and err.count("\n") == 1


def test_fc_and_dcgan_generators_round_trip(tmp_path: Path) -> None:
    for generator in (Generator(), FCGenerator()):
        path = tmp_path / f"{type(generator).__name__}.pt"
        save_generator(generator, path, {"recipe": "x"})
        loaded = load_generator(path)
        assert type(loaded) is type(generator) and not loaded.training
        for key, value in generator.state_dict().items():
            assert torch.equal(value, loaded.state_dict()[key])


def test_old_dcgan_files_without_an_architecture_still_load(tmp_path: Path) -> None:
    generator = Generator()
    path = tmp_path / "old.pt"
    torch.save({"state_dict": generator.state_dict(), "latent_dim": 100, "widths": [96, 64, 48], "extra": {}}, path)
    assert isinstance(load_generator(path), Generator)


@pytest.mark.parametrize("missing", ["model", "data_fingerprint", "sampler"])
def test_classifier_checkpoint_missing_keys_is_a_one_line_error(tmp_path: Path, missing: str) -> None:
    g = torch.Generator().manual_seed(0)
    train = (torch.randn(32, 3, 28, 28, generator=g), torch.randint(0, 20, (32,), generator=g))
    config = ClassifierConfig.from_dict({"model": "baseline", "steps": 2, "steps_per_epoch": 2, "batch_size": 16})
    train_classifier(config, train, train, CPU, tmp_path)
    (tmp_path / "weights.pt").unlink()  # the finished run's reload file: its checkpoint is read instead
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del payload[missing]
    torch.save(payload, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=f"missing {missing}"):
        train_classifier(config, train, train, CPU, tmp_path)
    if missing == "model":
        with pytest.raises(EffgenError, match="missing model"):
            load_classifier(tmp_path)


def test_gan_history_and_config_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_gan("corrected")
    train_gan(config, gan_images(), tmp_path, show_progress=False)
    before = {name: (tmp_path / name).read_text() for name in ("history.csv", "config.json")}
    import pandas as pd

    def die_half_way(self, path, *args, **kwargs):
        Path(path).write_text("step,loss_d\n1,")  # a partial file, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", die_half_way)
    with pytest.raises(KeyboardInterrupt):
        train_gan(config, gan_images(), tmp_path, show_progress=False)
    assert (tmp_path / "history.csv").read_text() == before["history.csv"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    target.write_text("old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_atomic_write_stages_in_a_hidden_sibling_of_its_own(tmp_path: Path) -> None:
    staged: list[Path] = []
    atomic_write(tmp_path / "x.txt", lambda tmp: (staged.append(tmp), tmp.write_text("new")))
    assert staged == [tmp_path / f".x.txt.{os.getpid()}.tmp"] and (tmp_path / "x.txt").read_text() == "new"


def test_atomic_torch_save_bytes_do_not_depend_on_the_file_name(tmp_path: Path) -> None:
    payload = {"weight": torch.arange(6.0).reshape(2, 3)}
    a = atomic_torch_save(payload, tmp_path / "a.pt")
    b = atomic_torch_save(payload, tmp_path / "sub" / "b.pt")
    assert a.read_bytes() == b.read_bytes()
    assert torch.equal(torch.load(a, weights_only=True)["weight"], payload["weight"])


def test_atomic_folder_replaces_a_folder_only_once_the_new_one_is_whole(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "old.txt").write_text("old")

    def broken(scratch: Path) -> Path:
        (scratch / "new.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_folder(folder, broken)
    assert [p.name for p in tmp_path.iterdir()] == ["set"] and [p.name for p in folder.iterdir()] == ["old.txt"]

    def nested(scratch: Path) -> Path:  # the folder to install may sit inside the scratch folder
        (scratch / "wrapper" / "tree").mkdir(parents=True)
        (scratch / "wrapper" / "tree" / "new.txt").write_text("new")
        return scratch / "wrapper" / "tree"

    atomic_folder(folder, nested)
    assert [p.name for p in tmp_path.iterdir()] == ["set"] and [p.name for p in folder.iterdir()] == ["new.txt"]
    assert folder.stat().st_mode & 0o777 == 0o755


# ---------------------------------------------------------------- one trainer per run folder

def test_a_run_folder_being_trained_refuses_a_second_trainer(tmp_path: Path) -> None:
    from effgen.checkpoints import LOCK_FILE, exclusive_run

    config = tiny_gan("corrected", steps=4, checkpoint_every=2)
    first = train_gan(config, gan_images(), tmp_path / "gan", stop_at=2, show_progress=False)
    before = (tmp_path / "gan" / "checkpoint.pt").read_bytes()
    classifier = ClassifierConfig.from_dict({"model": "baseline", "steps": 2, "steps_per_epoch": 2,
                                             "batch_size": 8, "eval_samples": 8})
    data = (torch.randn(16, 3, 28, 28), torch.randint(0, 20, (16,)))
    with exclusive_run(tmp_path / "gan"), exclusive_run(tmp_path / "cls"):  # as another process would
        with pytest.raises(EffgenError, match="being trained by another process"):
            train_gan(config, gan_images(), tmp_path / "gan", show_progress=False)
        with pytest.raises(EffgenError, match="being trained by another process"):
            train_classifier(classifier, data, data, CPU, tmp_path / "cls")
    assert (tmp_path / "gan" / "checkpoint.pt").read_bytes() == before  # nothing was touched
    assert not (tmp_path / "cls" / "checkpoint.pt").exists()
    assert train_gan(config, gan_images(), tmp_path / "gan", show_progress=False).resumed_from == first.step == 2
    assert train_classifier(classifier, data, data, CPU, tmp_path / "cls").history["step"].tolist() == [2]
    assert (tmp_path / "gan" / LOCK_FILE).exists()  # left behind, harmless: the OS lock went with its holder


def test_a_trainer_told_to_wait_takes_the_run_folder_once_it_is_free(tmp_path: Path) -> None:
    """A run-store entry two chapters need: the second waits for the first, then reuses its run."""
    import threading
    import time

    from effgen.checkpoints import exclusive_run

    held, order = threading.Event(), []

    def first() -> None:
        with exclusive_run(tmp_path / "run"):
            held.set()
            time.sleep(0.3)
            order.append("first done")

    holder = threading.Thread(target=first)
    holder.start()
    held.wait()
    with exclusive_run(tmp_path / "run", wait=True):
        order.append("second")
    holder.join()
    assert order == ["first done", "second"]
