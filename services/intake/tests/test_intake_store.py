"""The store and the use cases on it, on SQLite and PostgreSQL (`db_url` runs each test on both)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from preflight.intake.v1 import intake_pb2
from preflight_common.db import make_engine
from preflight_common.envelope import KafkaRecord
from preflight_intake.adapters import codec, tables
from preflight_intake.adapters.crypto import Keyring, new_key_entry
from preflight_intake.adapters.events import SubmissionEventEncoder
from preflight_intake.adapters.store import IntakeStore
from preflight_intake.bootstrap import migrate
from preflight_intake.domain.access import Caller
from preflight_intake.domain.events import Event
from preflight_intake.domain.model import Status, WindowPolicy
from preflight_intake.domain.ports import ConcurrentUpdate
from preflight_intake.service_layer.handlers import Conflict, Intake, RefusedOutcome, UnplannedJob
from sqlalchemy import Engine, func, select

LAB_A = Caller("alice", "lab", "lab-a")
LAB_B = Caller("bob", "lab", "lab-b")
REVIEWER = Caller("rita", "reviewer", "agency")


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    engine: Engine
    store: IntakeStore
    intake: Intake
    clock: Clock
    key_entry: str

    def count(self, table: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    migrate(db_url)
    engine = make_engine(db_url)
    key_entry = new_key_entry("k1")
    store = IntakeStore(
        engine, Keyring.parse(key_entry), SubmissionEventEncoder(source="test", topic="submissions")
    )
    clock = Clock(datetime.now(UTC))
    yield World(engine, store, Intake(store, WindowPolicy(), clock), clock, key_entry)
    store.close()
    engine.dispose()


def submit(world: World, request: intake_pb2.SubmitModelRequest, caller: Caller = LAB_A) -> Any:
    submission, _ = asyncio.run(
        world.intake.submit(caller, codec.submission_draft(request), codec.request_digest(request))
    )
    return submission


def test_migrations_create_exactly_the_declared_schema(world: World) -> None:
    with world.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert differences == []


def test_a_submission_commits_its_row_history_and_event_together(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    submission = submit(world, make_request())
    assert world.store.get(submission.submission_id) == submission
    assert [c.status for c in world.store.history(submission.submission_id)] == [Status.RECEIVED]
    with world.engine.connect() as conn:
        events = conn.execute(select(tables.outbox.c.event_type, tables.outbox.c.key)).all()
    assert events == [("preflight.intake.v1.SubmissionReceived", submission.submission_id.encode())]


def test_when_the_event_cannot_be_queued_nothing_is_stored(
    db_url: str, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    migrate(db_url)
    engine = make_engine(db_url)

    def broken_encoder(event: Event) -> tuple[str, KafkaRecord]:
        raise RuntimeError("encoder failed")

    store = IntakeStore(engine, Keyring.parse(new_key_entry("k1")), broken_encoder)
    intake = Intake(store, WindowPolicy())
    request = make_request()
    with pytest.raises(RuntimeError):
        asyncio.run(intake.submit(LAB_A, codec.submission_draft(request), codec.request_digest(request)))
    with engine.connect() as conn:
        for table in (tables.submissions, tables.credentials, tables.status_history, tables.outbox):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
    engine.dispose()


def test_the_credential_is_stored_only_encrypted(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest], credential: str
) -> None:
    submission = submit(world, make_request())
    with world.engine.connect() as conn:
        for table in tables.metadata.sorted_tables:
            for row in conn.execute(select(table)).all():
                dumped = repr(tuple(row)).encode()
                assert credential.encode() not in dumped, f"credential in clear in {table.name}"
    with world.store.transaction() as tx:
        stored = tx.stored_credential(submission.access.credential_ref)
        assert stored is not None
        assert tx.open(stored) == credential


def test_same_key_same_request_returns_the_first_submission_even_when_racing(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    request = make_request()
    results: list[tuple[Any, bool]] = []

    def call() -> None:
        results.append(
            asyncio.run(
                world.intake.submit(LAB_A, codec.submission_draft(request), codec.request_digest(request))
            )
        )

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({submission.submission_id for submission, _ in results}) == 1
    assert sorted(replayed for _, replayed in results) == [False, True, True, True]
    assert world.count(tables.submissions) == 1
    assert world.count(tables.outbox) == 1


def test_same_key_with_a_different_body_or_credential_conflicts(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    request = make_request()
    submit(world, request)
    other_body = intake_pb2.SubmitModelRequest()
    other_body.CopyFrom(request)
    other_body.model.version = "2.0"
    other_credential = intake_pb2.SubmitModelRequest()
    other_credential.CopyFrom(request)
    other_credential.access.endpoint.credential = "sk-another"
    for changed in (other_body, other_credential):
        with pytest.raises(Conflict):
            submit(world, changed)
    # Another principal may use the same key for its own submission.
    submit(world, make_request("lab-b", idempotency_key=request.idempotency_key), LAB_B)
    assert world.count(tables.submissions) == 2


def test_a_stale_write_is_refused(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    first = submit(world, make_request())
    with world.store.transaction() as tx:
        tx.save(first, first.transition(Status.BENCHMARKING, world.clock()))
    with pytest.raises(ConcurrentUpdate), world.store.transaction() as tx:
        tx.save(first, first.transition(Status.WITHDRAWN, world.clock()))
    assert world.store.get(first.submission_id).status is Status.BENCHMARKING  # type: ignore[union-attr]


def test_listing_pages_through_everything_once_in_scope(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    # Identical receipt times: the page boundary must be decided by the id as well.
    ids_a = {submit(world, make_request()).submission_id for _ in range(7)}
    ids_b = {submit(world, make_request("lab-b"), LAB_B).submission_id for _ in range(3)}

    def collect(caller: Caller, statuses: list[Status]) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            page = world.intake.list_submissions(caller, statuses, 3, cursor)
            seen += [s.submission_id for s in page.submissions]
            cursor = page.next_cursor
            if cursor is None:
                return seen

    lab_a_ids = collect(LAB_A, [])
    assert len(lab_a_ids) == 7 and set(lab_a_ids) == ids_a
    assert set(collect(REVIEWER, [])) == ids_a | ids_b
    withdrawn = next(iter(ids_b))
    world.intake.withdraw(LAB_B, withdrawn, "changed plans")
    assert collect(REVIEWER, [Status.WITHDRAWN]) == [withdrawn]


def test_progress_events_apply_once_and_walk_the_status_machine(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    sid = submit(world, make_request()).submission_id
    world.intake.on_job_requested("intake", "e1", sid, "job-1", max_attempts=2)
    world.intake.on_job_requested("intake", "e1", sid, "job-1", max_attempts=2)  # redelivered
    world.intake.on_job_ended("intake", "e2", sid, "job-1", "completed", attempt=1)
    assert world.store.get(sid).status is Status.BENCHMARKING  # type: ignore[union-attr]
    with pytest.raises(UnplannedJob):  # an outcome before its request is not applied: it waits
        world.intake.on_job_ended("intake", "e3", sid, "job-3", "completed", attempt=1)
    world.intake.on_job_requested("intake", "e4", sid, "job-2", max_attempts=2)
    world.intake.on_job_requested("intake", "e5", sid, "job-3", max_attempts=2)
    world.intake.on_job_ended("intake", "e3", sid, "job-3", "completed", attempt=1)  # retried once it was
    assert world.store.get(sid).status is Status.BENCHMARKING  # type: ignore[union-attr]
    with pytest.raises(RefusedOutcome):  # job-2 may take two attempts: a third never ran
        world.intake.on_job_ended("intake", "e6", sid, "job-2", "failed", attempt=3)
    with pytest.raises(RefusedOutcome):  # a completion ran an attempt
        world.intake.on_job_ended("intake", "e6", sid, "job-2", "completed", attempt=0)
    world.intake.on_job_ended("intake", "e6", sid, "job-2", "failed", attempt=0)  # ended while pending
    # Every job intake knows of has ended: only the benchmark knows the plan is whole.
    assert world.store.get(sid).status is Status.BENCHMARKING  # type: ignore[union-attr]
    world.intake.on_plan_ended("intake", "e8", sid)
    world.intake.on_plan_ended("intake", "e8", sid)  # redelivered
    assert world.store.get(sid).status is Status.UNDER_REVIEW  # type: ignore[union-attr]
    world.intake.on_report_ready("intake", "e7", sid)
    world.intake.on_report_ready("intake", "e7", sid)
    history = world.store.history(sid)
    assert [(c.sequence, c.status) for c in history] == [
        (1, Status.RECEIVED),
        (2, Status.BENCHMARKING),
        (3, Status.UNDER_REVIEW),
        (4, Status.REPORT_READY),
    ]


def test_a_report_before_any_job_walks_through_every_step(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    sid = submit(world, make_request()).submission_id
    world.intake.on_report_ready("intake", "r1", sid)
    assert [c.status for c in world.store.history(sid)] == [
        Status.RECEIVED,
        Status.BENCHMARKING,
        Status.UNDER_REVIEW,
        Status.REPORT_READY,
    ]
    # A late job event cannot move it back.
    world.intake.on_job_requested("intake", "j1", sid, "job-1", max_attempts=2)
    assert world.store.get(sid).status is Status.REPORT_READY  # type: ignore[union-attr]


def test_events_for_withdrawn_or_unknown_submissions_change_nothing(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    sid = submit(world, make_request()).submission_id
    world.intake.withdraw(LAB_A, sid, "")
    world.intake.on_job_requested("intake", "j1", sid, "job-1", max_attempts=2)
    world.intake.on_report_ready("intake", "r1", sid)
    world.intake.on_report_ready("intake", "r2", "00000000-0000-4000-8000-00000000dead")
    assert [c.status for c in world.store.history(sid)] == [Status.RECEIVED, Status.WITHDRAWN]


def test_report_ready_submissions_close_once_released(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    sid = submit(world, make_request()).submission_id
    waiting = submit(world, make_request()).submission_id
    world.intake.on_report_ready("intake", "r1", sid)
    assert world.intake.close_released() == 0
    world.clock.now += timedelta(days=21)
    assert world.intake.close_released() == 1
    assert world.intake.close_released() == 0
    assert world.store.get(sid).status is Status.CLOSED  # type: ignore[union-attr]
    assert world.store.get(waiting).status is Status.RECEIVED  # type: ignore[union-attr]


def test_release_plan_changes_and_withdrawals_queue_their_events(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    sid = submit(world, make_request()).submission_id
    release = world.clock() + timedelta(days=25)
    changed = world.intake.update_release_plan(LAB_A, sid, (int(release.timestamp()), 0), None, "delayed")
    assert changed.deadline_version == 2
    world.intake.withdraw(LAB_A, sid, "cancelled")
    with world.engine.connect() as conn:
        types = conn.execute(select(tables.outbox.c.event_type).order_by(tables.outbox.c.id)).scalars().all()
    assert types == [
        "preflight.intake.v1.SubmissionReceived",
        "preflight.intake.v1.ReleasePlanChanged",
        "preflight.intake.v1.SubmissionWithdrawn",
    ]


def test_rotation_reseals_old_credentials_with_the_active_key(
    world: World, make_request: Callable[..., intake_pb2.SubmitModelRequest], credential: str
) -> None:
    submitted = [submit(world, make_request()) for _ in range(3)]
    new_entry = new_key_entry("new")
    encoder = SubmissionEventEncoder(source="test", topic="submissions")
    rotated = IntakeStore(world.engine, Keyring.parse(f"{new_entry},{world.key_entry}"), encoder)
    assert rotated.reseal_credentials(batch=2) == 3
    assert rotated.reseal_credentials() == 0
    with IntakeStore(world.engine, Keyring.parse(new_entry), encoder).reading() as tx:
        for submission in submitted:
            stored = tx.stored_credential(submission.access.credential_ref)
            assert stored is not None and stored.sealed.key_id == "new"
            assert tx.open(stored) == credential
