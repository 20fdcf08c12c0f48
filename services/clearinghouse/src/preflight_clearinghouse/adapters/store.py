"""The clearinghouse's database: a unit of work for changes, a reader for queries.

Writes are serialised: every write transaction first takes the audit log's
head (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: `SELECT … FOR UPDATE` on the
head row). The audit chain needs a total order anyway, and it makes every
read-modify-write in a transaction (dedup, transitions, review state) safe
against concurrent writers, in this process or another.

A unit of work commits the state change, its audit entries, the ids of the
events it applied (idempotent consumers) and the outbox records of the events
it raised, all in one transaction — or none of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from preflight_common.envelope import KafkaRecord
from preflight_common.idempotency import claim_event
from preflight_common.outbox import enqueue
from sqlalchemy import (
    ColumnElement,
    Engine,
    Row,
    and_,
    bindparam,
    delete,
    event,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection

from preflight_clearinghouse.adapters import tables as s
from preflight_clearinghouse.domain.attachments import Attachment
from preflight_clearinghouse.domain.audit import AuditEntry, entry_hash
from preflight_clearinghouse.domain.case_record import Credit, CreditType, Reference, ReferenceType
from preflight_clearinghouse.domain.comments import Comment, CommentVisibility
from preflight_clearinghouse.domain.events import DomainEvent
from preflight_clearinghouse.domain.findings import (
    AffectedProduct,
    CodeLocation,
    Cvss,
    Finding,
    FindingLink,
    FindingSource,
    LinkKind,
    Origin,
    PatchState,
    PatchStatusEntry,
    Severity,
    VexJustification,
)
from preflight_clearinghouse.domain.packages import package_of
from preflight_clearinghouse.domain.queries import FindingQuery
from preflight_clearinghouse.domain.reports import JobRecord, ReviewState, TaskResult
from preflight_clearinghouse.domain.sharing import Audience, Role, Tlp, Viewer
from preflight_clearinghouse.domain.ssvc import (
    Automatable,
    Exploitation,
    MissionWellBeing,
    SsvcDecision,
    TechnicalImpact,
)
from preflight_clearinghouse.domain.workflow import EmbargoState, FindingState

EventEncoder = Callable[[DomainEvent], tuple[str, KafkaRecord]]
"""Turns a domain event into (topic, record) for the outbox."""

AUDIT_HEAD_ID = 1


def sharing_key(tlp: Tlp, audience: Audience) -> str:
    """Equal for findings with the same TLP label and audience (dedup never links across keys)."""
    return hashlib.sha256(f"{tlp.value}|{audience.key()}".encode()).hexdigest()


@dataclass(frozen=True)
class ReportRecord:
    """A stored report version and what is attached to it."""

    report_id: str
    submission_id: str
    version: int
    tier: str
    policy_id: str
    policy_version: str
    content_hash: str
    body: bytes
    digest: str
    signature: bytes
    signing_key_id: str
    issued_at: datetime
    organisation: str
    superseded: bool


@dataclass(frozen=True)
class NoteRecord:
    note_id: str
    author_id: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class SignOffRecord:
    reviewer_id: str
    comment: str
    signed_off_at: datetime


@dataclass(frozen=True)
class SubmissionRecord:
    submission_id: str
    organisation: str
    model_name: str
    model_version: str
    share_identity: bool
    received_at: datetime


def _loads(text: str) -> Any:
    return json.loads(text)


def _audit_entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject_kind=row.subject_kind,
        subject_id=row.subject_id,
        details=_loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


_FINDING_COLUMNS = [
    *s.findings.c,
    s.submissions.c.organisation.label("source_organisation"),
    s.submissions.c.model_name.label("source_model_name"),
    s.submissions.c.model_version.label("source_model_version"),
    s.submissions.c.share_identity.label("source_share_identity"),
]


def _finding_select() -> Any:
    return select(*_FINDING_COLUMNS).select_from(
        s.findings.outerjoin(s.submissions, s.submissions.c.submission_id == s.findings.c.submission_id)
    )


# Statements built once: SQLAlchemy memoizes a statement's cache key, so reusing the object spares
# rebuilding and re-keying a 40-column select on every read.
_FINDING_BY_ID = _finding_select().where(s.findings.c.finding_id == bindparam("finding_id"))
_FINDINGS_BY_IDS = (
    _finding_select()
    .where(s.findings.c.finding_id.in_(bindparam("finding_ids", expanding=True)))
    .order_by(s.findings.c.seq)
)
_CANONICAL = (
    select(s.findings.c.finding_id)
    .where(
        s.findings.c.fingerprint == bindparam("fingerprint"),
        s.findings.c.sharing_key == bindparam("sharing_key"),
        s.findings.c.link_kind.is_(None),
    )
    .order_by(s.findings.c.seq)
    .limit(1)
)
_INSERT_FINDING = insert(s.findings)
_UPDATE_FINDING = update(s.findings).where(s.findings.c.finding_id == bindparam("the_finding_id"))
_DELETE_AUDIENCE = delete(s.finding_audience).where(
    s.finding_audience.c.finding_id == bindparam("the_finding_id")
)
_DELETE_PACKAGES = delete(s.finding_packages).where(
    s.finding_packages.c.finding_id == bindparam("the_finding_id")
)
_DELETE_ALIASES = delete(s.finding_aliases).where(
    s.finding_aliases.c.finding_id == bindparam("the_finding_id")
)
_ALIASES_BY_IDS = (
    select(s.finding_aliases.c.finding_id, s.finding_aliases.c.alias)
    .where(s.finding_aliases.c.finding_id.in_(bindparam("finding_ids", expanding=True)))
    .order_by(s.finding_aliases.c.alias)
)
_INSERT_AUDIT = insert(s.audit_log)
_ADVANCE_HEAD = (
    update(s.audit_head)
    .where(s.audit_head.c.id == AUDIT_HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
_PATCHES_BY_IDS = (
    select(s.patch_statuses)
    .where(s.patch_statuses.c.finding_id.in_(bindparam("finding_ids", expanding=True)))
    .order_by(s.patch_statuses.c.organisation)
)


def _ssvc_from_json(text: str | None) -> SsvcDecision | None:
    if not text:
        return None
    d = _loads(text)
    return SsvcDecision(
        exploitation=Exploitation(d["E"]),
        automatable=Automatable(d["A"]),
        technical_impact=TechnicalImpact(d["TI"]),
        mission_well_being=MissionWellBeing(d["MWI"]),
        decided_by=d["by"],
        decided_at=datetime.fromisoformat(d["at"]),
    )


def _ssvc_to_json(decision: SsvcDecision | None) -> str | None:
    if decision is None:
        return None
    return _dumps(
        {
            "E": decision.exploitation.value,
            "A": decision.automatable.value,
            "TI": decision.technical_impact.value,
            "MWI": decision.mission_well_being.value,
            "by": decision.decided_by,
            "at": decision.decided_at.isoformat(),
        }
    )


def _finding_from_row(row: Row[Any], patches: Sequence[PatchStatusEntry]) -> Finding:
    source = None
    if row.submission_id:
        source = FindingSource(
            submission_id=row.submission_id,
            organisation=row.source_organisation or "",
            model_name=row.source_model_name or "",
            model_version=row.source_model_version or "",
            share_identity=row.source_share_identity,
        )
    return Finding(
        finding_id=row.finding_id,
        title=row.title,
        description=row.description,
        state=FindingState(row.state),
        embargo_state=EmbargoState(row.embargo_state),
        embargo_end=row.embargo_end,
        remediation_due=row.remediation_due,
        cwe_ids=tuple(_loads(row.cwe_ids)),
        affected=tuple(AffectedProduct(**p) for p in _loads(row.affected)),
        location=CodeLocation(row.location_file, row.location_function, row.location_line),
        cvss=Cvss(
            v3_vector=row.cvss_v3_vector,
            v3_score=row.cvss_v3_score,
            v3_rating=Severity(row.cvss_v3_rating) if row.cvss_v3_rating else None,
            v4_vector=row.cvss_v4_vector,
            v4_score=row.cvss_v4_score,
            v4_rating=Severity(row.cvss_v4_rating) if row.cvss_v4_rating else None,
        ),
        tlp=Tlp(row.tlp),
        audience=Audience(
            frozenset(_loads(row.audience_organisations)), frozenset(_loads(row.audience_sectors))
        ),
        source=source,
        origin=Origin(row.origin),
        reporter_id=row.reporter_id,
        reporter_organisation=row.reporter_organisation,
        evidence=row.evidence,
        fingerprint=row.fingerprint,
        link=FindingLink(LinkKind(row.link_kind), row.link_target) if row.link_kind else None,
        patch_statuses=tuple(patches),
        created_at=row.created_at,
        updated_at=row.updated_at,
        published_at=row.published_at,
        revision=row.revision,
        seq=row.seq,
        references=tuple(
            Reference(ReferenceType(r["type"]), r["url"]) for r in _loads(row.case_references or "[]")
        ),
        credits=tuple(Credit(c["name"], CreditType(c["type"])) for c in _loads(row.case_credits or "[]")),
        assignee=row.assignee or "",
        ssvc=_ssvc_from_json(row.ssvc),
    )


def _finding_values(finding: Finding) -> dict[str, Any]:
    return {
        "finding_id": finding.finding_id,
        "title": finding.title,
        "description": finding.description,
        "evidence": finding.evidence,
        "state": finding.state.value,
        "embargo_state": finding.embargo_state.value,
        "embargo_end": finding.embargo_end,
        "remediation_due": finding.remediation_due,
        "cwe_ids": _dumps(list(finding.cwe_ids)),
        "affected": _dumps(
            [{"purl": p.purl, "version_range": p.version_range, "cpe": p.cpe} for p in finding.affected]
        ),
        "location_file": finding.location.file,
        "location_function": finding.location.function,
        "location_line": finding.location.line,
        "cvss_v3_vector": finding.cvss.v3_vector,
        "cvss_v3_score": finding.cvss.v3_score,
        "cvss_v3_rating": finding.cvss.v3_rating.value if finding.cvss.v3_rating else None,
        "cvss_v4_vector": finding.cvss.v4_vector,
        "cvss_v4_score": finding.cvss.v4_score,
        "cvss_v4_rating": finding.cvss.v4_rating.value if finding.cvss.v4_rating else None,
        "severity": finding.cvss.severity.value if finding.cvss.severity else None,
        "tlp": finding.tlp.value,
        "audience_organisations": _dumps(sorted(finding.audience.organisations)),
        "audience_sectors": _dumps(sorted(finding.audience.sectors)),
        "sharing_key": sharing_key(finding.tlp, finding.audience),
        "origin": finding.origin.value,
        "reporter_id": finding.reporter_id,
        "reporter_organisation": finding.reporter_organisation,
        "submission_id": finding.source.submission_id if finding.source else None,
        "fingerprint": finding.fingerprint,
        "link_kind": finding.link.kind.value if finding.link else None,
        "link_target": finding.link.target_finding_id if finding.link else None,
        "created_at": finding.created_at,
        "updated_at": finding.updated_at,
        "published_at": finding.published_at,
        "revision": finding.revision,
        "case_references": _dumps([{"type": r.type.value, "url": r.url} for r in finding.references]),
        "case_credits": _dumps([{"name": c.name, "type": c.type.value} for c in finding.credits]),
        "assignee": finding.assignee or None,
        "ssvc": _ssvc_to_json(finding.ssvc),
    }


def _audience_rows(finding: Finding) -> list[dict[str, str]]:
    rows = [
        {"finding_id": finding.finding_id, "kind": "org", "value": o} for o in finding.audience.organisations
    ]
    rows += [
        {"finding_id": finding.finding_id, "kind": "sector", "value": v} for v in finding.audience.sectors
    ]
    return rows


def _package_rows(finding: Finding) -> list[dict[str, str]]:
    names = {package_of(p.purl) for p in finding.affected if p.purl}
    return [{"finding_id": finding.finding_id, "package": name} for name in sorted(names)]


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
        tasks=tuple(TaskResult(**t) for t in _loads(row.tasks)),
        eval_log_uri=row.eval_log_uri,
        failure_reason=row.failure_reason,
        failure_message=row.failure_message,
    )


def _comment_from_row(row: Row[Any]) -> Comment:
    return Comment(
        comment_id=row.comment_id,
        finding_id=row.finding_id,
        author_id=row.author_id,
        author_role=row.author_role,
        author_organisation=row.author_organisation,
        visibility=CommentVisibility(row.visibility),
        body=row.body,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
        seq=row.seq,
    )


def _attachment_from_row(row: Row[Any]) -> Attachment:
    return Attachment(
        attachment_id=row.attachment_id,
        finding_id=row.finding_id,
        name=row.name,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        visibility=CommentVisibility(row.visibility),
        author_id=row.author_id,
        author_role=row.author_role,
        author_organisation=row.author_organisation,
        created_at=row.created_at,
        seq=row.seq,
    )


_ATTACHMENT_METADATA = [c for c in s.finding_attachments.c if c.name != "content"]


class Reader:
    """Queries over one connection (a consistent snapshot while its transaction lasts)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # --- comments ---------------------------------------------------------------

    def comments_after(self, finding_id: str, after_seq: int, limit: int) -> list[Comment]:
        """Up to `limit` comments on a finding written after `after_seq`, in the order written."""
        c = s.finding_comments.c
        rows = self.conn.execute(
            select(s.finding_comments)
            .where(c.finding_id == finding_id, c.seq > after_seq)
            .order_by(c.seq)
            .limit(limit)
        )
        return [_comment_from_row(r) for r in rows]

    def comment(self, comment_id: str) -> Comment | None:
        c = s.finding_comments.c
        row = self.conn.execute(select(s.finding_comments).where(c.comment_id == comment_id)).first()
        return _comment_from_row(row) if row else None

    # --- attachments ------------------------------------------------------------

    def attachments_after(self, finding_id: str, after_seq: int, limit: int) -> list[Attachment]:
        """Up to `limit` attachments' metadata on a finding added after `after_seq`, in the order
        added (their bytes are not read)."""
        a = s.finding_attachments.c
        rows = self.conn.execute(
            select(*_ATTACHMENT_METADATA)
            .where(a.finding_id == finding_id, a.seq > after_seq)
            .order_by(a.seq)
            .limit(limit)
        )
        return [_attachment_from_row(r) for r in rows]

    def attachment_usage(self, finding_id: str) -> tuple[int, int]:
        """How many attachments a finding has and their bytes in all (what its quota counts)."""
        a = s.finding_attachments.c
        row = self.conn.execute(
            select(func.count(), func.coalesce(func.sum(a.size), 0)).where(a.finding_id == finding_id)
        ).one()
        return int(row[0]), int(row[1])

    def attachment(self, attachment_id: str) -> tuple[Attachment, bytes] | None:
        """An attachment's metadata and bytes."""
        a = s.finding_attachments.c
        row = self.conn.execute(select(s.finding_attachments).where(a.attachment_id == attachment_id)).first()
        return (_attachment_from_row(row), bytes(row.content)) if row else None

    # --- findings ---------------------------------------------------------------

    def _patches_for(self, finding_ids: Sequence[str]) -> dict[str, list[PatchStatusEntry]]:
        out: dict[str, list[PatchStatusEntry]] = {}
        if not finding_ids:
            return out
        rows = self.conn.execute(_PATCHES_BY_IDS, {"finding_ids": list(finding_ids)})
        for row in rows:
            out.setdefault(row.finding_id, []).append(
                PatchStatusEntry(
                    row.organisation,
                    PatchState(row.status),
                    row.note,
                    row.updated_at,
                    VexJustification(row.justification) if row.justification else None,
                )
            )
        return out

    def _aliases_for(self, finding_ids: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if finding_ids:
            for row in self.conn.execute(_ALIASES_BY_IDS, {"finding_ids": list(finding_ids)}):
                out.setdefault(row.finding_id, []).append(row.alias)
        return out

    def _findings(self, query: Any, parameters: dict[str, Any] | None = None) -> list[Finding]:
        rows = self.conn.execute(query, parameters or {}).all()
        ids = [r.finding_id for r in rows]
        patches, aliases = self._patches_for(ids), self._aliases_for(ids)
        return [
            replace(
                _finding_from_row(r, patches.get(r.finding_id, [])),
                aliases=tuple(aliases.get(r.finding_id, ())),
            )
            for r in rows
        ]

    def alias_holder(self, alias: str) -> str | None:
        """The finding that holds `alias`, if any."""
        a = s.finding_aliases.c
        return self.conn.execute(select(a.finding_id).where(a.alias == alias)).scalar()

    def finding(self, finding_id: str) -> Finding | None:
        found = self._findings(_FINDING_BY_ID, {"finding_id": finding_id})
        return found[0] if found else None

    def findings_by_ids(self, finding_ids: Sequence[str]) -> list[Finding]:
        if not finding_ids:
            return []
        return self._findings(_FINDINGS_BY_IDS, {"finding_ids": list(finding_ids)})

    def findings_after(
        self, viewer: Viewer, query: FindingQuery, after_seq: int, limit: int
    ) -> list[Finding]:
        """Findings with seq > `after_seq` that match `query` and may be visible to `viewer`, by seq.

        The viewer condition only narrows by index to the findings the sharing
        policy could allow; callers must still apply `may_see` to each one.
        """
        conditions = [s.findings.c.seq > after_seq, *_filter_conditions(query), _candidate_condition(viewer)]
        return self._findings(_finding_select().where(*conditions).order_by(s.findings.c.seq).limit(limit))

    def findings_naming_package(self, viewer: Viewer, package: str, limit: int) -> list[Finding]:
        """Up to `limit` findings with a product naming `package` that may be visible to `viewer`, by
        seq (through the package index; callers must still apply `may_see` and check the version)."""
        named = select(s.finding_packages.c.finding_id).where(s.finding_packages.c.package == package)
        conditions = [s.findings.c.finding_id.in_(named), _candidate_condition(viewer)]
        return self._findings(_finding_select().where(*conditions).order_by(s.findings.c.seq).limit(limit))

    def canonical_finding(self, fingerprint: str, key: str) -> str | None:
        """The first unlinked finding with this fingerprint and sharing key."""
        return self.conn.execute(_CANONICAL, {"fingerprint": fingerprint, "sharing_key": key}).scalar()

    def finding_for_request(self, reporter_id: str, request_id: str) -> str | None:
        f = s.findings.c
        return self.conn.execute(
            select(f.finding_id).where(f.reporter_id == reporter_id, f.request_id == request_id)
        ).scalar()

    def linked_to(self, finding_id: str) -> list[str]:
        f = s.findings.c
        return list(self.conn.execute(select(f.finding_id).where(f.link_target == finding_id)).scalars())

    def findings_of_submission(self, submission_id: str) -> list[str]:
        f = s.findings.c
        return list(
            self.conn.execute(
                select(f.finding_id).where(f.submission_id == submission_id).order_by(f.seq)
            ).scalars()
        )

    def embargoes_ended(self, now: datetime) -> list[str]:
        f = s.findings.c
        return list(
            self.conn.execute(
                select(f.finding_id).where(
                    f.embargo_state.in_([EmbargoState.PROPOSED.value, EmbargoState.ACTIVE.value]),
                    f.embargo_end <= now,
                )
            ).scalars()
        )

    # --- audit ------------------------------------------------------------------

    def audit_head(self) -> tuple[int, str]:
        row = self.conn.execute(select(s.audit_head).where(s.audit_head.c.id == AUDIT_HEAD_ID)).one()
        return int(row.seq), str(row.hash)

    def audit_entries(self) -> Iterator[AuditEntry]:
        rows = self.conn.execution_options(yield_per=1000).execute(
            select(s.audit_log).order_by(s.audit_log.c.seq)
        )
        for row in rows:
            yield _audit_entry(row)

    def finding_history(self, finding_id: str, after_seq: int, limit: int) -> list[AuditEntry]:
        """Up to `limit` audit entries about a finding after sequence `after_seq`, oldest first."""
        a = s.audit_log.c
        rows = self.conn.execute(
            select(s.audit_log)
            .where(a.subject_kind == "finding", a.subject_id == finding_id, a.seq > after_seq)
            .order_by(a.seq)
            .limit(limit)
        )
        return [_audit_entry(row) for row in rows]

    def finding_changes_after(self, seq: int, limit: int) -> list[tuple[int, str]]:
        """(audit seq, finding id) of finding changes after `seq`, in order."""
        a = s.audit_log.c
        rows = self.conn.execute(
            select(a.seq, a.subject_id)
            .where(a.subject_kind == "finding", a.seq > seq)
            .order_by(a.seq)
            .limit(limit)
        )
        return [(int(r.seq), str(r.subject_id)) for r in rows]

    # --- reviews and reports -----------------------------------------------------

    def submission(self, submission_id: str) -> SubmissionRecord | None:
        row = self.conn.execute(
            select(s.submissions).where(s.submissions.c.submission_id == submission_id)
        ).first()
        return SubmissionRecord(**row._mapping) if row else None

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
            plan=None if plan is None else tuple(_loads(plan)),
        )

    def put_plan_end(self, submission_id: str, job_ids: Sequence[str], at: datetime) -> None:
        """Record that the submission's plan, of these jobs, ended (the first announcement counts)."""
        if self.review_state(submission_id).plan is None:
            self.conn.execute(
                insert(s.plan_ends).values(
                    submission_id=submission_id, job_ids=_dumps(list(job_ids)), ended_at=at
                )
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
        """Reports newest first; only `organisation`'s when given; latest versions unless `all_versions`."""
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


def _audience_has(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """The finding's audience has an entry meeting `condition` (probed by primary key, row by row:
    cheaper than materialising every matching entry when a page scans a few hundred findings)."""
    a = s.finding_audience.c
    return exists(select(a.finding_id).where(a.finding_id == s.findings.c.finding_id, condition))


def _filter_conditions(query: FindingQuery) -> list[ColumnElement[bool]]:
    f = s.findings.c
    conditions: list[ColumnElement[bool]] = [
        or_(f.link_kind.is_(None), f.link_kind != LinkKind.MERGED_INTO.value)
    ]
    if query.sector:
        a = s.finding_audience.c
        conditions.append(_audience_has(or_(and_(a.kind == "sector", a.value == query.sector))))
    if query.severities:
        conditions.append(f.severity.in_(sorted(v.value for v in query.severities)))
    if query.states:
        conditions.append(f.state.in_(sorted(v.value for v in query.states)))
    if query.since is not None:
        conditions.append(f.updated_at >= query.since)
    if query.assignee:
        conditions.append(f.assignee == query.assignee)
    return conditions


def _candidate_condition(viewer: Viewer) -> ColumnElement[bool]:
    """An index-friendly superset of what `may_see` allows `viewer` (never a subset)."""
    f, a = s.findings.c, s.finding_audience.c
    if viewer.role in (Role.REVIEWER, Role.ADMIN):
        return true()
    if viewer.role not in (Role.LAB, Role.OPERATOR) or not viewer.organisation:
        return false()
    own = or_(
        s.submissions.c.organisation == viewer.organisation, f.reporter_organisation == viewer.organisation
    )
    published = and_(f.published_at.is_not(None), f.state != FindingState.INVALID.value)
    if viewer.role is Role.LAB:
        return or_(own, and_(published, f.tlp == Tlp.CLEAR.value))
    named = and_(a.kind == "org", a.value == viewer.organisation)
    in_sector = and_(a.kind == "sector", a.value.in_(sorted(viewer.sectors))) if viewer.sectors else false()
    audience_match = _audience_has(or_(named, in_sector))
    return or_(own, and_(published, or_(f.tlp == Tlp.CLEAR.value, audience_match)))


class UnitOfWork(Reader):
    """One write transaction: state, audit entries, applied event ids and outbox records commit together."""

    def __init__(self, conn: Connection, encoder: EventEncoder) -> None:
        super().__init__(conn)
        self._encoder = encoder
        self._records: list[tuple[str, KafkaRecord]] = []
        self._head: tuple[int, str] | None = None

    def claim(self, consumer: str, event_id: str) -> bool:
        """Record `event_id` as applied by `consumer`; False if it already was (then change nothing)."""
        return claim_event(self.conn, s.processed_events, consumer, event_id)

    def emit(self, domain_event: DomainEvent) -> None:
        """Queue an event for the outbox; it is written when the unit of work commits.

        It is encoded now, so its record carries the trace context of the span that emitted it.
        """
        self._records.append(self._encoder(domain_event))

    def flush_events(self) -> None:
        for topic, record in self._records:
            enqueue(self.conn, s.outbox, topic, record)
        self._records.clear()

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
        prev_seq, prev_hash = self._head or self.audit_head()
        seq = prev_seq + 1
        body = details or {}
        digest = entry_hash(
            prev_hash,
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject_kind=subject_kind,
            subject_id=subject_id,
            details=body,
        )
        self.conn.execute(
            _INSERT_AUDIT,
            {
                "seq": seq,
                "at": at,
                "actor": actor,
                "action": action,
                "subject_kind": subject_kind,
                "subject_id": subject_id,
                "details": _dumps(body),
                "prev_hash": prev_hash,
                "hash": digest,
            },
        )
        self.conn.execute(_ADVANCE_HEAD, {"new_seq": seq, "new_hash": digest})
        self._head = (seq, digest)
        return seq

    # --- findings ---------------------------------------------------------------

    def insert_findings(self, findings: Sequence[Finding], request_id: str = "") -> None:
        """Insert new findings (one statement for the batch) with their audience, packages and
        aliases; `request_id` is for a single direct report."""
        if not findings:
            return
        rows = [{**_finding_values(f), "request_id": request_id or None} for f in findings]
        self.conn.execute(_INSERT_FINDING, rows)
        audience = [row for f in findings for row in _audience_rows(f)]
        if audience:
            self.conn.execute(insert(s.finding_audience), audience)
        packages = [row for f in findings for row in _package_rows(f)]
        if packages:
            self.conn.execute(insert(s.finding_packages), packages)
        aliases = [{"alias": a, "finding_id": f.finding_id} for f in findings for a in f.aliases]
        if aliases:
            self.conn.execute(insert(s.finding_aliases), aliases)

    def update_finding(self, before: Finding, finding: Finding) -> None:
        """Store `finding` over `before` (the same finding as stored): its row, and its audience,
        aliases and package index only where they changed (most changes touch none of them)."""
        values = _finding_values(finding)
        values["the_finding_id"] = values.pop("finding_id")
        self.conn.execute(_UPDATE_FINDING, values)
        if finding.audience != before.audience:
            self.conn.execute(_DELETE_AUDIENCE, {"the_finding_id": finding.finding_id})
            self._write_audience(finding)
        if finding.aliases != before.aliases:
            self.conn.execute(_DELETE_ALIASES, {"the_finding_id": finding.finding_id})
            if finding.aliases:
                self.conn.execute(
                    insert(s.finding_aliases),
                    [{"alias": alias, "finding_id": finding.finding_id} for alias in finding.aliases],
                )
        if finding.affected != before.affected:
            self.conn.execute(_DELETE_PACKAGES, {"the_finding_id": finding.finding_id})
            packages = _package_rows(finding)
            if packages:
                self.conn.execute(insert(s.finding_packages), packages)

    def _write_audience(self, finding: Finding) -> None:
        rows = _audience_rows(finding)
        if rows:
            self.conn.execute(insert(s.finding_audience), rows)

    def put_comment(self, comment: Comment) -> Comment:
        """Store a comment's new revision (its first inserts it); every revision is kept. Returns it
        with its `seq`."""
        c = s.finding_comments.c
        if comment.revision == 1:
            values = {k: v for k, v in comment.__dict__.items() if k != "seq"}
            values["visibility"] = comment.visibility.value
            self.conn.execute(insert(s.finding_comments).values(**values))
        else:
            self.conn.execute(
                update(s.finding_comments)
                .where(c.comment_id == comment.comment_id)
                .values(body=comment.body, revision=comment.revision, updated_at=comment.updated_at)
            )
        self.conn.execute(
            insert(s.finding_comment_revisions).values(
                comment_id=comment.comment_id,
                revision=comment.revision,
                body=comment.body,
                written_at=comment.updated_at,
            )
        )
        stored = self.comment(comment.comment_id)
        assert stored is not None
        return stored

    def put_attachment(self, attachment: Attachment, content: bytes) -> Attachment:
        """Store an attachment with its bytes; returns it with its `seq`."""
        values = {k: v for k, v in attachment.__dict__.items() if k != "seq"}
        values["visibility"] = attachment.visibility.value
        result = self.conn.execute(insert(s.finding_attachments).values(**values, content=content))
        key = result.inserted_primary_key
        assert key is not None
        return replace(attachment, seq=int(key[0]))

    def set_patch_status(self, finding_id: str, entry: PatchStatusEntry, updated_by: str) -> None:
        p = s.patch_statuses.c
        self.conn.execute(
            delete(s.patch_statuses).where(p.finding_id == finding_id, p.organisation == entry.organisation)
        )
        self.conn.execute(
            insert(s.patch_statuses).values(
                finding_id=finding_id,
                organisation=entry.organisation,
                status=entry.status.value,
                note=entry.note,
                updated_by=updated_by,
                updated_at=entry.updated_at,
                justification=entry.justification.value if entry.justification else None,
            )
        )

    # --- reviews and reports -----------------------------------------------------

    def put_submission(self, record: SubmissionRecord) -> None:
        self.conn.execute(delete(s.submissions).where(s.submissions.c.submission_id == record.submission_id))
        self.conn.execute(insert(s.submissions).values(**record.__dict__))

    def put_withdrawal(self, submission_id: str, at: datetime) -> None:
        """Record that the submission was withdrawn (the first time counts)."""
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
            "tasks": _dumps([t.__dict__ for t in job.tasks]),
            "eval_log_uri": job.eval_log_uri,
            "failure_reason": job.failure_reason,
            "failure_message": job.failure_message,
            "updated_at": at,
        }
        if self.job(job.job_id) is None:
            self.conn.execute(insert(s.jobs).values(job_id=job.job_id, **values))
        else:
            self.conn.execute(update(s.jobs).where(s.jobs.c.job_id == job.job_id).values(**values))

    def ensure_signing_key(self, key_id: str, public_key: bytes, at: datetime) -> None:
        if self.signing_key(key_id) is None:
            self.conn.execute(
                insert(s.signing_keys).values(key_id=key_id, public_key=public_key, created_at=at)
            )

    def insert_report(self, values: dict[str, Any]) -> None:
        self.conn.execute(insert(s.reports).values(**values))

    def insert_note(self, report_id: str, note: NoteRecord) -> None:
        self.conn.execute(insert(s.report_notes).values(report_id=report_id, **note.__dict__))

    def insert_sign_off(self, report_id: str, sign_off: SignOffRecord) -> None:
        self.conn.execute(insert(s.report_sign_offs).values(report_id=report_id, **sign_off.__dict__))


class Store:
    """Opens readers and units of work on one engine."""

    def __init__(self, engine: Engine, encoder: EventEncoder) -> None:
        self.engine = engine
        self._encoder = encoder
        self._sqlite = engine.dialect.name == "sqlite"
        if self._sqlite:
            _take_over_sqlite_transactions(engine)

    @contextmanager
    def read(self) -> Iterator[Reader]:
        """A read-only snapshot."""
        with self.engine.connect() as conn, conn.begin():
            yield Reader(conn)

    @contextmanager
    def write(self) -> Iterator[UnitOfWork]:
        """A serialised write transaction; commits when the block ends without an exception."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(preflight_write=True)
            with conn.begin():
                if not self._sqlite:
                    conn.execute(
                        select(s.audit_head.c.seq).where(s.audit_head.c.id == AUDIT_HEAD_ID).with_for_update()
                    )
                uow = UnitOfWork(conn, self._encoder)
                yield uow
                uow.flush_events()


def _take_over_sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, begin transactions: reads see a snapshot, writes lock first.

    (The sqlite3 module otherwise begins a transaction only at the first
    write, so reads before it would not be isolated.)
    """

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("preflight_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
