"""Downloads (network monkeypatched): atomic, checksummed, and the auto fallback chain."""
from __future__ import annotations

import io
import json
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

from effgen.data import addnist_official, load_addnist
from effgen.data.download import download, file_digest
from effgen.errors import DataError


class FakeResponse:
    """What ``urlopen`` returns: headers, chunked reads, optionally dying half-way."""

    def __init__(self, payload: bytes, declared: int | None = None, die_after: int | None = None) -> None:
        self.stream = io.BytesIO(payload)
        self.headers = {"Content-Length": str(declared if declared is not None else len(payload))}
        self.die_after = die_after

    def read(self, n: int = -1) -> bytes:
        if self.die_after is not None and self.stream.tell() >= self.die_after:
            raise ConnectionResetError("connection reset by peer")
        return self.stream.read(min(n, 4096) if n > 0 else -1)

    def __enter__(self) -> "FakeResponse":  # noqa: PYI034, UP037 - a test double, not a base class
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def serve(monkeypatch: pytest.MonkeyPatch, **response: object) -> list[str]:
    requested: list[str] = []

    def fake_urlopen(request, timeout=None):
        requested.append(request.full_url)
        return FakeResponse(**response)

    monkeypatch.setattr("urllib.request.urlopen", fake_urlopen)
    return requested


def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    attempts: list[str] = []

    def fail(request, *args, **kwargs):
        attempts.append(getattr(request, "full_url", str(request)))
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr("urllib.request.urlopen", fail)
    return attempts


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def test_download_records_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = bytes(range(256)) * 100
    serve(monkeypatch, payload=payload)
    record = download("https://example.org/file.bin", tmp_path / "file.bin")
    assert (tmp_path / "file.bin").read_bytes() == payload
    assert record.size == len(payload) and record.sha256 == file_digest(tmp_path / "file.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


@pytest.mark.parametrize("case", ["sha256", "size", "reset", "short"])
def test_failed_download_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    payload = b"x" * 50_000
    kwargs: dict = {}
    if case == "sha256":
        serve(monkeypatch, payload=payload)
        kwargs["sha256"] = "0" * 64
    elif case == "size":
        serve(monkeypatch, payload=payload)
        kwargs["size"] = 1
    elif case == "reset":
        serve(monkeypatch, payload=payload, die_after=20_000)
    else:
        serve(monkeypatch, payload=payload, declared=80_000)  # server promised more than it sent
    with pytest.raises(DataError, match="example.org"):
        download("https://example.org/file.bin", tmp_path / "file.bin", **kwargs)
    assert list(tmp_path.iterdir()) == []


def _official_zip(nested: bool) -> bytes:
    """A small stand-in for the release zip, optionally wrapping the files in an inner zip."""
    rng = np.random.default_rng(0)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        for split, n in (("train", 200), ("valid", 200), ("test", 200)):
            for name, array in ((f"{split}_x.npy", rng.random((n, 3, 28, 28), dtype=np.float32)),
                                (f"{split}_y.npy", np.tile(np.arange(20, dtype=np.int64), n // 20))):
                buffer = io.BytesIO()
                np.save(buffer, array, allow_pickle=False)
                archive.writestr(f"AddNIST/{name}", buffer.getvalue())
    if not nested:
        return inner.getvalue()
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as archive:
        archive.writestr("AddNIST.zip", inner.getvalue())
        archive.writestr("README.txt", "release notes")
    return outer.getvalue()


@pytest.mark.parametrize("nested", [False, True])
def test_official_download_extracts_and_records(data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                nested: bool) -> None:
    payload = _official_zip(nested)
    urls = serve(monkeypatch, payload=payload)
    data = load_addnist("official")
    assert urls == [addnist_official.OFFICIAL_URL]
    assert data.folder == data_dir / "addnist" and data.provenance["source"] == "official"
    assert data.provenance["stand_in"] is False and data.sizes == {"train": 200, "valid": 200, "test": 200}
    record = json.loads((data_dir / "addnist" / "provenance.json").read_text())
    assert record["download"]["size"] == len(payload)
    assert len(record["files"]) == 6
    assert sorted(p.name for p in data_dir.iterdir()) == ["addnist"]  # no zip or staging left behind


def test_corrupt_official_zip_leaves_nothing(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, payload=b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        load_addnist("official")
    assert not data_dir.exists() or list(data_dir.iterdir()) == []


def test_official_without_download_says_what_to_fetch(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = no_network(monkeypatch)
    with pytest.raises(DataError, match="24574354") as caught:
        load_addnist("official", download=False)
    assert str(data_dir / "addnist") in str(caught.value) and attempts == []


def test_auto_falls_back_through_the_whole_chain(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = no_network(monkeypatch)
    data = load_addnist("auto", seed=0, sizes=(200, 100, 100))
    assert data.provenance["source"] == "mnist-5k" and data.provenance["stand_in"] is True
    reason = data.provenance["reason"]
    assert reason.startswith("The official AddNIST files are not in data/addnist/ and could not be downloaded")
    assert "MNIST is not in data/mnist/" in reason and "network unreachable (test)" in reason
    assert any("24574354" in url for url in attempts)  # tried the official release
    assert any("mnist" in url.lower() and "24574354" not in url for url in attempts)  # then torchvision MNIST
    record = json.loads((data.folder / "provenance.json").read_text())
    assert record["source"] == "mnist-5k" and record["reason"] == reason
    assert record["pool_sizes"] == {"train": 3000, "valid": 1000, "test": 1000}
    assert len(record["digit_indices"]["train"]) == 200
    assert not (data_dir / "addnist").exists()  # the failed download left nothing


def test_auto_prefers_official_files_when_present(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, payload=_official_zip(nested=False))
    load_addnist("official")
    attempts = no_network(monkeypatch)
    data = load_addnist("auto")
    assert data.provenance["source"] == "official" and attempts == []


def test_auto_refuses_to_hide_broken_official_files(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, payload=_official_zip(nested=False))
    load_addnist("official")
    (data_dir / "addnist" / "test_x.npy").write_bytes(b"broken")
    no_network(monkeypatch)
    with pytest.raises(DataError, match="test_x.npy"):
        load_addnist("auto")


def test_hand_placed_official_files_get_checksums(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = data_dir / "addnist"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(_official_zip(nested=False))) as archive:
        for member in archive.namelist():
            (folder / Path(member).name).write_bytes(archive.read(member))
    no_network(monkeypatch)
    data = load_addnist("official", download=False)
    assert "no provenance.json" in data.provenance["detail"]
    assert len(json.loads((folder / "provenance.json").read_text())["files"]) == 6


def test_unknown_source_is_refused(data_dir: Path) -> None:
    with pytest.raises(DataError, match="unknown AddNIST source"):
        load_addnist("emnist")


def test_auto_remembers_that_the_downloads_failed(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, only the first ``auto`` call waits on the network; the reason stays in the provenance."""
    monkeypatch.delenv("EFFGEN_RETRY_DOWNLOADS", raising=False)
    attempts = no_network(monkeypatch)
    sizes = (200, 100, 100)
    first = load_addnist("auto", seed=0, sizes=sizes)
    tried = len(attempts)
    assert tried > 0 and (data_dir / ".offline-verdicts.json").is_file()
    again = load_addnist("auto", seed=0, sizes=sizes)
    assert len(attempts) == tried  # no download was attempted this time
    assert again.provenance["source"] == first.provenance["source"] == "mnist-5k"
    assert "network unreachable (test)" in again.provenance["reason"]
    assert "not retried" in again.provenance["reason"] and "EFFGEN_RETRY_DOWNLOADS=1" in again.provenance["reason"]
    load_addnist("auto", seed=0, sizes=sizes, retry_download=True)
    assert len(attempts) == 2 * tried  # asked to retry: both downloads tried again
    monkeypatch.setenv("EFFGEN_RETRY_DOWNLOADS", "1")
    load_addnist("auto", seed=0, sizes=sizes)
    assert len(attempts) == 3 * tried


def test_offline_verdicts_expire_and_a_success_clears_them(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from effgen.data import addnist as module

    monkeypatch.delenv("EFFGEN_RETRY_DOWNLOADS", raising=False)
    attempts = no_network(monkeypatch)
    load_addnist("auto", seed=0, sizes=(200, 100, 100))
    tried = len(attempts)
    record_file = data_dir / ".offline-verdicts.json"
    record = json.loads(record_file.read_text())
    for entry in record.values():
        entry["when"] -= module.OFFLINE_VERDICT_SECONDS + 1
    record_file.write_text(json.dumps(record))
    load_addnist("auto", seed=0, sizes=(200, 100, 100))
    assert len(attempts) == 2 * tried  # an old verdict does not hold
    record_file.write_text("{not json")  # a damaged record counts as none
    load_addnist("auto", seed=0, sizes=(200, 100, 100))
    assert len(attempts) == 3 * tried
    assert set(json.loads((data_dir / ".offline-verdicts.json").read_text())) == {"official", "mnist"}
    serve(monkeypatch, payload=_official_zip(nested=False))
    data = load_addnist("auto", retry_download=True)
    assert data.provenance["source"] == "official"
    assert set(json.loads((data_dir / ".offline-verdicts.json").read_text())) == {"mnist"}
