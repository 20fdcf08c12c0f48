"""What the clearinghouse's use cases need from the database, as Protocols.

Each subdomain has its store: the reviews store (submissions, planned jobs, plans, withdrawals,
reports with their notes and sign-offs, signing keys, the audit chain as a whole) and the findings
store (findings with their audiences, aliases and packages, patch statuses, comments, attachments,
and the audit entries about findings). Both are over one database: a unit of work commits its state
changes, audit entries, applied event ids and outbox records together — or none of them — and
write transactions are serialised, so that the audit chain has a total order and every
read-modify-write is safe against concurrent writers. A findings unit of work may join another
unit of work's transaction (`FindingsStore.join`): a benchmark result's review and its candidate
findings are one change.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from preflight_clearinghouse.domain.attachments import Attachment
from preflight_clearinghouse.domain.audit import AuditEntry
from preflight_clearinghouse.domain.comments import Comment
from preflight_clearinghouse.domain.events import DomainEvent
from preflight_clearinghouse.domain.findings import CandidateInput, Finding, PatchStatusEntry
from preflight_clearinghouse.domain.queries import FindingQuery
from preflight_clearinghouse.domain.reports import (
    IssuedReport,
    JobRecord,
    NoteRecord,
    ReportRecord,
    ReviewState,
    SignOffRecord,
    SubmissionInfo,
)
from preflight_clearinghouse.domain.sharing import Viewer

# --- both subdomains ------------------------------------------------------------------------


class AuditReader(Protocol):
    def audit_head(self) -> tuple[int, str]:
        """(sequence, hash) of the audit chain's last entry: (0, `audit.GENESIS`) for an empty log."""
        ...


class UnitOfWork(AuditReader, Protocol):
    """One write transaction, read as it stands so far (reads see its own writes)."""

    def emit(self, domain_event: DomainEvent) -> None:
        """Queue an event for the outbox, written when the transaction commits (encoded now, so
        that its record carries the trace context of the span that emitted it)."""
        ...

    def audit(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        subject_kind: str,
        subject_id: str,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append a chained audit entry; returns its sequence number."""
        ...


# --- reviews --------------------------------------------------------------------------------


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


# --- findings -------------------------------------------------------------------------------


class FindingsReader(AuditReader, Protocol):
    """A consistent snapshot of the findings registry."""

    def finding(self, finding_id: str) -> Finding | None: ...

    def findings_by_ids(self, finding_ids: Sequence[str]) -> list[Finding]: ...

    def findings_after(
        self, viewer: Viewer, query: FindingQuery, after_seq: int, limit: int
    ) -> list[Finding]:
        """Up to `limit` findings after `after_seq` that match `query` and that the sharing policy
        could let `viewer` see (a superset: apply `may_see` to each), by seq."""
        ...

    def findings_naming_package(self, viewer: Viewer, package: str, limit: int) -> list[Finding]:
        """Up to `limit` findings with a product naming `package` that the sharing policy could let
        `viewer` see (a superset: apply `may_see` and check the version), by seq."""
        ...

    def canonical_finding(self, fingerprint: str, key: str) -> str | None:
        """The first unlinked finding with this fingerprint and sharing key (`findings.sharing_key`)."""
        ...

    def finding_for_request(self, reporter_id: str, request_id: str) -> str | None:
        """The finding a reporter's request with this id stored."""
        ...

    def linked_to(self, finding_id: str) -> list[str]:
        """The findings linked to this one."""
        ...

    def findings_of_submission(self, submission_id: str) -> list[str]: ...

    def embargoes_ended(self, now: datetime) -> list[str]:
        """The findings whose proposed or active embargo ended by `now`."""
        ...

    def alias_holder(self, alias: str) -> str | None:
        """The finding that holds `alias`, if any."""
        ...

    def comments_after(self, finding_id: str, after_seq: int, limit: int) -> list[Comment]:
        """Up to `limit` comments on a finding written after `after_seq`, in the order written."""
        ...

    def comment(self, comment_id: str) -> Comment | None: ...

    def attachments_after(self, finding_id: str, after_seq: int, limit: int) -> list[Attachment]:
        """Up to `limit` attachments (metadata) on a finding added after `after_seq`, in order."""
        ...

    def attachment_usage(self, finding_id: str) -> tuple[int, int]:
        """How many attachments a finding has and their bytes in all (what its quota counts)."""
        ...

    def attachment(self, attachment_id: str) -> tuple[Attachment, bytes] | None:
        """An attachment's metadata and bytes."""
        ...

    def finding_history(self, finding_id: str, after_seq: int, limit: int) -> list[AuditEntry]:
        """Up to `limit` audit entries about a finding after sequence `after_seq`, oldest first."""
        ...

    def finding_changes_after(self, seq: int, limit: int) -> list[tuple[int, str]]:
        """(audit seq, finding id) of finding changes after `seq`, in order."""
        ...


class FindingsUnitOfWork(FindingsReader, UnitOfWork, Protocol):
    def insert_findings(self, findings: Sequence[Finding], request_id: str = "") -> None:
        """Insert new findings; `request_id` is for a single direct report."""
        ...

    def update_finding(self, before: Finding, finding: Finding) -> None:
        """Store `finding` over `before` (the same finding as stored)."""
        ...

    def put_comment(self, comment: Comment) -> Comment:
        """Store a comment's new revision (its first inserts it; every revision is kept); returns it
        with its `seq`."""
        ...

    def put_attachment(self, attachment: Attachment, content: bytes) -> Attachment:
        """Store an attachment with its bytes; returns it with its `seq`."""
        ...

    def set_patch_status(self, finding_id: str, entry: PatchStatusEntry, updated_by: str) -> None:
        """Replace the statement of `entry`'s organisation for the finding."""
        ...


class FindingsStore(Protocol):
    def read(self) -> AbstractContextManager[FindingsReader]:
        """A read-only snapshot."""
        ...

    def write(self) -> AbstractContextManager[FindingsUnitOfWork]:
        """A serialised write transaction; commits when the block ends without an exception."""
        ...

    def join(self, uow: UnitOfWork) -> FindingsUnitOfWork:
        """A unit of work in `uow`'s transaction (a unit of work of the same database): its writes,
        audit entries and events commit with `uow`'s, in one audit chain."""
        ...
