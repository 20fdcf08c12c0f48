"""What intake publishes on preflight.submissions.v1, through the outbox relay, on a real broker."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from preflight.benchmark.v1 import events_pb2 as benchmark_events
from preflight.intake.v1 import events_pb2, intake_pb2
from preflight.sdk import Client
from preflight_common.auth import Role
from preflight_common.bus import SOURCES
from preflight_common.envelope import EventRegistry, decode_record, encode_event
from preflight_intake.adapters import tables
from sqlalchemy import func, select

REPO = Path(__file__).resolve().parents[3]
EXAMPLE_MANIFEST = REPO / "examples" / "model.yaml"
REGISTRY = EventRegistry(
    [events_pb2.SubmissionReceived, events_pb2.ReleasePlanChanged, events_pb2.SubmissionWithdrawn]
)


def pending_outbox(intake: Any) -> int:
    with intake.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(tables.outbox.c.sent_at.is_(None))).scalar_one())


class CapturedLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs() -> Iterator[CapturedLogs]:
    """Every log line of this process (the in-process intake server included), at DEBUG level."""
    handler = CapturedLogs()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_cli_submission_of_the_example_manifest_is_published_without_the_credential(
    intake: Any, topics: Any, credential: str, all_logs: CapturedLogs, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(intake.token("ada", Role.LAB, "example-lab"))
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "preflight.sdk.cli",
            "--json",
            "--token-file",
            str(token_file),
            "submit",
            str(EXAMPLE_MANIFEST),
        ],
        env={**os.environ, "PREFLIGHT_TARGET": intake.target, "EXAMPLE_LAB_API_KEY": credential},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert credential not in cli.stdout + cli.stderr
    submission_id = json.loads(cli.stdout)["submission"]["submission_id"]

    topic = intake.settings.topics.submissions
    records = topics.of_subject(
        topics.until(topic, lambda rs: bool(topics.of_subject(rs, submission_id))), submission_id
    )
    assert len(records) == 1
    record = records[0]
    headers = dict(record.headers)
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"preflight.intake.v1.SubmissionReceived"
    assert headers["ce_source"] == b"preflight.intake"
    assert headers["ce_subject"] == submission_id.encode()
    assert headers["content-type"] == b"application/protobuf"
    assert headers["ce_id"] and headers["ce_time"]
    # The SubmitModel call's trace continues through the outbox to whoever consumes the event.
    assert headers["traceparent"].startswith(b"00-")
    attributes, event = decode_record(record.headers, record.value, REGISTRY)
    assert isinstance(event, events_pb2.SubmissionReceived)
    assert attributes.subject == event.submission_id == submission_id
    assert event.organisation == "example-lab"
    assert event.model.name == "example-frontier"
    assert event.access.endpoint.base_url == "http://127.0.0.1:8800/v1"
    assert event.access.endpoint.credential_ref.startswith("cred-")
    assert event.review_deadline == event.planned_release
    assert event.deadline_version == 1

    for anything in topics.all(topic):
        assert credential.encode() not in anything.value
        assert all(credential.encode() not in value for _, value in anything.headers)
    assert all_logs.lines, "no log line was captured"
    assert not [line for line in all_logs.lines if credential in line]


def test_release_plan_changes_and_withdrawals_are_published_in_order(
    intake: Any, topics: Any, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    with Client(intake.target, token=intake.token("alice", Role.LAB, "lab-a")) as client:
        sid = client.submit(make_request("lab-a")).submission.submission_id
        release = datetime.now(UTC) + timedelta(days=25)
        client.update_release_plan(sid, release, reason="launch slipped")
        client.withdraw(sid, reason="cancelled")
    records = topics.of_subject(
        topics.until(intake.settings.topics.submissions, lambda rs: len(topics.of_subject(rs, sid)) >= 3), sid
    )
    events = [decode_record(r.headers, r.value, REGISTRY)[1] for r in records]
    assert [type(e).__name__ for e in events] == [
        "SubmissionReceived",
        "ReleasePlanChanged",
        "SubmissionWithdrawn",
    ]
    changed = events[1]
    assert isinstance(changed, events_pb2.ReleasePlanChanged)
    assert changed.deadline_version == 2
    assert changed.reason == "launch slipped"
    assert changed.planned_release.seconds == int(release.timestamp())
    assert changed.previous_planned_release == events[0].planned_release  # type: ignore[attr-defined]
    assert events[2].reason == "cancelled"  # type: ignore[attr-defined]


def test_the_same_idempotency_key_twice_gives_one_submission_and_one_event(
    intake: Any,
    topics: Any,
    eventually: Callable[..., None],
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    request = make_request("lab-a")
    with Client(intake.target, token=intake.token("alice", Role.LAB, "lab-a")) as client:
        first = client.submit(request)
        second = client.submit(request)
    assert not first.replayed and second.replayed
    assert first.submission == second.submission
    sid = first.submission.submission_id
    eventually(lambda: pending_outbox(intake) == 0, what="outbox relayed")
    assert len(topics.of_subject(topics.all(intake.settings.topics.submissions), sid)) == 1
    with intake.engine.connect() as conn:
        rows = conn.execute(
            select(func.count()).where(tables.submissions.c.idempotency_key == request.idempotency_key)
        ).scalar_one()
    assert rows == 1


def test_with_kafka_down_submissions_succeed_and_are_published_once_it_is_back(
    intake_factory: Callable[..., Any],
    kafka: Any,
    topics: Any,
    eventually: Callable[..., None],
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    server = intake_factory()
    topic = server.settings.topics.submissions
    with Client(server.target, token=server.token("alice", Role.LAB, "lab-a")) as client:
        before = client.submit(make_request("lab-a")).submission.submission_id
        eventually(lambda: pending_outbox(server) == 0, what="outbox relayed")
        kafka.kill()
        try:
            during = client.submit(make_request("lab-a")).submission.submission_id
            assert client.get_submission(during).status == intake_pb2.SUBMISSION_STATUS_RECEIVED
            assert pending_outbox(server) == 1
        finally:
            kafka.restart()
    eventually(lambda: pending_outbox(server) == 0, timeout=90, what="outbox relayed")
    records = topics.all(topic)
    assert len(topics.of_subject(records, before)) == 1
    assert len(topics.of_subject(records, during)) == 1


def test_intake_started_while_kafka_is_down_serves_and_catches_up_once_it_is_back(
    intake_factory: Callable[..., Any],
    intake_settings: Any,
    kafka: Any,
    topics: Any,
    eventually: Callable[..., None],
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    kafka.kill()
    try:
        server = intake_factory(intake_settings)
        with Client(server.target, token=server.token("alice", Role.LAB, "lab-a")) as client:
            sid = client.submit(make_request("lab-a")).submission.submission_id
            assert client.get_submission(sid).status == intake_pb2.SUBMISSION_STATUS_RECEIVED
    finally:
        kafka.restart()
    eventually(lambda: pending_outbox(server) == 0, timeout=90, what="outbox relayed")
    assert len(topics.of_subject(topics.all(intake_settings.topics.submissions), sid)) == 1
    # The progress agents started too, once the broker answered.
    record = encode_event(
        benchmark_events.BenchmarkJobRequested(
            job_id="job-1",
            submission_id=sid,
            suite_id="suite",
            suite_version="1",
            attempt=1,
            max_attempts=1,
            planned_jobs=1,
        ),
        source=SOURCES["benchmark"],
        subject=sid,
    )
    producer = KafkaProducer(**topics.settings.kafka_python_options())
    producer.send(
        intake_settings.topics.benchmark_jobs, key=record.key, value=record.value, headers=record.headers
    ).get(30)
    producer.close()
    with Client(server.target, token=server.token("alice", Role.LAB, "lab-a")) as client:
        eventually(
            lambda: client.get_submission(sid).status == intake_pb2.SUBMISSION_STATUS_BENCHMARKING,
            timeout=60,
            what="the agents applied a job event",
        )
