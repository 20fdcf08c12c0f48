"""What the clearinghouse tells other services; written to the outbox with the change that caused it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from preflight_clearinghouse.domain.audit import SignedCheckpoint
from preflight_clearinghouse.domain.findings.finding import Finding
from preflight_clearinghouse.domain.reviews.reports import IssuedReport
from preflight_clearinghouse.domain.sharing import audience_view


@dataclass(frozen=True)
class ReportIssued:
    """A report version was issued (→ ReviewReportReady)."""

    report: IssuedReport


@dataclass(frozen=True)
class FindingNoticeEvent:
    """A finding was published, or a published finding changed (→ FindingPublished / FindingUpdated).

    `notice` is the audience view of the finding — built only by `finding_notice`.
    """

    published: bool
    notice: Finding


def finding_notice(finding: Finding, now: datetime, *, published: bool) -> FindingNoticeEvent:
    """The event for a finding's audience: its audience view (effective TLP; source only with consent)."""
    return FindingNoticeEvent(published=published, notice=audience_view(finding, now))


@dataclass(frozen=True)
class CheckpointSigned:
    """A checkpoint of the audit chain head was signed (→ AuditCheckpoint)."""

    signed: SignedCheckpoint


DomainEvent = ReportIssued | FindingNoticeEvent | CheckpointSigned
