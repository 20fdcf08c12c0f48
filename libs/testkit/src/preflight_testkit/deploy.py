"""The deployment tests' fixtures (tests/deploy: the chart, the images, the embedded stack; the
test cluster, `k8s_cluster`, comes from the plugin), taken in by tests/deploy/conftest.py. The
repository's scripts come loaded as modules; a tool `make setup` provides that is missing skips
the test, or fails it in CI (`skip_or_fail`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from preflight_testkit.checkout import load_script, repository
from preflight_testkit.skips import skip_or_fail

CHART = repository() / "deploy" / "helm" / "preflight"
BIN = repository() / ".cache" / "bin"


@pytest.fixture(scope="session")
def require() -> Callable[[object, str], None]:
    """require(condition, reason): skip locally, fail under CI, when condition is false."""

    def _require(condition: object, reason: str) -> None:
        if not condition:
            skip_or_fail(reason)

    return _require


@pytest.fixture(scope="session")
def repo() -> Path:
    return repository()


@pytest.fixture(scope="session")
def chart() -> Path:
    return CHART


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        skip_or_fail(f"{path} missing: run `make deploy-tools`")
    return str(path)


@pytest.fixture(scope="session")
def helm() -> str:
    return _tool("helm")


@pytest.fixture(scope="session")
def helm_unittest() -> str:
    return _tool("helm-unittest")


@pytest.fixture(scope="session")
def build_images() -> ModuleType:
    """deploy/docker/build_images.py (the images, built with podman), once podman is installed."""
    if shutil.which("podman") is None:
        skip_or_fail("podman is not installed: .ci/run installs it (podman, runc, debootstrap)")
    return load_script("preflight_build_images", "deploy/docker/build_images.py")


@pytest.fixture(scope="session")
def check_chart() -> ModuleType:
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        skip_or_fail("kubernetes-validate is not installed: run `make deploy-tools`")
    return load_script("preflight_check_chart", "deploy/helm/tools/check_chart.py")


@pytest.fixture(scope="session")
def values_table() -> ModuleType:
    return load_script("preflight_values_table", "deploy/helm/tools/values_table.py")


@pytest.fixture(scope="session")
def local_stack() -> ModuleType:
    """deploy/local/stack.py (the embedded stack, a script) loaded as a module."""
    return load_script("preflight_local_stack", "deploy/local/stack.py")
