"""The notifier's store: every read and write of its tables, on a caller's connection.

`SqlStore` works on an open `Connection` inside the caller's transaction, so a use
case composes its methods into one atomic unit (an alert, its outbox record, its
notifications and its reminder's new status commit together or not at all);
`UnitOfWork` opens such transactions for the use cases (`domain.ports.UnitOfWork`).

Locking: on PostgreSQL `lock_*` methods use `FOR UPDATE SKIP LOCKED`, so
concurrent notifier processes share work without waiting on each other; on
SQLite there is one writer at a time (`write_transaction` takes the write
lock up front), so no lock clause is needed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any

from preflight_common.envelope import KafkaRecord
from preflight_common.idempotency import claim_event
from preflight_common.outbox import enqueue
from sqlalchemy import Connection, Engine, Insert, Row, Table, bindparam, event, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from preflight_notifier.adapters import tables as t
from preflight_notifier.adapters.codec import (
    alert_from_bytes,
    alert_to_proto,
    details_from_json,
    details_to_json,
)
from preflight_notifier.domain.alerts import Alert
from preflight_notifier.domain.delivery import ClaimedDelivery, DueGroup, NewDelivery
from preflight_notifier.domain.matchers import Matcher
from preflight_notifier.domain.model import Deadline, DeadlineKind, DeadlineState, Details, Severity
from preflight_notifier.domain.routing import Notification
from preflight_notifier.domain.schedule import PlannedReminder, Stage, StoredReminder
from preflight_notifier.domain.silences import Silence

log = logging.getLogger(__name__)

_WRITE = "preflight_write"


def prepare_engine(engine: Engine) -> Engine:
    """Make `write_transaction` take SQLite's write lock at BEGIN (one writer; no lost updates).

    pysqlite otherwise starts a transaction lazily at the first write, so a
    read-then-write unit could act on rows another writer just changed.
    """
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[SqlStore]:
    """A transaction that writes: committed on success, rolled back on any exception."""
    with engine.connect().execution_options(**{_WRITE: True}) as conn, conn.begin():
        yield SqlStore(conn)


@contextmanager
def reading(engine: Engine) -> Iterator[SqlStore]:
    """Reads on one connection (its transaction is rolled back at the end: nothing is written)."""
    with engine.connect() as conn:
        yield SqlStore(conn)


class UnitOfWork:
    """The use cases' write transactions on `engine` (`domain.ports.UnitOfWork`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __call__(self) -> AbstractContextManager[SqlStore]:
        return write_transaction(self._engine)


def _insert_ignore(conn: Connection, table: Table, keys: Sequence[str], rows: list[dict[str, Any]]) -> None:
    """Insert rows, skipping those whose `keys` already exist (PostgreSQL and SQLite)."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement: Insert = dialect.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    conn.execute(statement, rows)


def _deadline(row: Row[Any]) -> Deadline:
    return Deadline(
        deadline_id=row.deadline_id,
        kind=DeadlineKind(row.kind),
        subject_id=row.subject_id,
        due_at=row.due_at,
        version=row.version,
        source_version=row.source_version,
        state=DeadlineState(row.state),
        details=details_from_json(row.audience, row.tlp, row.title, row.facts),
    )


def _silence(row: Row[Any]) -> Silence | None:
    """The silence in a row; None (logged) for one whose matchers are not valid RE2 any more: it
    was stored before regular expressions were RE2, and suppresses nothing rather than failing
    every list and dispatch."""
    try:
        matchers = tuple(Matcher.parse(m) for m in json.loads(row.matchers))
    except ValueError:
        log.warning("silence %s is ignored: a matcher is not a valid RE2 regular expression", row.silence_id)
        return None
    return Silence(
        silence_id=row.silence_id,
        matchers=matchers,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        organisation=row.organisation,
        comment=row.comment,
        created_at=row.created_at,
    )


class SqlStore:
    """Every read and write of the notifier's tables, on one connection inside its caller's
    transaction (`domain.ports.Store`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def claim_event(self, consumer: str, event_id: str) -> bool:
        return claim_event(self._conn, t.processed_events, consumer, event_id)

    def enqueue(self, topic: str, record: KafkaRecord) -> None:
        enqueue(self._conn, t.outbox, topic, record)

    # --- deadlines and reminders -----------------------------------------------------------------

    def load_deadline(self, deadline_id: str) -> Deadline | None:
        """The deadline, locked for this transaction on PostgreSQL (waits for a holder)."""
        row = self._conn.execute(
            select(t.deadlines).where(t.deadlines.c.deadline_id == deadline_id).with_for_update()
        ).first()
        return _deadline(row) if row else None

    def deadline_details(self, deadline_ids: Iterable[str]) -> dict[str, Details]:
        """What alerts about these deadlines may say now, and to whom (unlocked read)."""
        ids = sorted(set(deadline_ids))
        if not ids:
            return {}
        d = t.deadlines
        rows = self._conn.execute(
            select(d.c.deadline_id, d.c.audience, d.c.tlp, d.c.title, d.c.facts).where(
                d.c.deadline_id.in_(ids)
            )
        )
        return {
            row.deadline_id: details_from_json(row.audience, row.tlp, row.title, row.facts) for row in rows
        }

    def save_deadline(self, deadline: Deadline, now: datetime, traceparent: str | None = None) -> None:
        """Insert or update the deadline; `traceparent` (when given) replaces the trace its alerts
        continue."""
        audience, tlp, title, facts = details_to_json(deadline.details)
        values = {
            "kind": deadline.kind.value,
            "subject_id": deadline.subject_id,
            "due_at": deadline.due_at,
            "version": deadline.version,
            "source_version": deadline.source_version,
            "state": deadline.state.value,
            "audience": audience,
            "tlp": tlp,
            "title": title,
            "facts": facts,
            "updated_at": now,
        }
        if traceparent is not None:
            values["traceparent"] = traceparent
        updated = self._conn.execute(
            update(t.deadlines).where(t.deadlines.c.deadline_id == deadline.deadline_id).values(**values)
        )
        if updated.rowcount == 0:
            self._conn.execute(insert(t.deadlines).values(deadline_id=deadline.deadline_id, **values))

    def deadline_traceparents(self, deadline_ids: Iterable[str]) -> dict[str, str]:
        """Deadline id → the traceparent kept with it, for those that have one."""
        ids = sorted(set(deadline_ids))
        if not ids:
            return {}
        d = t.deadlines
        rows = self._conn.execute(
            select(d.c.deadline_id, d.c.traceparent).where(
                d.c.deadline_id.in_(ids), d.c.traceparent.is_not(None)
            )
        )
        return {row.deadline_id: row.traceparent for row in rows}

    def cancel_pending_reminders(self, deadline_id: str) -> int:
        r = t.reminders
        result = self._conn.execute(
            update(r).where(r.c.deadline_id == deadline_id, t.PENDING).values(status="cancelled")
        )
        return result.rowcount

    def add_reminders(self, deadline_id: str, version: int, planned: Iterable[PlannedReminder]) -> None:
        rows = [
            {
                "deadline_id": deadline_id,
                "version": version,
                "threshold": p.threshold,
                "severity": p.severity.value,
                "due_at": p.due_at,
                "status": "pending",
            }
            for p in planned
        ]
        if rows:
            self._conn.execute(insert(t.reminders), rows)

    def due_deadline_ids(self, now: datetime, limit: int) -> list[str]:
        """Deadlines with a pending reminder due at `now`, earliest first (reads the partial due
        index only)."""
        r = t.reminders
        rows = self._conn.execute(
            select(r.c.deadline_id).where(t.PENDING, r.c.due_at <= now).order_by(r.c.due_at).limit(limit)
        ).scalars()
        return list(dict.fromkeys(rows))

    def lock_deadlines(self, deadline_ids: Sequence[str]) -> list[Deadline]:
        """Claim these deadlines for this transaction; those another process holds are skipped."""
        if not deadline_ids:
            return []
        rows = self._conn.execute(
            select(t.deadlines)
            .where(t.deadlines.c.deadline_id.in_(deadline_ids))
            .with_for_update(skip_locked=True)
        ).all()
        return [_deadline(row) for row in rows]

    def due_reminders(self, deadline_ids: Sequence[str], now: datetime) -> dict[str, list[StoredReminder]]:
        """The pending reminders due at `now` of (claimed) deadlines, earliest first, by deadline."""
        found: dict[str, list[StoredReminder]] = {d: [] for d in deadline_ids}
        if not deadline_ids:
            return found
        r = t.reminders
        rows = self._conn.execute(
            select(r.c.id, r.c.deadline_id, r.c.version, r.c.threshold, r.c.severity, r.c.due_at)
            .where(r.c.deadline_id.in_(list(deadline_ids)), t.PENDING, r.c.due_at <= now)
            .order_by(r.c.due_at, r.c.id)
        ).all()
        for row in rows:
            planned = PlannedReminder(
                row.threshold, Stage.of(row.threshold), row.due_at, Severity(row.severity)
            )
            found[row.deadline_id].append(StoredReminder(row.id, row.version, planned))
        return found

    def finish_reminders(self, outcomes: Sequence[tuple[int, str, str | None]], now: datetime) -> None:
        """Set (reminder id, status, alert id) for each reminder, stamped `now`."""
        if not outcomes:
            return
        r = t.reminders
        self._conn.execute(
            update(r)
            .where(r.c.id == bindparam("rid"))
            .values(status=bindparam("new_status"), alert_id=bindparam("aid"), fired_at=now),
            [{"rid": rid, "new_status": status, "aid": aid} for rid, status, aid in outcomes],
        )

    # --- alerts and acknowledgements -------------------------------------------------------------

    def insert_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Record fired alerts; returns those recorded now (an id already recorded is skipped)."""
        if not alerts:
            return []
        a = t.alerts
        known = set(
            self._conn.execute(
                select(a.c.alert_id).where(a.c.alert_id.in_([x.alert_id for x in alerts]))
            ).scalars()
        )
        fresh = list({x.alert_id: x for x in alerts if x.alert_id not in known}.values())
        if fresh:
            self._conn.execute(
                insert(a),
                [
                    {
                        "alert_id": x.alert_id,
                        "kind": x.kind.value,
                        "subject_id": x.subject_id,
                        "fired_at": x.fired_at,
                        "payload": alert_to_proto(x).SerializeToString(),
                    }
                    for x in fresh
                ],
            )
        return fresh

    def alerts_by_id(self, alert_ids: Iterable[str]) -> dict[str, Alert]:
        ids = list(alert_ids)
        if not ids:
            return {}
        rows = self._conn.execute(
            select(t.alerts.c.alert_id, t.alerts.c.payload).where(t.alerts.c.alert_id.in_(ids))
        )
        return {row.alert_id: alert_from_bytes(row.payload) for row in rows}

    def alerts_of_subjects(self, subject_ids: Iterable[str]) -> list[Alert]:
        ids = sorted(set(subject_ids))
        if not ids:
            return []
        rows = self._conn.execute(select(t.alerts.c.payload).where(t.alerts.c.subject_id.in_(ids))).scalars()
        return [alert_from_bytes(payload) for payload in rows]

    def alerts_page(
        self, *, before: int | None, limit: int, kinds: Sequence[str] = (), subject_id: str = ""
    ) -> list[tuple[int, Alert]]:
        """(sequence, alert) pairs, newest first, below sequence `before` when given."""
        a = t.alerts
        query = select(a.c.sequence, a.c.payload).order_by(a.c.sequence.desc()).limit(limit)
        if before is not None:
            query = query.where(a.c.sequence < before)
        if kinds:
            query = query.where(a.c.kind.in_(kinds))
        if subject_id:
            query = query.where(a.c.subject_id == subject_id)
        return [(row.sequence, alert_from_bytes(row.payload)) for row in self._conn.execute(query)]

    def sequences_after(self, after: int, limit: int) -> list[int]:
        """Alert sequence numbers above `after`, ascending."""
        a = t.alerts
        query = select(a.c.sequence).where(a.c.sequence > after).order_by(a.c.sequence).limit(limit)
        return list(self._conn.execute(query).scalars())

    def alerts_at(self, sequences: Sequence[int], kinds: Sequence[str] = ()) -> list[tuple[int, Alert]]:
        """The alerts with these sequence numbers (of these kinds, when given), ascending."""
        if not sequences:
            return []
        a = t.alerts
        query = (
            select(a.c.sequence, a.c.payload).where(a.c.sequence.in_(list(sequences))).order_by(a.c.sequence)
        )
        if kinds:
            query = query.where(a.c.kind.in_(kinds))
        return [(row.sequence, alert_from_bytes(row.payload)) for row in self._conn.execute(query)]

    def last_sequence(self) -> int:
        return int(self._conn.execute(select(func.coalesce(func.max(t.alerts.c.sequence), 0))).scalar_one())

    def sequence_of(self, alert_id: str) -> int | None:
        return self._conn.execute(select(t.alerts.c.sequence).where(t.alerts.c.alert_id == alert_id)).scalar()

    def acknowledge(
        self, alert_id: str, principal_id: str, organisation: str, comment: str, now: datetime
    ) -> None:
        """Record the principal's acknowledgement (a repeated one keeps the first)."""
        _insert_ignore(
            self._conn,
            t.acknowledgements,
            ("alert_id", "principal_id"),
            [
                {
                    "alert_id": alert_id,
                    "principal_id": principal_id,
                    "organisation": organisation,
                    "comment": comment,
                    "acknowledged_at": now,
                }
            ],
        )

    def acknowledgements(
        self, alert_ids: Sequence[str], organisation: str
    ) -> dict[str, tuple[datetime, str]]:
        """For each acknowledged alert: (when, by whom) of the first acknowledgement in `organisation`."""
        if not alert_ids or not organisation:
            return {}
        k = t.acknowledgements
        rows = self._conn.execute(
            select(k.c.alert_id, k.c.acknowledged_at, k.c.principal_id)
            .where(k.c.alert_id.in_(list(alert_ids)), k.c.organisation == organisation)
            .order_by(k.c.acknowledged_at)
        )
        first: dict[str, tuple[datetime, str]] = {}
        for row in rows:
            first.setdefault(row.alert_id, (row.acknowledged_at, row.principal_id))
        return first

    # --- groups and notifications ----------------------------------------------------------------

    def add_notifications(self, notifications: Sequence[Notification], now: datetime) -> None:
        """Put alerts into their groups; a group without a pending flush gets one.

        The flush comes `group_wait` after its first alert, and no sooner than
        `group_interval` after the group's last flush. Groups are locked in key
        order (PostgreSQL), so concurrent writers cannot deadlock on them.
        """
        if not notifications:
            return
        g = t.alert_groups
        first: dict[str, Notification] = {}
        for n in sorted(notifications, key=lambda n: n.group_key):
            first.setdefault(n.group_key, n)
        _insert_ignore(
            self._conn,
            g,
            ("group_key",),
            [
                {
                    "group_key": n.group_key,
                    "receiver": n.receiver,
                    "recipient": n.recipient,
                    "group_labels": json.dumps(dict(n.group_labels), sort_keys=True),
                }
                for n in first.values()
            ],
        )
        groups = self._conn.execute(
            select(g.c.group_key, g.c.next_flush_at, g.c.last_flush_at)
            .where(g.c.group_key.in_(list(first)))
            .order_by(g.c.group_key)
            .with_for_update()
        ).all()
        _insert_ignore(
            self._conn,
            t.notifications,
            ("group_key", "alert_id"),
            [
                {"alert_id": n.alert_id, "group_key": n.group_key, "status": "pending", "created_at": now}
                for n in notifications
            ],
        )
        flushes = []
        for group in groups:
            if group.next_flush_at is None:
                n = first[group.group_key]
                flush_at = now + n.group_wait
                if group.last_flush_at is not None:
                    flush_at = max(flush_at, group.last_flush_at + n.group_interval)
                flushes.append({"key": group.group_key, "flush_at": flush_at})
        if flushes:
            self._conn.execute(
                update(g)
                .where(g.c.group_key == bindparam("key"))
                .values(next_flush_at=bindparam("flush_at")),
                flushes,
            )

    def lock_due_groups(self, now: datetime, limit: int) -> list[DueGroup]:
        g = t.alert_groups
        rows = self._conn.execute(
            select(g.c.group_key, g.c.receiver, g.c.recipient, g.c.group_labels)
            .where(t.FLUSH_DUE, g.c.next_flush_at <= now)
            .order_by(g.c.next_flush_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        return [
            DueGroup(row.group_key, row.receiver, row.recipient, json.loads(row.group_labels)) for row in rows
        ]

    def pending_notifications(self, group_key: str) -> list[tuple[int, str]]:
        """(notification id, alert id) of a group's pending notifications, oldest first."""
        n = t.notifications
        rows = self._conn.execute(
            select(n.c.id, n.c.alert_id).where(n.c.group_key == group_key, t.PENDING).order_by(n.c.id)
        ).all()
        return [(row.id, row.alert_id) for row in rows]

    def finish_notifications(self, ids: Sequence[int], status: str, delivery_id: str | None) -> None:
        if ids:
            n = t.notifications
            self._conn.execute(
                update(n).where(n.c.id.in_(list(ids))).values(status=status, delivery_id=delivery_id)
            )

    def finish_group(self, group_key: str, now: datetime) -> None:
        g = t.alert_groups
        self._conn.execute(
            update(g).where(g.c.group_key == group_key).values(next_flush_at=None, last_flush_at=now)
        )

    # --- silences --------------------------------------------------------------------------------

    def insert_silence(self, silence: Silence) -> None:
        self._conn.execute(
            insert(t.silences).values(
                silence_id=silence.silence_id,
                matchers=json.dumps([str(m) for m in silence.matchers]),
                starts_at=silence.starts_at,
                ends_at=silence.ends_at,
                created_by=silence.created_by,
                organisation=silence.organisation,
                comment=silence.comment,
                created_at=silence.created_at,
            )
        )

    def load_silence(self, silence_id: str) -> Silence | None:
        row = self._conn.execute(select(t.silences).where(t.silences.c.silence_id == silence_id)).first()
        return _silence(row) if row else None

    def silences(self, *, organisation: str | None, unexpired_at: datetime | None) -> list[Silence]:
        """Silences newest first; only one organisation's when given; only unexpired ones at a
        given instant."""
        s = t.silences
        query = select(s).order_by(s.c.created_at.desc(), s.c.silence_id)
        if organisation is not None:
            query = query.where(s.c.organisation == organisation)
        if unexpired_at is not None:
            query = query.where(s.c.ends_at > unexpired_at)
        return [silence for row in self._conn.execute(query) if (silence := _silence(row)) is not None]

    def end_silence(self, silence: Silence, now: datetime) -> None:
        """Expire a silence now (a pending one never starts)."""
        self._conn.execute(
            update(t.silences)
            .where(t.silences.c.silence_id == silence.silence_id)
            .values(ends_at=now, starts_at=min(silence.starts_at, now))
        )

    # --- deliveries and their log ----------------------------------------------------------------

    def add_delivery(self, delivery: NewDelivery, now: datetime) -> None:
        self._conn.execute(
            insert(t.deliveries).values(
                delivery_id=delivery.delivery_id,
                receiver=delivery.receiver,
                recipient=delivery.recipient,
                group_key=delivery.group_key,
                alert_ids=json.dumps(list(delivery.alert_ids)),
                subject=delivery.subject,
                body=delivery.body,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
                last_error="",
            )
        )

    def claim_deliveries(self, now: datetime, lease: timedelta, limit: int) -> list[ClaimedDelivery]:
        """Start the next attempt of due deliveries: count it, lease it, and log it as started.

        The lease (`next_attempt_at = now + lease`) hands the delivery to another
        worker if this one dies before recording the result: at worst one
        duplicate send, never a lost one.
        """
        d = t.deliveries
        rows = self._conn.execute(
            select(d.c.delivery_id, d.c.receiver, d.c.recipient, d.c.subject, d.c.body, d.c.attempts)
            .where(t.PENDING, d.c.next_attempt_at <= now)
            .order_by(d.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return []
        self._conn.execute(
            update(d)
            .where(d.c.delivery_id == bindparam("did"))
            .values(attempts=bindparam("n"), next_attempt_at=now + lease, updated_at=now),
            [{"did": row.delivery_id, "n": row.attempts + 1} for row in rows],
        )
        self._conn.execute(
            insert(t.delivery_log),
            [
                {
                    "delivery_id": row.delivery_id,
                    "attempt": row.attempts + 1,
                    "receiver": row.receiver,
                    "recipient": row.recipient,
                    "status": "started",
                    "error": "",
                    "started_at": now,
                }
                for row in rows
            ],
        )
        return [
            ClaimedDelivery(
                row.delivery_id, row.receiver, row.recipient, row.subject, row.body, row.attempts + 1
            )
            for row in rows
        ]

    def record_attempt(
        self,
        claimed: ClaimedDelivery,
        *,
        result: str,
        status_code: int | None,
        error: str,
        now: datetime,
        next_attempt_at: datetime | None,
    ) -> None:
        """Log how an attempt ended and move the delivery on (pending again at `next_attempt_at`,
        or final)."""
        log = t.delivery_log
        self._conn.execute(
            update(log)
            .where(log.c.delivery_id == claimed.delivery_id, log.c.attempt == claimed.attempt)
            .values(status=result, status_code=status_code, error=error, finished_at=now)
        )
        d = t.deliveries
        final = {"delivered": "delivered", "failed": "failed"}.get(result, "pending")
        self._conn.execute(
            update(d)
            .where(d.c.delivery_id == claimed.delivery_id, d.c.attempts == claimed.attempt)
            .values(
                status=final,
                next_attempt_at=next_attempt_at or now,
                updated_at=now,
                last_error=error,
            )
        )
