"""The intake process serves Prometheus metrics, among them its consumer lag, when
`OTEL_METRICS_EXPORTER=prometheus` (as the chart's `telemetry.metrics.enabled` sets)."""

from __future__ import annotations

import urllib.error
import urllib.request

from preflight_common.config import KafkaSettings
from preflight_common.ports import free_port
from preflight_testkit.intake import IntakeProcesses, create_topics, wait_until


def _lag_lines(port: int) -> list[str]:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except (urllib.error.URLError, ConnectionError):
        return []
    return [line for line in body.splitlines() if line.startswith("preflight_consumer_lag{")]


def test_intake_serves_its_consumer_lag_for_prometheus(
    intake_processes: IntakeProcesses, kafka_settings: KafkaSettings
) -> None:
    create_topics(intake_processes.settings, kafka_settings)
    port = free_port()
    intake_processes.start(
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
        PREFLIGHT_CONSUMER_LAG_INTERVAL="0.5",
    )
    topics = intake_processes.settings.topics
    consumed = {topics.benchmark_jobs, topics.benchmark_results, topics.reviews}
    wait_until(
        lambda: all(any(f'topic="{topic}"' in line for line in _lag_lines(port)) for topic in consumed),
        90,
        "a lag of every consumed topic",
    )
    group = intake_processes.settings.consumer_group
    lines = _lag_lines(port)
    assert all(f'group="{group}"' in line and 'partition="0"' in line for line in lines), lines
    assert all(line.endswith(" 0.0") for line in lines), lines
