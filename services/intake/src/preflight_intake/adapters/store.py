"""Intake's store: submissions, their status history, sealed credentials, and the outbox.

`IntakeStore.transaction()` is the unit of work: everything done through the
`Transaction` it yields — rows, status history, outbox events, claimed event
ids — commits together or not at all. Reads outside a transaction see only
committed state. After a commit that appended status history, the store's
`StatusFeed` (`changes`) tells this process's watches.

No lock of this process serialises the units of work. On PostgreSQL they run
concurrently (unique keys and optimistic row versions settle races). SQLite has
one writer per database: each unit of work starts with `BEGIN IMMEDIATE` right
before its first statement, taking the write lock before its first read (waiting
up to the busy timeout), so a read-then-write transaction never fails half-way
on another connection's write; the Python work before that statement (encoding
the event a submission queues first, say) does not hold the lock. Nor does a
WAL checkpoint: SQLite would run one inside the commit that fills the log (its
fsync holding the write lock while every other writer sleeps); here automatic
checkpoints are off and `checkpoint()` (the server calls it every second) copies
the log into the database without blocking writers.

New submissions (`IntakeStore.add`) are group-committed: their rows are built by the caller
(the credential sealed, the event encoded in the caller's trace) and queued to one writer thread,
which stores a batch of them in one transaction of four statements, each inserting the batch's rows
of one table: the submissions (`ON CONFLICT DO NOTHING` on the idempotency key, `RETURNING` those
inserted, so a taken key costs no read and no error), then the credentials, first status entries
and outbox events of those inserted. Each caller gets its answer once the batch has committed;
see `adapters.group_commit` for what a failure does to a batch.

The hot statements are built once (module level) and executed with their
parameters, so SQLAlchemy compiles each once per engine (its compiled cache).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from preflight_common.envelope import KafkaRecord
from preflight_common.idempotency import claim_event
from preflight_common.outbox import enqueue, outbox_row
from sqlalchemy import Engine, and_, event, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from preflight_intake.adapters import tables as t
from preflight_intake.adapters.changes import StatusFeed
from preflight_intake.adapters.crypto import Keyring
from preflight_intake.adapters.group_commit import GroupCommit
from preflight_intake.domain.events import Event
from preflight_intake.domain.model import (
    AccessWindow,
    Contact,
    EndpointAccess,
    ModelIdentity,
    Status,
    StatusChange,
    Submission,
    WeightsAccess,
)
from preflight_intake.domain.ports import (
    ConcurrentUpdate,
    Cursor,
    NewSubmission,
    Page,
    Sealed,
    StoredCredential,
)

EventEncoder = Callable[[Event], tuple[str, KafkaRecord]]

_INSERT_CREDENTIAL = insert(t.credentials)
_INSERT_STATUS = insert(t.status_history)
_INSERT_OUTBOX = insert(t.outbox)
# New submissions, per dialect: those whose (principal, idempotency key) is taken are skipped, and
# the ids of those inserted returned.
_INSERT_NEW = {
    name: build(t.submissions)
    .on_conflict_do_nothing(index_elements=[t.submissions.c.submitted_by, t.submissions.c.idempotency_key])
    .returning(t.submissions.c.submission_id)
    for name, build in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}
# The status history's `cause` column length.
_CAUSE_LENGTH = 300


@dataclass(frozen=True)
class _NewRows:
    """A new submission's rows, ready for the writer (see `IntakeStore.add`)."""

    submission_id: str
    submission: dict[str, Any]
    credential: dict[str, Any] | None
    status: dict[str, Any]
    outbox: dict[str, object]


class Transaction:
    """One database transaction of the unit of work (see the module docstring)."""

    def __init__(
        self, conn: Connection, keyring: Keyring, encode: EventEncoder, *, begin: str | None = None
    ) -> None:
        self._conn = conn
        self._keyring = keyring
        self._encode = encode
        # Issued right before the first statement, so that the Python work before it (an event's
        # encoding, say) runs before the database's write lock is taken.
        self._begin = begin
        # Submissions whose status history this transaction appended to (told once it commits).
        self.changed: set[str] = set()

    def _db(self) -> Connection:
        if self._begin is not None:
            self._conn.exec_driver_sql(self._begin)
            self._begin = None
        return self._conn

    def find(self, submission_id: str) -> Submission | None:
        s = t.submissions
        row = self._db().execute(select(s).where(s.c.submission_id == submission_id)).first()
        return _submission(row) if row else None

    def find_by_key(self, submitted_by: str, idempotency_key: str) -> tuple[Submission, str] | None:
        """The submission made with this key by this principal, and its request digest."""
        s = t.submissions
        row = (
            self._db()
            .execute(
                select(s).where(s.c.submitted_by == submitted_by, s.c.idempotency_key == idempotency_key)
            )
            .first()
        )
        return (_submission(row), row.request_digest) if row else None

    def save(self, before: Submission, after: Submission) -> Submission:
        """Store `after` over `before`; raises ConcurrentUpdate if the row changed since `before` was read."""
        s = t.submissions
        result = self._db().execute(
            update(s)
            .where(s.c.submission_id == before.submission_id, s.c.row_version == before.row_version)
            .values(**{**_columns(after), "row_version": before.row_version + 1})
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(before.submission_id)
        return replace(after, row_version=before.row_version + 1)

    def append_status(
        self, submission_id: str, status: Status, previous: Status, at: datetime, cause: str
    ) -> StatusChange:
        """Add the next entry of the submission's status history (the first comes with the
        submission, `IntakeStore.add`)."""
        h = t.status_history
        last = (
            self._db()
            .execute(select(func.max(h.c.sequence)).where(h.c.submission_id == submission_id))
            .scalar_one()
        )
        change = StatusChange(submission_id, last + 1, status, previous, at, cause[:_CAUSE_LENGTH])
        self._db().execute(_INSERT_STATUS, _status_row(change))
        self.changed.add(submission_id)
        return change

    def publish(self, event: Event) -> None:
        """Queue `event` in the outbox; the relay publishes it once this transaction commits."""
        topic, record = self._encode(event)
        enqueue(self._db(), t.outbox, topic, record)

    def claim(self, consumer: str, event_id: str) -> bool:
        """Record that `consumer` applies `event_id` here; False if it already did."""
        return claim_event(self._db(), t.processed_events, consumer, event_id)

    def credential_matches(self, submission_id: str, credential: str) -> bool:
        """Whether the submission's sealed credential equals `credential` (constant-time)."""
        c = t.credentials
        row = self._db().execute(select(c).where(c.c.submission_id == submission_id)).first()
        if row is None:
            return False
        stored = self._keyring.open(Sealed(row.key_id, row.nonce, row.ciphertext), submission_id)
        return hmac.compare_digest(stored.encode(), credential.encode())

    def stored_credential(self, credential_ref: str) -> StoredCredential | None:
        c, s = t.credentials, t.submissions
        row = (
            self._db()
            .execute(
                select(c.c.submission_id, c.c.key_id, c.c.nonce, c.c.ciphertext, s.c.status)
                .join(s, s.c.submission_id == c.c.submission_id)
                .where(c.c.credential_ref == credential_ref)
            )
            .first()
        )
        if row is None:
            return None
        return StoredCredential(
            row.submission_id, Status(row.status), Sealed(row.key_id, row.nonce, row.ciphertext)
        )

    def open(self, stored: StoredCredential) -> str:
        return self._keyring.open(stored.sealed, stored.submission_id)

    def reseal(self, limit: int) -> int:
        """Re-encrypt up to `limit` credentials sealed with a key other than the active one."""
        c = t.credentials
        rows = (
            self._db().execute(select(c).where(c.c.key_id != self._keyring.active_key_id).limit(limit)).all()
        )
        for row in rows:
            clear = self._keyring.open(Sealed(row.key_id, row.nonce, row.ciphertext), row.submission_id)
            sealed = self._keyring.seal(clear, row.submission_id)
            self._db().execute(
                update(c)
                .where(c.c.credential_ref == row.credential_ref)
                .values(key_id=sealed.key_id, nonce=sealed.nonce, ciphertext=sealed.ciphertext)
            )
        return len(rows)

    def log_credential_access(
        self,
        *,
        credential_ref: str,
        submission_id: str | None,
        job_id: str,
        principal_id: str,
        organisation: str,
        outcome: str,
        at: datetime,
    ) -> None:
        self._db().execute(
            insert(t.credential_access_log).values(
                credential_ref=credential_ref[:200],
                submission_id=submission_id,
                job_id=job_id[:200],
                principal_id=principal_id,
                organisation=organisation,
                outcome=outcome[:200],
                accessed_at=at,
            )
        )

    def record_job(
        self,
        submission_id: str,
        job_id: str,
        *,
        requested_at: datetime | None = None,
        max_attempts: int = 0,
        ended_at: datetime | None = None,
        outcome: str | None = None,
    ) -> None:
        """Note a benchmark job requested (with `max_attempts`) or ended."""
        j = t.benchmark_jobs
        key = and_(j.c.submission_id == submission_id, j.c.job_id == job_id)
        exists = self._db().execute(select(j.c.job_id).where(key)).first()
        if exists is None:
            self._db().execute(
                insert(j).values(
                    submission_id=submission_id,
                    job_id=job_id,
                    requested_at=requested_at,
                    max_attempts=max_attempts,
                    ended_at=ended_at,
                    outcome=outcome,
                )
            )
            return
        values: dict[str, Any] = {}
        if requested_at is not None:
            values.update(requested_at=requested_at, max_attempts=max_attempts)
        if ended_at is not None:
            values.update(ended_at=ended_at, outcome=outcome)
        if values:
            self._db().execute(update(j).where(key).values(**values))

    def job_attempts(self, submission_id: str, job_id: str) -> int | None:
        """The `max_attempts` of this job of this submission (0: no bound known), or None when its
        request is not recorded."""
        j = t.benchmark_jobs
        key = and_(j.c.submission_id == submission_id, j.c.job_id == job_id, j.c.requested_at.is_not(None))
        row = self._db().execute(select(j.c.max_attempts).where(key)).first()
        return None if row is None else int(row.max_attempts)

    def job_running(self, submission_id: str, job_id: str) -> bool | None:
        """Whether this job of this submission runs: True from its request until its end is
        recorded, then False; None while intake knows nothing of it."""
        j = t.benchmark_jobs
        key = and_(j.c.submission_id == submission_id, j.c.job_id == job_id)
        row = self._db().execute(select(j.c.ended_at).where(key)).first()
        return None if row is None else row.ended_at is None


class IntakeStore:
    """Intake's database (SQLite or PostgreSQL through one SQLAlchemy engine)."""

    def __init__(self, engine: Engine, keyring: Keyring, encode: EventEncoder) -> None:
        self.engine = engine
        self._keyring = keyring
        self._encode = encode
        self._begin = "BEGIN IMMEDIATE" if engine.dialect.name == "sqlite" else None
        self._insert_new = _INSERT_NEW[engine.dialect.name]
        self._new_submissions = GroupCommit(
            engine, self._write_new, begin=self._begin, name="intake-submissions-writer"
        )
        self.changes = StatusFeed()
        # Once per engine, however many stores share it.
        if self._begin is not None and not event.contains(engine, "connect", _without_automatic_checkpoints):
            event.listen(engine, "connect", _without_automatic_checkpoints)

    async def add(self, new: NewSubmission) -> bool:
        """Store a new submission, its sealed credential, its first status entry and its event, in
        a transaction shared with the submissions added concurrently; returns once it committed:
        True, or False (nothing stored) when the principal's idempotency key is already taken.
        An error concerning this submission alone is raised here, and no other caller sees it."""
        stored = await self._new_submissions.submit(self._new_rows(new))
        if stored:
            self.changes.notify([new.submission.submission_id])
        return stored

    def close(self) -> None:
        """Commit the submissions still queued, then stop the writer thread."""
        self._new_submissions.close()

    def _new_rows(self, new: NewSubmission) -> _NewRows:
        """The rows of a new submission, its credential sealed and its event encoded here (in the
        caller's trace), not by the writer."""
        submission = new.submission
        credential = None
        if isinstance(submission.access, EndpointAccess):
            if new.credential is None:
                raise ValueError("an endpoint submission needs its credential")
            sealed = self._keyring.seal(new.credential, submission.submission_id)
            credential = {
                "credential_ref": submission.access.credential_ref,
                "submission_id": submission.submission_id,
                "key_id": sealed.key_id,
                "nonce": sealed.nonce,
                "ciphertext": sealed.ciphertext,
                "created_at": submission.received_at,
            }
        return _NewRows(
            submission.submission_id,
            {
                **_columns(submission),
                "idempotency_key": new.idempotency_key,
                "request_digest": new.request_digest,
            },
            credential,
            _status_row(new.received),
            outbox_row(*self._encode(new.event)),
        )

    def _write_new(self, conn: Connection, batch: Sequence[_NewRows]) -> list[bool]:
        """The writer's part of `add`: a batch of new submissions in the open transaction; for each,
        whether it was stored (False: its idempotency key is taken, by an earlier submission or an
        earlier one of this batch)."""
        inserted = set(conn.execute(self._insert_new, [rows.submission for rows in batch]).scalars())
        kept = [rows for rows in batch if rows.submission_id in inserted]
        credentials = [rows.credential for rows in kept if rows.credential is not None]
        if credentials:
            conn.execute(_INSERT_CREDENTIAL, credentials)
        if kept:
            conn.execute(_INSERT_STATUS, [rows.status for rows in kept])
            conn.execute(_INSERT_OUTBOX, [rows.outbox for rows in kept])
        return [rows.submission_id in inserted for rows in batch]

    def checkpoint(self) -> tuple[int, int]:
        """SQLite: copy the write-ahead log's committed frames into the database file, without
        waiting for readers or writers (PASSIVE); returns (frames in the log, frames copied).
        PostgreSQL: nothing, (0, 0)."""
        if self._begin is None:
            return 0, 0
        with self.engine.connect() as conn:
            _busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return int(frames), int(copied)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A unit of work: commits when the block ends normally, rolls back if it raises; once
        committed, the watches of the submissions whose status changed are told."""
        with self.engine.begin() as conn:
            # SQLite: the write lock with the first statement (see the module docstring); pysqlite
            # then issues no BEGIN of its own.
            tx = Transaction(conn, self._keyring, self._encode, begin=self._begin)
            yield tx
        if tx.changed:
            self.changes.notify(tx.changed)

    @contextmanager
    def reading(self) -> Iterator[Transaction]:
        """Reads only, taking no write lock (for lookups outside a unit of work)."""
        with self.engine.connect() as conn:
            yield Transaction(conn, self._keyring, self._encode)

    def get(self, submission_id: str) -> Submission | None:
        s = t.submissions
        with self.engine.connect() as conn:
            row = conn.execute(select(s).where(s.c.submission_id == submission_id)).first()
        return _submission(row) if row else None

    def list_submissions(
        self, *, organisation: str | None, statuses: Sequence[Status], limit: int, after: Cursor | None
    ) -> Page:
        """One page, newest first, of the submissions of `organisation` (None: all)."""
        s = t.submissions
        query = select(s).order_by(s.c.received_at.desc(), s.c.submission_id.desc()).limit(limit + 1)
        if organisation is not None:
            query = query.where(s.c.organisation == organisation)
        if statuses:
            query = query.where(s.c.status.in_([status.value for status in statuses]))
        if after is not None:
            query = query.where(
                or_(
                    s.c.received_at < after.received_at,
                    and_(s.c.received_at == after.received_at, s.c.submission_id < after.submission_id),
                )
            )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        page = [_submission(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(page, Cursor(page[-1].received_at, page[-1].submission_id) if more and page else None)

    def history(self, submission_id: str, after_sequence: int = 0) -> list[StatusChange]:
        """The submission's status changes with a sequence above `after_sequence`, in order."""
        h = t.status_history
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(h)
                .where(h.c.submission_id == submission_id, h.c.sequence > after_sequence)
                .order_by(h.c.sequence)
            ).all()
        return [
            StatusChange(
                row.submission_id,
                row.sequence,
                Status(row.status),
                Status(row.previous_status) if row.previous_status else None,
                row.changed_at,
                row.cause,
            )
            for row in rows
        ]

    def latest_sequences(self, submission_ids: Collection[str]) -> dict[str, int]:
        """The last status-history sequence of each of these submissions that has a history."""
        h = t.status_history
        ids = list(submission_ids)
        latest: dict[str, int] = {}
        with self.engine.connect() as conn:
            # In chunks: databases bound how many parameters one statement takes.
            for start in range(0, len(ids), 500):
                rows = conn.execute(
                    select(h.c.submission_id, func.max(h.c.sequence))
                    .where(h.c.submission_id.in_(ids[start : start + 500]))
                    .group_by(h.c.submission_id)
                ).all()
                latest.update((submission_id, int(sequence)) for submission_id, sequence in rows)
        return latest

    def reseal_credentials(self, batch: int = 200) -> int:
        """Re-encrypt every credential not sealed with the active key; returns how many.

        After it, keys other than the active one can be removed from the configuration.
        """
        resealed = 0
        while True:
            with self.transaction() as tx:
                done = tx.reseal(batch)
            resealed += done
            if done < batch:
                return resealed

    def released_report_ready(self, now: datetime, limit: int = 500) -> list[str]:
        """Ids of REPORT_READY submissions whose planned release is at or before `now`."""
        s = t.submissions
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(s.c.submission_id)
                    .where(s.c.status == Status.REPORT_READY.value, s.c.planned_release <= now)
                    .order_by(s.c.planned_release)
                    .limit(limit)
                ).scalars()
            )


def _without_automatic_checkpoints(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def _status_row(change: StatusChange) -> dict[str, Any]:
    return {
        "submission_id": change.submission_id,
        "sequence": change.sequence,
        "status": change.status.value,
        "previous_status": change.previous.value if change.previous else None,
        "changed_at": change.changed_at,
        "cause": change.cause[:_CAUSE_LENGTH],
    }


def _columns(submission: Submission) -> dict[str, Any]:
    access = submission.access
    endpoint = access if isinstance(access, EndpointAccess) else None
    weights = access if isinstance(access, WeightsAccess) else None
    return {
        "submission_id": submission.submission_id,
        "organisation": submission.organisation,
        "submitted_by": submission.submitted_by,
        "developer": submission.model.developer,
        "model_name": submission.model.name,
        "model_version": submission.model.version,
        "planned_release": submission.planned_release,
        "window_start": submission.access_window.start,
        "window_end": submission.access_window.end,
        "access_kind": "endpoint" if endpoint else "weights",
        "endpoint_base_url": endpoint.base_url if endpoint else None,
        "endpoint_model_name": endpoint.model_name if endpoint else None,
        "credential_ref": endpoint.credential_ref if endpoint else None,
        "weights_uri": weights.artifact_uri if weights else None,
        "weights_sha256": weights.sha256 if weights else None,
        "weights_format": weights.format if weights else None,
        "contacts": [[c.name, c.email, c.role] for c in submission.contacts],
        "declared_capabilities": list(submission.declared_capabilities),
        "intended_use": submission.intended_use,
        "share_identity": submission.share_identity_with_operators,
        "flags": list(submission.flags),
        "status": submission.status.value,
        "deadline_version": submission.deadline_version,
        "received_at": submission.received_at,
        "updated_at": submission.updated_at,
        "row_version": submission.row_version,
    }


def _submission(row: Row[Any]) -> Submission:
    access: EndpointAccess | WeightsAccess
    if row.access_kind == "endpoint":
        access = EndpointAccess(row.endpoint_base_url, row.endpoint_model_name, row.credential_ref)
    else:
        access = WeightsAccess(row.weights_uri, row.weights_sha256, row.weights_format)
    return Submission(
        submission_id=row.submission_id,
        organisation=row.organisation,
        submitted_by=row.submitted_by,
        model=ModelIdentity(row.developer, row.model_name, row.model_version),
        planned_release=row.planned_release,
        access=access,
        access_window=AccessWindow(row.window_start, row.window_end),
        contacts=tuple(Contact(*c) for c in row.contacts),
        declared_capabilities=tuple(row.declared_capabilities),
        intended_use=row.intended_use,
        share_identity_with_operators=row.share_identity,
        flags=tuple(row.flags),
        status=Status(row.status),
        deadline_version=row.deadline_version,
        received_at=row.received_at,
        updated_at=row.updated_at,
        row_version=row.row_version,
    )
