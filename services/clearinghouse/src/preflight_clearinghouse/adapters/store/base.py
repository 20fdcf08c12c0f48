"""What the reviews and findings stores share: one database, its serialised write transactions, the
audit chain and the outbox.

Writes are serialised: every write transaction first takes the audit log's
head (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: `SELECT … FOR UPDATE` on the
head row). The audit chain needs a total order anyway, and it makes every
read-modify-write in a transaction (dedup, transitions, review state) safe
against concurrent writers, in this process or another.

A unit of work commits the state change, its audit entries, the ids of the
events it applied (idempotent consumers) and the outbox records of the events
it raised, all in one transaction — or none of them. The units of work of both
stores that take part in one transaction (`FindingsStore.join`) share its audit
chain head and its queued events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from preflight_common.envelope import KafkaRecord
from preflight_common.outbox import enqueue
from sqlalchemy import Engine, bindparam, event, insert, select, update
from sqlalchemy.engine import Connection

from preflight_clearinghouse.adapters import tables as s
from preflight_clearinghouse.domain.audit import AuditEntry, entry_hash
from preflight_clearinghouse.domain.events import DomainEvent

EventEncoder = Callable[[DomainEvent], tuple[str, KafkaRecord]]
"""Turns a domain event into (topic, record) for the outbox."""

AUDIT_HEAD_ID = 1

_INSERT_AUDIT = insert(s.audit_log)
_ADVANCE_HEAD = (
    update(s.audit_head)
    .where(s.audit_head.c.id == AUDIT_HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def loads(text: str) -> Any:
    return json.loads(text)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def audit_entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject_kind=row.subject_kind,
        subject_id=row.subject_id,
        details=loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class Transaction:
    """One write transaction, whichever units of work take part in it: the audit chain head they
    extend and the events they queue for the outbox."""

    def __init__(self, conn: Connection, encoder: EventEncoder) -> None:
        self.conn = conn
        self.encoder = encoder
        self.records: list[tuple[str, KafkaRecord]] = []
        self.head: tuple[int, str] | None = None

    def flush_events(self) -> None:
        for topic, record in self.records:
            enqueue(self.conn, s.outbox, topic, record)
        self.records.clear()


class SqlReader:
    """Queries over one connection (a consistent snapshot while its transaction lasts)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def audit_head(self) -> tuple[int, str]:
        row = self.conn.execute(select(s.audit_head).where(s.audit_head.c.id == AUDIT_HEAD_ID)).one()
        return int(row.seq), str(row.hash)


class SqlUnitOfWork(SqlReader):
    """A unit of work in a `Transaction`: reads see the transaction's writes."""

    def __init__(self, transaction: Transaction) -> None:
        super().__init__(transaction.conn)
        self.transaction = transaction

    def emit(self, domain_event: DomainEvent) -> None:
        """Queue an event for the outbox; it is written when the transaction commits.

        It is encoded now, so its record carries the trace context of the span that emitted it.
        """
        self.transaction.records.append(self.transaction.encoder(domain_event))

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
        prev_seq, prev_hash = self.transaction.head or self.audit_head()
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
                "details": dumps(body),
                "prev_hash": prev_hash,
                "hash": digest,
            },
        )
        self.conn.execute(_ADVANCE_HEAD, {"new_seq": seq, "new_hash": digest})
        self.transaction.head = (seq, digest)
        return seq


class Database:
    """Opens snapshots and serialised write transactions on one engine (one per process: both
    stores share it)."""

    def __init__(self, engine: Engine, encoder: EventEncoder) -> None:
        self.engine = engine
        self._encoder = encoder
        self._sqlite = engine.dialect.name == "sqlite"
        if self._sqlite:
            _take_over_sqlite_transactions(engine)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in a read-only snapshot."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """A serialised write transaction; commits, with its queued events, when the block ends
        without an exception."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(preflight_write=True)
            with conn.begin():
                if not self._sqlite:
                    conn.execute(
                        select(s.audit_head.c.seq).where(s.audit_head.c.id == AUDIT_HEAD_ID).with_for_update()
                    )
                transaction = Transaction(conn, self._encoder)
                yield transaction
                transaction.flush_events()


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
