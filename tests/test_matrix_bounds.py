"""The declared bounds, CI's matrix and the README say the same thing: the oldest pins CI
installs (.ci/oldest.txt) are exactly pyproject.toml's lower bounds on every Python the matrix
runs, and those Pythons are the ones requires-python admits (one leg per minor version)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra brings tomli there
    import tomli as tomllib  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
MATRIX = (ROOT / ".ci" / "matrix").read_text(encoding="utf-8")
PYTHONS = re.search(r'^PYTHONS="([^"]+)"', MATRIX, re.MULTILINE)[1].split()  # type: ignore[index]
NEWEST_KNOWN = 13  # the newest 3.x minor version there is an interpreter for in CI


def requirements(lines: list[str], python: str) -> dict[str, Requirement]:
    """The requirements among `lines` that apply on `python`, by name."""
    env = {"python_version": python, "python_full_version": f"{python}.0"}
    found = [Requirement(line) for line in lines]
    return {r.name: r for r in found if r.marker is None or r.marker.evaluate(env)}


def pins(python: str) -> dict[str, Requirement]:
    text = (ROOT / ".ci" / "oldest.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return requirements(lines, python)


def lower_bound(specifier: SpecifierSet) -> Version:
    (floor,) = [Version(s.version) for s in specifier if s.operator == ">="]
    return floor


@pytest.mark.parametrize("python", PYTHONS)
def test_the_oldest_pins_are_the_lower_bounds(python: str) -> None:
    declared = requirements(PROJECT["dependencies"], python)
    pinned = pins(python)
    assert sorted(pinned) == sorted(declared)
    for name, requirement in declared.items():
        (pin,) = pinned[name].specifier
        assert pin.operator == "==", name
        assert Version(pin.version) == lower_bound(requirement.specifier), name


def test_the_matrix_runs_every_python_that_requires_python_admits() -> None:
    admitted = SpecifierSet(PROJECT["requires-python"])
    known = [f"3.{minor}" for minor in range(NEWEST_KNOWN + 1)]
    assert [v for v in known if Version(v) in admitted] == PYTHONS


def test_the_readme_states_the_supported_range() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Python {PYTHONS[0]}\N{EN DASH}{PYTHONS[-1]}" in readme


def test_the_linters_check_for_the_oldest_supported_python() -> None:
    """ruff's and mypy's floors are requires-python's: a higher one lets in syntax and library
    calls the oldest Python lacks; a lower one bans what every supported Python has (py39 kept
    `zip(strict=...)` and `itertools.pairwise` out)."""
    tools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    oldest = PYTHONS[0]
    assert tools["ruff"]["target-version"] == f"py{oldest.replace('.', '')}"
    assert tools["mypy"]["python_version"] == oldest
