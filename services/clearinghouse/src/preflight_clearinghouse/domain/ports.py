"""What the use cases of both subdomains need of a unit of work, as Protocols.

Each subdomain has its store (`reviews.ports.ReviewsStore`, `findings.ports.FindingsStore`), both
over one database: a unit of work commits its state changes, audit entries, applied event ids and
outbox records together — or none of them — and write transactions are serialised, so that the
audit chain has a total order and every read-modify-write is safe against concurrent writers. A
findings unit of work may join another unit of work's transaction (`FindingsStore.join`): a
benchmark result's review and its candidate findings are one change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from preflight_clearinghouse.domain.events import DomainEvent


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
