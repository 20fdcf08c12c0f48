"""What the findings registry's use cases need, as Protocols: the findings store (findings with
their audiences, aliases and packages, patch statuses, comments, attachments, and the audit entries
about findings)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from preflight_clearinghouse.domain.audit import AuditEntry
from preflight_clearinghouse.domain.findings.attachments import Attachment
from preflight_clearinghouse.domain.findings.comments import Comment
from preflight_clearinghouse.domain.findings.finding import Finding, PatchStatusEntry
from preflight_clearinghouse.domain.findings.queries import FindingQuery
from preflight_clearinghouse.domain.ports import AuditReader, UnitOfWork
from preflight_clearinghouse.domain.sharing import Viewer


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
        """The first unlinked finding with this fingerprint and sharing key (`finding.sharing_key`)."""
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
