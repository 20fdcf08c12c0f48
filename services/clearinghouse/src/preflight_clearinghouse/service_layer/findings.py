"""The findings registry's use cases: one function per command or query, each one unit of work.

Every read passes each finding through `sharing.visible` (may_see + project)
before it leaves; a finding the caller may not see is NOT_FOUND. Every change
is audit-logged, and a change to a published finding raises a FindingUpdated
(publication a FindingPublished) in the same transaction.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from preflight_common.auth import PRINCIPAL_ID_RULE, is_valid_principal_id
from preflight_common.bus import Participants
from preflight_common.clock import Clock
from preflight_common.pagetokens import page_tokens

from preflight_clearinghouse.domain.checks import MAX_PAGE, MAX_REASON, check_text, page_size_of, require
from preflight_clearinghouse.domain.errors import (
    Collector,
    FieldViolation,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RevisionConflict,
)
from preflight_clearinghouse.domain.events import finding_notice
from preflight_clearinghouse.domain.findings import lifecycle
from preflight_clearinghouse.domain.findings.aliases import check_aliases
from preflight_clearinghouse.domain.findings.attachments import (
    QUOTA,
    Attachment,
    AttachmentQuota,
    check_attachment,
)
from preflight_clearinghouse.domain.findings.case_record import (
    CreditType,
    ReferenceType,
    check_credits,
    check_references,
)
from preflight_clearinghouse.domain.findings.comments import (
    Comment,
    CommentVisibility,
    check_body,
    check_visibility,
)
from preflight_clearinghouse.domain.findings.exports import ExportDocument, Exporter, ExportFormat
from preflight_clearinghouse.domain.findings.finding import (
    MAX_NOTE,
    CandidateInput,
    Finding,
    FindingDraft,
    FindingInput,
    FindingLink,
    FindingSource,
    LinkKind,
    Origin,
    PatchState,
    PatchStatusEntry,
    VexJustification,
    check_audience,
    check_candidate,
    check_justification,
    check_report,
    sharing_key,
)
from preflight_clearinghouse.domain.findings.imports import Importer
from preflight_clearinghouse.domain.findings.packages import affects, package_version
from preflight_clearinghouse.domain.findings.ports import FindingsReader, FindingsStore, FindingsUnitOfWork
from preflight_clearinghouse.domain.findings.queries import FindingQuery
from preflight_clearinghouse.domain.findings.ssvc import SSVC_FIELDS, SsvcDecision, SsvcPoints, decide
from preflight_clearinghouse.domain.findings.workflow import EmbargoState, FindingState
from preflight_clearinghouse.domain.ports import UnitOfWork
from preflight_clearinghouse.domain.sharing import (
    PRIVILEGED,
    HistoryEntry,
    Role,
    Tlp,
    Viewer,
    attachment_view,
    comment_view,
    export_view,
    history_view,
    may_see,
    reaches,
    visible,
)

FINDING_NAMESPACE = uuid.UUID("6f1c9a52-3f0e-4d7e-9a53-2b7f0c1d8e44")
MAX_BATCH = 2_000
SCAN_LIMIT = 20_000
"""Rows a list call examines at most before returning a (possibly short) page with a token."""

REPORTER_ORIGIN: Mapping[Role, Origin] = {
    Role.REVIEWER: Origin.REVIEWER,
    Role.ADMIN: Origin.REVIEWER,
    Role.LAB: Origin.LAB,
    Role.OPERATOR: Origin.OPERATOR,
}


def check_query(viewer: Viewer, query: FindingQuery) -> None:
    """Refuse a filter the caller may not use: assignees are shown to reviewers and admins only, so
    only they may filter on one (anyone else could learn them by probing)."""
    if query.assignee:
        require(viewer, PRIVILEGED, "filtering by assignee")


_FINDINGS_SCOPE = "preflight.clearinghouse.v1.ClearinghouseService/ListFindings"


def encode_page_token(seq: int) -> str:
    return page_tokens().encode(_FINDINGS_SCOPE, [seq])


def decode_page_token(token: str) -> int:
    """The cursor in a page token (0 for none); raises InvalidArgument naming `page_token`."""
    cursor = page_tokens().decode(_FINDINGS_SCOPE, token)
    return int(cursor[0]) if cursor else 0


_HISTORY_SCOPE = "preflight.clearinghouse.v1.ClearinghouseService/ListFindingHistory"
_COMMENTS_SCOPE = "preflight.clearinghouse.v1.ClearinghouseService/ListFindingComments"
_ATTACHMENTS_SCOPE = "preflight.clearinghouse.v1.ClearinghouseService/ListFindingAttachments"
COMMENTERS = frozenset({Role.REVIEWER, Role.ADMIN, Role.LAB, Role.OPERATOR})
"""Who may comment on, or attach files to, a finding it may see."""


class _Ordered(Protocol):
    @property
    def seq(self) -> int: ...


R = TypeVar("R", bound=_Ordered)
S = TypeVar("S")


class FindingRegistry:
    """Use cases of the findings registry."""

    def __init__(
        self,
        store: FindingsStore,
        clock: Clock,
        exporters: Mapping[ExportFormat, Exporter],
        participants: Participants | None = None,
        importers: Mapping[ExportFormat, Importer] | None = None,
        attachment_quota: AttachmentQuota = QUOTA,
    ) -> None:
        self._store = store
        self._attachment_quota = attachment_quota
        self._clock = clock
        self._exporters = exporters
        self._importers = importers or {}
        self._participants = participants or Participants()

    # --- intake -----------------------------------------------------------------

    def report(self, viewer: Viewer, report: FindingInput) -> tuple[Finding, bool]:
        """Store a direct report; returns (the finding as the reporter sees it, linked as duplicate)."""
        require(viewer, frozenset(REPORTER_ORIGIN), "reporting a finding")
        now = self._clock()
        draft = check_report(report, now)
        with self._store.write() as uow:
            if draft.request_id:
                earlier = uow.finding_for_request(viewer.principal_id, draft.request_id)
                if earlier is not None:
                    finding = self._load(uow, earlier)
                    return self._visible(viewer, finding, now), finding.link is not None
            finding = self._new_finding(
                uow,
                draft,
                {},
                finding_id=str(uuid.uuid4()),
                origin=REPORTER_ORIGIN[viewer.role],
                reporter_id=viewer.principal_id,
                reporter_organisation=viewer.organisation,
                source=None,
                now=now,
            )
            uow.insert_findings([finding], draft.request_id)
            self._audit_reported(uow, finding, now, actor=viewer.principal_id)
        return self._visible(viewer, finding, now), finding.link is not None

    def import_document(
        self, viewer: Viewer, document: bytes, document_format: ExportFormat | None
    ) -> tuple[Finding, bool]:
        """Store the finding a CSAF or OSV document describes (reviewers and admins); returns (the
        finding, linked as a duplicate).

        The document is validated, then mapped (`adapters.imports`) and checked like a report; it
        starts RECEIVED with an empty audience, its TLP the document's (RED when it has none). Its
        id derives from the document's SHA-256, so importing the same bytes again returns the
        finding the first import stored. Dedup is the registry's: the fingerprint links it as a
        duplicate, and an alias another finding holds is InvalidInput naming `aliases`.
        Audit-logged as `finding.imported` with the format and the digest.
        """
        require(viewer, PRIVILEGED, "importing a finding")
        importer = self._importers.get(document_format) if document_format else None
        if importer is None:
            choices = ", ".join(f.name for f in self._importers)
            raise InvalidInput([FieldViolation("format", f"choose one of {choices}")])
        assert document_format is not None
        digest = hashlib.sha256(document).hexdigest()
        finding_id = str(uuid.uuid5(FINDING_NAMESPACE, f"import/{digest}"))
        now = self._clock()
        with self._store.read() as reader:
            earlier = reader.finding(finding_id)
        if earlier is not None:
            return self._visible(viewer, earlier, now), earlier.link is not None
        imported = importer(document)
        draft = check_report(imported.report, now)
        errors = Collector()
        aliases = check_aliases(imported.aliases, errors)
        references = check_references(imported.references, errors)
        credits = check_credits(imported.credits, errors)
        errors.raise_if_any()
        with self._store.write() as uow:
            earlier = uow.finding(finding_id)
            if earlier is not None:
                return self._visible(viewer, earlier, now), earlier.link is not None
            for alias in aliases:
                holder = uow.alias_holder(alias)
                if holder is not None:
                    errors.add("aliases", f"{alias} is already an alias of finding {holder}")
            errors.raise_if_any()
            finding = self._new_finding(
                uow,
                draft,
                {},
                finding_id=finding_id,
                origin=REPORTER_ORIGIN[viewer.role],
                reporter_id=viewer.principal_id,
                reporter_organisation=viewer.organisation,
                source=None,
                now=now,
            )
            finding = replace(finding, aliases=aliases, references=references, credits=credits)
            uow.insert_findings([finding])
            self._audit_reported(
                uow,
                finding,
                now,
                actor=viewer.principal_id,
                action="finding.imported",
                extra={"format": document_format.value, "sha256": digest, "aliases": list(aliases)},
            )
        return self._visible(viewer, finding, now), finding.link is not None

    def ingest_candidates(
        self,
        uow: UnitOfWork,
        submission_id: str,
        job_id: str,
        candidates: Sequence[CandidateInput],
        now: datetime,
    ) -> list[Finding]:
        """Store a result's candidate findings in the caller's unit of work (ids derive from the job)."""
        joined = self._store.join(uow)
        first_of_kind: dict[tuple[str, str], str] = {}
        stored: list[tuple[Finding, tuple[str, ...]]] = []
        for index, candidate in enumerate(candidates):
            draft, notes = check_candidate(candidate)
            finding = self._new_finding(
                joined,
                draft,
                first_of_kind,
                finding_id=str(uuid.uuid5(FINDING_NAMESPACE, f"{job_id}/{index}")),
                origin=Origin.BENCHMARK,
                reporter_id="",
                reporter_organisation="",
                source=FindingSource(submission_id=submission_id),
                now=now,
            )
            stored.append((finding, notes))
        joined.insert_findings([finding for finding, _ in stored])
        for finding, notes in stored:
            self._audit_reported(joined, finding, now, actor="system:benchmark", notes=notes, job_id=job_id)
        return [finding for finding, _ in stored]

    def _new_finding(
        self,
        uow: FindingsUnitOfWork,
        draft: FindingDraft,
        first_of_kind: dict[tuple[str, str], str],
        *,
        finding_id: str,
        origin: Origin,
        reporter_id: str,
        reporter_organisation: str,
        source: FindingSource | None,
        now: datetime,
    ) -> Finding:
        """The finding of a checked draft, a duplicate of the first stored (or batched) one of its kind.

        Its kind is its fingerprint and sharing key: duplicates never cross TLP labels or audiences.
        `first_of_kind` remembers the findings of the batch being stored, which the store cannot see yet.
        """
        kind = (draft.fingerprint, sharing_key(draft.tlp, draft.audience))
        canonical = first_of_kind.get(kind) or uow.canonical_finding(*kind)
        if canonical is None:
            first_of_kind[kind] = finding_id
        return draft.received(
            finding_id=finding_id,
            origin=origin,
            reporter_id=reporter_id,
            reporter_organisation=reporter_organisation,
            source=source,
            link=FindingLink(LinkKind.DUPLICATE_OF, canonical) if canonical else None,
            now=now,
        )

    def _audit_reported(
        self,
        uow: FindingsUnitOfWork,
        finding: Finding,
        now: datetime,
        *,
        actor: str,
        notes: Sequence[str] = (),
        job_id: str = "",
        action: str = "finding.reported",
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        details: dict[str, Any] = {
            "origin": finding.origin.value,
            "fingerprint": finding.fingerprint,
            "tlp": finding.tlp.value,
            **(extra or {}),
        }
        if finding.link is not None:
            details["duplicate_of"] = finding.link.target_finding_id
        if notes:
            details["dropped"] = list(notes)
        if job_id:
            details["job_id"] = job_id
        uow.audit(
            at=now,
            actor=actor,
            action=action,
            subject_kind="finding",
            subject_id=finding.finding_id,
            details=details,
        )

    # --- reads ------------------------------------------------------------------

    def _visible(self, viewer: Viewer, finding: Finding | None, now: datetime) -> Finding:
        shown = visible(viewer, finding, now) if finding is not None else None
        if shown is None:
            raise NotFound("no such finding")
        return shown

    def _load(self, uow: FindingsUnitOfWork, finding_id: str) -> Finding:
        finding = uow.finding(finding_id)
        if finding is None:
            raise NotFound("no such finding")
        return finding

    def get(self, viewer: Viewer, finding_id: str) -> Finding:
        """The finding as `viewer` may see it; NotFound when absent or not visible."""
        now = self._clock()
        with self._store.read() as reader:
            return self._visible(viewer, reader.finding(finding_id), now)

    def list_visible(
        self, viewer: Viewer, query: FindingQuery, page_size: int, page_token: str
    ) -> tuple[list[Finding], str]:
        """A page of the findings `viewer` may see, oldest first, and the next page token ("" at the end)."""
        check_query(viewer, query)
        size = page_size_of(page_size)
        cursor = decode_page_token(page_token)
        now = self._clock()
        page: list[Finding] = []
        scanned = 0
        # Start with a page's worth (reviewers see every row), then size each next batch from the
        # share of rows the caller could see so far (the store's candidate query is a superset).
        batch = size
        with self._store.read() as reader:
            while scanned < SCAN_LIMIT:
                rows = reader.findings_after(viewer, query, cursor, batch)
                shown_before = len(page)
                for finding in rows:
                    cursor = finding.seq
                    shown = visible(viewer, finding, now)
                    if shown is not None:
                        page.append(shown)
                        if len(page) == size:
                            return page, encode_page_token(cursor)
                scanned += len(rows)
                if len(rows) < batch:
                    return page, ""
                share = max((len(page) - shown_before) / len(rows), 0.05)
                batch = min(MAX_BATCH, math.ceil(1.2 * (size - len(page)) / share) + 10)
        return page, encode_page_token(cursor)

    def history(
        self, viewer: Viewer, finding_id: str, page_size: int, page_token: str
    ) -> tuple[list[HistoryEntry], str]:
        """A page of a finding's history as `viewer` may see it (`history_view`), oldest first, and
        the next page token ("" at the end). NotFound when `viewer` may not see the finding;
        InvalidInput naming `page_size` or `page_token` (a token of another finding is invalid)."""
        return self._finding_page(
            viewer,
            finding_id,
            page_size,
            page_token,
            _HISTORY_SCOPE,
            lambda reader, finding_id, after, limit: reader.finding_history(finding_id, after, limit),
            lambda v, _finding, entry, _now: history_view(v, entry),
        )

    def comments(
        self, viewer: Viewer, finding_id: str, page_size: int, page_token: str
    ) -> tuple[list[Comment], str]:
        """A page of a finding's comments as `viewer` may read them (`comment_view`), in the order
        written, and the next page token ("" at the end). NotFound when `viewer` may not see the
        finding; InvalidInput naming `page_size` or `page_token` (a token of another finding is
        invalid)."""
        return self._finding_page(
            viewer,
            finding_id,
            page_size,
            page_token,
            _COMMENTS_SCOPE,
            lambda reader, finding_id, after, limit: reader.comments_after(finding_id, after, limit),
            comment_view,
        )

    def _finding_page(
        self,
        viewer: Viewer,
        finding_id: str,
        page_size: int,
        page_token: str,
        scope: str,
        rows_after: Callable[[FindingsReader, str, int, int], list[R]],
        view: Callable[[Viewer, Finding, R, datetime], S | None],
    ) -> tuple[list[S], str]:
        """A page of a finding's history, comments or attachments (`rows_after` reads them in
        order) as `view` shows them to `viewer`, and the next page token of `scope`, bound to the
        finding."""
        size = page_size_of(page_size)
        cursor = page_tokens().decode(scope, page_token)
        if cursor is not None and (len(cursor) != 2 or cursor[0] != finding_id):
            raise InvalidInput([FieldViolation("page_token", "is not a page token of this finding")])
        after = int(cursor[1]) if cursor else 0
        now = self._clock()
        page: list[S] = []
        scanned = 0
        with self._store.read() as reader:
            finding = reader.finding(finding_id)
            self._visible(viewer, finding, now)
            assert finding is not None
            while scanned < SCAN_LIMIT:
                rows = rows_after(reader, finding_id, after, MAX_BATCH)
                for item in rows:
                    after = item.seq
                    shown = view(viewer, finding, item, now)
                    if shown is not None:
                        page.append(shown)
                        if len(page) == size:
                            return page, page_tokens().encode(scope, [finding_id, after])
                scanned += len(rows)
                if len(rows) < MAX_BATCH:
                    return page, ""
        return page, page_tokens().encode(scope, [finding_id, after])

    def add_comment(
        self, viewer: Viewer, finding_id: str, body: str, visibility: CommentVisibility | None
    ) -> Comment:
        """Comment on a finding the caller may see (reviewers, admins, labs, operators): InvalidInput
        naming `body` or `visibility`; NotFound when the caller may not see the finding.
        Audit-logged (the body's SHA-256, not the body: the log is read by reviewers, the comment
        by its readers)."""
        require(viewer, COMMENTERS, "commenting on a finding")
        errors = Collector()
        text = check_body(body, errors)
        check_visibility(visibility, errors)
        errors.raise_if_any()
        assert visibility is not None
        now = self._clock()
        with self._store.write() as uow:
            self._visible(viewer, uow.finding(finding_id), now)
            comment = Comment(
                comment_id=str(uuid.uuid4()),
                finding_id=finding_id,
                author_id=viewer.principal_id,
                author_role=viewer.role.value,
                author_organisation=viewer.organisation,
                visibility=visibility,
                body=text,
                revision=1,
                created_at=now,
                updated_at=now,
            )
            stored = uow.put_comment(comment)
            self._audit_comment(uow, stored, "finding.comment_added", now)
        return stored

    def edit_comment(
        self, viewer: Viewer, finding_id: str, comment_id: str, body: str, expected_revision: int
    ) -> Comment:
        """A new revision of the caller's own comment (its visibility stays; the earlier revisions
        are kept): NotFound when the caller may not read it, PermissionDenied when it is another's,
        RevisionConflict when `expected_revision` (non-zero) is not its revision."""
        errors = Collector()
        text = check_body(body, errors)
        if expected_revision < 0:
            errors.add("expected_revision", "must not be negative")
        errors.raise_if_any()
        now = self._clock()
        with self._store.write() as uow:
            finding = uow.finding(finding_id)
            self._visible(viewer, finding, now)
            assert finding is not None
            current = uow.comment(comment_id)
            if (
                current is None
                or current.finding_id != finding_id
                or comment_view(viewer, finding, current, now) is None
            ):
                raise NotFound("no such comment")
            if current.author_id != viewer.principal_id:
                raise PermissionDenied("only a comment's author edits it")
            if expected_revision and current.revision != expected_revision:
                raise RevisionConflict(
                    f"the comment is at revision {current.revision}, not {expected_revision}"
                )
            stored = uow.put_comment(
                replace(current, body=text, revision=current.revision + 1, updated_at=now)
            )
            self._audit_comment(uow, stored, "finding.comment_edited", now)
        return stored

    def _audit_comment(self, uow: FindingsUnitOfWork, comment: Comment, action: str, now: datetime) -> None:
        uow.audit(
            at=now,
            actor=comment.author_id,
            action=action,
            subject_kind="finding",
            subject_id=comment.finding_id,
            details={
                "comment_id": comment.comment_id,
                "visibility": comment.visibility.value,
                "revision": comment.revision,
                "body_sha256": hashlib.sha256(comment.body.encode()).hexdigest(),
            },
        )

    def attachments(
        self, viewer: Viewer, finding_id: str, page_size: int, page_token: str
    ) -> tuple[list[Attachment], str]:
        """A page of a finding's attachments (metadata) as `viewer` may read them
        (`attachment_view`), in the order added, and the next page token ("" at the end). NotFound
        when `viewer` may not see the finding; InvalidInput naming `page_size` or `page_token` (a
        token of another finding is invalid)."""
        return self._finding_page(
            viewer,
            finding_id,
            page_size,
            page_token,
            _ATTACHMENTS_SCOPE,
            lambda reader, finding_id, after, limit: reader.attachments_after(finding_id, after, limit),
            attachment_view,
        )

    def add_attachment(
        self,
        viewer: Viewer,
        finding_id: str,
        name: str,
        content_type: str,
        content: bytes,
        visibility: CommentVisibility | None,
    ) -> Attachment:
        """Attach an evidence file to a finding the caller may see (reviewers, admins, labs,
        operators), kept with the SHA-256 of its bytes: InvalidInput naming `name`, `content_type`,
        `content` (empty, too large, or not of the declared type) or `visibility`; NotFound when
        the caller may not see the finding; QuotaExceeded naming the bound when the finding's
        attachments would pass its `AttachmentQuota` (counted in the write transaction, which
        writers take in turn, so concurrent adds cannot pass it together; nothing is written).
        Audit-logged with the digest, not the bytes."""
        require(viewer, COMMENTERS, "attaching a file to a finding")
        errors = Collector()
        clean_name, kind = check_attachment(name, content_type, content, errors)
        check_visibility(visibility, errors)
        errors.raise_if_any()
        assert visibility is not None
        now = self._clock()
        with self._store.write() as uow:
            self._visible(viewer, uow.finding(finding_id), now)
            refusal = self._attachment_quota.refusal(*uow.attachment_usage(finding_id), len(content))
            if refusal is not None:
                raise QuotaExceeded(refusal)
            stored = uow.put_attachment(
                Attachment(
                    attachment_id=str(uuid.uuid4()),
                    finding_id=finding_id,
                    name=clean_name,
                    content_type=kind,
                    size=len(content),
                    sha256=hashlib.sha256(content).hexdigest(),
                    visibility=visibility,
                    author_id=viewer.principal_id,
                    author_role=viewer.role.value,
                    author_organisation=viewer.organisation,
                    created_at=now,
                ),
                content,
            )
            uow.audit(
                at=now,
                actor=stored.author_id,
                action="finding.attachment_added",
                subject_kind="finding",
                subject_id=finding_id,
                details={
                    "attachment_id": stored.attachment_id,
                    "visibility": stored.visibility.value,
                    "name": stored.name,
                    "content_type": stored.content_type,
                    "size": stored.size,
                    "sha256": stored.sha256,
                },
            )
        return stored

    def attachment(self, viewer: Viewer, finding_id: str, attachment_id: str) -> tuple[Attachment, bytes]:
        """An attachment as `viewer` may read it (`attachment_view`) and its bytes: NotFound when
        `viewer` may not see the finding or read the attachment, or it is not of that finding."""
        now = self._clock()
        with self._store.read() as reader:
            finding = reader.finding(finding_id)
            self._visible(viewer, finding, now)
            assert finding is not None
            found = reader.attachment(attachment_id)
        shown = (
            attachment_view(viewer, finding, found[0], now)
            if found is not None and found[0].finding_id == finding_id
            else None
        )
        if found is None or shown is None:
            raise NotFound("no such attachment")
        return shown, found[1]

    def affecting(self, viewer: Viewer, purl: str, version: str = "") -> list[Finding]:
        """The findings `viewer` may see that affect a package version (`domain.findings.packages`), oldest
        first, at most MAX_PAGE: `purl` names the package and its version, or `version` does.
        InvalidInput naming `purl` or `version` when they name no package version."""
        wanted = package_version(purl, version)
        now = self._clock()
        with self._store.read() as reader:
            candidates = reader.findings_naming_package(viewer, wanted.package, SCAN_LIMIT)
        # The sharing policy first: it is cheap, and a version range is parsed only for what shows.
        shown = [f for f in (visible(viewer, finding, now) for finding in candidates) if f is not None]
        return [f for f in shown if any(affects(product, wanted) for product in f.affected)][:MAX_PAGE]

    def stream_cursor(self) -> int:
        """The position in the change feed now: a stream opened now sends changes after it."""
        with self._store.read() as reader:
            return reader.audit_head()[0]

    def changes(
        self, viewer: Viewer, query: FindingQuery, cursor: int, limit: int = 500
    ) -> tuple[list[Finding], int]:
        """Findings changed after `cursor` that `viewer` may see and `query` matches, and the new cursor."""
        check_query(viewer, query)
        now = self._clock()
        with self._store.read() as reader:
            changes = reader.finding_changes_after(cursor, limit)
            if not changes:
                return [], cursor
            last_change = {finding_id: seq for seq, finding_id in changes}
            ordered = sorted(last_change, key=last_change.__getitem__)
            by_id = {f.finding_id: f for f in reader.findings_by_ids(ordered)}
        shown = [
            view
            for finding_id in ordered
            if (finding := by_id.get(finding_id)) is not None
            and query.matches(finding)
            and (view := visible(viewer, finding, now)) is not None
        ]
        return shown, changes[-1][0]

    def export(self, viewer: Viewer, finding_id: str, export_format: ExportFormat | None) -> ExportDocument:
        """An export document built from `viewer`'s view of a finding it may see (`export_view`).

        The source appears exactly where GetFinding would show it to the same
        caller; exports are documents for onward distribution, so whoever asks
        they carry the effective TLP and no evidence, reporter or patch statuses.
        """
        exporter = self._exporters.get(export_format) if export_format else None
        if exporter is None:
            choices = ", ".join(f.name for f in self._exporters)
            raise InvalidInput([FieldViolation("format", f"choose one of {choices}")])
        now = self._clock()
        with self._store.read() as reader:
            finding = reader.finding(finding_id)
        view = export_view(viewer, finding, now) if finding is not None else None
        if view is None:
            raise NotFound("no such finding")
        return exporter(view, now)

    # --- changes ----------------------------------------------------------------

    def _change(
        self,
        viewer: Viewer,
        finding_id: str,
        expected_revision: int,
        action: str,
        reason: str,
        mutate: Callable[[FindingsUnitOfWork, Finding, datetime], Finding],
        details: dict[str, Any],
    ) -> Finding:
        require(viewer, PRIVILEGED, action)
        errors = Collector()
        why = check_text(reason, "reason", MAX_REASON, errors, required=False)
        if expected_revision < 0:
            errors.add("expected_revision", "must not be negative")
        errors.raise_if_any()
        now = self._clock()
        with self._store.write() as uow:
            current = self._load(uow, finding_id)
            if expected_revision and current.revision != expected_revision:
                raise RevisionConflict(
                    f"the finding is at revision {current.revision}, not {expected_revision}"
                )
            changed = replace(mutate(uow, current, now), updated_at=now, revision=current.revision + 1)
            self._save(
                uow,
                current,
                changed,
                now,
                actor=viewer.principal_id,
                action=action,
                details={**details, "reason": why},
            )
        return changed

    def _save(
        self,
        uow: FindingsUnitOfWork,
        before: Finding,
        after: Finding,
        now: datetime,
        *,
        actor: str,
        action: str,
        details: dict[str, Any],
    ) -> None:
        uow.update_finding(before, after)
        uow.audit(
            at=now,
            actor=actor,
            action=action,
            subject_kind="finding",
            subject_id=after.finding_id,
            details=details,
        )
        if after.published_at is not None:
            uow.emit(finding_notice(after, now, published=before.published_at is None))

    def transition(
        self,
        viewer: Viewer,
        finding_id: str,
        target: FindingState | EmbargoState,
        embargo_end: datetime | None,
        reason: str,
        expected_revision: int,
    ) -> Finding:
        """Move the disclosure or the embargo machine (reviewers and admins)."""
        if isinstance(target, FindingState):
            return self._change(
                viewer,
                finding_id,
                expected_revision,
                "finding.transitioned",
                reason,
                lambda _uow, f, now: lifecycle.transition_report(f, target, now),
                {"to": target.value},
            )
        details: dict[str, Any] = {"embargo_to": target.value}
        if embargo_end is not None:
            details["embargo_end"] = embargo_end.isoformat()
        return self._change(
            viewer,
            finding_id,
            expected_revision,
            "finding.embargo_transitioned",
            reason,
            lambda _uow, f, now: lifecycle.transition_embargo(f, target, embargo_end, now),
            details,
        )

    def update_assessment(
        self,
        viewer: Viewer,
        finding_id: str,
        cvss_v3_vector: str,
        cvss_v4_vector: str,
        cwe_ids: Sequence[str],
        remediation_due: datetime | None,
        reason: str,
        expected_revision: int,
    ) -> Finding:
        """Rescore, re-classify or set the remediation date (reviewers and admins)."""
        return self._change(
            viewer,
            finding_id,
            expected_revision,
            "finding.assessed",
            reason,
            lambda _uow, f, now: lifecycle.assess(
                f,
                cvss_v3_vector=cvss_v3_vector,
                cvss_v4_vector=cvss_v4_vector,
                cwe_ids=cwe_ids,
                remediation_due=remediation_due,
                now=now,
            ),
            {"cvss_v3": cvss_v3_vector, "cvss_v4": cvss_v4_vector, "cwe_ids": list(cwe_ids)},
        )

    def set_aliases(
        self, viewer: Viewer, finding_id: str, aliases: Sequence[str], reason: str, expected_revision: int
    ) -> Finding:
        """Replace a finding's aliases (reviewers and admins): InvalidInput naming `aliases` for a
        malformed one or one another finding holds."""
        errors = Collector()
        checked = check_aliases(aliases, errors)
        errors.raise_if_any()

        def mutate(uow: FindingsUnitOfWork, finding: Finding, _now: datetime) -> Finding:
            for alias in checked:
                holder = uow.alias_holder(alias)
                if holder not in (None, finding.finding_id):
                    errors.add("aliases", f"{alias} is already an alias of finding {holder}")
            errors.raise_if_any()
            return replace(finding, aliases=checked)

        return self._change(
            viewer,
            finding_id,
            expected_revision,
            "finding.aliases_set",
            reason,
            mutate,
            {"aliases": list(checked)},
        )

    def set_references(
        self,
        viewer: Viewer,
        finding_id: str,
        references: Sequence[tuple[ReferenceType | None, str]],
        reason: str,
        expected_revision: int,
    ) -> Finding:
        """Replace a finding's references (reviewers and admins): InvalidInput naming
        `references[i].type` or `references[i].url` for a bad one."""
        errors = Collector()
        checked = check_references(references, errors)
        errors.raise_if_any()
        return self._change(
            viewer,
            finding_id,
            expected_revision,
            "finding.references_set",
            reason,
            lambda _uow, f, _now: replace(f, references=checked),
            {"references": [{"type": r.type.value, "url": r.url} for r in checked]},
        )

    def set_credits(
        self,
        viewer: Viewer,
        finding_id: str,
        credits: Sequence[tuple[str, CreditType | None]],
        reason: str,
        expected_revision: int,
    ) -> Finding:
        """Replace a finding's credits (reviewers and admins): InvalidInput naming `credits[i].name`
        or `credits[i].type` for a bad one. Who sees them is `domain.sharing`'s rule for the source."""
        errors = Collector()
        checked = check_credits(credits, errors)
        errors.raise_if_any()
        return self._change(
            viewer,
            finding_id,
            expected_revision,
            "finding.credits_set",
            reason,
            lambda _uow, f, _now: replace(f, credits=checked),
            {"credits": [{"name": c.name, "type": c.type.value} for c in checked]},
        )

    def assign(
        self, viewer: Viewer, finding_id: str, assignee: str, reason: str, expected_revision: int
    ) -> Finding:
        """Assign a finding to a reviewer principal, or unassign it with "" (reviewers and admins):
        InvalidInput naming `assignee` when it is not a principal id. The clearinghouse keeps no
        directory of principals, so the id is held to the principal-id rule, not looked up."""
        who = assignee.strip()
        if who and not is_valid_principal_id(who):
            raise InvalidInput([FieldViolation("assignee", PRINCIPAL_ID_RULE)])
        return self._change(
            viewer,
            finding_id,
            expected_revision,
            "finding.assigned",
            reason,
            lambda _uow, f, _now: replace(f, assignee=who),
            {"assignee": who},
        )

    def decide_ssvc(
        self,
        viewer: Viewer,
        finding_id: str,
        points: SsvcPoints,
        reason: str,
        expected_revision: int,
    ) -> Finding:
        """Record the caller's SSVC decision for a finding (reviewers and admins): the four decision
        points, each required (InvalidInput naming `exploitation`, `automatable`, `technical_impact`
        or `mission_well_being`); the outcome is computed from them (`domain.findings.ssvc.decide`)."""
        errors = Collector()
        for name, value in zip(SSVC_FIELDS, points, strict=True):
            if value is None:
                errors.add(name, "required")
        errors.raise_if_any()
        exploitation, automatable, technical_impact, mission_well_being = points
        assert exploitation and automatable and technical_impact and mission_well_being

        def mutate(_uow: FindingsUnitOfWork, finding: Finding, now: datetime) -> Finding:
            decision = SsvcDecision(
                exploitation, automatable, technical_impact, mission_well_being, viewer.principal_id, now
            )
            return replace(finding, ssvc=decision)

        outcome = decide(exploitation, automatable, technical_impact, mission_well_being)
        return self._change(
            viewer,
            finding_id,
            expected_revision,
            "finding.ssvc_decided",
            reason,
            mutate,
            {
                "ssvc": {
                    "exploitation": exploitation.name,
                    "automatable": automatable.name,
                    "technical_impact": technical_impact.name,
                    "mission_well_being": mission_well_being.name,
                    "outcome": outcome.name,
                }
            },
        )

    def set_sharing(
        self,
        viewer: Viewer,
        finding_id: str,
        tlp: Tlp | None,
        organisations: Sequence[str],
        sectors: Sequence[str],
        reason: str,
        expected_revision: int,
    ) -> Finding:
        """New TLP label and audience (reviewers and admins); links across the new sharing are removed."""

        def mutate(uow: FindingsUnitOfWork, finding: Finding, now: datetime) -> Finding:
            changed = lifecycle.reshare(finding, tlp, organisations, sectors)
            for other_id in uow.linked_to(finding.finding_id):
                other = self._load(uow, other_id)
                if not lifecycle.same_sharing(other, changed):
                    self._unlink(uow, other, now, actor=viewer.principal_id)
            if changed.link is not None:
                target = self._load(uow, changed.link.target_finding_id)
                if not lifecycle.same_sharing(target, changed):
                    changed = replace(changed, link=None)
            return changed

        return self._change(
            viewer,
            finding_id,
            expected_revision,
            "finding.sharing_changed",
            reason,
            mutate,
            {
                "tlp": tlp.value if tlp else "",
                "organisations": sorted(organisations),
                "sectors": sorted(sectors),
            },
        )

    def preview_sharing(
        self,
        viewer: Viewer,
        finding_id: str,
        tlp: Tlp | None,
        organisations: Sequence[str],
        sectors: Sequence[str],
    ) -> list[str]:
        """The registered organisations whose operators would see the finding, once published, with
        this label and audience (reviewers and admins; nothing changes). The rule is `reaches`, the
        one `may_see` enforces; the label and audience are checked as `set_sharing` checks them."""
        require(viewer, PRIVILEGED, "previewing a finding's sharing")
        errors = Collector()
        if tlp is None:
            errors.add("tlp", "a TLP label is required (CLEAR, GREEN, AMBER, AMBER_STRICT or RED)")
        audience = check_audience(organisations, sectors, errors)
        errors.raise_if_any()
        assert tlp is not None
        self.get(viewer, finding_id)
        return sorted(
            o.name
            for o in self._participants.organisations
            if reaches(tlp, audience, o.name, frozenset(o.sectors))
        )

    def _unlink(self, uow: FindingsUnitOfWork, finding: Finding, now: datetime, *, actor: str) -> None:
        after = replace(finding, link=None, updated_at=now, revision=finding.revision + 1)
        self._save(
            uow,
            finding,
            after,
            now,
            actor=actor,
            action="finding.unlinked",
            details={"reason": "the linked finding's sharing changed"},
        )

    def link(self, viewer: Viewer, finding_id: str, kind: LinkKind, target_id: str, reason: str) -> Finding:
        """Mark a finding duplicate of, subsumed by or merged into another (reviewers and admins)."""

        def mutate(uow: FindingsUnitOfWork, finding: Finding, _now: datetime) -> Finding:
            target = uow.finding(target_id)
            if target is None:
                raise InvalidInput([FieldViolation("target_finding_id", "no such finding")])
            return lifecycle.link(finding, kind, target, uow.linked_to(finding.finding_id))

        return self._change(
            viewer, finding_id, 0, "finding.linked", reason, mutate, {"kind": kind.value, "target": target_id}
        )

    def set_patch_status(
        self,
        viewer: Viewer,
        finding_id: str,
        status: PatchState | None,
        note: str,
        justification: VexJustification | None = None,
    ) -> Finding:
        """Record the caller's organisation's statement for a finding it may see (operators): its
        status, and for NOT_AFFECTED the VEX justification (InvalidInput naming `justification`
        when a not-affected statement lacks one or another status gives one)."""
        require(viewer, frozenset({Role.OPERATOR}), "reporting a patch status")
        errors = Collector()
        if status is None:
            errors.add("status", "choose AFFECTED, NOT_AFFECTED, PATCHED or UNKNOWN")
        else:
            check_justification(status, justification, errors)
        text = check_text(note, "note", MAX_NOTE, errors, required=False)
        errors.raise_if_any()
        assert status is not None
        now = self._clock()
        with self._store.write() as uow:
            finding = uow.finding(finding_id)
            if finding is None or not may_see(viewer, finding, now):
                raise NotFound("no such finding")
            entry = PatchStatusEntry(viewer.organisation, status, text, now, justification)
            uow.set_patch_status(finding_id, entry, viewer.principal_id)
            details = {"organisation": viewer.organisation, "status": status.value}
            if justification is not None:
                details["justification"] = justification.value
            uow.audit(
                at=now,
                actor=viewer.principal_id,
                action="finding.patch_status",
                subject_kind="finding",
                subject_id=finding_id,
                details=details,
            )
            updated = self._load(uow, finding_id)
        return self._visible(viewer, updated, now)

    def end_lapsed_embargoes(self) -> int:
        """End embargoes whose end passed (ACTIVE → EXITED; lapsed proposals → NONE); returns how many."""
        now = self._clock()
        with self._store.write() as uow:
            ended = 0
            for finding_id in uow.embargoes_ended(now):
                current = self._load(uow, finding_id)
                after = lifecycle.end_lapsed_embargo(current, now)
                if after is None:
                    continue
                after = replace(after, updated_at=now, revision=current.revision + 1)
                self._save(
                    uow,
                    current,
                    after,
                    now,
                    actor="system:clearinghouse",
                    action="finding.embargo_ended",
                    details={"embargo_to": after.embargo_state.value},
                )
                ended += 1
        return ended

    def source_identified(self, uow: UnitOfWork, submission_id: str, now: datetime) -> None:
        """Audit, in the caller's unit of work, that the findings of a submission now have a known lab
        (so streams re-evaluate them)."""
        joined = self._store.join(uow)
        for finding_id in joined.findings_of_submission(submission_id):
            joined.audit(
                at=now,
                actor="system:intake",
                action="finding.source_identified",
                subject_kind="finding",
                subject_id=finding_id,
                details={"submission_id": submission_id},
            )
