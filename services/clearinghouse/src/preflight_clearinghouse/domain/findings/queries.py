"""Filters of finding lists and streams."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from preflight_clearinghouse.domain.findings.finding import Finding, LinkKind, Severity
from preflight_clearinghouse.domain.findings.workflow import FindingState


@dataclass(frozen=True)
class FindingQuery:
    """What a caller asks for; empty fields match everything. Merged findings are never listed."""

    sector: str = ""
    severities: frozenset[Severity] = frozenset()
    states: frozenset[FindingState] = frozenset()
    since: datetime | None = None
    assignee: str = ""
    """Only findings assigned to this reviewer principal (a filter for reviewers and admins only:
    `service_layer.findings` refuses it to anyone else, whom assignees are not shown)."""

    def matches(self, finding: Finding) -> bool:
        """The same test the store's list query makes, for findings already in hand (streams)."""
        if finding.link is not None and finding.link.kind is LinkKind.MERGED_INTO:
            return False
        if self.sector and self.sector not in finding.audience.sectors:
            return False
        if self.severities and finding.cvss.severity not in self.severities:
            return False
        if self.states and finding.state not in self.states:
            return False
        if self.assignee and finding.assignee != self.assignee:
            return False
        return self.since is None or finding.updated_at >= self.since
