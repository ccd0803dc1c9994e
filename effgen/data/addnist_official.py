"""The published AddNIST release: download the zip, verify it, extract the six ``.npy`` files.

The release is Figshare article 24574354 on data.ncl.ac.uk (DOI 10.25405/data.ncl.24574354.v1,
CC BY 4.0), about 629 MiB. Figshare serves a whole article as one zip; the six files may sit
at any depth or inside a nested zip, so extraction matches them by file name.
"""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

from effgen.checkpoints import atomic_folder
from effgen.data.addnist_format import FILE_NAMES, read_provenance, record_checksums
from effgen.data.download import download
from effgen.errors import DataError

OFFICIAL_DOI = "10.25405/data.ncl.24574354.v1"
OFFICIAL_URL = "https://data.ncl.ac.uk/ndownloader/articles/24574354/versions/1"
OFFICIAL_PAGE = "https://doi.org/" + OFFICIAL_DOI


def official_files_present(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILE_NAMES)


def fetch_official(folder: Path, url: str = OFFICIAL_URL, sha256: str | None = None) -> dict[str, Any]:
    """Download the release into ``folder`` (absent before, complete after); return the zip's record.

    The zip goes to a temporary file that is renamed only once complete, its size and sha256
    are recorded and re-verified, and the six files appear in ``folder`` in one rename.
    """
    folder = Path(folder)

    def build(work: Path) -> Path:
        record = download(url, work / "addnist.zip", sha256=sha256, description="AddNIST (629 MiB)")
        staging = work / folder.name
        staging.mkdir()
        extract_official(record.path, staging)
        zip_record = record.as_dict()
        provenance = {
            "dataset": "AddNIST (official)", "requested": "AddNIST (official)", "stand_in": False,
            "reason": "", "source": "official",
            "detail": f"official release {OFFICIAL_PAGE}, downloaded from {url} "
                      f"(zip {zip_record['size']} bytes, sha256 {zip_record['sha256']})",
            "download": zip_record,
        }
        _write_json(staging / "provenance.json", provenance)
        record_checksums(staging)
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()
        if folder.exists():
            raise DataError(f"{folder}: exists but does not hold the six AddNIST files; "
                            f"move it away before downloading")
        return staging

    atomic_folder(folder, build)
    return read_provenance(folder) or {}


def extract_official(zip_path: Path, out: Path) -> None:
    """Copy the six files out of ``zip_path`` (searching nested zips too) into ``out``."""
    found: set[str] = set()
    try:
        _extract_matching(zip_path, out, found)
    except zipfile.BadZipFile as err:
        raise DataError(f"{zip_path}: not a valid zip archive ({err})") from err
    missing = sorted(set(FILE_NAMES) - found)
    if missing:
        raise DataError(f"{zip_path}: the archive lacks {', '.join(missing)}")


def _extract_matching(zip_path: Path, out: Path, found: set[str]) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        for member in archive.infolist():
            name = Path(member.filename).name
            if name in FILE_NAMES and name not in found:
                with archive.open(member) as src, open(out / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
                found.add(name)
            elif name.lower().endswith(".zip") and len(found) < len(FILE_NAMES):
                nested = out / f".nested-{len(found)}.zip"
                with archive.open(member) as src, open(nested, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
                try:
                    _extract_matching(nested, out, found)
                finally:
                    nested.unlink(missing_ok=True)


def _write_json(path: Path, record: dict[str, Any]) -> None:
    path.write_text(json.dumps(record, indent=1))
