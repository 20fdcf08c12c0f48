"""Tests are marked from the fixtures they use, and the fast lane leaves out every marked one."""

from __future__ import annotations

import pytest
from preflight_testkit.lanes import LANE_MARKERS

pytest_plugins = ["pytester"]

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


def collected(pytester: pytest.Pytester, *options: str) -> dict[str, set[str]]:
    """Each test pytest selects from the sample tests with `options`, in a pytest run of its own
    (the kit's plugin loaded through its entry point, as in every run), and its lane markers."""
    pytester.makepyfile(test_sample=TESTS)
    # The repository's asyncio settings, which the sample run's own folder does not hold.
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    items, recorded = pytester.inline_genitems("-p", "no:cacheprovider", *options)
    deselected = {item.nodeid for call in recorded.getcalls("pytest_deselected") for item in call.items}
    return {
        item.nodeid.split("::", 1)[1]: {mark.name for mark in item.iter_markers()} & LANE_MARKERS.keys()
        for item in items
        if item.nodeid not in deselected
    }


def test_each_test_is_marked_by_the_servers_its_fixtures_need(pytester: pytest.Pytester) -> None:
    assert collected(pytester) == {
        "test_domain": set(),
        "test_topic": {"kafka"},
        "test_store[sqlite]": set(),
        "test_store[postgresql]": {"postgres"},
        "test_cluster": {"k8s"},
        "test_page": {"browser"},
        "test_stack": {"slow"},
    }


def test_markers_select_like_any_marker(pytester: pytest.Pytester) -> None:
    assert collected(pytester, "--strict-markers", "-m", "kafka or k8s").keys() == {
        "test_topic",
        "test_cluster",
    }


def test_the_fast_lane_leaves_out_every_test_that_needs_a_server_process(pytester: pytest.Pytester) -> None:
    assert collected(pytester, "--fast").keys() == {"test_domain", "test_store[sqlite]"}
