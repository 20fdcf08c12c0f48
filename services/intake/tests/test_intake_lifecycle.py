"""Intake as a real process: killed with SIGKILL after committing a submission and before
publishing it, the event arrives exactly once after a restart; SIGTERM stops it cleanly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from preflight.intake.v1 import events_pb2, intake_pb2
from preflight.sdk import Client, PreflightError
from preflight_common.auth import Principal, Role, TokenStore
from preflight_common.config import KafkaSettings
from preflight_common.db import make_engine
from preflight_common.topics import TopicSpec, ensure_topics
from preflight_intake.adapters import tables
from sqlalchemy import func, select, text


def test_killed_between_commit_and_publish_the_event_arrives_once_after_restart(
    intake_processes: Any,
    topics: Any,
    eventually: Callable[..., None],
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
    credential: str,
    kafka_settings: KafkaSettings,
) -> None:
    settings = intake_processes.settings
    engine = make_engine(settings.database_url)
    token = TokenStore(engine, tables.api_tokens).create(Principal("alice", Role.LAB, "lab-a")).token

    def pending() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).where(tables.outbox.c.sent_at.is_(None))).scalar_one()
            )

    # The submissions topic does not exist yet (the broker creates none by itself): the relay
    # cannot publish, so the committed event waits in the outbox when the process dies.
    first = intake_processes.start()
    with Client(intake_processes.target, token=token) as client:
        submission = client.submit(make_request("lab-a")).submission
    assert pending() == 1
    first.kill()

    ensure_topics(kafka_settings, [TopicSpec(settings.topics.submissions, partitions=1)])
    second = intake_processes.start()
    eventually(lambda: pending() == 0, what="the outbox relayed after the restart")
    records = topics.of_subject(topics.all(settings.topics.submissions), submission.submission_id)
    assert [dict(r.headers)["ce_type"] for r in records] == [b"preflight.intake.v1.SubmissionReceived"]
    received = events_pb2.SubmissionReceived.FromString(records[0].value)
    assert received.submission_id == submission.submission_id

    with Client(intake_processes.target, token=token) as client:
        assert client.get_submission(submission.submission_id) == submission
    assert second.terminate() == 0
    log = intake_processes.log_path.read_text(errors="replace")
    assert "intake stopped" in log
    assert credential not in log
    engine.dispose()


def test_health_reports_serving_and_reflection_lists_the_services(intake: Any) -> None:
    with grpc.insecure_channel(intake.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "preflight.intake.v1.IntakeService", "preflight.identity.v1.IdentityService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for answer in answers for s in answer.list_services_response.service}
    assert {"preflight.intake.v1.IntakeService", "preflight.identity.v1.IdentityService"} <= names


def test_an_unexpected_failure_answers_internal_reveals_nothing_and_writes_nothing(
    intake_factory: Callable[..., Any], make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    server = intake_factory()
    with server.engine.begin() as conn:
        conn.execute(text("DROP TABLE status_history"))
    token = server.token("alice", Role.LAB, "lab-a")
    with Client(server.target, token=token) as client, pytest.raises(PreflightError) as error:
        client.submit(make_request("lab-a"))
    assert error.value.code == grpc.StatusCode.INTERNAL
    assert error.value.message == "internal error; it has been logged"
    assert server.count(tables.submissions) == server.count(tables.outbox) == 0
