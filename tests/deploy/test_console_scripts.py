"""`<script> --help` works for every console script the repository declares.

A script whose distribution is not installed in this environment yet is
skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

# Each test starts a console script as a process.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def declared_scripts() -> list[tuple[str, str]]:
    out = []
    for pyproject in sorted(
        [
            *REPO.glob("libs/*/pyproject.toml"),
            *REPO.glob("services/*/pyproject.toml"),
            *REPO.glob("sdk/*/pyproject.toml"),
        ]
    ):
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        out.extend((project["name"], script) for script in project.get("scripts", {}))
    return out


@pytest.mark.parametrize(("dist", "script"), declared_scripts(), ids=[s for _, s in declared_scripts()])
def test_console_script_help(dist: str, script: str, require) -> None:
    try:
        importlib.metadata.distribution(dist)
        installed = True
    except importlib.metadata.PackageNotFoundError:
        installed = False
    require(installed, f"{dist} is not installed")
    exe = Path(sys.executable).parent / script
    assert exe.exists(), f"{exe} missing although {dist} is installed"
    res = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (res.stdout + res.stderr).strip(), "prints a usage text"


def test_the_expected_scripts_are_declared(require) -> None:
    """The Dockerfiles and the chart rely on these names."""
    names = {s for _, s in declared_scripts()}
    expected = {
        "preflight-topics",
        "preflight-intake",
        "preflight-benchmark",
        "preflight-worker",
        "preflight-clearinghouse",
        "preflight-notifier",
    }
    missing = expected - names
    require(not missing, f"not declared yet: {sorted(missing)}")
