"""The findings store: findings with their audiences, aliases and package index, patch statuses,
comments, attachments, and the audit entries about findings (`domain.findings.ports.FindingsStore`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)

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
from preflight_clearinghouse.domain.findings.attachments import Attachment
from preflight_clearinghouse.domain.findings.case_record import Credit, CreditType, Reference, ReferenceType
from preflight_clearinghouse.domain.findings.comments import Comment, CommentVisibility
from preflight_clearinghouse.domain.findings.finding import (
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
    sharing_key,
)
from preflight_clearinghouse.domain.findings.packages import package_of
from preflight_clearinghouse.domain.findings.queries import FindingQuery
from preflight_clearinghouse.domain.findings.ssvc import (
    Automatable,
    Exploitation,
    MissionWellBeing,
    SsvcDecision,
    TechnicalImpact,
)
from preflight_clearinghouse.domain.findings.workflow import EmbargoState, FindingState
from preflight_clearinghouse.domain.ports import UnitOfWork
from preflight_clearinghouse.domain.sharing import Audience, Role, Tlp, Viewer

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
_PATCHES_BY_IDS = (
    select(s.patch_statuses)
    .where(s.patch_statuses.c.finding_id.in_(bindparam("finding_ids", expanding=True)))
    .order_by(s.patch_statuses.c.organisation)
)


def _ssvc_from_json(text: str | None) -> SsvcDecision | None:
    if not text:
        return None
    d = loads(text)
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
    return dumps(
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
        cwe_ids=tuple(loads(row.cwe_ids)),
        affected=tuple(AffectedProduct(**p) for p in loads(row.affected)),
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
            frozenset(loads(row.audience_organisations)), frozenset(loads(row.audience_sectors))
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
            Reference(ReferenceType(r["type"]), r["url"]) for r in loads(row.case_references or "[]")
        ),
        credits=tuple(Credit(c["name"], CreditType(c["type"])) for c in loads(row.case_credits or "[]")),
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
        "cwe_ids": dumps(list(finding.cwe_ids)),
        "affected": dumps(
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
        "audience_organisations": dumps(sorted(finding.audience.organisations)),
        "audience_sectors": dumps(sorted(finding.audience.sectors)),
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
        "case_references": dumps([{"type": r.type.value, "url": r.url} for r in finding.references]),
        "case_credits": dumps([{"name": c.name, "type": c.type.value} for c in finding.credits]),
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


class SqlFindingsReader(SqlReader):
    """`domain.findings.ports.FindingsReader` over one connection."""

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

    # --- history and change feed -------------------------------------------------

    def finding_history(self, finding_id: str, after_seq: int, limit: int) -> list[AuditEntry]:
        """Up to `limit` audit entries about a finding after sequence `after_seq`, oldest first."""
        a = s.audit_log.c
        rows = self.conn.execute(
            select(s.audit_log)
            .where(a.subject_kind == "finding", a.subject_id == finding_id, a.seq > after_seq)
            .order_by(a.seq)
            .limit(limit)
        )
        return [audit_entry(row) for row in rows]

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


class SqlFindingsUnitOfWork(SqlUnitOfWork, SqlFindingsReader):
    """`domain.findings.ports.FindingsUnitOfWork` in one write transaction."""

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


class SqlFindingsStore:
    """`domain.findings.ports.FindingsStore` on the clearinghouse's database."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @contextmanager
    def read(self) -> Iterator[SqlFindingsReader]:
        with self._database.read() as conn:
            yield SqlFindingsReader(conn)

    @contextmanager
    def write(self) -> Iterator[SqlFindingsUnitOfWork]:
        with self._database.write() as transaction:
            yield SqlFindingsUnitOfWork(transaction)

    def join(self, uow: UnitOfWork) -> SqlFindingsUnitOfWork:
        if not isinstance(uow, SqlUnitOfWork):
            raise TypeError(f"a {type(uow).__name__} is not a unit of work of the clearinghouse's database")
        return SqlFindingsUnitOfWork(uow.transaction)
