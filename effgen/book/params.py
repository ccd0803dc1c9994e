"""A chapter's parameters: declared in its ``parameters`` cell, overridden by ``params/<profile>/<ch>.yml``.

The notebook is the single source of truth for what may be set and with which type, so the
YAML files are checked against it before any chapter executes (DESIGN.md, Parameters).
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from effgen.book.notebook_file import read_notebook
from effgen.checkpoints import read_yaml
from effgen.errors import ParamsError

# Which Python values each annotation accepts. bool is excluded from int/float on purpose:
# `steps: true` in YAML is a typo, not 1.
_SCALARS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


@dataclass(frozen=True)
class Parameter:
    name: str
    type_text: str  # the annotation as written, e.g. "int", "str | None"; "" when inferred from the default
    default: Any

    def accepts(self, value: Any) -> bool:
        for option in _annotation_options(self.type_text, self.default):
            if option == "None":
                if value is None:
                    return True
                continue
            if option == "Any":
                return True
            types = _SCALARS[option]
            if isinstance(value, bool) and bool not in types:
                continue
            if isinstance(value, types):
                return True
        return False

    @property
    def describe_type(self) -> str:
        return " | ".join(_annotation_options(self.type_text, self.default))


def _annotation_options(type_text: str, default: Any) -> list[str]:
    if not type_text:
        if default is None:
            return ["Any"]
        for name, types in _SCALARS.items():
            if type(default) in types and not (isinstance(default, bool) and name != "bool"):
                return [name]
        return ["Any"]
    text = type_text.replace("Optional[", "").rstrip("]") if type_text.startswith("Optional[") else type_text
    options = []
    for part in text.split("|"):
        base = part.strip().split("[", 1)[0]  # list[int] -> list: element types are not checked
        if base not in _SCALARS and base != "None":
            raise ParamsError(f"parameter annotation {type_text!r} is not supported "
                              f"(use {', '.join(_SCALARS)}, or X | None)")
        options.append(base)
    if type_text.startswith("Optional["):
        options.append("None")
    return options


def parameters_cell(notebook_path: Path) -> str:
    notebook = read_notebook(notebook_path)
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return cell.source
    raise ParamsError(f"{notebook_path}: no code cell is tagged 'parameters'")


def declared_parameters(notebook_path: Path) -> dict[str, Parameter]:
    """Parse the ``parameters`` cell: one (annotated) assignment of a literal per name."""
    source = parameters_cell(notebook_path)
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ParamsError(f"{notebook_path}: parameters cell does not parse: {err.msg} (line {err.lineno})") from None
    declared: dict[str, Parameter] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, type_text, value_node = node.target.id, ast.unparse(node.annotation), node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, type_text, value_node = node.targets[0].id, "", node.value
        else:
            raise ParamsError(f"{notebook_path}: parameters cell line {node.lineno} is not a simple assignment")
        try:
            default = ast.literal_eval(value_node)
        except ValueError:
            raise ParamsError(f"{notebook_path}: parameter {name!r} must default to a literal") from None
        parameter = Parameter(name, type_text, default)
        if not parameter.accepts(default):
            raise ParamsError(f"{notebook_path}: default of {name!r} is not a {parameter.describe_type}")
        declared[name] = parameter
    return declared


def load_params_file(path: Path) -> dict[str, Any]:
    """The parameters file's mapping; an absent or empty file sets nothing."""
    return read_yaml(path, "parameters file", missing_ok=True)


def validate(values: Mapping[str, Any], declared: Mapping[str, Parameter], source: Path | str,
             reserved: tuple[str, ...] = ("profile",)) -> dict[str, Any]:
    """Check names and types; the message names the file, the key and what is allowed."""
    allowed = ", ".join(sorted(k for k in declared if k not in reserved))
    for key, value in values.items():
        if key in reserved:
            raise ParamsError(f"{source}: key {key!r} is set by the runner, not the params file "
                              f"(allowed keys: {allowed})")
        if key not in declared:
            raise ParamsError(f"{source}: unknown key {key!r} (allowed keys: {allowed})")
        parameter = declared[key]
        if not parameter.accepts(value):
            raise ParamsError(f"{source}: key {key!r} must be {parameter.describe_type}, "
                              f"got {type(value).__name__} {value!r} (allowed keys: {allowed})")
        if (bad := _non_finite(value, key)) is not None:
            raise ParamsError(f"{source}: {bad[0]}: must be a finite number (got {bad[1]!r})")
    return dict(values)


def _non_finite(value: Any, where: str) -> tuple[str, float] | None:
    """Where in ``value`` (a scalar, or lists and mappings of them) a NaN or infinity sits, and which.

    YAML spells them ``.nan`` and ``.inf``; no chapter means either, and torch would take them as
    a learning rate or a weight decay and train on garbage, or fail deep inside a step.
    """
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, value)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for index, item in items:
        if (found := _non_finite(item, f"{where}.{index}")) is not None:
            return found
    return None
