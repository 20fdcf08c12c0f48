"""The service's database: submissions, jobs, the outbox and the consumed-event record.

Every state change that publishes an event enqueues it to the outbox in the
same transaction, and every consumed event is claimed in the transaction of
its effect: when a method returns, the change and its events are durable
together; when it raises, neither is. The transaction that ends a submission's
last active job also enqueues the plan's end (BenchmarkPlanEnded), once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from preflight.benchmark.v1 import events_pb2
from preflight_common.idempotency import claim_event
from preflight_common.outbox import enqueue
from sqlalchemy import (
    Engine,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.elements import ColumnElement

from preflight_benchmark.adapters.tables import jobs, outbox, processed_events, submissions
from preflight_benchmark.domain.jobs import FailureReason, JobStatus
from preflight_benchmark.domain.records import EndingFor, JobRecord, NewJob, Refused

ACTIVE = (JobStatus.PENDING.value, JobStatus.RUNNING.value)


def _due(now: datetime) -> ColumnElement[bool]:
    """A pending job whose access window is open."""
    return and_(jobs.c.status == JobStatus.PENDING.value, jobs.c.not_before <= now, jobs.c.not_after > now)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _job(row: Row[Any]) -> JobRecord:
    return JobRecord(
        job_id=row.job_id,
        submission_id=row.submission_id,
        organisation=row.organisation,
        suite_id=row.suite_id,
        suite_version=row.suite_version,
        capability=row.capability,
        status=JobStatus(row.status),
        attempt=row.attempt,
        max_attempts=row.max_attempts,
        not_before=_aware(row.not_before) or row.not_before,
        not_after=_aware(row.not_after) or row.not_after,
        executor=row.executor,
        failure_reason=FailureReason(row.failure_reason) if row.failure_reason else None,
        message=row.message or "",
        request=row.request,
        result=row.result,
        eval_log_uri=row.eval_log_uri or "",
        created_at=_aware(row.created_at) or row.created_at,
        started_at=_aware(row.started_at),
        finished_at=_aware(row.finished_at),
        traceparent=row.traceparent,
    )


def _owned(conn: Connection, submission_id: str, organisation: str) -> Row[Any] | None:
    """The submission's row (None when unknown); `Refused` when it belongs to another organisation."""
    row = conn.execute(select(submissions).where(submissions.c.submission_id == submission_id)).first()
    if row is not None and row.organisation != organisation:
        raise Refused(
            f"submission {submission_id} belongs to another organisation than {organisation!r}; "
            "its organisation is set once"
        )
    return row


def _model_of(request: bytes) -> bytes:
    """The model identity of a serialized BenchmarkJobRequested, serialized deterministically."""
    return events_pb2.BenchmarkJobRequested.FromString(request).model.SerializeToString(deterministic=True)


def _model(conn: Connection, submission_id: str) -> bytes | None:
    """The model identity the submission's jobs were planned for (None without jobs)."""
    request = conn.execute(
        select(jobs.c.request).where(jobs.c.submission_id == submission_id).limit(1)
    ).scalar()
    return None if request is None else _model_of(request)


class JobStore:
    """Jobs and their events, one transaction per method."""

    def __init__(
        self, engine: Engine, *, jobs_topic: str, results_topic: str, consumer: str = "planner"
    ) -> None:
        self.engine = engine
        self._jobs_topic = jobs_topic
        self._results_topic = results_topic
        self._consumer = consumer

    # -- planning (the planner's idempotent effects) -------------------------------------------

    def plan(
        self,
        event_id: str,
        submission_id: str,
        organisation: str,
        executor: str,
        planned: Sequence[NewJob],
        now: datetime,
    ) -> bool:
        """Store the submission, its jobs and their BenchmarkJobRequested events; False if already applied.

        A submission already known (a second SubmissionReceived under another
        event id) plans nothing new: job ids are deterministic and existing ones are kept.
        Its organisation and model are set once: a second SubmissionReceived naming another,
        or one for a withdrawn submission, raises `Refused` (nothing is written).
        """
        with self.engine.begin() as conn:
            if not claim_event(conn, processed_events, self._consumer, event_id):
                return False
            known = _owned(conn, submission_id, organisation)
            if known is not None:
                if known.withdrawn_at is not None:
                    raise Refused(f"submission {submission_id} was withdrawn; it is not received again")
                if planned and _model(conn, submission_id) != _model_of(planned[0].request):
                    raise Refused(f"submission {submission_id}: model is set once and may not change")
                return False
            conn.execute(
                insert(submissions).values(
                    submission_id=submission_id, organisation=organisation, created_at=now
                )
            )
            for job in planned:
                conn.execute(
                    insert(jobs).values(
                        job_id=job.job_id,
                        submission_id=submission_id,
                        organisation=organisation,
                        suite_id=job.suite_id,
                        suite_version=job.suite_version,
                        capability=job.capability,
                        status=JobStatus.PENDING.value,
                        attempt=0,
                        max_attempts=job.max_attempts,
                        not_before=job.not_before,
                        not_after=job.not_after,
                        executor=executor,
                        message="",
                        request=job.request,
                        eval_log_uri="",
                        created_at=now,
                        updated_at=now,
                        traceparent=job.traceparent,
                    )
                )
                enqueue(conn, outbox, self._jobs_topic, job.record)
            return True

    def withdraw(
        self, event_id: str, submission_id: str, organisation: str, now: datetime, ending: EndingFor
    ) -> list[JobRecord]:
        """Mark the submission withdrawn and end its active jobs (WITHDRAWN); returns the jobs ended.

        Returns an empty list when the event was already applied. Raises `Refused` (nothing
        is written) when the submission is recorded under another organisation.
        """
        with self.engine.begin() as conn:
            if not claim_event(conn, processed_events, self._consumer, event_id):
                return []
            _owned(conn, submission_id, organisation)
            conn.execute(
                update(submissions)
                .where(submissions.c.submission_id == submission_id, submissions.c.withdrawn_at.is_(None))
                .values(withdrawn_at=now)
            )
            active = conn.execute(
                select(jobs).where(jobs.c.submission_id == submission_id, jobs.c.status.in_(ACTIVE))
            ).all()
            return [j for j in (self._end(conn, _job(r), ending, now) for r in active) if j]

    def change_window(
        self,
        event_id: str,
        submission_id: str,
        organisation: str,
        window: tuple[datetime, datetime],
        now: datetime,
    ) -> int:
        """Move the access window (start, end) of the submission's active jobs; returns how many moved.

        Raises `Refused` (nothing is written) when the submission is recorded under another
        organisation.
        """
        start, end = window
        with self.engine.begin() as conn:
            if not claim_event(conn, processed_events, self._consumer, event_id):
                return 0
            _owned(conn, submission_id, organisation)
            result = conn.execute(
                update(jobs)
                .where(jobs.c.submission_id == submission_id, jobs.c.status.in_(ACTIVE))
                .values(not_before=start, not_after=end, updated_at=now)
            )
            return int(result.rowcount)

    def is_withdrawn(self, submission_id: str) -> bool:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(submissions.c.withdrawn_at).where(submissions.c.submission_id == submission_id)
            ).first()
        return row is not None and row.withdrawn_at is not None

    # -- dispatching ------------------------------------------------------------------------------

    def due(self, now: datetime, per_organisation: int) -> list[JobRecord]:
        """Pending jobs whose window is open, earliest deadline (window end) first, at most
        `per_organisation` of each organisation (its earliest): the candidates of a dispatch round."""
        deadline_order = (jobs.c.not_after, jobs.c.created_at, jobs.c.job_id)
        ranked = (
            select(
                jobs,
                func.row_number()
                .over(partition_by=jobs.c.organisation, order_by=deadline_order)
                .label("rank_in_organisation"),
            )
            .where(_due(now))
            .subquery()
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ranked)
                .where(ranked.c.rank_in_organisation <= per_organisation)
                .order_by(ranked.c.not_after, ranked.c.created_at, ranked.c.job_id)
            ).all()
        return [_job(r) for r in rows]

    def count_due(self, now: datetime) -> int:
        """How many pending jobs wait with their window open (the queue depth)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(jobs).where(_due(now))).scalar_one())

    def in_status(self, *statuses: JobStatus) -> list[JobRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(jobs).where(jobs.c.status.in_([s.value for s in statuses])).order_by(jobs.c.created_at)
            ).all()
        return [_job(r) for r in rows]

    def expired(self, now: datetime) -> list[JobRecord]:
        """Active jobs whose window has closed."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.status.in_(ACTIVE), jobs.c.not_after <= now)).all()
        return [_job(r) for r in rows]

    def start_attempt(self, job: JobRecord, now: datetime) -> JobRecord | None:
        """PENDING → RUNNING with the next attempt number; None if the job changed meanwhile."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(
                    jobs.c.job_id == job.job_id,
                    jobs.c.status == JobStatus.PENDING.value,
                    jobs.c.attempt == job.attempt,
                )
                .values(
                    status=JobStatus.RUNNING.value, attempt=job.attempt + 1, started_at=now, updated_at=now
                )
            )
            if result.rowcount != 1:
                return None
            return _job(conn.execute(select(jobs).where(jobs.c.job_id == job.job_id)).one())

    def requeue(self, job_id: str, attempt: int, message: str, now: datetime) -> bool:
        """RUNNING (this attempt) → PENDING for another attempt."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(
                    jobs.c.job_id == job_id,
                    jobs.c.status == JobStatus.RUNNING.value,
                    jobs.c.attempt == attempt,
                )
                .values(status=JobStatus.PENDING.value, message=message, updated_at=now)
            )
            return result.rowcount == 1

    def end(
        self, job_id: str, ending: EndingFor, now: datetime, attempt: int | None = None
    ) -> JobRecord | None:
        """End an active job (of `attempt`, if given) with its terminal event; None if it was not active."""
        with self.engine.begin() as conn:
            row = conn.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
            if row is None:
                return None
            job = _job(row)
            if attempt is not None and (job.attempt != attempt or job.status != JobStatus.RUNNING):
                return None
            return self._end(conn, job, ending, now)

    def _end(self, conn: Connection, job: JobRecord, ending: EndingFor, now: datetime) -> JobRecord | None:
        if job.status.terminal:
            return None
        # The submission's row is locked first, as a withdrawal locks it before its jobs: of two
        # transactions ending a plan's last two jobs, the second sees both ended and announces it.
        conn.execute(
            select(submissions.c.submission_id)
            .where(submissions.c.submission_id == job.submission_id)
            .with_for_update()
        )
        done = ending(job)
        result = conn.execute(
            update(jobs)
            .where(
                jobs.c.job_id == job.job_id, jobs.c.status == job.status.value, jobs.c.attempt == job.attempt
            )
            .values(
                status=done.status.value,
                failure_reason=done.failure_reason.value if done.failure_reason else None,
                message=done.message,
                result=done.result,
                eval_log_uri=done.eval_log_uri or job.eval_log_uri,
                finished_at=now,
                updated_at=now,
            )
        )
        if result.rowcount != 1:
            return None
        enqueue(conn, outbox, self._results_topic, done.record)
        plan = [
            _job(r)
            for r in conn.execute(
                select(jobs).where(jobs.c.submission_id == job.submission_id).order_by(jobs.c.job_id)
            )
        ]
        if all(p.status.terminal for p in plan):
            enqueue(conn, outbox, self._results_topic, done.plan_ended(plan))
        return next(p for p in plan if p.job_id == job.job_id)

    # -- reading ----------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
        return _job(row) if row else None

    def list(
        self,
        *,
        organisation: str | None,
        submission_id: str | None,
        statuses: Iterable[JobStatus],
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[JobRecord]:
        """Jobs oldest first, after the (created_at, job_id) cursor; `organisation` None means all."""
        query = select(jobs)
        if organisation is not None:
            query = query.where(jobs.c.organisation == organisation)
        if submission_id:
            query = query.where(jobs.c.submission_id == submission_id)
        wanted = [s.value for s in statuses]
        if wanted:
            query = query.where(jobs.c.status.in_(wanted))
        if after is not None:
            created, last = after
            query = query.where(
                or_(jobs.c.created_at > created, and_(jobs.c.created_at == created, jobs.c.job_id > last))
            )
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(jobs.c.created_at, jobs.c.job_id).limit(limit)).all()
        return [_job(r) for r in rows]

    def count_by_status(
        self, submission_ids: Sequence[str], *, organisation: str | None
    ) -> dict[str, dict[JobStatus, int]]:
        """Each of the submissions' jobs counted by status (one query); a submission without
        jobs (or, when `organisation` is given, without jobs of that organisation) is absent."""
        query = (
            select(jobs.c.submission_id, jobs.c.status, func.count())
            .where(jobs.c.submission_id.in_(list(submission_ids)))
            .group_by(jobs.c.submission_id, jobs.c.status)
        )
        if organisation is not None:
            query = query.where(jobs.c.organisation == organisation)
        counts: dict[str, dict[JobStatus, int]] = {}
        with self.engine.connect() as conn:
            for submission_id, status, count in conn.execute(query):
                counts.setdefault(submission_id, {})[JobStatus(status)] = count
        return counts
