"""One exception family for every user-facing failure.

The CLI and the notebook runner catch ``EffgenError`` and print its message on one line,
so a bad parameter, a missing dataset or a budget overrun never surfaces as a bare traceback.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


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


def one_line_validation_error(err: Exception, source: str) -> ParamsError:
    """A pydantic ``ValidationError`` as the house's one-line ``ParamsError``: ``SOURCE: key: problem (got X)``.

    Every config (classifier, GAN, tuning) is a pydantic dataclass with ``extra="forbid"``, strict types,
    ``Literal`` choices, bounds and finite floats; this is how all of them report a bad value.
    """
    problems = []
    for item in getattr(err, "errors", lambda: [])():
        key = ".".join(str(part) for part in item.get("loc", ())) or "value"
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        if item.get("type") in ("extra_forbidden", "unexpected_keyword_argument"):
            message = "unknown key"
        got = f" (got {item['input']!r})" if "input" in item and item.get("type") != "missing" else ""
        problems.append(f"{key}: {message[:1].lower() + message[1:]}{got}")
    return ParamsError(f"{source}: " + "; ".join(problems or [str(err).splitlines()[0]]))


def one_line_config_errors(source: str) -> Callable[[type[T]], type[T]]:
    """Class decorator for a pydantic config dataclass: constructing it with a bad value raises the
    one-line ``ParamsError`` (``SOURCE: key: problem (got X)``) instead of pydantic's multi-line dump.

    Chapters build configs from their parameters directly (``ClassifierConfig(lr=lr)``), and the runner
    prints an ``EffgenError`` from a notebook on one line; a bare ``ValidationError`` would not be.
    ``from_dict`` methods use :func:`build_config` to name the file the values came from instead.
    """
    def decorate(cls: type[T]) -> type[T]:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            _validate_into(self, args, kwargs, source)

        __init__.__doc__ = cls.__init__.__doc__
        __init__.__signature__ = inspect.signature(cls.__init__)  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[method-assign]
        return cls

    return decorate


def build_config(cls: type[T], values: Mapping[str, Any], source: str) -> T:
    """``cls(**values)`` for a pydantic config dataclass, a bad value reported as one line naming ``source``."""
    if not isinstance(values, Mapping):
        raise ParamsError(f"{source}: must be a mapping of keys to values, got {type(values).__name__}")
    instance = cls.__new__(cls)
    _validate_into(instance, (), dict(values), source)
    return instance


def _validate_into(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], source: str) -> None:
    # Imported here: this module is loaded by every command, most of which build no config.
    from pydantic import ValidationError
    from pydantic_core import ArgsKwargs

    try:
        type(instance).__pydantic_validator__.validate_python(ArgsKwargs(args, kwargs), self_instance=instance)
    except ValidationError as err:
        raise one_line_validation_error(err, source) from None
