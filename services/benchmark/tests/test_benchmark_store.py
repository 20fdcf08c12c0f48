"""The job store on SQLite and PostgreSQL: state changes and their outbox events are one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from preflight.benchmark.v1 import events_pb2
from preflight_benchmark.adapters import events
from preflight_benchmark.adapters.store import JobStore
from preflight_benchmark.adapters.tables import outbox
from preflight_benchmark.bootstrap import migrate
from preflight_benchmark.domain.jobs import FailureReason, JobStatus
from preflight_benchmark.domain.records import Refused
from preflight_common.db import make_engine
from preflight_testkit.benchmark import new_jobs
from sqlalchemy import func, select

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
WINDOW = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))


@pytest.fixture
def store(db_url: str) -> Iterator[JobStore]:
    migrate(db_url)
    migrate(db_url)  # idempotent
    engine = make_engine(db_url)
    yield JobStore(engine, jobs_topic="jobs", results_topic="results")
    engine.dispose()


def outbox_rows(store: JobStore, topic: str) -> list[str]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                select(outbox.c.event_id).where(outbox.c.topic == topic).order_by(outbox.c.id)
            ).scalars()
        )


def test_planning_is_applied_once_per_event_and_per_submission(store: JobStore) -> None:
    jobs = new_jobs("sub-1", ["a", "b"], WINDOW)
    assert store.plan("evt-1", "sub-1", "lab-a", "local", jobs, NOW)
    assert not store.plan("evt-1", "sub-1", "lab-a", "local", jobs, NOW)
    assert not store.plan("evt-2", "sub-1", "lab-a", "local", jobs, NOW)
    assert outbox_rows(store, "jobs") == [f"{j.job_id}/requested" for j in jobs]
    assert [j.status for j in store.due(NOW, 10)] == [JobStatus.PENDING, JobStatus.PENDING]


def test_a_submissions_organisation_and_model_are_set_once(store: JobStore) -> None:
    jobs = new_jobs("sub-9", ["a"], WINDOW)
    store.plan("evt-20", "sub-9", "lab-a", "local", jobs, NOW)
    with pytest.raises(Refused, match="belongs to another organisation than 'lab-rival'"):
        store.plan("evt-21", "sub-9", "lab-rival", "local", jobs, NOW)
    other_model = events_pb2.BenchmarkJobRequested.FromString(jobs[0].request)
    other_model.model.name = "another-model"
    renamed = [replace(jobs[0], request=other_model.SerializeToString())]
    with pytest.raises(Refused, match="model is set once"):
        store.plan("evt-22", "sub-9", "lab-a", "local", renamed, NOW)
    ending = events.failed(FailureReason.WITHDRAWN, "withdrawn", retryable=False, now=NOW)
    with pytest.raises(Refused, match="belongs to another organisation"):
        store.withdraw("evt-23", "sub-9", "lab-rival", NOW, ending)
    with pytest.raises(Refused, match="belongs to another organisation"):
        store.change_window("evt-24", "sub-9", "lab-rival", (NOW, NOW + timedelta(days=1)), NOW)
    assert [j.status for j in store.due(NOW, 10)] == [JobStatus.PENDING]
    assert len(store.withdraw("evt-25", "sub-9", "lab-a", NOW, ending)) == 1
    with pytest.raises(Refused, match="was withdrawn"):
        store.plan("evt-26", "sub-9", "lab-a", "local", jobs, NOW)


def test_an_attempt_starts_once_and_ends_with_exactly_one_event(store: JobStore) -> None:
    (job,) = new_jobs("sub-2", ["a"], WINDOW)
    store.plan("evt-3", "sub-2", "lab-a", "local", [job], NOW)
    (pending,) = store.due(NOW, 10)
    started = store.start_attempt(pending, NOW)
    assert started is not None and (started.status, started.attempt) == (JobStatus.RUNNING, 1)
    assert store.start_attempt(pending, NOW) is None, "a second start of the same attempt must lose"
    assert store.due(NOW, 10) == []
    ending = events.failed(FailureReason.TIMEOUT, "too slow", retryable=False, now=NOW)
    assert store.end(job.job_id, ending, NOW, attempt=2) is None, "another attempt cannot end it"
    ended = store.end(job.job_id, ending, NOW, attempt=1)
    assert ended is not None and (ended.status, ended.failure_reason) == (
        JobStatus.FAILED,
        FailureReason.TIMEOUT,
    )
    assert store.end(job.job_id, ending, NOW) is None
    assert outbox_rows(store, "results") == [f"{job.job_id}/ended", "sub-2/plan-ended"]
    failed = events_pb2.BenchmarkFailed.FromString(ended.result or b"")
    assert (failed.job_id, failed.attempt, failed.reason) == (
        job.job_id,
        1,
        events_pb2.FAILURE_REASON_TIMEOUT,
    )


def test_requeue_makes_the_job_due_again_for_the_next_attempt(store: JobStore) -> None:
    (job,) = new_jobs("sub-3", ["a"], WINDOW)
    store.plan("evt-4", "sub-3", "lab-a", "local", [job], NOW)
    started = store.start_attempt(store.due(NOW, 1)[0], NOW)
    assert started is not None
    assert store.requeue(job.job_id, 1, "crashed", NOW)
    assert not store.requeue(job.job_id, 1, "crashed", NOW)
    again = store.start_attempt(store.due(NOW, 1)[0], NOW)
    assert again is not None and again.attempt == 2


def test_withdrawal_ends_only_active_jobs_and_only_once(store: JobStore) -> None:
    jobs = new_jobs("sub-4", ["a", "b", "c"], WINDOW)
    store.plan("evt-5", "sub-4", "lab-a", "local", jobs, NOW)
    first = store.start_attempt(store.due(NOW, 1)[0], NOW)
    assert first is not None
    store.end(first.job_id, events.failed(FailureReason.EVAL_ERROR, "x", retryable=False, now=NOW), NOW)
    ending = events.failed(FailureReason.WITHDRAWN, "withdrawn", retryable=False, now=NOW)
    ended = store.withdraw("evt-6", "sub-4", "lab-a", NOW, ending)
    assert len(ended) == 2 and {j.failure_reason for j in ended} == {FailureReason.WITHDRAWN}
    assert store.withdraw("evt-6", "sub-4", "lab-a", NOW, ending) == []
    assert store.is_withdrawn("sub-4")
    assert outbox_rows(store, "results")[-1] == "sub-4/plan-ended"
    assert len(outbox_rows(store, "results")) == 4


def test_the_transaction_ending_a_plans_last_job_announces_the_plan_end_once(store: JobStore) -> None:
    jobs = new_jobs("sub-5", ["a", "b"], WINDOW)
    store.plan("evt-7", "sub-5", "lab-a", "local", jobs, NOW)
    first = store.start_attempt(store.due(NOW, 1)[0], NOW)
    assert first is not None
    report = events_pb2.BenchmarkCompleted(eval_log_uri="file:///logs/a.eval")
    store.end(first.job_id, events.completed(report, NOW), NOW, attempt=1)
    assert outbox_rows(store, "results") == [f"{first.job_id}/ended"], "one job still runs"
    (last,) = store.due(NOW, 10)
    timeout = events.failed(FailureReason.WINDOW_CLOSED, "closed", retryable=False, now=NOW)
    store.end(last.job_id, timeout, NOW)
    assert store.end(last.job_id, timeout, NOW) is None
    assert outbox_rows(store, "results") == [
        f"{first.job_id}/ended",
        f"{last.job_id}/ended",
        "sub-5/plan-ended",
    ]
    with store.engine.connect() as conn:
        value = conn.execute(
            select(outbox.c.value).where(outbox.c.event_id == "sub-5/plan-ended")
        ).scalar_one()
    announced = events_pb2.BenchmarkPlanEnded.FromString(value)
    assert announced.submission_id == "sub-5" and announced.HasField("ended_at")
    assert sorted((j.job_id, j.outcome, j.attempts, j.failure_reason) for j in announced.jobs) == sorted(
        [
            (first.job_id, events_pb2.JOB_OUTCOME_COMPLETED, 1, events_pb2.FAILURE_REASON_UNSPECIFIED),
            (last.job_id, events_pb2.JOB_OUTCOME_FAILED, 0, events_pb2.FAILURE_REASON_WINDOW_CLOSED),
        ]
    )


def test_expired_lists_active_jobs_whose_window_closed(store: JobStore) -> None:
    store.plan("evt-7", "sub-5", "lab-a", "local", new_jobs("sub-5", ["a"], WINDOW), NOW)
    assert store.expired(NOW) == []
    assert [j.submission_id for j in store.expired(NOW + timedelta(hours=1))] == ["sub-5"]
    assert store.due(NOW + timedelta(hours=1), 10) == []


def test_listing_pages_oldest_first_and_filters_by_organisation(store: JobStore) -> None:
    store.plan("e-a", "sub-a", "lab-a", "local", new_jobs("sub-a", ["a", "b", "c"], WINDOW), NOW)
    store.plan("e-b", "sub-b", "lab-b", "local", new_jobs("sub-b", ["a"], WINDOW), NOW + timedelta(seconds=1))
    page = store.list(organisation=None, submission_id=None, statuses=[], after=None, limit=2)
    rest = store.list(
        organisation=None,
        submission_id=None,
        statuses=[],
        after=(page[-1].created_at, page[-1].job_id),
        limit=10,
    )
    assert len(page) == 2 and len(rest) == 2
    assert {j.job_id for j in page}.isdisjoint(j.job_id for j in rest)
    assert rest[-1].submission_id == "sub-b"
    only_b = store.list(organisation="lab-b", submission_id=None, statuses=[], after=None, limit=10)
    assert [j.submission_id for j in only_b] == ["sub-b"]
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 4


def test_a_new_access_window_moves_only_active_jobs_once(store: JobStore) -> None:
    jobs = new_jobs("sub-6", ["a", "b"], WINDOW)
    store.plan("evt-8", "sub-6", "lab-a", "local", jobs, NOW)
    first = store.start_attempt(store.due(NOW, 1)[0], NOW)
    assert first is not None
    store.end(first.job_id, events.failed(FailureReason.EVAL_ERROR, "x", retryable=False, now=NOW), NOW)
    start, end = NOW + timedelta(days=1), NOW + timedelta(days=2)
    assert store.change_window("evt-9", "sub-6", "lab-a", (start, end), NOW) == 1
    assert store.change_window("evt-9", "sub-6", "lab-a", (NOW, NOW), NOW) == 0
    assert store.due(NOW, 10) == []
    (moved,) = store.due(start, 10)
    assert (moved.not_before, moved.not_after) == (start, end)
