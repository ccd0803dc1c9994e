"""environment.yml (for conda + Quarto users) must install what pyproject.toml declares."""
from __future__ import annotations

import tomllib

import yaml
from conftest import REPO


def _pip_section() -> list[str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    for item in env["dependencies"]:
        if isinstance(item, dict) and "pip" in item:
            return item["pip"]
    raise AssertionError("environment.yml has no pip section")


def test_environment_yml_mirrors_pyproject_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"])
    pip = _pip_section()
    listed = {line for line in pip if not line.startswith("-")}
    assert listed == declared
    assert "-e .[dev]" in pip


def test_environment_yml_pins_python_and_quarto() -> None:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    plain = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in plain and "quarto" in plain
    assert "conda-forge" in env["channels"]


def test_ci_calls_exactly_the_readme_test_command() -> None:
    ci = (REPO / ".ci/run").read_text()
    readme_head = "\n".join((REPO / "README.md").read_text().splitlines()[:40])
    assert "make test" in ci and "make test" in readme_head and "make report" in readme_head
