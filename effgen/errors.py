"""One exception family for every user-facing failure.

The CLI and the notebook runner catch ``EffgenError`` and print its message on one line,
so a bad parameter, a missing dataset or a budget overrun never surfaces as a bare traceback.
"""
from __future__ import annotations


class EffgenError(Exception):
    """A problem the user can fix; ``str(err)`` is the one-line explanation."""

    exit_code: int = 1


class ParamsError(EffgenError):
    """Unknown key, wrong type, or malformed parameters file (exit code 2, before any work)."""

    exit_code = 2


class BudgetError(EffgenError):
    """A model or schedule exceeds the paper's limits without saying so on purpose."""

    exit_code = 2


class DataError(EffgenError):
    """Dataset missing, corrupt, or failing validation. The message says what to fetch and where."""


class WeightsError(EffgenError):
    """Pretrained weights (Inception for FID, backbones for LPIPS) cannot be found offline."""


class MissingArtifactError(EffgenError):
    """A chapter needs another chapter's output; the message names the chapter to run first."""


class CheckpointError(EffgenError):
    """A checkpoint or saved model is unreadable, damaged, or not the kind of file expected."""
