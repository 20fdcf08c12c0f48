"""Throughput of the CloudEvents envelope path next to raw kafka-python and raw aiokafka.

    python bench/envelope_throughput.py [--messages 20000] [--sync-messages 2000] [--profile FILE]

Starts its own single-node Apache Kafka broker (LocalKafka, temporary data), then measures, in
one run and on the same broker, with the same records (a realistic SubmissionReceived payload
and the envelope's headers):

* publish, pipelined (send everything, then wait for every acknowledgement) and one
  acknowledgement at a time: raw kafka-python and raw aiokafka producers (acks=all,
  idempotent, EventPublisher's linger) against `EventPublisher.publish_many`
  (encode_event included) and `EventPublisher.publish`; and the outbox relay as the services
  run it (`OutboxRelay.run_once` over a SQLite outbox holding the events, batches of 200
  published and marked sent until none is left); after the table, each of the three publishing
  paths is given as a share of the raw aiokafka producer's rate publishing the same way;
* consume from the start of a 6-partition topic: raw kafka-python and raw aiokafka consumers,
  the same with `decode_record` on every record, and the services' consume path: an
  `EventConsumer` (a consumer group member, aiokafka underneath) of one `Route` whose handler
  does nothing, so that the figure is the path's own cost (decode, source and required-field
  checks, CONSUMER span, routing, batch commits). Consumer figures run from the first record
  to the last, so group joins are not counted; the last line is the consume path's rate as a
  share of raw aiokafka's with decoding, measured in the same run (those two lines: the fastest
  of three rounds each, taken in turns).

Consumers also show the CPU time they spent per record (this process's, from the first record
to the last): on a loaded machine it says more than the rate. With `--profile FILE` the
consume path runs once more under cProfile, and its costs per event are printed by own time.

Every client authenticates as the broker's administrator (the local broker refuses anyone else).

Bounded: about a minute with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as AIOTopicPartition
from google.protobuf.message import Message
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from preflight.common.v1.common_pb2 import Contact
from preflight.intake.v1.events_pb2 import SubmissionReceived
from preflight.intake.v1.submission_pb2 import (
    AccessWindow,
    EndpointAccess,
    ModelAccess,
    ModelIdentity,
    SharingConsent,
)
from preflight_common.bus import SOURCES
from preflight_common.config import KafkaSettings, Topics
from preflight_common.consumer import DeadLetters, EventConsumer, Route
from preflight_common.db import make_engine
from preflight_common.envelope import EventAttributes, EventRegistry, KafkaRecord, decode_record, encode_event
from preflight_common.fields import timestamp
from preflight_common.localkafka import LocalKafka, find_repo_root
from preflight_common.outbox import OutboxRelay, enqueue, outbox_table
from preflight_common.producer import LINGER_MS, EventPublisher
from preflight_common.topics import TopicSpec, ensure_topics
from sqlalchemy import MetaData

# As intake publishes: a consumer accepts on the submissions topic only its owner's events.
SOURCE = SOURCES["intake"]
REGISTRY = EventRegistry([SubmissionReceived])
PARTITIONS = 6
SUBJECTS = 100
RAW_DECODED = "aiokafka + decode_record"
PIPELINED, ONE_BY_ONE = "pipelined, acks=all", "one ack at a time, acks=all"
BATCHES = "batches of 200, acks=all"
RAW_PUBLISH = "raw aiokafka"
# The publishing paths (path, mode), each next to the raw aiokafka producer publishing alike.
PUBLISH_RATIOS = [
    (("envelope: EventPublisher.publish_many", PIPELINED), (RAW_PUBLISH, PIPELINED)),
    (("outbox relay (SQLite)", BATCHES), (RAW_PUBLISH, PIPELINED)),
    (("envelope: EventPublisher.publish", ONE_BY_ONE), (RAW_PUBLISH, ONE_BY_ONE)),
]
CONSUME_PATH = "envelope: EventConsumer, consume path"
ROUNDS = 3
# The producer settings EventPublisher uses, so that raw and envelope differ only by the envelope.
PRODUCER_SETTINGS: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "linger_ms": LINGER_MS}


def submission(number: int) -> SubmissionReceived:
    """A SubmissionReceived as intake publishes it."""
    release = datetime(2026, 9, 1, tzinfo=UTC) + timedelta(hours=number % 500)
    submission_id = f"sub-{number % SUBJECTS:04d}-{uuid.UUID(int=number)}"
    return SubmissionReceived(
        submission_id=submission_id,
        organisation="frontier-lab",
        model=ModelIdentity(developer="Frontier Lab", name="atlas", version=f"3.{number % 10}"),
        planned_release=timestamp(release),
        review_deadline=timestamp(release),
        access=ModelAccess(
            endpoint=EndpointAccess(
                base_url="https://models.frontier-lab.example/v1",
                model_name="atlas-3-preview",
                credential_ref=f"cred-{number % SUBJECTS}",
            )
        ),
        access_window=AccessWindow(
            start=timestamp(release - timedelta(days=30)), end=timestamp(release - timedelta(days=1))
        ),
        contacts=[
            Contact(name="Ada Lovelace", email="ada@frontier-lab.example", role="security"),
            Contact(name="Grace Hopper", email="grace@frontier-lab.example", role="release-manager"),
        ],
        declared_capabilities=["code-generation", "vulnerability-discovery", "exploit-development"],
        intended_use="general-purpose assistant with agentic coding tools",
        consent=SharingConsent(share_identity_with_operators=False),
        flags=["SHORT_ACCESS_WINDOW"],
        received_at=timestamp(release - timedelta(days=31)),
        deadline_version=1,
    )


def subject_of(number: int) -> str:
    return f"sub-{number % SUBJECTS:04d}"


@dataclass(frozen=True)
class Result:
    direction: str
    path: str
    mode: str
    messages: int
    seconds: float
    # CPU time of the consuming process from the first record to the last (consumers only).
    cpu_seconds: float | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else float("inf")

    @property
    def cpu_per_message(self) -> str:
        """CPU microseconds per message, or blank for publishers."""
        return "" if self.cpu_seconds is None else f"{self.cpu_seconds / self.messages * 1e6:.1f}"


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


# --------------------------------------------------------------------------------- publish


def publish_kafka_python(
    settings: KafkaSettings, topic: str, records: list[KafkaRecord], pipelined: bool
) -> float:
    producer = KafkaProducer(**settings.kafka_python_options(), **PRODUCER_SETTINGS)
    try:
        producer.send(topic, key=b"warm-up", value=b"").get(timeout=30)

        def run() -> None:
            if pipelined:
                futures = [producer.send(topic, key=r.key, value=r.value, headers=r.headers) for r in records]
                for future in futures:
                    future.get(timeout=60)
            else:
                for r in records:
                    producer.send(topic, key=r.key, value=r.value, headers=r.headers).get(timeout=60)

        return timed(run)
    finally:
        producer.close()


def publish_aiokafka(
    settings: KafkaSettings, topic: str, records: list[KafkaRecord], pipelined: bool
) -> float:
    async def main() -> float:
        producer = AIOKafkaProducer(**settings.aiokafka_options(), **PRODUCER_SETTINGS)
        await producer.start()
        try:
            await producer.send_and_wait(topic, key=b"warm-up", value=b"")
            start = time.perf_counter()
            if pipelined:
                futures = [
                    await producer.send(topic, key=r.key, value=r.value, headers=r.headers) for r in records
                ]
                await asyncio.gather(*futures)
            else:
                for r in records:
                    await producer.send_and_wait(topic, key=r.key, value=r.value, headers=r.headers)
            return time.perf_counter() - start
        finally:
            await producer.stop()

    return asyncio.run(main())


def publish_envelope(settings: KafkaSettings, topic: str, count: int, pipelined: bool) -> float:
    publisher = EventPublisher(settings, source=SOURCE)
    try:
        publisher.publish(topic, submission(0), subject="warm-up")
        payloads = [submission(n) for n in range(count)]  # building the message is the caller's work

        def run() -> None:
            if pipelined:
                publisher.publish_many(
                    [
                        (topic, encode_event(payload, source=SOURCE, subject=subject_of(n)))
                        for n, payload in enumerate(payloads)
                    ]
                )
            else:
                for n, payload in enumerate(payloads):
                    publisher.publish(topic, payload, subject=subject_of(n))

        return timed(run)
    finally:
        publisher.close()


def publish_outbox(settings: KafkaSettings, topic: str, count: int, work_dir: Path) -> float:
    """`count` events written to a SQLite outbox (as the services' transactions do, not timed),
    then relayed until none is left."""
    engine = make_engine(f"sqlite:///{work_dir / f'outbox-{uuid.uuid4().hex}.db'}")
    table = outbox_table(metadata := MetaData())
    metadata.create_all(engine)
    with engine.begin() as conn:
        for n in range(count):
            enqueue(conn, table, topic, encode_event(submission(n), source=SOURCE, subject=subject_of(n)))
    publisher = EventPublisher(settings, source=SOURCE)
    try:
        publisher.publish(topic, submission(0), subject="warm-up")
        relay = OutboxRelay(engine, table, publisher)

        def run() -> None:
            while relay.run_once():
                pass

        seconds = timed(run)
        if relay.pending():
            raise RuntimeError(f"the outbox relay left {relay.pending()} of {count} events")
        return seconds
    finally:
        publisher.close()
        engine.dispose()


# --------------------------------------------------------------------------------- consume


def consume_kafka_python(
    settings: KafkaSettings, topic: str, count: int, decode: bool
) -> tuple[float, float]:
    consumer = KafkaConsumer(
        enable_auto_commit=False, max_poll_records=2000, **settings.kafka_python_options()
    )
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        seen, start, cpu = 0, 0.0, 0.0
        deadline = time.monotonic() + 120
        while seen < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                if not start:
                    start, cpu = time.perf_counter(), time.process_time()
                for record in batch:
                    if decode:
                        decode_record(record.headers, record.value, REGISTRY)
                seen += len(batch)
        if seen < count:
            raise RuntimeError(f"kafka-python consumer saw {seen} of {count} records")
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        consumer.close()


def consume_aiokafka(settings: KafkaSettings, topic: str, count: int, decode: bool) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **settings.aiokafka_options())
        await consumer.start()
        try:
            partitions = [AIOTopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            seen, start, cpu = 0, 0.0, 0.0
            deadline = time.monotonic() + 120
            while seen < count and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=500, max_records=2000)).values():
                    if not start:
                        start, cpu = time.perf_counter(), time.process_time()
                    for record in batch:
                        if decode:
                            decode_record(record.headers, record.value, REGISTRY)
                    seen += len(batch)
            if seen < count:
                raise RuntimeError(f"aiokafka consumer saw {seen} of {count} records")
            return time.perf_counter() - start, time.process_time() - cpu
        finally:
            await consumer.stop()

    return asyncio.run(main())


def consume_path(
    settings: KafkaSettings, topic: str, count: int, profile: Path | None = None
) -> tuple[float, float]:
    """The services' consume path over `topic` in a fresh consumer group, timed from its first
    event to its `count`-th; with `profile`, that stretch runs under cProfile into that file."""

    async def main() -> tuple[float, float]:
        progress = {"seen": 0, "start": 0.0, "cpu": 0.0, "seconds": 0.0, "cpu_seconds": 0.0}
        done = asyncio.Event()
        profiler = cProfile.Profile() if profile is not None else None

        async def handle(attributes: EventAttributes, payload: Message) -> None:
            if not progress["seen"]:
                progress["start"], progress["cpu"] = time.perf_counter(), time.process_time()
                if profiler is not None:
                    profiler.enable()
            progress["seen"] += 1
            if progress["seen"] == count:
                progress["seconds"] = time.perf_counter() - progress["start"]
                progress["cpu_seconds"] = time.process_time() - progress["cpu"]
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(str(profile))
                done.set()

        publisher = EventPublisher(settings, source=SOURCE)
        consumer = EventConsumer(
            settings,
            group=f"bench-{uuid.uuid4().hex[:8]}",
            routes=[Route(topic, REGISTRY, handle)],
            topics=Topics(submissions=topic),
            dead_letters=DeadLetters(publisher),
        )
        try:
            await consumer.start()
            await asyncio.wait_for(done.wait(), timeout=120)
        finally:
            await consumer.stop()
            publisher.close()
        return progress["seconds"], progress["cpu_seconds"]

    return asyncio.run(main())


# ------------------------------------------------------------------------------------ main


def run(messages: int, sync_messages: int, profile: Path | None) -> None:
    sample = encode_event(submission(1), source=SOURCE, subject=subject_of(1))
    header_bytes = sum(len(name) + len(value) for name, value in sample.headers)
    with tempfile.TemporaryDirectory(prefix="preflight-bench-") as tmp:
        work_dir = Path(tmp)
        broker = LocalKafka(work_dir / "kafka", repo_root=find_repo_root(Path(__file__).parent))
        started_in = timed(broker.start)
        try:
            print(f"Apache Kafka broker (LocalKafka, 1 node, KRaft) started in {started_in:.1f}s")
            print(
                f"record: SubmissionReceived value {len(sample.value)} B, {len(sample.headers)} headers "
                f"{header_bytes} B, key {len(sample.key)} B; topics of {PARTITIONS} partitions, "
                f"{SUBJECTS} keys"
            )
            print()
            columns = f"{'messages':>9} {'seconds':>8} {'msg/s':>9} {'CPU µs/msg':>10}"
            print(f"{'':8} {'path':40} {'mode':30} {columns}")
            results, publishes = {}, {}
            for r in measure(broker.admin_settings(), messages, sync_messages, work_dir, profile):
                results[r.direction, r.path] = r
                publishes[r.path, r.mode] = r
                print(
                    f"{r.direction:8} {r.path:40} {r.mode:30} {r.messages:9d} {r.seconds:8.2f} {r.rate:9.0f} "
                    f"{r.cpu_per_message:>10}",
                    flush=True,
                )
            print()
            for path_mode, raw_mode in PUBLISH_RATIOS:
                path, raw = publishes[path_mode], publishes[raw_mode]
                print(f"{path.path} / {raw.path} {raw.mode}: {path.rate / raw.rate:.2f}x the rate")
            path, raw = results["consume", CONSUME_PATH], results["consume", RAW_DECODED]
            print(
                f"consume path / raw aiokafka + decode_record: {path.rate / raw.rate:.2f}x the rate, "
                f"CPU {path.cpu_per_message} vs {raw.cpu_per_message} µs per event"
            )
        finally:
            broker.stop()
    if profile is not None:
        print(f"\nconsume path, per event (cProfile, {profile}), by own time:")
        stats = pstats.Stats(str(profile))
        stats.sort_stats(pstats.SortKey.TIME).print_stats(25)


def measure(
    settings: KafkaSettings, messages: int, sync_messages: int, work_dir: Path, profile: Path | None
) -> Iterator[Result]:
    topics = [f"bench.{n}.{uuid.uuid4().hex[:8]}" for n in range(7)]
    ensure_topics(settings, [TopicSpec(name, PARTITIONS) for name in topics])
    records = [encode_event(submission(n), source=SOURCE, subject=subject_of(n)) for n in range(messages)]

    yield Result(
        "publish",
        "raw kafka-python",
        PIPELINED,
        messages,
        publish_kafka_python(settings, topics[0], records, pipelined=True),
    )
    yield Result(
        "publish",
        "raw aiokafka",
        PIPELINED,
        messages,
        publish_aiokafka(settings, topics[1], records, pipelined=True),
    )
    yield Result(
        "publish",
        "envelope: EventPublisher.publish_many",
        PIPELINED,
        messages,
        publish_envelope(settings, topics[2], messages, pipelined=True),
    )
    yield Result(
        "publish",
        "outbox relay (SQLite)",
        BATCHES,
        messages,
        publish_outbox(settings, topics[6], messages, work_dir),
    )
    sync_records = records[:sync_messages]
    yield Result(
        "publish",
        "raw kafka-python",
        ONE_BY_ONE,
        sync_messages,
        publish_kafka_python(settings, topics[3], sync_records, pipelined=False),
    )
    yield Result(
        "publish",
        "raw aiokafka",
        ONE_BY_ONE,
        sync_messages,
        publish_aiokafka(settings, topics[4], sync_records, pipelined=False),
    )
    yield Result(
        "publish",
        "envelope: EventPublisher.publish",
        ONE_BY_ONE,
        sync_messages,
        publish_envelope(settings, topics[5], sync_messages, pipelined=False),
    )

    # Every consumer reads the envelope topic: the warm-up event and then `messages` events.
    source, count = topics[2], messages + 1
    yield Result(
        "consume",
        "raw kafka-python",
        "assigned, no decoding",
        count,
        *consume_kafka_python(settings, source, count, decode=False),
    )
    yield Result(
        "consume",
        "raw aiokafka",
        "assigned, no decoding",
        count,
        *consume_aiokafka(settings, source, count, decode=False),
    )
    yield Result(
        "consume",
        "kafka-python + decode_record",
        "assigned",
        count,
        *consume_kafka_python(settings, source, count, decode=True),
    )
    # The two lines compared run ROUNDS times, taking turns, and each keeps its fastest round: on a
    # shared machine one round of either can be slowed by others.
    rounds = [
        (consume_aiokafka(settings, source, count, decode=True), consume_path(settings, source, count))
        for _ in range(ROUNDS)
    ]
    yield Result("consume", RAW_DECODED, f"assigned, best of {ROUNDS}", count, *min(raw for raw, _ in rounds))
    yield Result(
        "consume",
        CONSUME_PATH,
        f"group member, best of {ROUNDS}",
        count,
        *min(path for _, path in rounds),
    )
    if profile is not None:
        yield Result(
            "consume",
            "envelope: consume path, profiled",
            "as above, under cProfile",
            count,
            *consume_path(settings, source, count, profile),
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000, help="records per pipelined/consume run")
    parser.add_argument("--sync-messages", type=int, default=2_000, help="records per one-at-a-time run")
    parser.add_argument(
        "--profile", type=Path, help="also profile the consume path (cProfile) into this file"
    )
    args = parser.parse_args()
    if not 0 < args.sync_messages <= args.messages:
        parser.error("need 0 < --sync-messages <= --messages")
    run(args.messages, args.sync_messages, args.profile)


if __name__ == "__main__":
    main()
