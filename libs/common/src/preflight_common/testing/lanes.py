"""pytest plugin: the fast lane (`make test-fast`, `pytest --fast`).

`--fast` keeps the tests that need no server process: it deselects every test marked `slow` or
`postgres` (the PostgreSQL case of `db_url` is) and every test that uses, directly or through
another fixture, one of `HEAVY_FIXTURES` (the Kafka broker, PostgreSQL, the embedded stack, the
Kubernetes API server, the Helm toolchain, service processes, real evaluation runs). What is
left — domain rules, codecs, stores on SQLite, gRPC on loopback, the SDK — runs in under a
minute; `make test` runs everything. Loaded by the repository's root `conftest.py`.
"""

from __future__ import annotations

from typing import Final

import pytest

HEAVY_FIXTURES: Final = frozenset(
    {
        "kafka",
        "postgres",
        "stack",
        "k8s_cluster",
        "helm",
        "helm_unittest",
        "service",
        "intake_processes",
        "reference_model",
        "slow_reference_model",
        "scores_by_mode",
    }
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        default=False,
        help="run only the tests that need no server process (the fast lane)",
    )


def is_heavy(item: pytest.Item) -> bool:
    """True if `item` is marked `slow` or `postgres`, or uses a heavy fixture."""
    if any(item.get_closest_marker(name) is not None for name in ("slow", "postgres")):
        return True
    return bool(HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--fast"):
        return
    deselected = [item for item in items if is_heavy(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not is_heavy(item)]
