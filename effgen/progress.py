"""Progress bars that suit both an interactive notebook and a batch (papermill) run.

``tqdm.auto`` gives a widget in Jupyter and text elsewhere. The runner sets
``EFFGEN_PROGRESS=0`` so bars never end up as stderr noise in the rendered book.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, TypeVar

from tqdm import std

T = TypeVar("T")


def progress_enabled() -> bool:
    return os.environ.get("EFFGEN_PROGRESS", "1") != "0"


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> std.tqdm:
    if not progress_enabled():
        # tqdm.auto would still probe for ipywidgets and warn on stderr, which lands in the book.
        return std.tqdm(iterable, **{**kwargs, "disable": True})
    from tqdm.auto import tqdm

    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
