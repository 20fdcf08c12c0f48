"""The pytest plugin (entry point ``pytest11``: ``preflight``): the shared fixtures (the broker,
PostgreSQL, the test Kubernetes cluster), no silent skips and the lanes. Disable it for one run
with ``-p no:preflight``."""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "preflight_testkit.fixtures",
    "preflight_testkit.k8s",
    "preflight_testkit.skips",
    "preflight_testkit.lanes",
]

SHORT_GROUP_TIMINGS = {"PREFLIGHT_KAFKA_SESSION_TIMEOUT": "6", "PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL": "1"}
"""The Kafka consumer-group timings (read by preflight_common.consumer) of every service a test
runs, in this process or as a child: a join or a dead member's eviction takes seconds, not minutes.
Values already in the environment win."""


def pytest_configure(config: pytest.Config) -> None:
    for name, value in SHORT_GROUP_TIMINGS.items():
        os.environ.setdefault(name, value)
