"""SubmitModel's group commit, on SQLite and PostgreSQL (`db_url` runs each test on both):
concurrent submissions share transactions, each caller still gets its own answer, and a submission
the database refuses fails alone, leaving nothing of itself behind. The writer keeps one connection
across its batches, and replaces it when the database drops it.

Each test holds the database's write lock (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a lock on the
submissions table that blocks inserts) while the submissions are queued, so the writer's batches
are the same on every run: the first one it took waits on the lock, everything else queues behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from preflight.intake.v1 import intake_pb2
from preflight_common.db import make_engine
from preflight_intake.adapters import codec, tables
from preflight_intake.adapters.crypto import Keyring, new_key_entry
from preflight_intake.adapters.events import SubmissionEventEncoder
from preflight_intake.adapters.store import IntakeStore
from preflight_intake.bootstrap import migrate
from preflight_intake.domain.access import Caller
from preflight_intake.domain.events import SubmissionReceived
from preflight_intake.domain.model import EndpointAccess, Status, StatusChange, Submission, WindowPolicy
from preflight_intake.domain.ports import NewSubmission
from preflight_intake.domain.validation import InvalidRequest
from preflight_intake.service_layer.handlers import Conflict, Intake
from preflight_testkit.waiting import until
from sqlalchemy import Engine, event, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

LAB_A = Caller("alice", "lab", "lab-a")
CREDENTIAL = "sk-group-commit-test"
T = TypeVar("T")


@dataclass
class World:
    engine: Engine
    store: IntakeStore
    intake: Intake
    # Every statement that inserts submissions: one per transaction that stores any.
    submission_inserts: list[str]

    def count(self, table: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    yield from built_world(db_url)


@pytest.fixture
def pg_world(pg_url: str) -> Iterator[World]:
    yield from built_world(pg_url)


def built_world(db_url: str) -> Iterator[World]:
    migrate(db_url)
    engine = make_engine(db_url)
    store = IntakeStore(
        engine, Keyring.parse(new_key_entry("k1")), SubmissionEventEncoder(source="test", topic="submissions")
    )
    inserts: list[str] = []
    lock = threading.Lock()

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO SUBMISSIONS"):
            with lock:
                inserts.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield World(engine, store, Intake(store, WindowPolicy()), inserts)
    store.close()
    engine.dispose()


class WriteLock:
    """Holds the database's write lock for submissions from a connection of its own."""

    def __init__(self, engine: Engine) -> None:
        self._conn: Connection = engine.connect()
        if engine.dialect.name == "sqlite":
            self._conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            self._conn.begin()
            # Conflicts with the ROW EXCLUSIVE lock every INSERT takes; reads go on.
            self._conn.exec_driver_sql("LOCK TABLE submissions IN SHARE ROW EXCLUSIVE MODE")

    def release(self) -> None:
        self._conn.rollback()
        self._conn.close()


async def all_queued_behind(engine: Engine, calls: Sequence[Awaitable[T]]) -> list[T | BaseException]:
    """Start every call while the write lock is held, and release it once each has queued its
    submission (each does so in its first step, before it first awaits); their outcomes."""
    lock = WriteLock(engine)
    try:
        tasks = [asyncio.ensure_future(call) for call in calls]
        # Yield once: every task above has run its first step by the time this resumes.
        await asyncio.sleep(0)
    finally:
        lock.release()
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_concurrent_submissions_share_transactions_and_each_gets_its_own_answer(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    unique = [make_request() for _ in range(22)]
    replayed = make_request()  # sent five times
    contested = make_request()  # sent three times, and once more under its key with another body
    other_body = make_request(idempotency_key=contested.idempotency_key, intended_use="something else")
    invalid = make_request()
    invalid.model.name = ""
    requests = [*unique, *[replayed] * 5, *[contested] * 3, other_body, invalid]
    assert len(requests) == 32

    async def submit_all() -> list[Any]:
        calls = [
            world.intake.submit(LAB_A, codec.submission_draft(r), codec.request_digest(r)) for r in requests
        ]
        return await all_queued_behind(world.engine, calls)

    outcomes = asyncio.run(submit_all())
    by_request = list(zip(requests, outcomes, strict=True))

    # The 31 valid submissions were stored in at most two transactions: the first batch the writer
    # took (it waited on the lock) and everything queued behind it.
    assert 1 <= len(world.submission_inserts) <= 2

    # Each new request was stored once, as itself.
    for request, outcome in by_request[:22]:
        submission, was_replayed = outcome
        assert not was_replayed
        assert submission.model.version == request.model.version
        assert world.store.get(submission.submission_id) == submission
    assert len({outcome[0].submission_id for _, outcome in by_request[:22]}) == 22

    # Five identical calls: one submission, reported new to exactly one of them.
    replays = [outcome for request, outcome in by_request if request is replayed]
    assert len({submission.submission_id for submission, _ in replays}) == 1
    assert sorted(was_replayed for _, was_replayed in replays) == [False, True, True, True, True]

    # One key, two bodies: whichever body was stored first answers its calls; the other conflicts.
    contest = [(request, outcome) for request, outcome in by_request if request in (contested, other_body)]
    won = [(request, outcome) for request, outcome in contest if not isinstance(outcome, BaseException)]
    lost = [(request, outcome) for request, outcome in contest if isinstance(outcome, BaseException)]
    assert all(isinstance(outcome, Conflict) for _, outcome in lost)
    assert {request.intended_use for request, _ in won} == {won[0][0].intended_use}
    assert len(won) in (1, 3) and len(won) + len(lost) == 4
    assert len({submission.submission_id for _, (submission, _) in won}) == 1

    # The invalid request was refused, naming its field.
    refusal = outcomes[-1]
    assert isinstance(refusal, InvalidRequest)
    assert [v.field for v in refusal.violations] == ["model.name"]

    # Stored: exactly one submission per accepted body, each with its credential, its first
    # status entry and its SubmissionReceived event.
    stored_ids = {o[0].submission_id for o in outcomes if not isinstance(o, BaseException)}
    assert len(stored_ids) == 22 + 1 + 1
    for table in (tables.submissions, tables.credentials, tables.status_history, tables.outbox):
        assert world.count(table) == len(stored_ids), table.name
    with world.engine.connect() as conn:
        history = conn.execute(select(tables.status_history)).all()
        events = conn.execute(select(tables.outbox.c.event_type, tables.outbox.c.key)).all()
    assert {(h.submission_id, h.sequence, h.status, h.previous_status) for h in history} == {
        (sid, 1, "RECEIVED", None) for sid in stored_ids
    }
    assert sorted(events) == sorted(
        ("preflight.intake.v1.SubmissionReceived", sid.encode()) for sid in stored_ids
    )


def test_a_submission_the_database_refuses_fails_alone_and_leaves_nothing_behind(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    request = make_request()
    first, _ = asyncio.run(
        world.intake.submit(LAB_A, codec.submission_draft(request), codec.request_digest(request))
    )
    fresh = [like(first, str(uuid.uuid4())) for _ in range(9)]
    # A key of its own, but the id of the stored submission: the database refuses the row.
    clash = like(first, first.submission_id)
    batch = [*fresh[:5], clash, *fresh[5:]]

    outcomes = asyncio.run(all_queued_behind(world.engine, [world.store.add(new) for new in batch]))

    assert isinstance(outcomes[5], IntegrityError)
    assert outcomes[:5] + outcomes[6:] == [True] * 9
    stored = {new.submission.submission_id for new in fresh} | {first.submission_id}
    with world.engine.connect() as conn:
        for table in (tables.submissions, tables.credentials, tables.status_history):
            ids = set(conn.execute(select(table.c.submission_id)).scalars())
            assert ids == stored, table.name
        keys = set(conn.execute(select(tables.outbox.c.key)).scalars())
    assert keys == {sid.encode() for sid in stored}
    assert world.store.get(first.submission_id) == first


def test_the_writer_keeps_one_connection_across_its_batches(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    checkouts: list[object] = []
    event.listen(world.engine, "checkout", lambda *args: checkouts.append(args))
    requests = [make_request() for _ in range(5)]

    async def one_after_another() -> None:
        for r in requests:
            await world.intake.submit(LAB_A, codec.submission_draft(r), codec.request_digest(r))

    asyncio.run(one_after_another())

    # Five transactions (each call waited for the last), on one connection taken from the pool once.
    assert len(world.submission_inserts) == 5
    assert len(checkouts) == 1
    assert world.count(tables.submissions) == 5


def test_a_batch_wakes_its_callers_event_loop_once(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    request = make_request()
    first, _ = asyncio.run(
        world.intake.submit(LAB_A, codec.submission_draft(request), codec.request_digest(request))
    )
    world.submission_inserts.clear()
    batch = [like(first, str(uuid.uuid4())) for _ in range(8)]
    wakes: list[object] = []

    async def queued_behind_the_lock() -> list[bool | BaseException]:
        loop = asyncio.get_running_loop()
        call_soon_threadsafe = loop.call_soon_threadsafe

        def counted(*args: Any, **kwargs: Any) -> asyncio.Handle:
            wakes.append(args)
            return call_soon_threadsafe(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        return await all_queued_behind(world.engine, [world.store.add(new) for new in batch])

    outcomes = asyncio.run(queued_behind_the_lock())

    assert outcomes == [True] * 8
    # One wake per batch: the first the writer took (it waited on the lock) and the rest behind it.
    assert 1 <= len(wakes) <= len(world.submission_inserts) <= 2


def test_a_submission_cancelled_while_queued_is_not_written(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    request = make_request()
    first, _ = asyncio.run(
        world.intake.submit(LAB_A, codec.submission_draft(request), codec.request_digest(request))
    )
    writing, *queued = [like(first, str(uuid.uuid4())) for _ in range(4)]
    writer_transactions = threading.Semaphore(0)

    def began(_conn: Connection) -> None:
        if threading.current_thread().name == "intake-submissions-writer":
            writer_transactions.release()

    event.listen(world.engine, "begin", began)

    async def cancel_one_while_queued() -> list[bool | BaseException]:
        lock = WriteLock(world.engine)
        try:
            tasks = [asyncio.ensure_future(world.store.add(writing))]
            # The writer took `writing` and waits on the lock: the others queue behind it.
            await until(lambda: writer_transactions.acquire(blocking=False), "the writer's transaction")
            tasks += [asyncio.ensure_future(world.store.add(new)) for new in queued]
            await asyncio.sleep(0)  # each has queued its submission
            tasks[2].cancel()
            await asyncio.sleep(0)  # the cancellation reaches its future
        finally:
            lock.release()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(cancel_one_while_queued())

    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert outcomes[:2] + outcomes[3:] == [True] * 3
    assert world.store.get(queued[1].submission.submission_id) is None
    assert world.count(tables.submissions) == 4


def test_a_batch_whose_connection_the_database_dropped_is_written_on_a_new_one(
    pg_world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    first, second = make_request(), make_request()

    async def submit(r: intake_pb2.SubmitModelRequest) -> tuple[Submission, bool]:
        return await pg_world.intake.submit(LAB_A, codec.submission_draft(r), codec.request_digest(r))

    asyncio.run(submit(first))
    with pg_world.engine.connect() as conn:
        # Every other session of this database ends, the writer's among them (as in a restart).
        ended = conn.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).scalar_one()
    assert ended >= 1

    submission, replayed = asyncio.run(submit(second))

    assert not replayed
    assert pg_world.store.get(submission.submission_id) == submission
    assert pg_world.count(tables.outbox) == 2


def like(stored: Submission, submission_id: str) -> NewSubmission:
    """A new submission like `stored`, with the given id, its own credential reference and
    idempotency key."""
    assert isinstance(stored.access, EndpointAccess)
    access = dataclasses.replace(stored.access, credential_ref=f"cred-{uuid.uuid4().hex}")
    submission = dataclasses.replace(stored, submission_id=submission_id, access=access)
    received = StatusChange(
        submission_id, 1, Status.RECEIVED, None, stored.received_at, "submitted in a test"
    )
    return NewSubmission(
        submission, f"key-{uuid.uuid4()}", "digest", CREDENTIAL, received, SubmissionReceived(submission)
    )
