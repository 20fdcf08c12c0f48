"""What the Python packages declare about the interpreter they need."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PYPROJECTS = sorted(
    p for p in REPO.glob("*/**/pyproject.toml") if not {".venv", ".cache", "node_modules"} & set(p.parts)
)


def _pinned_floor() -> Version:
    """The oldest Python 3.11 release that every dependency pinned in constraints.txt accepts."""
    specs = []
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, _ = line.partition("==")
        if not sep or line.lstrip().startswith("#"):
            continue
        try:
            requires = importlib.metadata.metadata(name.strip())["Requires-Python"]
        except importlib.metadata.PackageNotFoundError:
            continue  # pinned for a platform or an extra this environment does not install
        if requires:
            specs.append(SpecifierSet(requires))
    return next(v for v in (Version(f"3.11.{patch}") for patch in range(30)) if all(v in s for s in specs))


def test_every_package_states_the_python_floor_its_pinned_dependencies_need() -> None:
    floor = _pinned_floor()
    assert floor >= Version("3.11.5")  # e.g. soupsieve's pin: Debian 12's Python 3.11.2 cannot install it
    stated = {
        str(p.relative_to(REPO)): tomllib.loads(p.read_text())["project"]["requires-python"]
        for p in PYPROJECTS
    }
    assert len(stated) >= 8, stated
    assert stated == dict.fromkeys(stated, f">={floor}")


def test_every_package_pins_one_build_backend_exactly() -> None:
    """A build of any package, from any machine, uses the same backend release: an exact pin of
    every build requirement, the same across packages and as the one constraints.txt pins."""
    requires = {
        str(p.relative_to(REPO)): tomllib.loads(p.read_text())["build-system"]["requires"] for p in PYPROJECTS
    }
    assert len(requires) >= 8, requires
    pinned = {line.strip() for line in (REPO / "constraints.txt").read_text().splitlines()}
    for path, requirements in requires.items():
        for requirement in requirements:
            [specifier] = Requirement(requirement).specifier
            assert specifier.operator == "==" and "*" not in specifier.version, (path, requirement)
            assert requirement in pinned, (path, requirement)
    assert len({tuple(sorted(r)) for r in requires.values()}) == 1, requires
