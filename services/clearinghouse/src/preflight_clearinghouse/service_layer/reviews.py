"""Review use cases: apply benchmark and submission events, issue signed reports, notes and
sign-offs, and sign and check checkpoints of the audit chain.

Event handlers are idempotent consumers: each claims its event id in the same
unit of work as its effect, so a redelivered event changes nothing. A report
is issued when the review state is complete and its content differs from the
latest version (so replays issue nothing); its ReviewReportReady goes to the
outbox in the same transaction as the report row. A result's candidate findings
go to the findings registry in the same unit of work.

`AuditCheckpoints.publish_if_due` signs the current head of a non-empty log and queues it for the
audit checkpoints topic (through the outbox, in a transaction of its own that adds no audit entry)
when the head moved since the last checkpoint this process published, or when that one is older
than `refresh` — so that the topic, whose retention is finite, always holds a recent one. `verify`
checks the chain against a checkpoint given from outside, after checking its signature with the
configured key.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from opentelemetry import trace
from preflight_common.clock import Clock
from preflight_common.pagetokens import page_tokens
from preflight_common.telemetry import SUBMISSION_ID

from preflight_clearinghouse.domain.audit import (
    ChainVerdict,
    Checkpoint,
    SignedCheckpoint,
    checkpoint_body,
    verified_checkpoint,
    verify_chain,
)
from preflight_clearinghouse.domain.checks import MAX_REASON, check_text, page_size_of, require
from preflight_clearinghouse.domain.errors import (
    Collector,
    FieldViolation,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    RefusedEvent,
    UnexplainedOutcome,
)
from preflight_clearinghouse.domain.events import CheckpointSigned, ReportIssued
from preflight_clearinghouse.domain.findings.finding import CandidateInput
from preflight_clearinghouse.domain.reviews.policy import RiskPolicy
from preflight_clearinghouse.domain.reviews.ports import (
    FindingsIntake,
    ReviewsReader,
    ReviewsStore,
    ReviewsUnitOfWork,
    Signer,
)
from preflight_clearinghouse.domain.reviews.reports import (
    IssuedReport,
    JobRecord,
    NoteRecord,
    ReportContent,
    ReportRecord,
    SignOffRecord,
    SubmissionInfo,
    Supersedes,
    compute_report,
    report_body,
)
from preflight_clearinghouse.domain.sharing import PRIVILEGED, Role, Viewer, may_read_report

REPORT_NAMESPACE = uuid.UUID("0b5d8f0e-2c43-4b8e-8f55-51f7d1f2a9c3")
MAX_REPORT_TEXT = 10_000
_REPORTS_SCOPE = "preflight.clearinghouse.v1.ClearinghouseService/ListReports"
DEFAULT_REPORT_PAGE = 50
CONSUMER = "clearinghouse"
DEFAULT_REFRESH = timedelta(days=1)

tracer = trace.get_tracer(__name__)


@dataclass(frozen=True)
class ReportView:
    """A report version with what the viewer may see attached."""

    record: ReportRecord
    notes: tuple[NoteRecord, ...]
    sign_offs: tuple[SignOffRecord, ...]


_SET_ONCE = ("organisation", "model_name", "model_version", "share_identity")
"""What a SubmissionReceived tells that later events may not change."""


def _check_organisation(uow: ReviewsReader, submission_id: str, organisation: str) -> None:
    known = uow.submission(submission_id)
    if known is not None and known.organisation != organisation:
        raise RefusedEvent(f"submission {submission_id} belongs to another organisation than {organisation}")


def _check_job_of(uow: ReviewsReader, submission_id: str, job_id: str) -> None:
    if all(j.job_id != job_id for j in uow.review_state(submission_id).jobs):
        raise RefusedEvent(f"job {job_id} is not a job of submission {submission_id}")


class ReviewService:
    """Review state, report issue, and report reads and annotations."""

    def __init__(
        self,
        store: ReviewsStore,
        policy: RiskPolicy,
        signer: Signer,
        findings: FindingsIntake,
        clock: Clock,
    ) -> None:
        self._store = store
        self._policy = policy
        self._signer = signer
        self._findings = findings
        self._clock = clock

    @property
    def policy(self) -> RiskPolicy:
        return self._policy

    # --- events -----------------------------------------------------------------

    def submission_received(self, event_id: str, info: SubmissionInfo) -> bool:
        """Record the submitting lab, model and consent; returns False for an event already applied.

        They are set once: a SubmissionReceived naming another organisation, model or consent for a
        recorded submission raises `RefusedEvent` (nothing is written); one repeating them changes
        nothing.
        """
        now = self._clock()
        with self._store.write() as uow:
            if not uow.claim(CONSUMER, event_id):
                return False
            known = uow.submission(info.submission_id)
            if known is not None:
                changed = [name for name in _SET_ONCE if getattr(known, name) != getattr(info, name)]
                if changed:
                    raise RefusedEvent(
                        f"submission {info.submission_id}: {', '.join(changed)} set once, may not change"
                    )
                return True
            uow.put_submission(info)
            uow.audit(
                at=now,
                actor="system:intake",
                action="submission.received",
                subject_kind="submission",
                subject_id=info.submission_id,
                details={"organisation": info.organisation, "share_identity": info.share_identity},
            )
            self._findings.source_identified(uow, info.submission_id, now)
            self._issue_if_complete(uow, info.submission_id, now)
        return True

    def submission_withdrawn(self, event_id: str, submission_id: str, organisation: str, reason: str) -> bool:
        """Record and audit a withdrawal: the submission gets no report from now on (its pending jobs
        end as BenchmarkFailed WITHDRAWN). False if already applied."""
        now = self._clock()
        with self._store.write() as uow:
            if not uow.claim(CONSUMER, event_id):
                return False
            _check_organisation(uow, submission_id, organisation)
            uow.put_withdrawal(submission_id, now)
            uow.audit(
                at=now,
                actor="system:intake",
                action="submission.withdrawn",
                subject_kind="submission",
                subject_id=submission_id,
                details={"reason": reason},
            )
        return True

    def plan_changed(
        self, event_id: str, submission_id: str, organisation: str, window_start: datetime | None
    ) -> bool:
        """The release plan moved: the access window of the submission's unfinished jobs opens at
        `window_start` (when the event carries a window). False if already applied."""
        now = self._clock()
        with self._store.write() as uow:
            if not uow.claim(CONSUMER, event_id):
                return False
            _check_organisation(uow, submission_id, organisation)
            if window_start is not None:
                for job in uow.review_state(submission_id).jobs:
                    if not job.ended:
                        uow.put_job(submission_id, replace(job, not_before=window_start), now)
        return True

    def job_requested(self, event_id: str, submission_id: str, job: JobRecord) -> bool:
        """A job was planned (its first request counts). False if already applied; `RefusedEvent` for
        a job already planned for another submission."""
        now = self._clock()
        with self._store.write() as uow:
            if not uow.claim(CONSUMER, event_id):
                return False
            if uow.job(job.job_id) is not None:
                _check_job_of(uow, submission_id, job.job_id)
                return True
            uow.put_job(submission_id, replace(job, requested=True), now)
        return True

    def job_ended(
        self, event_id: str, submission_id: str, job: JobRecord, candidates: Sequence[CandidateInput] = ()
    ) -> bool:
        """A job completed or failed; only its first terminal event counts. False if already applied.

        Only a planned job's outcome counts: `UnexplainedOutcome` when its BenchmarkJobRequested is not
        recorded or it completed before its access window opens (a ReleasePlanChanged may yet move
        the window), `RefusedEvent` when the job is another submission's or another suite's, or the
        attempt is not one of the job's (nothing is written either way).
        """
        now = self._clock()
        with self._store.write() as uow:
            known = uow.job(job.job_id)
            if known is None or not known.requested:
                raise UnexplainedOutcome(f"job {job.job_id} was never planned (no BenchmarkJobRequested)")
            _check_job_of(uow, submission_id, job.job_id)
            if (job.suite_id, job.suite_version) != (known.suite_id, known.suite_version):
                raise RefusedEvent(f"job {job.job_id} runs suite {known.suite_id} {known.suite_version}")
            # A failure may end a job before any attempt ran (attempt 0); a completion ran one.
            first = 1 if job.outcome == "completed" else 0
            if job.attempt < first or 0 < known.max_attempts < job.attempt:
                raise RefusedEvent(f"job {job.job_id}: attempt {job.attempt} is not one of its attempts")
            if job.outcome == "completed" and known.not_before is not None and now < known.not_before:
                opens = known.not_before.isoformat()
                raise UnexplainedOutcome(f"job {job.job_id} completed before its window opens at {opens}")
            if not uow.claim(CONSUMER, event_id):
                return False
            if known.ended:
                uow.audit(
                    at=now,
                    actor="system:benchmark",
                    action="job.extra_terminal_event_ignored",
                    subject_kind="submission",
                    subject_id=submission_id,
                    details={"job_id": job.job_id, "event_id": event_id},
                )
                return True
            job = replace(
                job,
                requested=True,
                max_attempts=known.max_attempts,
                not_before=known.not_before,
            )
            uow.put_job(submission_id, job, now)
            if candidates:
                self._findings.ingest_candidates(uow, submission_id, job.job_id, candidates, now)
            self._issue_if_complete(uow, submission_id, now)
        return True

    def plan_ended(self, event_id: str, submission_id: str, job_ids: Sequence[str]) -> bool:
        """The benchmark announced the end of the submission's plan of `job_ids`: the report is issued
        now if every one of them has its result here, else with the last result. False if already
        applied; `RefusedEvent` when a listed job is another submission's (nothing is written)."""
        now = self._clock()
        with self._store.write() as uow:
            for job_id in job_ids:
                if uow.job(job_id) is not None:
                    _check_job_of(uow, submission_id, job_id)
            if not uow.claim(CONSUMER, event_id):
                return False
            uow.put_plan_end(submission_id, job_ids, now)
            self._issue_if_complete(uow, submission_id, now)
        return True

    # --- issue ------------------------------------------------------------------

    def _issue_if_complete(self, uow: ReviewsUnitOfWork, submission_id: str, now: datetime) -> bool:
        state = uow.review_state(submission_id)
        # The signed report names the submitting lab: it waits for the SubmissionReceived that
        # tells it (the submissions topic is read independently of the benchmark's).
        if not state.complete() or state.withdrawn() or uow.submission(submission_id) is None:
            return False
        content = compute_report(state, self._policy)
        latest = uow.report_version(submission_id, 0)
        if latest is not None and latest.content_hash == content.content_hash():
            return False
        # In the trace of the event that completed the review: ReviewReportReady descends from this span.
        with tracer.start_as_current_span(
            "issue report",
            attributes={SUBMISSION_ID: submission_id, "preflight.report_tier": content.tier},
        ):
            self._issue(
                uow,
                submission_id,
                content,
                now,
                latest,
                actor="system:clearinghouse",
                reason="all jobs ended",
            )
        return True

    def _issue(
        self,
        uow: ReviewsUnitOfWork,
        submission_id: str,
        content: ReportContent,
        now: datetime,
        latest: ReportRecord | None,
        *,
        actor: str,
        reason: str,
    ) -> IssuedReport:
        submission = uow.submission(submission_id)
        if submission is None:
            raise PreconditionFailed("the submission is not known yet: its report cannot name its lab")
        version = latest.version + 1 if latest else 1
        report_id = str(uuid.uuid5(REPORT_NAMESPACE, f"{submission_id}/{version}"))
        head_seq, head_hash = uow.audit_head()
        body = report_body(
            report_id=report_id,
            submission_id=submission_id,
            version=version,
            organisation=submission.organisation,
            content=content,
            issued_at=now,
            signing_key_id=self._signer.key_id,
            supersedes=Supersedes(latest.report_id, latest.version, latest.digest) if latest else None,
            audit_checkpoint=Checkpoint(head_seq, head_hash, now),
        )
        report = IssuedReport(
            report_id=report_id,
            submission_id=submission_id,
            version=version,
            content=content,
            issued_at=now,
            signing_key_id=self._signer.key_id,
            body=body,
            digest=hashlib.sha256(body).hexdigest(),
            signature=self._signer.sign(body),
            organisation=submission.organisation,
        )
        uow.ensure_signing_key(self._signer.key_id, self._signer.public_key, now)
        uow.put_report(report)
        uow.audit(
            at=now,
            actor=actor,
            action="report.issued",
            subject_kind="report",
            subject_id=report_id,
            details={
                "submission_id": submission_id,
                "version": version,
                "tier": content.tier,
                "digest": report.digest,
                "reason": reason,
            },
        )
        uow.emit(ReportIssued(report))
        return report

    def reissue(self, viewer: Viewer, submission_id: str, reason: str) -> ReportView:
        """Issue a new version with the current policy (reviewers, admins); every job must have ended."""
        require(viewer, PRIVILEGED, "re-issuing a report")
        errors = Collector()
        why = check_text(reason, "reason", MAX_REASON, errors, required=True)
        if not submission_id:
            errors.add("submission_id", "is required")
        errors.raise_if_any()
        now = self._clock()
        with self._store.write() as uow:
            state = uow.review_state(submission_id)
            if state.withdrawn():
                raise PreconditionFailed("the submission was withdrawn: it gets no report")
            if not state.complete():
                raise PreconditionFailed("the submission's benchmark jobs have not all ended")
            content = compute_report(state, self._policy)
            latest = uow.report_version(submission_id, 0)
            issued = self._issue(
                uow, submission_id, content, now, latest, actor=viewer.principal_id, reason=why
            )
            record = uow.report(issued.report_id)
        assert record is not None
        return ReportView(record, (), ())

    # --- reads ------------------------------------------------------------------

    def get_report(self, viewer: Viewer, report_id: str, submission_id: str, version: int) -> ReportView:
        """A report version the viewer may read; NotFound otherwise."""
        if not report_id and not submission_id:
            raise InvalidInput([FieldViolation("report_id", "give report_id or submission_id")])
        if version < 0:
            raise InvalidInput([FieldViolation("version", "must not be negative")])
        with self._store.read() as reader:
            record = reader.report(report_id) if report_id else reader.report_version(submission_id, version)
            if record is None or not may_read_report(viewer, record.organisation):
                raise NotFound("no such report")
            notes = tuple(reader.notes(record.report_id)) if viewer.role in PRIVILEGED else ()
            return ReportView(record, notes, tuple(reader.sign_offs(record.report_id)))

    def list_reports(
        self, viewer: Viewer, page_size: int, page_token: str, all_versions: bool
    ) -> tuple[list[ReportView], str]:
        """Reports the viewer may read, newest first, and the next page's token."""
        size = page_size_of(page_size, DEFAULT_REPORT_PAGE)
        cursor = page_tokens().decode(_REPORTS_SCOPE, page_token)
        offset = int(cursor[0]) if cursor else 0
        if viewer.role in PRIVILEGED:
            organisation = None
        elif viewer.role is Role.LAB and viewer.organisation:
            organisation = viewer.organisation
        else:
            return [], ""
        with self._store.read() as reader:
            records = reader.reports_page(organisation, all_versions, offset, size + 1)
            views = [
                ReportView(
                    r,
                    tuple(reader.notes(r.report_id)) if viewer.role in PRIVILEGED else (),
                    tuple(reader.sign_offs(r.report_id)),
                )
                for r in records[:size]
            ]
        return views, page_tokens().encode(_REPORTS_SCOPE, [offset + size] if len(records) > size else None)

    def signing_key(self, key_id: str) -> tuple[str, bytes]:
        """(key id, raw public key) of `key_id`, or of the current key when empty."""
        if not key_id or key_id == self._signer.key_id:
            return self._signer.key_id, self._signer.public_key
        with self._store.read() as reader:
            public_key = reader.signing_key(key_id)
        if public_key is None:
            raise NotFound("no such signing key")
        return key_id, public_key

    # --- annotations ------------------------------------------------------------

    def _readable_report(self, uow: ReviewsReader, viewer: Viewer, report_id: str) -> ReportRecord:
        record = uow.report(report_id) if report_id else None
        if record is None or not may_read_report(viewer, record.organisation):
            raise NotFound("no such report")
        return record

    def add_note(self, viewer: Viewer, report_id: str, text: str) -> NoteRecord:
        """A reviewer's note on a report version (audit-logged)."""
        require(viewer, frozenset({Role.REVIEWER}), "adding a report note")
        errors = Collector()
        body = check_text(text, "text", MAX_REPORT_TEXT, errors, required=True)
        errors.raise_if_any()
        now = self._clock()
        note = NoteRecord(str(uuid.uuid4()), viewer.principal_id, body, now)
        with self._store.write() as uow:
            self._readable_report(uow, viewer, report_id)
            uow.insert_note(report_id, note)
            uow.audit(
                at=now,
                actor=viewer.principal_id,
                action="report.note_added",
                subject_kind="report",
                subject_id=report_id,
                details={"note_id": note.note_id},
            )
        return note

    def sign_off(self, viewer: Viewer, report_id: str, comment: str) -> SignOffRecord:
        """A reviewer's sign-off of a report version, once per reviewer (audit-logged)."""
        require(viewer, frozenset({Role.REVIEWER}), "signing off a report")
        errors = Collector()
        text = check_text(comment, "comment", MAX_REPORT_TEXT, errors, required=False)
        errors.raise_if_any()
        now = self._clock()
        sign_off = SignOffRecord(viewer.principal_id, text, now)
        with self._store.write() as uow:
            record = self._readable_report(uow, viewer, report_id)
            if any(s.reviewer_id == viewer.principal_id for s in uow.sign_offs(report_id)):
                raise PreconditionFailed("you have already signed off this report version")
            uow.insert_sign_off(report_id, sign_off)
            uow.audit(
                at=now,
                actor=viewer.principal_id,
                action="report.signed_off",
                subject_kind="report",
                subject_id=report_id,
                details={"submission_id": record.submission_id, "version": record.version},
            )
        return sign_off


def verify_against(reader: ReviewsReader, checkpoint: Checkpoint | None) -> ChainVerdict:
    """The verdict on the stored chain, checked against `checkpoint` when given."""
    head_seq, head_hash = reader.audit_head()
    return verify_chain(reader.audit_entries(), head_seq, head_hash, checkpoint)


class AuditCheckpoints:
    """Signs and publishes checkpoints of the audit chain head; verifies the chain against one."""

    def __init__(
        self, store: ReviewsStore, signer: Signer, clock: Clock, refresh: timedelta = DEFAULT_REFRESH
    ) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock
        self._refresh = refresh
        self._last: Checkpoint | None = None

    def _sign(self, checkpoint: Checkpoint) -> SignedCheckpoint:
        """`checkpoint` signed with the clearinghouse's key."""
        body = checkpoint_body(checkpoint, self._signer.key_id)
        return SignedCheckpoint(checkpoint, body, self._signer.sign(body), self._signer.key_id)

    def publish_if_due(self) -> SignedCheckpoint | None:
        """Queue a signed checkpoint of the current head when one is due (see the module doc)."""
        now = self._clock()
        with self._store.write() as uow:
            seq, head_hash = uow.audit_head()
            if seq == 0:
                return None  # an empty log: nothing to vouch for
            last = self._last
            if (
                last is not None
                and (last.seq, last.head_hash) == (seq, head_hash)
                and now - last.at < self._refresh
            ):
                return None
            signed = self._sign(Checkpoint(seq, head_hash, now))
            uow.emit(CheckpointSigned(signed))
        self._last = signed.checkpoint
        return signed

    def verify(self, viewer: Viewer, body: bytes = b"", signature: bytes = b"") -> ChainVerdict:
        """Check the audit chain (reviewers and admins), against the checkpoint that `body` carries
        when a body or signature is given: InvalidInput when its signature does not verify with the
        clearinghouse's key or it carries no checkpoint."""
        require(viewer, PRIVILEGED, "verifying the audit log")
        given = body or signature
        checkpoint = verified_checkpoint(self._signer.public_key, body, signature) if given else None
        with self._store.read() as reader:
            return verify_against(reader, checkpoint)
