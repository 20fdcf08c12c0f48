"""The embedded stack as the end-to-end tests see it: real processes, a real broker, run folders in
tmp. `start_stack` runs deploy/local/stack.py on free ports (`RunningStack`); the `stack` fixture
(module-scoped) is one, taken in by tests/e2e/conftest.py; and the helpers the end-to-end tests
share: `submission_request`, `submit`, `topic_events`, `wait_report_ready`, `wait_until`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import pytest
from preflight_common.config import KafkaSettings
from preflight_common.localkafka import LocalKafka
from preflight_common.ports import free_ports

from preflight_testkit import waiting
from preflight_testkit.checkout import repository

T = TypeVar("T")
ROOT = repository()
STACK = ROOT / "deploy" / "local" / "stack.py"
PORT_NAMES = (
    "kafka",
    "intake",
    "benchmark",
    "clearinghouse",
    "notifier",
    "reference-model",
    "webhook-sink",
    "smtp-sink",
    "console",
)


@dataclass
class RunningStack:
    """A stack started by `deploy/local/stack.py up` in its own run folder."""

    run_dir: Path
    env: dict[str, str]

    @property
    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "stack.json").read_text()))

    @cached_property
    def ports(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.state["ports"].items()}

    @cached_property
    def tokens(self) -> dict[str, str]:
        return dict(json.loads((self.run_dir / "tokens.json").read_text()))

    @cached_property
    def secrets(self) -> dict[str, str]:
        lines = (self.run_dir / "secrets.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def target(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def kafka_settings(self, principal: str = "admin") -> KafkaSettings:
        """How `principal` reaches the stack's broker: `admin` (reads everything), a service's
        (`preflight-<service>`) or an operator's (`operator-<organisation>`) principal."""
        if principal == "admin":
            return LocalKafka(self.run_dir / "kafka", port=self.ports["kafka"]).admin_settings()
        return KafkaSettings(
            bootstrap_servers=self.target("kafka"),
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=principal,
            sasl_password_file=str(self.run_dir / "kafka-credentials" / f"{principal}.password"),
        )

    def sink(self, name: str) -> list[dict[str, Any]]:
        path = self.run_dir / "sinks" / f"{name}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stack_command(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(STACK), command, "--run-dir", str(self.run_dir)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def start_stack(run_dir: Path, extra_env: dict[str, str] | None = None) -> RunningStack:
    """Start a stack on free ports; raise with the logs' tails if it does not become ready."""
    env = dict(os.environ)
    env.update(
        {
            f"PREFLIGHT_STACK_PORT_{n.upper().replace('-', '_')}": str(p)
            for n, p in zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True)
        }
    )
    env.update(extra_env or {})
    stack = RunningStack(run_dir, env)
    result = stack.stack_command("up")
    if result.returncode != 0:
        logs = "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
            for p in sorted((run_dir / "logs").glob("*.log"))
        )
        stack.stack_command("down")
        raise RuntimeError(f"stack did not start:\n{result.stdout}\n{result.stderr}\n{logs}")
    return stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("stack"))
    yield running
    running.stack_command("down")


def submission_request(stack: RunningStack, *, release_days: int = 6) -> Any:
    """The example manifest as a SubmitModelRequest aimed at the stack's reference model."""
    import uuid

    import yaml
    from preflight.sdk.manifest import parse_manifest

    data = yaml.safe_load((ROOT / "examples" / "model.yaml").read_text())
    data["planned_release"] = f"+{release_days}d"
    data["access_window"] = {"start": "+0d", "end": f"+{release_days}d"}
    data["access"]["endpoint"]["base_url"] = f"http://127.0.0.1:{stack.ports['reference-model']}/v1"
    environ = {"EXAMPLE_LAB_API_KEY": stack.secrets["PREFLIGHT_REFERENCE_MODEL_API_KEY"]}
    request = parse_manifest(data, base_dir=ROOT / "examples", environ=environ)
    request.idempotency_key = f"e2e-{uuid.uuid4()}"
    return request


def wait_until(what: str, probe: Callable[[], T], timeout: float, every: float = 0.5) -> T:
    """`preflight_testkit.waiting.wait_until` with `what` first, polling every `every` seconds."""
    return waiting.wait_until(probe, timeout, what, every)


def topic_events(stack: RunningStack, topic: str, registry_types: list[Any]) -> list[tuple[Any, Any, int]]:
    """Every event of the given types on `topic` so far: (attributes, payload, broker timestamp ms)."""
    from kafka import KafkaConsumer
    from preflight_common.envelope import EventRegistry, ce_type_of, decode_record

    registry = EventRegistry(registry_types)
    consumer = KafkaConsumer(
        topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
        group_id=None,
        **stack.kafka_settings().kafka_python_options(),
    )
    try:
        wanted = {ce_type_of(t).encode() for t in registry_types}
        return [
            (*decode_record(r.headers, r.value, registry), r.timestamp)
            for r in consumer
            if dict(r.headers).get("ce_type") in wanted
        ]
    finally:
        consumer.close()


def submit(stack: RunningStack, client: Any) -> str:
    """SubmitModel, retried with the same idempotency key while intake restarts."""
    import time

    import grpc
    from preflight.sdk.errors import PreflightError

    request = submission_request(stack)
    # A killed intake is back within seconds, unless the machine is loaded: then starting it
    # (imports, migrations check, Kafka) can take a minute or more.
    deadline = time.monotonic() + 240
    while True:
        try:
            return str(client.submit(request, timeout=10).submission.submission_id)
        except PreflightError as exc:
            if time.monotonic() > deadline or exc.code not in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ):
                raise
            time.sleep(0.5)


def submission_status(client: Any, sid: str) -> int | None:
    from preflight.sdk.errors import PreflightError

    try:
        return int(client.get_submission(sid, timeout=5).status)
    except PreflightError:
        return None


def all_report_ready(client: Any, ids: list[str]) -> bool:
    from preflight.intake.v1 import intake_pb2

    return all(submission_status(client, sid) == intake_pb2.SUBMISSION_STATUS_REPORT_READY for sid in ids)


def wait_report_ready(stack: RunningStack, client: Any, ids: list[str], timeout: float) -> None:
    """Wait for every submission to reach REPORT_READY; on timeout, say which did not and why."""
    from preflight.intake.v1 import intake_pb2

    try:
        wait_until(
            f"{len(ids)} submissions at REPORT_READY", lambda: all_report_ready(client, ids), timeout, 2
        )
    except TimeoutError as exc:
        late = {
            sid: status
            for sid in ids
            if (status := submission_status(client, sid)) != intake_pb2.SUBMISSION_STATUS_REPORT_READY
        }
        logs = {
            p.name: p.read_text(errors="replace").splitlines()[-15:]
            for p in (stack.run_dir / "logs").glob("*.log")
        }
        raise AssertionError(
            f"{exc}; {len(late)} not ready, with the events each has on the bus: {event_trail(stack, late)};"
            f" restarts {stack.state['restarts']}; logs {logs}"
        ) from None


def event_trail(stack: RunningStack, statuses: dict[str, Any]) -> dict[str, str]:
    """For each submission: its status and the types of the events about it on each topic of its
    path (submitted, planned, ended, reported), so a stuck submission names the step it stopped at."""
    from preflight.benchmark.v1 import events_pb2 as benchmark_events
    from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
    from preflight.intake.v1 import events_pb2 as intake_events

    path: dict[str, list[Any]] = {
        "preflight.submissions.v1": [intake_events.SubmissionReceived],
        "preflight.benchmark.jobs.v1": [benchmark_events.BenchmarkJobRequested],
        "preflight.benchmark.results.v1": [
            benchmark_events.BenchmarkCompleted,
            benchmark_events.BenchmarkFailed,
        ],
        "preflight.reviews.v1": [clearinghouse_events.ReviewReportReady],
    }
    seen: dict[str, list[str]] = {sid: [] for sid in statuses}
    for topic, types in path.items():
        for attributes, payload, _ in topic_events(stack, topic, types):
            sid = getattr(payload, "submission_id", None)
            if sid in seen:
                seen[sid].append(attributes.type.rsplit(".", 1)[-1])
    return {sid: f"status {statuses[sid]}: {' '.join(seen[sid]) or 'no events'}" for sid in statuses}
