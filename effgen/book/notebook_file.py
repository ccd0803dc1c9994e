"""Reading a notebook file: the one reader of ``.ipynb`` files, for the runner, the parameters check
and the renderer alike.

It imports nothing of the book, so every part of it can use it without importing the others.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from effgen.errors import EffgenError

if TYPE_CHECKING:
    from nbformat import NotebookNode


class NotebookError(EffgenError):
    """A notebook file that cannot be read, or is not a notebook."""


def import_nbformat() -> ModuleType:
    """nbformat, imported without jsonschema's IRI format checker; call it before importing papermill too.

    With ``rfc3987_syntax`` installed (jupyter-events pulls it in), importing jsonschema compiles about 40
    grammars: 1-3 s in every process that reads, writes or executes a notebook. No notebook schema checks
    an IRI, so these processes do without the checker.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # None: "not importable"
    import nbformat

    return nbformat


def read_notebook(path: Path, where: str | None = None) -> NotebookNode:
    """The notebook at ``path`` as nbformat 4 (a dict whose keys read as attributes too, multi-line
    strings joined); a one-line ``NotebookError`` naming ``where`` (default: ``path``) if it cannot be read.
    """
    nbformat = import_nbformat()
    from nbformat.warnings import MissingIDFieldWarning

    where = where or str(path)
    try:
        with warnings.catch_warnings():
            # Cells without ids (older nbformat 4 minor versions, some tools' output) read correctly.
            warnings.simplefilter("ignore", MissingIDFieldWarning)
            notebook = nbformat.read(path, as_version=4)
    except (OSError, ValueError, KeyError, AttributeError, nbformat.ValidationError) as err:
        reason = " ".join(str(getattr(err, "strerror", None) or err).split())[:200]
        raise NotebookError(f"cannot read notebook {where}: {reason}") from None
    if not isinstance(notebook.get("cells"), list):
        raise NotebookError(f"{where} is not a Jupyter notebook (no 'cells' list)")
    return notebook
