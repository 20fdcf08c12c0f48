"""Intake follows a submission's progress from the benchmark and review topics (its event consumer
on a real broker), applies each event once, and WatchSubmission streams every change."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.message import Message
from kafka import KafkaProducer
from preflight.benchmark.v1 import events_pb2 as benchmark
from preflight.intake.v1 import intake_pb2
from preflight.sdk import Client, FailedPrecondition, PermissionDenied, Unauthenticated, Unavailable
from preflight_common.auth import Role
from preflight_common.bus import SOURCES
from preflight_common.config import KafkaSettings, Topics
from preflight_common.envelope import encode_event
from preflight_testkit.intake import ClearinghouseStandIn

STATUS = intake_pb2.SubmissionStatus


@pytest.fixture(scope="module")
def producer(kafka_settings: KafkaSettings) -> Iterator[KafkaProducer]:
    """Writes events as the services intake follows would (the broker's administrator)."""
    made = KafkaProducer(acks="all", **kafka_settings.kafka_python_options())
    yield made
    made.close()


def publish(
    producer: KafkaProducer, topic: str, payload: Message, subject: str, event_id: str, source: str = ""
) -> None:
    """Publish as the service whose proto package defines the event (`preflight.<service>.v1`), or
    as `source`."""
    source = source or SOURCES[payload.DESCRIPTOR.file.package.split(".")[1]]
    record = encode_event(payload, source=source, subject=subject, event_id=event_id)
    producer.send(topic, key=record.key, value=record.value, headers=record.headers).get(timeout=30)


def requested(job_id: str, submission_id: str, planned_jobs: int) -> benchmark.BenchmarkJobRequested:
    """A BenchmarkJobRequested as the benchmark publishes it (one attempt)."""
    return benchmark.BenchmarkJobRequested(
        job_id=job_id,
        submission_id=submission_id,
        suite_id="suite",
        suite_version="1",
        attempt=1,
        max_attempts=1,
        planned_jobs=planned_jobs,
    )


class Watcher(threading.Thread):
    """Collects a WatchSubmission stream in the background."""

    def __init__(self, client: Client, submission_id: str) -> None:
        super().__init__(daemon=True)
        self.client, self.submission_id = client, submission_id
        self.changes: list[intake_pb2.WatchSubmissionResponse] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.changes.extend(self.client.watch(self.submission_id, timeout=120))
        except BaseException as exc:
            self.error = exc


def test_progress_events_move_the_status_and_the_watch_streams_each_change(
    intake: Any,
    producer: KafkaProducer,
    topics: Any,
    clearinghouse_stand_in: ClearinghouseStandIn,
    eventually: Callable[..., None],
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    names = intake.settings.topics
    with Client(intake.target, token=intake.token("alice", Role.LAB, "lab-a")) as client:
        sid = client.submit(make_request("lab-a")).submission.submission_id
        watcher = Watcher(client, sid)
        watcher.start()
        eventually(lambda: len(watcher.changes) == 1)

        def status() -> int:
            return client.get_submission(sid).status

        for job in ("job-1", "job-2"):
            publish(
                producer,
                names.benchmark_jobs,
                requested(job, sid, planned_jobs=2),
                sid,
                f"req-{job}",
            )
        # The same event delivered twice is applied once.
        publish(
            producer,
            names.benchmark_jobs,
            requested("job-1", sid, planned_jobs=2),
            sid,
            "req-job-1",
        )
        eventually(lambda: status() == STATUS.SUBMISSION_STATUS_BENCHMARKING)

        publish(
            producer,
            names.benchmark_results,
            benchmark.BenchmarkCompleted(job_id="job-1", submission_id=sid, suite_id="suite", attempt=1),
            sid,
            "done-1",
        )
        publish(
            producer,
            names.benchmark_results,
            benchmark.BenchmarkFailed(
                job_id="job-2", submission_id=sid, attempt=1, reason=benchmark.FAILURE_REASON_EVAL_ERROR
            ),
            sid,
            "done-2",
        )
        plan_ended = benchmark.BenchmarkPlanEnded(
            submission_id=sid, jobs=[benchmark.PlannedJobOutcome(job_id="job-1")]
        )
        plan_ended.ended_at.GetCurrentTime()
        # Only the benchmark announces a plan's end: one from another service is dead-lettered,
        # after the results before it on the submission's partition were applied.
        forged_from = SOURCES["clearinghouse"]
        publish(producer, names.benchmark_results, plan_ended, sid, "forged-end", source=forged_from)
        dead = topics.until(Topics.dlq(names.benchmark_results), lambda records: len(records) >= 1)
        assert [dict(r.headers)["ce_id"] for r in dead] == [b"forged-end"]
        assert status() == STATUS.SUBMISSION_STATUS_BENCHMARKING, (
            "every job ended, but the plan's end was not said"
        )
        publish(producer, names.benchmark_results, plan_ended, sid, "plan-ended")
        eventually(lambda: status() == STATUS.SUBMISSION_STATUS_UNDER_REVIEW)

        report = clearinghouse_stand_in.keys.report(sid, organisation="lab-a")
        report.organisation = "lab-a"
        publish(producer, names.reviews, report, sid, "report-1")
        eventually(lambda: status() == STATUS.SUBMISSION_STATUS_REPORT_READY)
        client.withdraw(sid, reason="no longer needed")
        watcher.join(30)

    assert watcher.error is None, watcher.error
    assert not watcher.is_alive(), "the watch did not end at the terminal state"
    assert [(c.sequence, c.status, c.previous_status) for c in watcher.changes] == [
        (1, STATUS.SUBMISSION_STATUS_RECEIVED, STATUS.SUBMISSION_STATUS_UNSPECIFIED),
        (2, STATUS.SUBMISSION_STATUS_BENCHMARKING, STATUS.SUBMISSION_STATUS_RECEIVED),
        (3, STATUS.SUBMISSION_STATUS_UNDER_REVIEW, STATUS.SUBMISSION_STATUS_BENCHMARKING),
        (4, STATUS.SUBMISSION_STATUS_REPORT_READY, STATUS.SUBMISSION_STATUS_UNDER_REVIEW),
        (5, STATUS.SUBMISSION_STATUS_WITHDRAWN, STATUS.SUBMISSION_STATUS_REPORT_READY),
    ]
    assert [c.terminal for c in watcher.changes] == [False, False, False, False, True]


def test_a_watch_of_a_finished_submission_sends_its_state_and_ends(
    intake: Any, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    with Client(intake.target, token=intake.token("alice", Role.LAB, "lab-a")) as client:
        sid = client.submit(make_request("lab-a")).submission.submission_id
        client.withdraw(sid)
        changes = list(client.watch(sid, timeout=10))
    assert [(c.sequence, c.status, c.terminal) for c in changes] == [
        (2, STATUS.SUBMISSION_STATUS_WITHDRAWN, True)
    ]


def test_undecodable_records_go_to_the_dead_letter_topic_and_the_agent_goes_on(
    intake: Any,
    producer: KafkaProducer,
    topics: Any,
    eventually: Callable[..., None],
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    names = intake.settings.topics
    with Client(intake.target, token=intake.token("alice", Role.LAB, "lab-a")) as client:
        sid = client.submit(make_request("lab-a")).submission.submission_id
        producer.send(
            names.benchmark_jobs, key=sid.encode(), value=b"\x00garbage", headers=[("ce_type", b"nope")]
        ).get(30)
        # A request whose plan has no jobs breaks the contract.
        publish(
            producer,
            names.benchmark_jobs,
            requested("j0", sid, planned_jobs=-1),
            sid,
            f"no-plan-{sid}",
        )
        publish(
            producer,
            names.benchmark_jobs,
            requested("j", sid, planned_jobs=1),
            sid,
            f"ok-{sid}",
        )
        eventually(lambda: client.get_submission(sid).status == STATUS.SUBMISSION_STATUS_BENCHMARKING)
    dead = topics.until(Topics.dlq(names.benchmark_jobs), lambda records: len(records) >= 2, timeout=30)
    assert [dict(r.headers)["preflight_dlq_reason"] for r in dead] == [
        b"unknown ce_type 'nope'",
        b"poison event: planned_jobs must be at least 1",
    ]


def test_a_credential_resolves_only_for_a_running_job_of_its_submission(
    intake: Any,
    producer: KafkaProducer,
    eventually: Callable[..., None],
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
    credential: str,
) -> None:
    topics = intake.settings.topics
    # Each job's worker holds a token of its own job (IssueJobToken); the service's own token
    # resolves nothing.
    with (
        Client(intake.target, token=intake.token("alice", Role.LAB, "lab-a")) as lab,
        Client(intake.target, token=intake.token("job-mine", Role.WORKER, "preflight")) as worker,
        Client(intake.target, token=intake.token("job-other", Role.WORKER, "preflight")) as other_worker,
        Client(intake.target, token=intake.token("benchmark", Role.SERVICE, "preflight")) as service,
    ):
        mine, other = (lab.submit(make_request("lab-a")).submission for _ in range(2))
        ref, other_ref = (s.access.endpoint.credential_ref for s in (mine, other))
        with pytest.raises(Unavailable):  # no job of this submission is known yet
            worker.resolve_credential(ref, "job-mine")

        def resolves(client: Client, credential_ref: str, job_id: str) -> bool:
            try:
                return client.resolve_credential(credential_ref, job_id) == credential
            except Unavailable:
                return False

        publish(
            producer,
            topics.benchmark_jobs,
            requested("job-mine", mine.submission_id, 1),
            mine.submission_id,
            "cred-1",
        )
        publish(
            producer,
            topics.benchmark_jobs,
            requested("job-other", other.submission_id, 1),
            other.submission_id,
            "cred-2",
        )
        eventually(lambda: resolves(worker, ref, "job-mine"), what="the credential for its submission's job")
        eventually(
            lambda: resolves(other_worker, other_ref, "job-other"), what="the other submission's job recorded"
        )
        # Another submission's running job opens no credential but its own.
        with pytest.raises(Unavailable):
            other_worker.resolve_credential(ref, "job-other")
        # A job's token opens no other job's credential, and the service's token none at all.
        for client, credential_ref, job_id in (
            (worker, other_ref, "job-other"),
            (other_worker, ref, "job-mine"),
            (service, ref, "job-mine"),
        ):
            with pytest.raises(PermissionDenied):
                client.resolve_credential(credential_ref, job_id)
        # A job token stops working at its expiry (far enough ahead for one call on a loaded machine).
        expiring = intake.token(
            "job-mine", Role.WORKER, "preflight", datetime.now(UTC) + timedelta(seconds=10)
        )
        with Client(intake.target, token=expiring) as short_lived:
            assert short_lived.resolve_credential(ref, "job-mine") == credential

            def expired() -> bool:
                try:
                    short_lived.resolve_credential(ref, "job-mine")
                except Unauthenticated:
                    return True
                return False

            eventually(expired, what="the expired job token refused")

        publish(
            producer,
            topics.benchmark_results,
            benchmark.BenchmarkCompleted(
                job_id="job-mine", submission_id=mine.submission_id, suite_id="suite", attempt=1
            ),
            mine.submission_id,
            "cred-3",
        )

        def retired() -> bool:
            try:
                worker.resolve_credential(ref, "job-mine")
            except FailedPrecondition as exc:
                return "the job has ended" in str(exc)
            return False

        eventually(retired, what="the credential refused once the job ended")
