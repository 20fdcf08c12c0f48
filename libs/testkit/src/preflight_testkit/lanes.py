"""pytest plugin: what each test needs, as markers, and the fast lane (`make test-fast`,
`pytest --fast`).

Every test carries a marker for each kind of server process it needs (`LANE_MARKERS`): set by hand
(`@pytest.mark.slow`), or applied here from the fixtures it uses, directly or through another
fixture (`FIXTURE_MARKERS`: `kafka` and everything built on it, `postgres` and the PostgreSQL
case of `db_url`, the Kubernetes API server and the Helm toolchain, the browser, the embedded
stack, service processes, real evaluation runs). They select like any marker (`pytest -m "not
kafka"`).

`--fast` keeps the tests that need no server process: it deselects every test carrying a lane
marker. What is left — domain rules, codecs, stores on SQLite, gRPC on loopback, the SDK — runs
in under a minute; `make test` runs everything. Loaded by `preflight_testkit.plugin`.
"""

from __future__ import annotations

from typing import Final

import pytest

LANE_MARKERS: Final = {
    "kafka": "needs the Kafka broker (applied from the `kafka` fixture)",
    "postgres": "needs the PostgreSQL server binaries (applied from the `postgres` fixture)",
    "k8s": "needs the Kubernetes API server stack or the Helm toolchain (applied from their fixtures)",
    "browser": "drives a real browser (applied from the `browser` fixture)",
    "slow": "longer tests: other server processes (the embedded stack, services, real evaluation runs)",
}
"""Each marker that takes a test out of the fast lane, and what it says about the test."""

FIXTURE_MARKERS: Final = {
    "kafka": "kafka",
    "postgres": "postgres",
    "k8s_cluster": "k8s",
    "helm": "k8s",
    "helm_unittest": "k8s",
    "browser": "browser",
    "stack": "slow",
    "service": "slow",
    "intake_processes": "slow",
    "reference_model": "slow",
    "slow_reference_model": "slow",
    "scores_by_mode": "slow",
}
"""The lane marker a test gets when it uses the fixture, directly or through another fixture."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        default=False,
        help="run only the tests that need no server process (the fast lane)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, description in LANE_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark `item` from its fixtures, before `-m` and `--fast` select."""
    used = set(getattr(item, "fixturenames", ()))
    for name in sorted({FIXTURE_MARKERS[fixture] for fixture in used & FIXTURE_MARKERS.keys()}):
        if item.get_closest_marker(name) is None:
            item.add_marker(name)


def is_heavy(item: pytest.Item) -> bool:
    """True if `item` carries a lane marker (see `LANE_MARKERS`)."""
    return any(item.get_closest_marker(name) is not None for name in LANE_MARKERS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--fast"):
        return
    deselected = [item for item in items if is_heavy(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not is_heavy(item)]
