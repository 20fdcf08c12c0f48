"""A test that skips for a reason the README does not allow fails `make test`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = """
import pytest

def test_tool_missing():
    pytest.skip("helm missing: run `make deploy-tools`")

@pytest.fixture
def cluster():
    pytest.skip("test cluster binaries not built: run `make k8s-build`")

def test_in_fixture(cluster):
    pass

def test_no_postgres():
    pytest.skip("PostgreSQL server binaries not found")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False

def test_runs():
    pass
"""


def test_only_skips_the_readme_allows_stay_skips(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(TESTS)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "preflight_testkit.skips",
            "-p",
            "no:cacheprovider",
            "-rA",
            "test_sample.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 1, out
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error" in out, out
    assert "FAILED test_sample.py::test_tool_missing" in out
    assert "ERROR test_sample.py::test_in_fixture" in out
    assert "SKIPPED [1] test_sample.py:15: PostgreSQL server binaries not found" in out
    assert "the README does not allow (see 'How it is tested'): helm missing" in out
