"""Fixtures for the deployment tests (chart, images, test cluster)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
_plugin = _load("preflight_tests_k8s_cluster", HERE / "k8s_cluster.py")

k8s_cluster = _plugin.k8s_cluster
skip_or_fail = _plugin.skip_or_fail
in_ci = _plugin.in_ci

CHART = REPO / "deploy" / "helm" / "preflight"
BIN = REPO / ".cache" / "bin"


@pytest.fixture(scope="session")
def require():  # type: ignore[no-untyped-def]
    """require(condition, reason): skip locally, fail under CI=true, when condition is false."""

    def _require(condition: object, reason: str) -> None:
        if not condition:
            skip_or_fail(reason)

    return _require


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def chart() -> Path:
    return CHART


@pytest.fixture(scope="session")
def helm() -> str:
    path = BIN / "helm"
    if not path.exists():
        skip_or_fail(f"{path} missing: run `make deploy-tools`")
    return str(path)


@pytest.fixture(scope="session")
def helm_unittest() -> str:
    path = BIN / "helm-unittest"
    if not path.exists():
        skip_or_fail(f"{path} missing: run `make deploy-tools`")
    return str(path)


@pytest.fixture(scope="session")
def build_images() -> ModuleType:
    """deploy/docker/build_images.py (the images, built with podman), once podman is installed."""
    if shutil.which("podman") is None:
        skip_or_fail("podman is not installed: .ci/run installs it (podman, runc, debootstrap)")
    return _load("preflight_build_images", REPO / "deploy" / "docker" / "build_images.py")


@pytest.fixture(scope="session")
def check_chart() -> ModuleType:
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        skip_or_fail("kubernetes-validate is not installed: run `make deploy-tools`")
    return _load("preflight_check_chart", REPO / "deploy" / "helm" / "tools" / "check_chart.py")


@pytest.fixture(scope="session")
def values_table() -> ModuleType:
    return _load("preflight_values_table", REPO / "deploy" / "helm" / "tools" / "values_table.py")


@pytest.fixture(scope="session")
def local_stack() -> ModuleType:
    """deploy/local/stack.py (the embedded stack, a script) loaded as a module."""
    return _load("preflight_local_stack", REPO / "deploy" / "local" / "stack.py")
