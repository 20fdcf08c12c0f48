"""Tests are marked from the fixtures they use, and the fast lane leaves out every marked one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = """
import pytest

@pytest.fixture
def k8s_cluster():
    return None

@pytest.fixture
def browser():
    return None

@pytest.fixture
def reviewer_topic(unique_topic):
    return unique_topic("reviews")

def test_domain():
    pass

def test_topic(reviewer_topic):
    pass

def test_store(db_url):
    pass

def test_cluster(k8s_cluster):
    pass

def test_page(browser):
    pass

@pytest.mark.slow
def test_stack():
    pass
"""


def collected(folder: Path, *options: str) -> list[str]:
    """The ids pytest collects from `folder`'s test_sample.py with `options` (the kit's plugin
    loaded through its entry point, as in every run)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *options],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 5), result.stdout + result.stderr  # 5: nothing selected
    return sorted(line.split("::", 1)[1] for line in result.stdout.splitlines() if "::" in line)


def test_the_fast_lane_leaves_out_every_test_that_needs_a_server_process(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(TESTS)

    assert collected(tmp_path, "--fast") == ["test_domain", "test_store[sqlite]"]
    assert len(collected(tmp_path)) == 7


def test_each_test_is_marked_by_the_servers_its_fixtures_need(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(TESTS)

    assert collected(tmp_path, "-m", "kafka") == ["test_topic"]
    assert collected(tmp_path, "-m", "postgres") == ["test_store[postgresql]"]
    assert collected(tmp_path, "-m", "k8s") == ["test_cluster"]
    assert collected(tmp_path, "-m", "browser") == ["test_page"]
    assert collected(tmp_path, "-m", "slow") == ["test_stack"]
    assert collected(
        tmp_path, "--strict-markers", "-m", "not (kafka or postgres or k8s or browser or slow)"
    ) == [
        "test_domain",
        "test_store[sqlite]",
    ]
