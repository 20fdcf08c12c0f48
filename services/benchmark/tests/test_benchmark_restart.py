"""The benchmark process dies mid-run: a new process on the same database resumes; nothing lost or doubled."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from preflight.benchmark.v1 import events_pb2
from preflight.intake.v1 import events_pb2 as intake_events
from preflight_benchmark.domain.jobs import JobStatus
from preflight_benchmark.reference_model.server import ReferenceModelServer
from preflight_common.config import KafkaSettings
from preflight_testkit.benchmark import (
    IntakeStandIn,
    benchmark_process,
    intake_stand_in,
    service_settings,
    submission,
    wait_until,
)

SMALL_CATALOG = Path(__file__).parent / "data" / "catalog_small.yaml"


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[IntakeStandIn]:
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_CATALOG_FILE", str(SMALL_CATALOG))
    monkeypatch.setenv("PREFLIGHT_KAFKA_SESSION_TIMEOUT", "6")
    monkeypatch.setenv("PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL", "1")
    with intake_stand_in(tmp_path) as intake:
        yield intake


@pytest.fixture
def slow_model(
    stand_in: IntakeStandIn,
) -> Iterator[tuple[ReferenceModelServer, intake_events.SubmissionReceived]]:
    """A slow reference model, and a submission of it whose credential intake can resolve."""
    key = "sk-" + secrets.token_urlsafe(24)
    model = ReferenceModelServer(api_key=key, model_name="slow", delay=0.4).start()
    received = submission(
        base_url=model.base_url, model_name="slow", credential_ref=stand_in.add_credential(key)
    )
    yield model, received
    model.stop()


def test_a_restarted_service_resumes_running_and_pending_jobs(
    kafka_settings: KafkaSettings,
    stand_in: IntakeStandIn,
    slow_model: tuple[ReferenceModelServer, intake_events.SubmissionReceived],
    tmp_path: Path,
) -> None:
    model, received = slow_model
    settings = service_settings(tmp_path, kafka_settings, stand_in)
    with benchmark_process(settings, tmp_path) as first:
        first.publish(received)
        wait_until(lambda: model.requests > 0, 60, "a worker to reach the model")
        running = first.components.store.in_status(JobStatus.RUNNING)
        assert len(running) == 2
    # The process is gone: its workers were stopped, the jobs it had started are still RUNNING.
    with benchmark_process(settings, tmp_path) as second:
        ended = second.tap.ended(received.submission_id, 4, 180)
        assert all(isinstance(e, events_pb2.BenchmarkCompleted) for e in ended)
        assert len({e.job_id for e in ended}) == 4
        resumed = {e.job_id: e.attempt for e in ended if e.job_id in {j.job_id for j in running}}
        assert resumed == {j.job_id: j.attempt for j in running}, "resumed with the same attempt"
        assert len(second.tap.of(events_pb2.BenchmarkJobRequested, received.submission_id)) == 4


def test_a_restarted_service_starts_no_job_of_a_submission_withdrawn_while_it_was_down(
    kafka_settings: KafkaSettings,
    stand_in: IntakeStandIn,
    slow_model: tuple[ReferenceModelServer, intake_events.SubmissionReceived],
    tmp_path: Path,
) -> None:
    model, received = slow_model
    settings = service_settings(tmp_path, kafka_settings, stand_in)
    sid = received.submission_id
    with benchmark_process(settings, tmp_path) as first:
        first.publish(received)
        wait_until(lambda: model.requests > 0, 60, "a worker to reach the model")
        assert len(first.components.store.in_status(JobStatus.RUNNING)) == 2
    # Withdrawn at intake while the service is down; the submissions topic does not say so yet
    # (the planner of the next process cannot have read it before the dispatcher starts).
    stand_in.servicer.withdrawn.add(sid)
    resolved = len(stand_in.servicer.calls)
    reached = model.requests
    with benchmark_process(settings, tmp_path) as second:
        ended = second.tap.ended(sid, 4, 120)
        assert all(
            isinstance(e, events_pb2.BenchmarkFailed) and e.reason == events_pb2.FAILURE_REASON_WITHDRAWN
            for e in ended
        ), ended
        assert len({e.job_id for e in ended}) == 4
        # No worker was launched: none resolved the credential or reached the model.
        assert len(stand_in.servicer.calls) == resolved
        assert model.requests == reached
        assert set(stand_in.servicer.status_queries) == {sid}
        # The withdrawal then arrives on the topic: the jobs ended once, nothing more is published.
        second.publish(
            intake_events.SubmissionWithdrawn(submission_id=sid, organisation="lab-a", reason="not ready")
        )
        wait_until(lambda: second.components.store.is_withdrawn(sid), 60, "the planner to apply it")
        assert len(second.tap.terminal(sid)) == 4
