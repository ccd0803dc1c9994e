"""A chapter's parameter values for a profile, as its execution sees them: notebook defaults, then the params file."""
from __future__ import annotations

from typing import Any

from effgen.book.params import declared_parameters, load_params_file, validate
from effgen.errors import EffgenError
from effgen.paths import check_profile, project_root

DCGAN = "04-dcgan"
EVALUATION = "05-evaluation"
BEYOND = "06-beyond"  # the modern recipe's chapter


def chapter_parameters(profile: str, chapter: str = DCGAN) -> dict[str, Any]:
    """``chapter``'s parameter values for ``profile``: its parameters cell's defaults, then
    ``params/<profile>/<chapter>.yml`` over them, checked as the runner checks them."""
    root = project_root()
    notebook = root / "chapters" / f"{chapter}.ipynb"
    if not notebook.is_file():
        raise EffgenError(f"no chapters/{chapter}.ipynb under {root}: run this in the project's checkout "
                          "(or set EFFGEN_ROOT to it)")
    declared = declared_parameters(notebook)
    values = {name: p.default for name, p in declared.items()}
    params_file = root / "params" / check_profile(profile) / f"{chapter}.yml"
    if params_file.is_file():
        values.update(validate(load_params_file(params_file), declared, params_file.relative_to(root)))
    return values
