"""Consumer lag: the stall detector, and a real consumer whose handler is blocked by a database lock
showing its lag on the Prometheus endpoint and going NOT_SERVING on `preflight.consumers`."""

from __future__ import annotations

import re
import sqlite3
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from preflight.intake.v1.events_pb2 import SubmissionWithdrawn
from preflight_common.bus import SOURCES
from preflight_common.envelope import encode_event
from preflight_common.liveness import CONSUMERS_SERVICE, Liveness
from preflight_common.metrics import ConsumerLag
from preflight_common.ports import free_ports
from preflight_common.producer import EventPublisher
from preflight_testkit.fixtures import TopicFactory

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def withdrawn(submission_id: str) -> SubmissionWithdrawn:
    """A SubmissionWithdrawn with every field its contract requires."""
    return SubmissionWithdrawn(submission_id=submission_id, organisation="lab-a", reason="test")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_lagging_partition_without_progress_stalls_past_the_budget_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    liveness = Liveness(clock=clock)
    lag = ConsumerLag("preflight-clearinghouse", liveness, budget=120.0, clock=clock)

    lag.record("reviews", 2, highwater=10, committed=4)
    clock.now += 120.0
    lag.record("reviews", 2, highwater=12, committed=4)
    assert lag.stalled() == [] and liveness.degraded() == {}
    assert lag.lags() == {("reviews", 2): 8}

    clock.now += 1.0
    lag.record("reviews", 2, highwater=12, committed=4)
    assert lag.stalled() == [("reviews", 2)]
    assert liveness.degraded() == {
        "consumer group preflight-clearinghouse on reviews[2]": "lag 8, no progress for 121s"
    }
    assert "consumer group preflight-clearinghouse on reviews[2] stalled: lag 8" in caplog.text

    clock.now += 1.0
    lag.record("reviews", 2, highwater=12, committed=5)
    assert lag.stalled() == [] and liveness.degraded() == {}


def test_an_idle_partition_never_stalls_and_a_revoked_one_is_forgotten() -> None:
    clock = Clock()
    liveness = Liveness(clock=clock)
    lag = ConsumerLag("g", liveness, budget=10.0, clock=clock)
    lag.record("t", 0, highwater=3, committed=3)
    lag.record("t", 1, highwater=3, committed=None)
    clock.now += 60.0
    lag.record("t", 0, highwater=3, committed=3)
    lag.record("t", 1, highwater=3, committed=None)
    assert lag.stalled() == [("t", 1)]
    assert lag.lags() == {("t", 0): 0, ("t", 1): 3}

    lag.keep_only([("t", 0)])
    assert lag.stalled() == [] and liveness.degraded() == {}
    assert lag.lags() == {("t", 0): 0}


def _lag_samples(port: int, group: str, topic: str) -> list[float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return [
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("preflight_consumer_lag{")
        and f'group="{group}"' in line
        and re.search(rf'topic="{re.escape(topic)}"', line)
    ]


def _health(port: int) -> int | None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=CONSUMERS_SERVICE), timeout=5
            )
        except grpc.RpcError:
            return None
        return int(answer.status)


def test_a_consumer_blocked_on_a_database_lock_shows_its_lag_and_is_not_ready_until_released(
    publisher: EventPublisher,
    unique_topic: TopicFactory,
    consumer_worker: Callable[..., Any],
    eventually: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    metrics_port, health_port = free_ports(2)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(metrics_port))
    monkeypatch.setenv("PREFLIGHT_CONSUMER_LAG_INTERVAL", "0.5")
    monkeypatch.setenv("PREFLIGHT_CONSUMER_STALL_BUDGET", "4")
    topic = unique_topic("lag", partitions=1)
    group = "test-lag-worker"
    worker = consumer_worker(topic, group, "--health-port", str(health_port))
    eventually(lambda: _health(health_port) == SERVING, "the worker's consumers to be SERVING", 90)

    # Another process holds the store's write lock: every delivery waits on it.
    locker = sqlite3.connect(tmp_path / "worker.db", timeout=30, isolation_level=None)
    eventually(lambda: worker.db.connect().close() or True, "the store to exist")
    locker.execute("BEGIN IMMEDIATE")
    try:
        for n in range(3):
            publisher.publish_record(
                topic, encode_event(withdrawn(f"sub-{n}"), source=SOURCES["intake"], subject=f"sub-{n}")
            )
        eventually(
            lambda: any(sample > 0 for sample in _lag_samples(metrics_port, group, topic)),
            "a lag above 0 on the metrics endpoint",
            90,
        )
        eventually(lambda: _health(health_port) == NOT_SERVING, "preflight.consumers NOT_SERVING", 90)
        assert f"consumer group {group} on {topic}[0] stalled: lag" in worker.log()
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    eventually(lambda: _health(health_port) == SERVING, "preflight.consumers SERVING again", 90)
    eventually(lambda: _lag_samples(metrics_port, group, topic) == [0.0], "the lag drained", 90)
