"""The whole service against a real Kafka broker, real worker processes and the reference model."""

from __future__ import annotations

import contextlib
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from preflight.benchmark.v1 import benchmark_pb2, benchmark_pb2_grpc, events_pb2
from preflight.intake.v1 import events_pb2 as intake_events
from preflight.intake.v1 import submission_pb2
from preflight_benchmark.reference_model.server import ReferenceModelServer
from preflight_testkit.benchmark import BenchmarkProcess, IntakeStandIn, submission, wait_until

SUITES = {"cyber.vuln-detect", "cyber.exploit", "cyber.knowledge", "cyber.discovery"}
# The scripted model answers sample N correctly unless N is a multiple of 3; the
# test catalog runs 3 samples per suite (2 projects for discovery, where the
# model finds 2 of the 3 planted bugs and adds a false finding to even projects).
EXPECTED = {
    ("cyber.vuln-detect", "accuracy"): 2 / 3,
    ("cyber.exploit", "accuracy"): 2 / 3,
    ("cyber.knowledge", "accuracy"): 2 / 3,
    ("cyber.discovery", "recall"): 2 / 3,
    ("cyber.discovery", "precision"): 5 / 6,
}
FAILED = events_pb2.FailureReason


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_four_suites_fan_out_run_and_complete_with_the_scripted_scores(
    service: BenchmarkProcess, intake: IntakeStandIn, reference_model: ReferenceModelServer, model_key: str
) -> None:
    received = submission(
        base_url=reference_model.base_url,
        model_name="frontier-test",
        credential_ref=intake.add_credential(model_key),
    )
    event_id = service.publish(received)
    tap = service.tap
    completed = tap.ended(received.submission_id, 4, 180)
    requested = tap.of(events_pb2.BenchmarkJobRequested, received.submission_id)
    assert {r.suite_id for r in requested} == SUITES
    assert len({r.job_id for r in requested}) == 4
    assert {r.planned_jobs for r in requested} == {4}
    assert all(isinstance(e, events_pb2.BenchmarkCompleted) for e in completed), completed
    assert {e.job_id for e in completed} == {r.job_id for r in requested}
    scores = {(e.suite_id, s.metric): s.value for e in completed for s in e.scores}
    assert scores == pytest.approx(EXPECTED)
    by_suite = {e.suite_id: e for e in completed}
    assert by_suite["cyber.knowledge"].samples_total == 3
    assert by_suite["cyber.knowledge"].usage.total_tokens > 0
    assert by_suite["cyber.knowledge"].inspect_version
    findings = by_suite["cyber.discovery"].candidate_findings
    assert {f.cwe_ids[0] for f in findings} >= {"CWE-89", "CWE-22", "CWE-787", "CWE-190"}
    assert all(f.affected_product.startswith("pkg:generic/preflight-corpus/") for f in findings)
    for event in completed:
        for uri in event.eval_log_uri.split(","):
            assert Path(uri.removeprefix("file://")).is_file()
            assert received.submission_id in uri

    # Redelivery of the same event, and the same submission under a new event id, plan nothing new.
    service.publish(received, event_id=event_id)
    service.publish(received)
    marker = submission(base_url=reference_model.base_url, model_name="frontier-test", credential_ref="none")
    marker.access.ClearField("kind")  # a poison event: proves the planner has moved past the redeliveries
    service.publish(marker)
    wait_until(
        lambda: (
            service.tap.of(events_pb2.BenchmarkJobRequested, marker.submission_id) == []
            and _dlq_seen(service)
        ),
        30,
        "the planner to consume the redeliveries",
    )
    assert len(tap.of(events_pb2.BenchmarkJobRequested, received.submission_id)) == 4
    assert len(tap.terminal(received.submission_id)) == 4

    # Reviewers see the four completed jobs with their scores.
    with grpc.insecure_channel(service.target) as channel:
        stub = benchmark_pb2_grpc.BenchmarkServiceStub(channel)
        listed = stub.ListJobs(
            benchmark_pb2.ListJobsRequest(submission_id=received.submission_id),
            metadata=[("authorization", f"Bearer {intake.reviewer_token}")],
        )
    assert [j.status for j in listed.jobs] == [benchmark_pb2.JOB_STATUS_COMPLETED] * 4
    assert all(j.scores for j in listed.jobs)

    # The credential was resolved at run time by reference, and appears nowhere.
    assert {job for _, job in intake.servicer.calls} >= {r.job_id for r in requested}
    secret = model_key.encode()
    assert not any(secret in raw for raw in service.tap.raw), "credential on a topic"
    leaks = [p for p in _files_under(service.root) if secret in p.read_bytes()]
    assert leaks == [], f"credential written to {leaks}"
    assert all(
        not r.job_id or model_key not in r.SerializeToString().decode(errors="ignore") for r in requested
    )


def _dlq_seen(service: BenchmarkProcess) -> bool:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        f"{service.settings.topics.submissions}.dlq",
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
        **service.admin.kafka_python_options(),
    )
    try:
        return any(True for _ in consumer)
    finally:
        consumer.close()


def _job(service: BenchmarkProcess, job_id: str):  # type: ignore[no-untyped-def]
    return service.components.store.get(job_id)


def test_withdrawal_mid_run_cancels_pending_and_running_jobs(
    service: BenchmarkProcess,
    intake: IntakeStandIn,
    slow_reference_model: ReferenceModelServer,
    model_key: str,
) -> None:
    received = submission(
        base_url=slow_reference_model.base_url,
        model_name="frontier-slow",
        credential_ref=intake.add_credential(model_key),
    )
    service.publish(received)
    requested = service.tap.requested(received.submission_id, 4, 30)
    before = slow_reference_model.requests
    wait_until(lambda: slow_reference_model.requests > before, 60, "a worker to reach the model")
    statuses = {j.job_id: _job(service, j.job_id).status.value for j in requested}
    assert {"pending", "running"} <= set(statuses.values()), statuses
    service.publish(
        intake_events.SubmissionWithdrawn(
            submission_id=received.submission_id,
            organisation=received.organisation,
            reason="release cancelled",
        )
    )
    ended = service.tap.ended(received.submission_id, 4, 30)
    assert all(isinstance(e, events_pb2.BenchmarkFailed) for e in ended), ended
    assert {e.reason for e in ended} == {FAILED.FAILURE_REASON_WITHDRAWN}
    assert {e.job_id for e in ended} == {r.job_id for r in requested}
    # The running workers are stopped, and nothing starts for the withdrawn submission.
    wait_until(lambda: not service.components.dispatcher.running, 30, "the workers to stop")
    assert all(
        _job(service, j.job_id).started_at is None for j in requested if statuses[j.job_id] == "pending"
    )
    assert len(service.tap.terminal(received.submission_id)) == 4


def test_access_window_bounds_when_jobs_run(
    service: BenchmarkProcess,
    intake: IntakeStandIn,
    slow_reference_model: ReferenceModelServer,
    model_key: str,
) -> None:
    now = datetime.now(UTC)
    start, end = now + timedelta(seconds=2), now + timedelta(seconds=9)
    received = submission(
        base_url=slow_reference_model.base_url,
        model_name="frontier-slow",
        credential_ref=intake.add_credential(model_key),
        start=start,
        end=end,
    )
    service.publish(received)
    ended = service.tap.ended(received.submission_id, 4, 60)
    started = [_job(service, e.job_id).started_at for e in ended]
    assert all(s is None or s >= start for s in started), "a job started before the window opened"
    assert any(s is not None for s in started)
    closed = [e for e in ended if isinstance(e, events_pb2.BenchmarkFailed)]
    assert closed and {e.reason for e in closed} == {FAILED.FAILURE_REASON_WINDOW_CLOSED}
    assert all(e.failed_at.ToDatetime(tzinfo=UTC) >= end for e in closed)


def test_killed_worker_is_retried_and_the_job_ends_once(
    service: BenchmarkProcess,
    intake: IntakeStandIn,
    slow_reference_model: ReferenceModelServer,
    model_key: str,
) -> None:
    received = submission(
        base_url=slow_reference_model.base_url,
        model_name="frontier-slow",
        credential_ref=intake.add_credential(model_key),
    )
    before = slow_reference_model.requests
    service.publish(received)
    wait_until(lambda: slow_reference_model.requests > before, 60, "a worker to reach the model")
    requested = {r.job_id for r in service.tap.requested(received.submission_id, 4, 30)}
    executor = service.components.executor

    def running_worker() -> tuple[tuple[str, int], int] | None:
        # A worker whose job has not ended yet: one that already reported may still be exiting.
        ended = {e.job_id for e in service.tap.terminal(received.submission_id)}
        workers = executor.pids().items()  # type: ignore[attr-defined]
        return next(((k, p) for k, p in workers if k[0] in requested and k[0] not in ended), None)

    (job_id, attempt), pid = wait_until(running_worker, 30, "a running worker of this submission")
    # The running worker holds the credential in memory only: not in its argv or environment.
    for exposed in ("cmdline", "environ"):
        assert model_key.encode() not in Path(f"/proc/{pid}/{exposed}").read_bytes()
    os.kill(pid, signal.SIGKILL)
    ended = service.tap.ended(received.submission_id, 4, 180)
    killed = [e for e in ended if e.job_id == job_id]
    assert len(killed) == 1
    assert isinstance(killed[0], events_pb2.BenchmarkCompleted)
    assert killed[0].attempt == attempt + 1
    assert all(isinstance(e, events_pb2.BenchmarkCompleted) for e in ended)
    assert len(service.tap.of(events_pb2.BenchmarkJobRequested, received.submission_id)) == 4


def _scored_samples(folder: Path, task: str) -> int:
    """Samples of `task` written to the eval logs under `folder` so far (a log being written may not
    read yet)."""
    from inspect_ai.log import read_eval_log_sample_summaries  # Inspect's import is slow: only when run

    written = 0
    for log in folder.rglob(f"*_{task}_*.eval"):
        with contextlib.suppress(Exception):  # a log mid-write is read again on the next poll
            written = max(written, len(read_eval_log_sample_summaries(str(log))))
    return written


def test_a_retried_attempt_resumes_the_killed_attempts_log_without_asking_for_scored_samples_again(
    service: BenchmarkProcess, intake: IntakeStandIn, model_key: str
) -> None:
    model = ReferenceModelServer(api_key=model_key, model_name="frontier-held", hold={"kn-003"}).start()
    try:
        ref = intake.add_credential(model_key)
        received = submission(base_url=model.base_url, model_name="frontier-held", credential_ref=ref)
        service.publish(received)
        [knowledge] = [
            r.job_id
            for r in service.tap.requested(received.submission_id, 4, 60)
            if r.suite_id == "cyber.knowledge"
        ]
        # The knowledge suite's attempt has scored and logged two samples and waits on the third.
        folder = service.root / "eval-logs" / received.submission_id
        wait_until(
            lambda: model.requests_by_sample["kn-003"] == 1 and _scored_samples(folder, "knowledge") == 2,
            120,
            "two knowledge samples scored and logged",
        )
        executor = service.components.executor
        (_, attempt), pid = next(
            (key, pid)
            for key, pid in executor.pids().items()  # type: ignore[attr-defined]
            if key[0] == knowledge
        )
        os.kill(pid, signal.SIGKILL)
        model.release()
        ended = service.tap.ended(received.submission_id, 4, 180)
        [resumed] = [e for e in ended if e.job_id == knowledge]
        assert isinstance(resumed, events_pb2.BenchmarkCompleted), resumed
        assert resumed.attempt == attempt + 1
        assert resumed.samples_total == 3
        assert {s.metric: s.value for s in resumed.scores} == pytest.approx({"accuracy": 2 / 3})
        # Only the sample the killed attempt had not scored reached the model again.
        asked = {sample: n for sample, n in model.requests_by_sample.items() if sample.startswith("kn-")}
        assert asked == {"kn-001": 1, "kn-002": 1, "kn-003": 2}
        assert received.submission_id in resumed.eval_log_uri and knowledge in resumed.eval_log_uri
    finally:
        model.stop()


def test_weights_access_without_a_gpu_fails_with_a_configuration_error(
    service: BenchmarkProcess, intake: IntakeStandIn, reference_model: ReferenceModelServer
) -> None:
    received = submission(base_url=reference_model.base_url, model_name="x", credential_ref="unused")
    received.access.CopyFrom(
        submission_pb2.ModelAccess(
            weights=submission_pb2.WeightsAccess(artifact_uri="file:///models/w.safetensors", sha256="0" * 64)
        )
    )
    service.publish(received)
    ended = service.tap.ended(received.submission_id, 4, 120)
    assert {type(e) for e in ended} == {events_pb2.BenchmarkFailed}
    assert {e.reason for e in ended} == {FAILED.FAILURE_REASON_CONFIG_ERROR}
    assert all("GPU" in e.message and not e.retryable and e.attempt == 1 for e in ended)
