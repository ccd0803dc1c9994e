"""Atomic, checksummed downloads: a file either arrives whole and verified, or not at all.

Bytes stream into a temporary file beside the destination while they are hashed; only a
complete, verified file is renamed into place (``effgen.checkpoints.atomic_write``).
Any failure deletes the temporary file, so an interrupted or corrupt download leaves nothing
half-written. Network access goes through ``urllib.request.urlopen``, which tests replace.
"""
from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from effgen.checkpoints import atomic_write
from effgen.errors import DataError
from effgen.runtime import progress

CHUNK_BYTES = 1 << 20
USER_AGENT = "effgen (https://github.com/w1ll-farmer/Deep-Learning reproduction)"


@dataclass(frozen=True)
class DownloadRecord:
    url: str
    path: Path
    size: int
    sha256: str

    def as_dict(self) -> dict[str, str | int]:
        return {"url": self.url, "file": self.path.name, "size": self.size, "sha256": self.sha256}


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (``hashlib`` names the algorithm)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def verify_file(path: Path, size: int | None = None, sha256: str | None = None) -> None:
    """Raise ``DataError`` naming ``path`` when its size or sha256 differs from the record."""
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise DataError(f"{path}: size {actual_size} bytes, expected {size} (truncated or replaced?)")
    if sha256 is not None:
        actual = file_digest(path)
        if actual != sha256.lower():
            raise DataError(f"{path}: sha256 {actual} does not match the recorded {sha256}")


def download(url: str, dest: Path, *, sha256: str | None = None, size: int | None = None,
             timeout_s: float = 60.0, description: str | None = None) -> DownloadRecord:
    """Fetch ``url`` into ``dest`` atomically; verify ``size``/``sha256`` when given.

    The record returned holds the size and sha256 measured while streaming; the file on
    disk is re-verified against them after the rename.
    """
    dest = Path(dest)
    written, actual = 0, ""

    def fetch(tmp: Path) -> None:
        nonlocal written, actual
        with tmp.open("wb") as handle:
            digest, written = _stream(url, handle, timeout_s, description or dest.name)
        actual = digest.hexdigest()
        if size is not None and written != size:
            raise DataError(f"download of {url} gave {written} bytes, expected {size}")
        if sha256 is not None and actual != sha256.lower():
            raise DataError(f"download of {url}: sha256 {actual} does not match the expected {sha256}")

    atomic_write(dest, fetch)
    verify_file(dest, size=written, sha256=actual)
    return DownloadRecord(url=url, path=dest, size=written, sha256=actual)


def _stream(url: str, handle, timeout_s: float, description: str) -> tuple[hashlib._Hash, int]:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    digest = hashlib.sha256()
    written = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            declared = response.headers.get("Content-Length") if response.headers else None
            total = int(declared) if declared and declared.isdigit() else None
            with progress(total=total, unit="B", unit_scale=True, desc=description) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    handle.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        raise DataError(f"could not download {url}: {err}") from err
    if total is not None and written != total:
        raise DataError(f"download of {url} stopped after {written} of {total} bytes")
    return digest, written


def root_cause(err: BaseException, limit: int = 120) -> str:
    """The innermost error of a chain on one short line: the part of a failure a reader needs."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = " ".join(str(err).split())
    if " Tried " in text and "got:" in text:  # torchvision lists every mirror; the last failure says why
        text = text.rsplit("got:", 1)[1].strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."
