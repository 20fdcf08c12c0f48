"""The transactional outbox relayed to the real broker, including while the broker is down."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from preflight.intake.v1.events_pb2 import ReleasePlanChanged
from preflight_common.config import KafkaSettings
from preflight_common.db import make_engine
from preflight_common.envelope import KafkaRecord, encode_event, headers_dict
from preflight_common.localkafka import LocalKafka
from preflight_common.outbox import OutboxRelay, enqueue, outbox_table
from preflight_common.producer import EventPublisher, PublishError
from preflight_testkit.fixtures import TopicFactory
from sqlalchemy import Engine, MetaData, Table, select


class Store:
    """A service database holding just the outbox."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        metadata = MetaData()
        self.outbox: Table = outbox_table(metadata)
        metadata.create_all(self.engine)

    def add(self, topic: str, subjects: list[str]) -> list[str]:
        """Enqueue one event per subject in ONE transaction; return their event ids in order."""
        ids = []
        with self.engine.begin() as conn:
            for number, subject in enumerate(subjects):
                record = encode_event(
                    ReleasePlanChanged(submission_id=subject, deadline_version=number),
                    source="preflight-tests",
                    subject=subject,
                )
                enqueue(conn, self.outbox, topic, record)
                assert record.attributes is not None
                ids.append(record.attributes.id)
        return ids

    def pending_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            query = select(self.outbox.c.event_id).where(self.outbox.c.sent_at.is_(None))
            return list(conn.execute(query.order_by(self.outbox.c.id)).scalars())


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    database = Store(db_url)
    try:
        yield database
    finally:
        database.engine.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Any) -> Iterator[Store]:
    database = Store(f"sqlite:///{tmp_path / 'outbox.db'}")
    try:
        yield database
    finally:
        database.engine.dispose()


def ce_ids(records: list[Any]) -> list[str]:
    return [headers_dict(record.headers)["ce_id"] for record in records]


def test_rows_are_published_in_insertion_order_and_marked_sent(
    store: Store, publisher: EventPublisher, unique_topic: TopicFactory, read_topic: Callable[..., list[Any]]
) -> None:
    topic = unique_topic("outbox")
    first = store.add(topic, ["sub-b", "sub-a", "sub-c"])
    second = store.add(topic, ["sub-a", "sub-d", "sub-b", "sub-e"])
    with pytest.raises(RuntimeError), store.engine.begin() as conn:  # rolled back: never published
        enqueue(conn, store.outbox, topic, encode_event(ReleasePlanChanged(), source="t", subject="sub-x"))
        raise RuntimeError("the state change failed")
    relay = OutboxRelay(store.engine, store.outbox, publisher, batch_size=3)
    assert relay.pending() == 7

    assert [relay.run_once() for _ in range(4)] == [3, 3, 1, 0]

    assert relay.pending() == 0
    with store.engine.connect() as conn:
        assert all(conn.execute(select(store.outbox.c.sent_at)).scalars())
    records = read_topic(topic, expected=7)
    assert ce_ids(records) == first + second
    assert [record.key for record in records[:3]] == [b"sub-b", b"sub-a", b"sub-c"]


def test_a_row_that_cannot_be_published_stays_pending_with_every_row_after_it(
    sqlite_store: Store, kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    topic = unique_topic("outbox")
    missing = f"missing-topic.{uuid.uuid4().hex}"  # never created (no auto-creation)
    published = sqlite_store.add(topic, ["sub-1", "sub-2"])
    stuck = sqlite_store.add(missing, ["sub-3"]) + sqlite_store.add(topic, ["sub-4"])
    publisher = EventPublisher(kafka_settings, source="preflight-tests", send_timeout=1)
    relay = OutboxRelay(sqlite_store.engine, sqlite_store.outbox, publisher)
    try:
        with pytest.raises(PublishError) as caught:
            relay.run_once()
    finally:
        publisher.close()

    assert caught.value.acknowledged == 2
    assert sqlite_store.pending_ids() == stuck
    assert not set(published) & set(sqlite_store.pending_ids())


def test_rows_wait_while_kafka_is_down_and_are_published_once_after_it_returns(
    sqlite_store: Store,
    kafka: LocalKafka,
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    read_topic: Callable[..., list[Any]],
    eventually: Callable[..., Any],
) -> None:
    topic = unique_topic("outbox-outage", partitions=3)
    publisher = EventPublisher(kafka_settings, source="preflight-tests", send_timeout=3)
    relay = OutboxRelay(sqlite_store.engine, sqlite_store.outbox, publisher)
    try:
        before = sqlite_store.add(topic, ["sub-1", "sub-2"])
        assert relay.run_once() == 2
        kafka.kill()
        try:
            during = sqlite_store.add(topic, ["sub-1", "sub-3", "sub-2", "sub-4"])
            with pytest.raises(PublishError):
                relay.run_once()
            assert sqlite_store.pending_ids() == during
        finally:
            kafka.restart()

        def relayed() -> bool:
            # While the broker comes back a batch may be acknowledged only in part: keep relaying.
            with contextlib.suppress(PublishError):
                relay.run_once()
            return relay.pending() == 0

        eventually(relayed, "the relay to publish after the broker's restart")
    finally:
        publisher.close()

    assert relay.pending() == 0
    counts = Counter(ce_ids(read_topic(topic, expected=len(before + during))))
    assert counts == Counter(before + during), "every event exactly once"


def test_run_forever_relays_until_stopped(
    sqlite_store: Store,
    publisher: EventPublisher,
    unique_topic: TopicFactory,
    read_topic: Callable[..., list[Any]],
    eventually: Callable[..., Any],
) -> None:
    topic = unique_topic("outbox-forever")
    relay = OutboxRelay(sqlite_store.engine, sqlite_store.outbox, publisher)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run_forever, args=(stop, 0.05))
    thread.start()
    try:
        ids = sqlite_store.add(topic, ["sub-1"])
        ids += sqlite_store.add(topic, ["sub-2", "sub-1"])
        eventually(lambda: relay.pending() == 0, "the relay to drain the outbox")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert ce_ids(read_topic(topic, expected=3)) == ids


class CountingRelay(OutboxRelay):
    """The relay, noting how many rows each of its rounds published."""

    rounds: list[int]

    def run_once(self) -> int:
        published = super().run_once()
        self.rounds.append(published)
        return published


class StopAtFirstPause(threading.Event):
    """A stop event that is set the first time the relay pauses between rounds."""

    def wait(self, timeout: float | None = None) -> bool:
        self.set()
        return True


def test_the_relay_goes_on_at_once_after_a_full_batch_and_pauses_after_a_partial_one(
    sqlite_store: Store, publisher: EventPublisher, unique_topic: TopicFactory
) -> None:
    sqlite_store.add(unique_topic("outbox-rounds"), [f"sub-{n}" for n in range(5)])
    relay = CountingRelay(sqlite_store.engine, sqlite_store.outbox, publisher, batch_size=2)
    relay.rounds = []
    relay.run_forever(StopAtFirstPause(), interval=60)
    # Two full batches back to back, then the rest; no round that finds the outbox empty before the
    # pause (under a trickle it would find a row or two, and publish them in a write transaction).
    assert relay.rounds == [2, 2, 1]
    assert relay.pending() == 0


def test_enqueue_needs_an_encoded_event(sqlite_store: Store) -> None:
    with pytest.raises(ValueError, match="encode_event"), sqlite_store.engine.begin() as conn:
        enqueue(conn, sqlite_store.outbox, "topic", KafkaRecord(key=b"k", value=b"v"))


@pytest.mark.postgres
def test_replicas_sharing_a_postgresql_database_relay_each_row_once_in_order(
    pg_url: str,
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    read_topic: Callable[..., list[Any]],
) -> None:
    topic = unique_topic("outbox-replicas")
    replicas = [Store(pg_url), Store(pg_url)]  # one engine each, as two pods have
    ids = [event_id for batch in range(6) for event_id in replicas[0].add(topic, [f"sub-{batch}"] * 50)]
    publishers = [EventPublisher(kafka_settings, source="preflight-tests") for _ in replicas]
    relays = [
        OutboxRelay(r.engine, r.outbox, p, batch_size=20) for r, p in zip(replicas, publishers, strict=True)
    ]
    published = [0, 0]
    start = threading.Barrier(2)

    def drain(index: int) -> None:
        start.wait()
        while relays[index].pending():
            published[index] += relays[index].run_once()

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for publisher in publishers:
            publisher.close()
        for replica in replicas:
            replica.engine.dispose()
    assert not any(thread.is_alive() for thread in threads)
    assert sum(published) == len(ids), f"rows published more than once: {published}"
    assert ce_ids(read_topic(topic, expected=len(ids))) == ids
