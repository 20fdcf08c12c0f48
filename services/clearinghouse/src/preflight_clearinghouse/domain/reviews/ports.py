"""What the review use cases need, as Protocols: the reviews store (submissions, planned jobs,
plan ends, withdrawals, reports with their notes and sign-offs, signing keys, the audit chain as a
whole), a signer, and the findings registry's intake of a review's candidate findings."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from preflight_clearinghouse.domain.audit import AuditEntry
from preflight_clearinghouse.domain.findings.finding import CandidateInput, Finding
from preflight_clearinghouse.domain.ports import AuditReader, UnitOfWork
from preflight_clearinghouse.domain.reviews.reports import (
    IssuedReport,
    JobRecord,
    NoteRecord,
    ReportRecord,
    ReviewState,
    SignOffRecord,
    SubmissionInfo,
)


class ReviewsReader(AuditReader, Protocol):
    """A consistent snapshot of the reviews."""

    def submission(self, submission_id: str) -> SubmissionInfo | None: ...

    def job(self, job_id: str) -> JobRecord | None: ...

    def review_state(self, submission_id: str) -> ReviewState:
        """The submission's jobs, whether its withdrawal was heard and its plan's jobs once ended."""
        ...

    def report(self, report_id: str) -> ReportRecord | None: ...

    def report_version(self, submission_id: str, version: int) -> ReportRecord | None:
        """A version of the submission's report; the latest for version 0."""
        ...

    def reports_page(
        self, organisation: str | None, all_versions: bool, offset: int, limit: int
    ) -> list[ReportRecord]:
        """Reports newest first; only `organisation`'s when given; latest versions unless `all_versions`."""
        ...

    def notes(self, report_id: str) -> list[NoteRecord]:
        """A report version's notes, oldest first."""
        ...

    def sign_offs(self, report_id: str) -> list[SignOffRecord]:
        """A report version's sign-offs, oldest first."""
        ...

    def signing_key(self, key_id: str) -> bytes | None:
        """The raw public key a report was signed with."""
        ...

    def audit_entries(self) -> Iterator[AuditEntry]:
        """Every audit entry, by sequence."""
        ...


class ReviewsUnitOfWork(ReviewsReader, UnitOfWork, Protocol):
    def claim(self, consumer: str, event_id: str) -> bool:
        """Record `event_id` as applied by `consumer`; False if it already was (then change nothing)."""
        ...

    def put_submission(self, submission: SubmissionInfo) -> None: ...

    def put_withdrawal(self, submission_id: str, at: datetime) -> None:
        """Record that the submission was withdrawn (the first time counts)."""
        ...

    def put_job(self, submission_id: str, job: JobRecord, at: datetime) -> None:
        """Store a job of the submission as it now stands."""
        ...

    def put_plan_end(self, submission_id: str, job_ids: Sequence[str], at: datetime) -> None:
        """Record that the submission's plan, of these jobs, ended (the first announcement counts)."""
        ...

    def ensure_signing_key(self, key_id: str, public_key: bytes, at: datetime) -> None:
        """Keep the public key of `key_id` (a key id keeps its first key)."""
        ...

    def put_report(self, report: IssuedReport) -> None:
        """Store an issued report version (immutable from then on)."""
        ...

    def insert_note(self, report_id: str, note: NoteRecord) -> None: ...

    def insert_sign_off(self, report_id: str, sign_off: SignOffRecord) -> None: ...


class ReviewsStore(Protocol):
    def read(self) -> AbstractContextManager[ReviewsReader]:
        """A read-only snapshot."""
        ...

    def write(self) -> AbstractContextManager[ReviewsUnitOfWork]:
        """A serialised write transaction; commits when the block ends without an exception."""
        ...


class Signer(Protocol):
    """Signs report bodies and audit checkpoints."""

    key_id: str
    public_key: bytes

    def sign(self, body: bytes) -> bytes: ...


class FindingsIntake(Protocol):
    """What the events of a review change in the findings registry, in the review's unit of work."""

    def ingest_candidates(
        self,
        uow: UnitOfWork,
        submission_id: str,
        job_id: str,
        candidates: Sequence[CandidateInput],
        now: datetime,
    ) -> Sequence[Finding]:
        """Store a completed job's candidate findings (their ids derive from the job)."""
        ...

    def source_identified(self, uow: UnitOfWork, submission_id: str, now: datetime) -> None:
        """The submission's lab is known now: its findings are changed for the change feed."""
        ...
