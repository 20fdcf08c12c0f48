"""The idempotent consumer: remember applied event ids in the effect's own transaction."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, MetaData, String, Table, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

PROCESSED_EVENTS = "processed_events"


def processed_events_table(metadata: MetaData) -> Table:
    """Add `processed_events(consumer, event_id, processed_at)` to a service's metadata."""
    return Table(
        PROCESSED_EVENTS,
        metadata,
        Column("consumer", String(200), primary_key=True),
        Column("event_id", String(200), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def claim_event(session: Session | Connection, table: Table, consumer: str, event_id: str) -> bool:
    """Record that `consumer` applies `event_id`, in the caller's transaction.

    Returns False when the event was already applied (the caller then does
    nothing). Call it in the same transaction as the effect: if that
    transaction rolls back, the claim goes with it and a redelivery applies
    the event again. Concurrent claims of one id by two consumers of the same
    group conflict on the primary key at commit, so only one effect lands.
    """
    seen = session.execute(
        select(table.c.event_id).where(table.c.consumer == consumer, table.c.event_id == event_id)
    ).first()
    if seen is not None:
        return False
    session.execute(insert(table).values(consumer=consumer, event_id=event_id))
    return True
