"""The one AddNIST format: a round trip, and a clear error naming the file for every defect."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from effgen.commands import main
from effgen.data import read_addnist_folder, write_addnist_folder
from effgen.data.addnist_format import FILE_NAMES
from effgen.errors import DataError

SIZES = {"train": 400, "valid": 200, "test": 200}


def _splits(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in SIZES.items():
        x = (rng.random((n, 3, 28, 28), dtype=np.float32) - 0.1307) / 0.3081
        y = np.tile(np.arange(20, dtype=np.int64), n // 20)
        out[split] = (x.astype(np.float32), rng.permutation(y))
    return out


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_addnist_folder(tmp_path / "addnist", _splits(), {"dataset": "test set", "source": "test"})


def test_round_trip_is_exact(folder: Path) -> None:
    original = _splits()
    data = read_addnist_folder(folder)
    for split, (x, y) in original.items():
        got_x, got_y = data.split(split)
        assert got_x.dtype.is_floating_point and got_x.numpy().dtype == np.float32
        assert got_y.numpy().dtype == np.int64
        np.testing.assert_array_equal(got_x.numpy(), x)
        np.testing.assert_array_equal(got_y.numpy(), y)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILE_NAMES, "provenance.json"])
    record = json.loads((folder / "provenance.json").read_text())
    assert set(record["files"]) == set(FILE_NAMES)
    assert data.provenance["dataset"] == "test set" and "files" not in data.provenance
    assert data.sizes == SIZES


def test_written_files_are_plain_npy(folder: Path) -> None:
    x = np.load(folder / "train_x.npy", allow_pickle=False)
    assert x.dtype == np.float32 and x.shape == (400, 3, 28, 28)
    assert np.load(folder / "train_y.npy", allow_pickle=False).dtype == np.int64


def _save(path: Path, array: np.ndarray) -> None:
    np.save(path, array, allow_pickle=False)


DEFECTS = {
    "truncated": ("train_x.npy", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
                  "truncated or corrupt"),
    "garbage": ("valid_y.npy", lambda p: p.write_bytes(b"not a numpy file at all"), "truncated or corrupt"),
    "wrong shape": ("test_x.npy", lambda p: _save(p, np.zeros((200, 28, 28, 3), np.float32)), "shape"),
    "wrong x dtype": ("train_x.npy", lambda p: _save(p, np.zeros((400, 3, 28, 28), np.float64)), "float32"),
    "wrong y dtype": ("valid_y.npy", lambda p: _save(p, np.tile(np.arange(20, dtype=np.float32), 10)), "integer"),
    "length mismatch": ("test_y.npy", lambda p: _save(p, np.tile(np.arange(20, dtype=np.int64), 9)), "shape"),
    "nan": ("valid_x.npy", lambda p: _save(p, np.full((200, 3, 28, 28), np.nan, np.float32)), "NaN"),
    "label 20": ("train_y.npy", lambda p: _save(p, np.tile(np.arange(1, 21, dtype=np.int64), 20)), "0..19"),
    "negative label": ("test_y.npy", lambda p: _save(p, np.tile(np.arange(-1, 19, dtype=np.int64), 10)), "0..19"),
    "unnormalised": ("test_x.npy", lambda p: _save(p, np.full((200, 3, 28, 28), 255, np.float32)), "normalised"),
    "unbalanced": ("train_y.npy", lambda p: _save(p, np.repeat(np.arange(20, dtype=np.int64), 20) // 2), "balanced"),
    "missing": ("valid_x.npy", lambda p: p.unlink(), "missing"),
}


@pytest.mark.parametrize("defect", DEFECTS)
def test_every_defect_names_its_file(folder: Path, defect: str) -> None:
    name, damage, message = DEFECTS[defect]
    damage(folder / name)
    with pytest.raises(DataError, match=message) as caught:
        read_addnist_folder(folder, verify_checksums=False)
    assert name in str(caught.value)


@pytest.mark.parametrize("defect", ["truncated", "nan", "label 20"])
def test_checksums_catch_changed_files_first(folder: Path, defect: str) -> None:
    name, damage, _ = DEFECTS[defect]
    damage(folder / name)
    with pytest.raises(DataError, match=r"size|sha256") as caught:
        read_addnist_folder(folder)
    assert name in str(caught.value)


def test_same_size_bit_flip_fails_the_sha256(folder: Path) -> None:
    path = folder / "test_x.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="sha256.*does not match"):
        read_addnist_folder(folder)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    splits = _splits()
    splits["test"] = (splits["test"][0], splits["test"][1] + 100)  # invalid labels: refused before rename
    with pytest.raises(DataError, match="test_y.npy"):
        write_addnist_folder(tmp_path / "out", splits, {})
    assert list(tmp_path.iterdir()) == []


def test_rewrite_replaces_a_folder_whole(folder: Path) -> None:
    write_addnist_folder(folder, _splits(seed=1), {"dataset": "second"})
    data = read_addnist_folder(folder)
    assert data.provenance["dataset"] == "second"
    np.testing.assert_array_equal(data.train[0].numpy(), _splits(seed=1)["train"][0])
    assert [p.name for p in folder.parent.iterdir()] == ["addnist"]


def test_a_folder_another_process_wrote_first_is_replaced_whole(folder: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two chapters building one dataset: the folder appears between this writer's check and its rename."""
    from effgen.data import addnist_format

    real_exists = Path.exists
    monkeypatch.setattr(addnist_format.Path, "exists",
                        lambda self: False if self == folder else real_exists(self))
    write_addnist_folder(folder, _splits(seed=1), {"dataset": "second"})
    monkeypatch.undo()
    data = read_addnist_folder(folder)
    assert data.provenance["dataset"] == "second"
    assert [p.name for p in folder.parent.iterdir()] == ["addnist"]


def test_cli_check_passes_and_fails(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(folder)]) == 0
    assert "valid AddNIST format" in capsys.readouterr().out
    _save(folder / "valid_y.npy", np.tile(np.arange(20, dtype=np.int64), 10) + 1)
    assert main(["data", "check", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("effgen: error:") and "valid_y.npy" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.uint8, np.uint64])
def test_any_integer_label_dtype_is_read_as_int64(folder: Path, dtype: type, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The official files' labels might not be int64; any integer type is accepted and cast."""
    from effgen.data import load_addnist

    for split in SIZES:
        y = np.load(folder / f"{split}_y.npy", allow_pickle=False)
        _save(folder / f"{split}_y.npy", y.astype(dtype))
    (folder / "provenance.json").unlink()  # as if the files had been placed by hand
    data = read_addnist_folder(folder)
    for split in SIZES:
        assert data.split(split)[1].dtype == torch.int64
        np.testing.assert_array_equal(data.split(split)[1].numpy(), _splits()[split][1])
    monkeypatch.setenv("EFFGEN_DATA", str(folder.parent))
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("no download expected"))
    auto = load_addnist("auto")
    assert auto.provenance["source"] == "official" and auto.train[1].dtype == torch.int64


def test_written_labels_are_int64_whatever_came_in(tmp_path: Path) -> None:
    splits = {split: (x, y.astype(np.int32)) for split, (x, y) in _splits().items()}
    write_addnist_folder(tmp_path / "a", splits, {})
    assert np.load(tmp_path / "a" / "train_y.npy", allow_pickle=False).dtype == np.int64
