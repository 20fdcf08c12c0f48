"""What ships carries no test helper: the production packages import neither pytest nor the test
kit and hold no testing module, none depends on preflight-testkit, and no image builds it."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from preflight_testkit.checkout import repository

REPO = repository()
PRODUCTION = sorted(
    {REPO / "libs/common/src", REPO / "libs/proto/src", REPO / "sdk/python/src"}
    | set(REPO.glob("services/*/src"))
)
TEST_ONLY = ("pytest", "_pytest", "preflight_testkit")


def imported(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; relative imports are within its package)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_production_module_is_a_test_helper_or_imports_one() -> None:
    modules = [path for root in PRODUCTION for path in root.rglob("*.py")]
    assert modules
    testing = [
        str(p.relative_to(REPO)) for p in modules if p.stem == "testing" or "testing" in p.parent.parts
    ]
    importers = {
        str(path.relative_to(REPO)): sorted(
            name
            for name in imported(path)
            if name.split(".")[0] in TEST_ONLY or name.rsplit(".", 1)[-1] == "testing"
        )
        for path in modules
    }
    assert testing == []
    assert {path: names for path, names in importers.items() if names} == {}


def test_no_package_depends_on_the_test_kit() -> None:
    for pyproject in sorted({*REPO.glob("libs/*/pyproject.toml"), *REPO.glob("services/*/pyproject.toml")}):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        requirements = [*project.get("dependencies", ())]
        for extra in project.get("optional-dependencies", {}).values():
            requirements.extend(extra)
        assert not [r for r in requirements if r.startswith("preflight-testkit")], pyproject


def test_no_image_builds_the_test_kit() -> None:
    dockerfiles = [REPO / "deploy/docker/Dockerfile.service", *REPO.glob("services/*/Dockerfile*")]
    for dockerfile in dockerfiles:
        built = set(re.findall(r"\./(libs/\w+)", dockerfile.read_text(encoding="utf-8")))
        assert "libs/common" in built, dockerfile
        assert "libs/testkit" not in built, dockerfile
