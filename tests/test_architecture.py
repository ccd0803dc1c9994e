"""The folders name the architecture: imports only run downwards, there are no circles, modules stay small."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "effgen"
# Lower layers never import higher ones. Shared utilities sit at the bottom; the book and the
# command line at the top, the models in between.
LAYERS: dict[str, int] = {
    "errors": 0, "paths": 0, "runtime": 0, "checkpoints": 0, "stats": 0, "budget": 0,
    "data": 1, "kernels": 1, "metrics": 1,
    "classifier": 2, "gan": 2,
    "tuning": 3,
    "book": 4,
    "commands": 5, "cli": 5, "__main__": 5,
}
MAX_LINES = 500
MAX_TOP_LEVEL_MODULES = 6  # besides __init__ and the entry point


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    base = PACKAGE.parent / Path(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports, at any level (function-level imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("effgen"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if is_module(f"{node.module}.{a.name}"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("effgen"))
    return found


GRAPH = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else 0


def test_every_top_level_name_has_a_layer() -> None:
    names = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert names <= set(LAYERS), f"give these a layer: {sorted(names - set(LAYERS))}"


def test_imports_never_run_up_the_layers() -> None:
    upward = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() for d in deps if layer(d) > layer(m))
    assert upward == []


def test_no_import_circles() -> None:
    """A circle (a -> b -> ... -> a) among modules, a package's ``__init__`` counted as its own module."""
    def is_child(parent: str, child: str) -> bool:  # a package's __init__ re-exporting its submodules
        return child.startswith(parent + ".")

    graph = {m: {d for d in deps if d in GRAPH and d != m and not is_child(m, d)} for m, deps in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert circles == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_the_line_limit(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_the_top_level_holds_packages_and_a_few_shared_modules() -> None:
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules
