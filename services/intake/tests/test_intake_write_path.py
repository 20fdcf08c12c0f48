"""SubmitModel's write path and WatchSubmission's push, on real SQLite and PostgreSQL and over real
gRPC: the fewest statements that keep every guarantee (row, history and outbox event in one
transaction; idempotency decided by the unique key, read only on a conflict), tokens resolved once
per cache TTL, and watches told of a change by the commit that made it instead of polling."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from preflight.intake.v1 import intake_pb2
from preflight.sdk import Client
from preflight_common.auth import Role
from preflight_common.bus import SOURCES
from preflight_common.db import make_engine
from preflight_intake.adapters import codec, tables
from preflight_intake.adapters.crypto import Keyring, new_key_entry
from preflight_intake.adapters.events import SubmissionEventEncoder
from preflight_intake.adapters.store import IntakeStore
from preflight_intake.bootstrap import migrate
from preflight_intake.domain.access import Caller
from preflight_intake.domain.model import WindowPolicy
from preflight_intake.service_layer.handlers import Intake
from sqlalchemy import Engine, event, func, select

STATUS = intake_pb2.SubmissionStatus
LAB_A = Caller("alice", "lab", "lab-a")


class Statements:
    """Every SQL statement any engine of this process executes while counting (server included)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def record(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        with self._lock:
            self.seen.append(" ".join(statement.split()))

    def matching(self, verb: str, table: str) -> list[str]:
        with self._lock:
            return [s for s in self.seen if s.upper().startswith(verb) and table in s]

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()


@pytest.fixture
def statements() -> Iterator[Statements]:
    counted = Statements()
    event.listen(Engine, "before_cursor_execute", counted.record)
    yield counted
    event.remove(Engine, "before_cursor_execute", counted.record)


@pytest.fixture
def intake_on(db_url: str) -> Iterator[tuple[Intake, Engine]]:
    """The use cases on a fresh database (`db_url`: SQLite and PostgreSQL)."""
    migrate(db_url)
    engine = make_engine(db_url)
    store = IntakeStore(
        engine, Keyring.parse(new_key_entry("k1")), SubmissionEventEncoder(source="test", topic="t")
    )
    yield Intake(store, WindowPolicy()), engine
    store.close()
    engine.dispose()


def submit(intake: Intake, request: intake_pb2.SubmitModelRequest) -> tuple[Any, bool]:
    return asyncio.run(intake.submit(LAB_A, codec.submission_draft(request), codec.request_digest(request)))


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_new_submission_is_four_inserts_and_no_read(
    intake_on: tuple[Intake, Engine],
    statements: Statements,
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    intake, _ = intake_on
    submit(intake, make_request())  # connects, so that only the second call is counted
    statements.clear()
    submit(intake, make_request())
    tables_written = sorted(s.split()[2] for s in statements.matching("INSERT", ""))
    assert tables_written == ["credentials", "outbox", "status_history", "submissions"]
    assert statements.matching("SELECT", "") == []


def test_a_resubmission_returns_the_first_submission_and_queues_one_event(
    intake_on: tuple[Intake, Engine], make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    intake, engine = intake_on
    request = make_request()
    first, replayed_first = submit(intake, request)
    again, replayed_again = submit(intake, request)
    assert (replayed_first, replayed_again) == (False, True)
    assert again == first
    assert count(engine, tables.submissions) == 1
    assert count(engine, tables.status_history) == 1
    assert count(engine, tables.outbox) == 1


def test_sixteen_concurrent_identical_submissions_store_exactly_one(
    intake_on: tuple[Intake, Engine], make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    intake, engine = intake_on
    request = make_request()
    start = threading.Barrier(16)
    results: list[tuple[Any, bool]] = []
    errors: list[BaseException] = []

    def call() -> None:
        start.wait(60)
        try:
            results.append(submit(intake, request))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert len({submission.submission_id for submission, _ in results}) == 1
    assert sorted(replayed for _, replayed in results) == [False] + [True] * 15
    for table in (tables.submissions, tables.credentials, tables.status_history, tables.outbox):
        assert count(engine, table) == 1, table.name


def test_submit_model_resolves_a_token_once_per_cache_ttl(
    intake_factory: Callable[..., Any],
    statements: Statements,
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    intake = intake_factory()
    with Client(intake.target, token=intake.token("alice", Role.LAB, "lab-a")) as client:
        started = time.monotonic()
        for _ in range(10):
            client.submit(make_request("lab-a"))
        elapsed = time.monotonic() - started
    # One lookup per started 2 s (the cache TTL), not one per call.
    assert len(statements.matching("SELECT", "api_tokens")) <= 1 + int(elapsed / 2.0)


class Watcher(threading.Thread):
    """Collects a WatchSubmission stream in the background, noting when each change arrived."""

    def __init__(self, client: Client, submission_id: str) -> None:
        super().__init__(daemon=True)
        self.client, self.submission_id = client, submission_id
        self.changes: list[tuple[float, intake_pb2.WatchSubmissionResponse]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for change in self.client.watch(self.submission_id, timeout=120):
                self.changes.append((time.monotonic(), change))
        except BaseException as exc:
            self.error = exc


# A watch's read of the history (the withdrawal's own next-sequence lookup is not one).
HISTORY_READ = "ORDER BY status_history.sequence"
# How long idle watches are observed: the polling watch read every stream's history every 0.5 s.
QUIET = 2.0


def test_a_watch_is_told_of_a_change_by_its_commit_and_reads_nothing_while_idle(
    intake_factory: Callable[..., Any],
    statements: Statements,
    eventually: Callable[..., None],
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    intake = intake_factory()  # the default resync interval (30 s)
    with Client(intake.target, token=intake.token("alice", Role.LAB, "lab-a")) as client:
        sid = client.submit(make_request("lab-a")).submission.submission_id
        watchers = [Watcher(client, sid) for _ in range(8)]
        for watcher in watchers:
            watcher.start()
        eventually(lambda: all(len(w.changes) == 1 for w in watchers))
        statements.clear()
        time.sleep(QUIET)  # an observation window, not a wait for something to happen
        assert statements.matching("SELECT", HISTORY_READ) == []
        withdrawn = time.monotonic()
        client.withdraw(sid)
        for watcher in watchers:
            watcher.join(10)
    for watcher in watchers:
        assert watcher.error is None, watcher.error
        assert not watcher.is_alive(), "the watch did not end at the terminal status within 10 s"
        arrived, last = watcher.changes[-1]
        assert last.status == STATUS.SUBMISSION_STATUS_WITHDRAWN
        assert arrived - withdrawn < 10
    # Each stream read the history once more, when told: not per stream per interval.
    assert len(statements.matching("SELECT", HISTORY_READ)) == len(watchers)


# The resync's one read of every watched submission's latest sequence.
RESYNC_READ = "GROUP BY status_history.submission_id"


def test_idle_watches_cost_one_query_per_resync_not_one_per_stream(
    intake_factory: Callable[..., Any],
    statements: Statements,
    eventually: Callable[..., None],
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    interval = 0.25
    intake = intake_factory(watch_resync_interval=interval)
    with Client(intake.target, token=intake.token("alice", Role.LAB, "lab-a")) as client:
        sids = [client.submit(make_request("lab-a")).submission.submission_id for _ in range(4)]
        watchers = [Watcher(client, sid) for sid in sids for _ in range(2)]
        for watcher in watchers:
            watcher.start()
        eventually(lambda: all(len(w.changes) == 1 for w in watchers))
        statements.clear()
        time.sleep(QUIET)  # an observation window, not a wait for something to happen
        # Nothing changed: no stream re-read its history, and each resync round was one query.
        assert statements.matching("SELECT", HISTORY_READ) == []
        assert 0 < len(statements.matching("SELECT", RESYNC_READ)) <= 2 + QUIET / interval
        for sid in sids:
            client.withdraw(sid)
        for watcher in watchers:
            watcher.join(30)
    assert all(w.error is None and not w.is_alive() for w in watchers)


def test_a_change_committed_by_another_replica_reaches_the_watch_at_the_resync(
    intake_factory: Callable[..., Any],
    eventually: Callable[..., None],
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    intake = intake_factory(watch_resync_interval=1.0)
    with Client(intake.target, token=intake.token("alice", Role.LAB, "lab-a")) as client:
        sid = client.submit(make_request("lab-a")).submission.submission_id
        watcher = Watcher(client, sid)
        watcher.start()
        eventually(lambda: len(watcher.changes) == 1)
        # Another replica: its own store on the same database, whose commits this process never hears of.
        replica = Intake(
            IntakeStore(
                intake.engine,
                intake.keyring,
                SubmissionEventEncoder(source=SOURCES["intake"], topic=intake.settings.topics.submissions),
            ),
            WindowPolicy(),
        )
        replica.withdraw(LAB_A, sid, "withdrawn through another replica")
        watcher.join(30)
    assert watcher.error is None, watcher.error
    assert not watcher.is_alive(), "the resync did not pick up the other replica's change"
    assert watcher.changes[-1][1].status == STATUS.SUBMISSION_STATUS_WITHDRAWN


def test_sqlite_checkpoints_run_apart_from_the_commits(
    tmp_path: Any, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    migrate(url)
    engine = make_engine(url)
    store = IntakeStore(
        engine, Keyring.parse(new_key_entry("k1")), SubmissionEventEncoder(source="test", topic="t")
    )
    intake = Intake(store, WindowPolicy())
    for _ in range(5):
        submit(intake, make_request())
    with engine.connect() as conn:
        # No commit copies the log into the database (holding the write lock through its fsync)...
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
    # ...the server's periodic checkpoint does, all of it while no reader holds a snapshot.
    frames, copied = store.checkpoint()
    assert frames > 0
    assert copied == frames
    store.close()
    engine.dispose()
