"""Transactional outbox: an event is stored with the state change that caused it, then relayed.

`enqueue` writes the record in the caller's transaction; `OutboxRelay` publishes
unsent rows in insertion order and marks them sent. Delivery is at-least-once
(a crash after the broker's ack and before the mark republishes the row; the
event id is unchanged, so idempotent consumers apply it once).

Replicas of a service share its PostgreSQL database and each runs a relay: a
batch is read, published and marked under a transaction-scoped advisory lock,
so one relay at a time publishes and the others skip their turn (no row is
published twice, and the topic keeps the outbox order). A SQLite database has
one process, hence one relay.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session

from preflight_common.envelope import KafkaRecord
from preflight_common.liveness import Liveness
from preflight_common.producer import EventPublisher, PublishError

log = logging.getLogger(__name__)

OUTBOX = "outbox"
# The PostgreSQL advisory lock (per database) a relay holds while it publishes a batch.
RELAY_LOCK = 0x707265666C696768  # "preflig"
# Unsent rows as the relay reads them: id, topic, key, value, headers.
_Batch = Sequence[Row[Any, Any, Any, Any, Any]]


def outbox_table(metadata: MetaData) -> Table:
    """Add the `outbox` table to a service's metadata."""
    return Table(
        OUTBOX,
        metadata,
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
        Column("topic", String(255), nullable=False),
        Column("event_id", String(200), nullable=False),
        Column("event_type", String(255), nullable=False),
        Column("key", LargeBinary, nullable=False),
        Column("value", LargeBinary, nullable=False),
        Column("headers", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("sent_at", DateTime(timezone=True), nullable=True, index=True),
    )


def enqueue(session: Session | Connection, table: Table, topic: str, record: KafkaRecord) -> None:
    """Store `record` for publication to `topic`, in the caller's transaction."""
    # Values as parameters, not baked into the statement: SQLAlchemy compiles it once per table.
    session.execute(insert(table), outbox_row(topic, record))


def outbox_row(topic: str, record: KafkaRecord) -> dict[str, object]:
    """The outbox table's values storing `record` for publication to `topic`: to insert many rows
    in one statement (`connection.execute(insert(table), [row, ...])`), in the caller's transaction."""
    if record.attributes is None:
        raise ValueError("record has no CloudEvents attributes; build it with encode_event")
    return {
        "topic": topic,
        "event_id": record.attributes.id,
        "event_type": record.attributes.type,
        "key": record.key,
        "value": record.value,
        "headers": json.dumps([[name, value.decode()] for name, value in record.headers]),
    }


class OutboxRelay:
    """Publishes unsent outbox rows in order; relays sharing a database take turns."""

    def __init__(
        self, engine: Engine, table: Table, publisher: EventPublisher, batch_size: int = 200
    ) -> None:
        self._engine = engine
        self._table = table
        self._publisher = publisher
        self._batch_size = batch_size

    def pending(self) -> int:
        """How many rows wait to be published."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(self._table.c.sent_at.is_(None))).scalar_one())

    def run_once(self) -> int:
        """Publish one batch; return how many rows were published.

        Raises PublishError when the broker refuses; rows published before the
        failure are marked sent, the rest stay pending in order. Returns 0 at
        once while another relay of the same PostgreSQL database is publishing.
        """
        with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                with conn.begin():
                    if not conn.execute(select(func.pg_try_advisory_xact_lock(RELAY_LOCK))).scalar_one():
                        return 0
                    rows = self._unsent(conn)
                    published, failure = self._publish(rows)
                    self._mark_sent(conn, rows[:published])
            else:
                # One relay per SQLite database. The read ends before the publish: a snapshot held
                # across it could not become a write once another writer had committed.
                with conn.begin():
                    rows = self._unsent(conn)
                published, failure = self._publish(rows)
                with conn.begin():
                    self._mark_sent(conn, rows[:published])
        if failure is not None:
            raise failure
        return published

    def _unsent(self, conn: Connection) -> _Batch:
        t = self._table
        return conn.execute(
            select(t.c.id, t.c.topic, t.c.key, t.c.value, t.c.headers)
            .where(t.c.sent_at.is_(None))
            .order_by(t.c.id)
            .limit(self._batch_size)
        ).all()

    def _publish(self, rows: _Batch) -> tuple[int, PublishError | None]:
        """Publish `rows` in order; how many leading ones the broker acknowledged, and the failure."""
        if not rows:
            return 0, None
        records = [
            (
                row.topic,
                KafkaRecord(
                    key=row.key,
                    value=row.value,
                    headers=[(name, value.encode()) for name, value in json.loads(row.headers)],
                ),
            )
            for row in rows
        ]
        try:
            # Send in order and wait for every ack; idempotent producer keeps per-partition order.
            self._publisher.publish_many(records)
        except PublishError as exc:
            return exc.acknowledged, exc
        return len(rows), None

    def _mark_sent(self, conn: Connection, rows: _Batch) -> None:
        if rows:
            t = self._table
            conn.execute(update(t).where(t.c.id.in_([row.id for row in rows])).values(sent_at=func.now()))

    def run_forever(
        self,
        stop: threading.Event,
        interval: float = 0.2,
        max_backoff: float = 10.0,
        *,
        liveness: Liveness | None = None,
    ) -> None:
        """Relay until `stop` is set, backing off while the broker is unavailable; each round
        beats `liveness` as "outbox relay". A round that published a full batch is followed at once
        by the next; any other pauses `interval` seconds first."""
        backoff = interval
        while not stop.is_set():
            if liveness is not None:
                liveness.beat("outbox relay", max(interval, max_backoff))
            try:
                sent = self.run_once()
                backoff = interval
                if sent == self._batch_size:
                    # A full batch: more may be waiting. After a partial one the relay pauses, so
                    # that under a steady trickle each round takes a batch rather than a row or two
                    # (every round that publishes is a write transaction, which on SQLite waits
                    # for, and holds up, the service's other writers).
                    continue
            except PublishError as exc:
                log.warning("outbox relay: broker unavailable, retrying in %.1fs: %s", backoff, exc)
                backoff = min(max_backoff, backoff * 2)
            except Exception:
                log.exception("outbox relay failed; retrying in %.1fs", backoff)
                backoff = min(max_backoff, backoff * 2)
            stop.wait(backoff)
        if liveness is not None:
            liveness.end("outbox relay")
