"""The reviews store: submissions, planned jobs, plan ends, withdrawals, reports with their notes
and sign-offs, signing keys, the applied event ids and the audit chain as a whole
(`domain.reviews.ports.ReviewsStore`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from preflight_common.idempotency import claim_event
from sqlalchemy import ColumnElement, Row, and_, delete, exists, func, insert, select, update

from preflight_clearinghouse.adapters import tables as s
from preflight_clearinghouse.adapters.store.base import (
    Database,
    SqlReader,
    SqlUnitOfWork,
    audit_entry,
    dumps,
    loads,
)
from preflight_clearinghouse.domain.audit import AuditEntry
from preflight_clearinghouse.domain.reviews.reports import (
    IssuedReport,
    JobRecord,
    NoteRecord,
    ReportRecord,
    ReviewState,
    SignOffRecord,
    SubmissionInfo,
    TaskResult,
)


def _job_from_row(row: Row[Any]) -> JobRecord:
    return JobRecord(
        job_id=row.job_id,
        suite_id=row.suite_id,
        suite_version=row.suite_version,
        capability=row.capability,
        attempt=row.attempt,
        requested=row.requested,
        max_attempts=row.max_attempts,
        not_before=row.not_before,
        outcome=row.outcome,
        tasks=tuple(TaskResult(**t) for t in loads(row.tasks)),
        eval_log_uri=row.eval_log_uri,
        failure_reason=row.failure_reason,
        failure_message=row.failure_message,
    )


def _report_from_row(row: Row[Any]) -> ReportRecord:
    return ReportRecord(
        report_id=row.report_id,
        submission_id=row.submission_id,
        version=row.version,
        tier=row.tier,
        policy_id=row.policy_id,
        policy_version=row.policy_version,
        content_hash=row.content_hash,
        body=bytes(row.body),
        digest=row.digest,
        signature=bytes(row.signature),
        signing_key_id=row.signing_key_id,
        issued_at=row.issued_at,
        organisation=row.organisation,
        superseded=bool(row.superseded),
    )


class SqlReviewsReader(SqlReader):
    """`domain.reviews.ports.ReviewsReader` over one connection."""

    def audit_entries(self) -> Iterator[AuditEntry]:
        rows = self.conn.execution_options(yield_per=1000).execute(
            select(s.audit_log).order_by(s.audit_log.c.seq)
        )
        for row in rows:
            yield audit_entry(row)

    def submission(self, submission_id: str) -> SubmissionInfo | None:
        row = self.conn.execute(
            select(s.submissions).where(s.submissions.c.submission_id == submission_id)
        ).first()
        return SubmissionInfo(**row._mapping) if row else None

    def job(self, job_id: str) -> JobRecord | None:
        row = self.conn.execute(select(s.jobs).where(s.jobs.c.job_id == job_id)).first()
        return _job_from_row(row) if row else None

    def review_state(self, submission_id: str) -> ReviewState:
        rows = self.conn.execute(
            select(s.jobs).where(s.jobs.c.submission_id == submission_id).order_by(s.jobs.c.job_id)
        ).all()
        withdrawn = self.conn.execute(
            select(s.withdrawals.c.submission_id).where(s.withdrawals.c.submission_id == submission_id)
        ).first()
        plan = self.conn.execute(
            select(s.plan_ends.c.job_ids).where(s.plan_ends.c.submission_id == submission_id)
        ).scalar()
        return ReviewState(
            submission_id,
            tuple(_job_from_row(r) for r in rows),
            withdrawal_heard=withdrawn is not None,
            plan=None if plan is None else tuple(loads(plan)),
        )

    def _report_select(self, *, latest_only: bool = False) -> Any:
        r = s.reports
        newer_alias = s.reports.alias("newer")
        newer = select(newer_alias.c.report_id).where(
            newer_alias.c.submission_id == r.c.submission_id, newer_alias.c.version > r.c.version
        )
        query = select(
            *r.c,
            func.coalesce(s.submissions.c.organisation, "").label("organisation"),
            exists(newer).label("superseded"),
        ).select_from(r.outerjoin(s.submissions, s.submissions.c.submission_id == r.c.submission_id))
        return query.where(~exists(newer)) if latest_only else query

    def _report(self, condition: ColumnElement[bool]) -> ReportRecord | None:
        row = self.conn.execute(self._report_select().where(condition)).first()
        return _report_from_row(row) if row else None

    def report(self, report_id: str) -> ReportRecord | None:
        return self._report(s.reports.c.report_id == report_id)

    def report_version(self, submission_id: str, version: int) -> ReportRecord | None:
        r = s.reports.c
        if version:
            return self._report(and_(r.submission_id == submission_id, r.version == version))
        latest = select(func.max(r.version)).where(r.submission_id == submission_id).scalar_subquery()
        return self._report(and_(r.submission_id == submission_id, r.version == latest))

    def reports_page(
        self, organisation: str | None, all_versions: bool, offset: int, limit: int
    ) -> list[ReportRecord]:
        query = self._report_select(latest_only=not all_versions)
        if organisation is not None:
            query = query.where(s.submissions.c.organisation == organisation)
        rows = self.conn.execute(
            query.order_by(s.reports.c.issued_at.desc(), s.reports.c.report_id).offset(offset).limit(limit)
        ).all()
        return [_report_from_row(r) for r in rows]

    def notes(self, report_id: str) -> list[NoteRecord]:
        n = s.report_notes.c
        rows = self.conn.execute(
            select(s.report_notes).where(n.report_id == report_id).order_by(n.created_at)
        )
        return [NoteRecord(r.note_id, r.author_id, r.text, r.created_at) for r in rows]

    def sign_offs(self, report_id: str) -> list[SignOffRecord]:
        o = s.report_sign_offs.c
        rows = self.conn.execute(
            select(s.report_sign_offs).where(o.report_id == report_id).order_by(o.signed_off_at)
        )
        return [SignOffRecord(r.reviewer_id, r.comment, r.signed_off_at) for r in rows]

    def signing_key(self, key_id: str) -> bytes | None:
        return self.conn.execute(
            select(s.signing_keys.c.public_key).where(s.signing_keys.c.key_id == key_id)
        ).scalar()


class SqlReviewsUnitOfWork(SqlUnitOfWork, SqlReviewsReader):
    """`domain.reviews.ports.ReviewsUnitOfWork` in one write transaction."""

    def claim(self, consumer: str, event_id: str) -> bool:
        return claim_event(self.conn, s.processed_events, consumer, event_id)

    def put_submission(self, submission: SubmissionInfo) -> None:
        self.conn.execute(
            delete(s.submissions).where(s.submissions.c.submission_id == submission.submission_id)
        )
        self.conn.execute(insert(s.submissions).values(**submission.__dict__))

    def put_withdrawal(self, submission_id: str, at: datetime) -> None:
        if (
            self.conn.execute(
                select(s.withdrawals.c.submission_id).where(s.withdrawals.c.submission_id == submission_id)
            ).first()
            is None
        ):
            self.conn.execute(insert(s.withdrawals).values(submission_id=submission_id, withdrawn_at=at))

    def put_job(self, submission_id: str, job: JobRecord, at: datetime) -> None:
        values = {
            "submission_id": submission_id,
            "suite_id": job.suite_id,
            "suite_version": job.suite_version,
            "capability": job.capability,
            "attempt": job.attempt,
            "requested": job.requested,
            "max_attempts": job.max_attempts,
            "not_before": job.not_before,
            "outcome": job.outcome,
            "tasks": dumps([t.__dict__ for t in job.tasks]),
            "eval_log_uri": job.eval_log_uri,
            "failure_reason": job.failure_reason,
            "failure_message": job.failure_message,
            "updated_at": at,
        }
        if self.job(job.job_id) is None:
            self.conn.execute(insert(s.jobs).values(job_id=job.job_id, **values))
        else:
            self.conn.execute(update(s.jobs).where(s.jobs.c.job_id == job.job_id).values(**values))

    def put_plan_end(self, submission_id: str, job_ids: Sequence[str], at: datetime) -> None:
        if self.review_state(submission_id).plan is None:
            self.conn.execute(
                insert(s.plan_ends).values(
                    submission_id=submission_id, job_ids=dumps(list(job_ids)), ended_at=at
                )
            )

    def ensure_signing_key(self, key_id: str, public_key: bytes, at: datetime) -> None:
        if self.signing_key(key_id) is None:
            self.conn.execute(
                insert(s.signing_keys).values(key_id=key_id, public_key=public_key, created_at=at)
            )

    def put_report(self, report: IssuedReport) -> None:
        self.conn.execute(
            insert(s.reports).values(
                report_id=report.report_id,
                submission_id=report.submission_id,
                version=report.version,
                tier=report.content.tier,
                policy_id=report.content.policy_id,
                policy_version=report.content.policy_version,
                content_hash=report.content.content_hash(),
                body=report.body,
                digest=report.digest,
                signature=report.signature,
                signing_key_id=report.signing_key_id,
                issued_at=report.issued_at,
            )
        )

    def insert_note(self, report_id: str, note: NoteRecord) -> None:
        self.conn.execute(insert(s.report_notes).values(report_id=report_id, **note.__dict__))

    def insert_sign_off(self, report_id: str, sign_off: SignOffRecord) -> None:
        self.conn.execute(insert(s.report_sign_offs).values(report_id=report_id, **sign_off.__dict__))


class SqlReviewsStore:
    """`domain.reviews.ports.ReviewsStore` on the clearinghouse's database."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @contextmanager
    def read(self) -> Iterator[SqlReviewsReader]:
        with self._database.read() as conn:
            yield SqlReviewsReader(conn)

    @contextmanager
    def write(self) -> Iterator[SqlReviewsUnitOfWork]:
        with self._database.write() as transaction:
            yield SqlReviewsUnitOfWork(transaction)
