"""preflight_common's fixtures, for its tests against the real broker, taken in by name by
libs/common/tests/conftest.py: `publisher` (an EventPublisher as intake), `read_topic`,
`span_exporter` (every span of this process, in memory) and `consumer_worker`, which starts
libs/common/tests/support/consumer_worker.py as its own process, consuming through `KafkaSide` as
a service does, so that a test can kill it or stop it by a signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from preflight_common.bus import SOURCES
from preflight_common.config import KafkaSettings
from preflight_common.db import make_engine
from preflight_common.producer import EventPublisher
from sqlalchemy import Engine

from preflight_testkit.checkout import repository
from preflight_testkit.clients import read_records

WORKER_SCRIPT = repository() / "libs/common/tests/support/consumer_worker.py"


@pytest.fixture
def publisher(kafka_settings: KafkaSettings) -> Iterator[EventPublisher]:
    """An EventPublisher publishing as intake (the owner of the submissions topic), with short
    timeouts, closed after the test."""
    events = EventPublisher(kafka_settings, source=SOURCES["intake"], send_timeout=5)
    try:
        yield events
    finally:
        events.close()


@pytest.fixture
def read_topic(kafka_settings: KafkaSettings) -> Callable[..., list[Any]]:
    """`read_topic(topic, expected, timeout=30)`: every record of every partition, from the start,
    once at least `expected` have arrived (a short extra poll then catches any surplus)."""

    def read(topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
        return read_records(kafka_settings, topic, expected, timeout, settle=0.5)

    return read


class WorkerProcess:
    """One `libs/common/tests/support/consumer_worker.py` process and its SQLite store."""

    CRASH_EXIT_CODE = 17
    """How the worker exits when told to die after an effect (`--crash-after`)."""

    def __init__(self, args: list[str], env: dict[str, str], db: Engine, log_path: Path) -> None:
        self.db = db
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER_SCRIPT), "--crash-exit-code", str(self.CRASH_EXIT_CODE), *args],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_exit(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not exit within {timeout:.0f}s; its log:\n{self.log()}")

    def stop(self) -> int:
        """SIGTERM (a service's clean shutdown); SIGKILL if it has not exited after 30s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def consumer_worker(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """`consumer_worker(topic, group, *extra_args) -> WorkerProcess`; every worker of a test shares
    one SQLite store (`tmp_path/worker.db`) and is stopped after the test."""
    started: list[WorkerProcess] = []
    db_path = tmp_path / "worker.db"
    engine = make_engine(f"sqlite:///{db_path}")

    def start(topic: str, group: str, *extra: str) -> WorkerProcess:
        args = ["--topic", topic, "--group", group, "--db", str(db_path)]
        log_path = tmp_path / f"worker-{len(started)}.log"
        worker = WorkerProcess([*args, *extra], kafka_settings.env(), engine, log_path)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
        engine.dispose()


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """An in-memory exporter receiving every span of this process.

    OpenTelemetry allows one global tracer provider per process: if an SDK provider is already
    installed (another test, `setup_telemetry`), the exporter is added to it.
    """
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        pytest.fail(f"a non-SDK tracer provider is installed: {provider!r}")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter
