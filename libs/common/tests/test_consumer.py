"""The event consumer against the real broker (SASL, ACLs): worker processes consuming through
`KafkaSide` as a service does (support/consumer_worker.py: every delivery recorded, each event
applied with `claim_event` and its effect in one SQLite transaction), and `EventConsumer`s run
in the test's own event loop where a test steers the handler.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from kafka.partitioner.default import murmur2
from preflight.benchmark.v1.events_pb2 import BenchmarkJobRequested
from preflight.intake.v1.events_pb2 import ReleasePlanChanged, SubmissionReceived, SubmissionWithdrawn
from preflight.intake.v1.submission_pb2 import AccessWindow, EndpointAccess, ModelAccess, ModelIdentity
from preflight_common.bus import SOURCES, service_grants, service_principal
from preflight_common.config import KafkaSettings, Topics
from preflight_common.consumer import AwaitingCause, DeadLetters, EventConsumer, Route
from preflight_common.contracts import REQUIRED, missing_fields
from preflight_common.envelope import EventAttributes, EventRegistry, KafkaRecord, encode_event, headers_dict
from preflight_common.liveness import Liveness
from preflight_common.producer import EventPublisher
from preflight_common.topics import TopicSpec, ensure_topics
from preflight_testkit.fixtures import PrincipalFactory, TopicFactory
from preflight_testkit.waiting import until
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

T = TypeVar("T")
REGISTRY = EventRegistry([SubmissionReceived, ReleasePlanChanged, SubmissionWithdrawn])


def received(submission_id: str, deadline_version: int = 1) -> SubmissionReceived:
    """A SubmissionReceived with every field its contract requires."""
    return SubmissionReceived(
        submission_id=submission_id,
        organisation="lab-a",
        model=ModelIdentity(name="model", version="1"),
        access=ModelAccess(endpoint=EndpointAccess(base_url="https://model.example")),
        access_window=AccessWindow(start=Timestamp(seconds=1), end=Timestamp(seconds=2)),
        received_at=Timestamp(seconds=1),
        deadline_version=deadline_version,
    )


def plan_changed(submission_id: str, deadline_version: int) -> ReleasePlanChanged:
    """A ReleasePlanChanged with every field its contract requires."""
    return ReleasePlanChanged(
        submission_id=submission_id,
        organisation="lab-a",
        planned_release=Timestamp(seconds=10),
        deadline_version=deadline_version,
    )


def rows(worker: Any, sql: str) -> list[Any]:
    """Query the worker's store; no rows while the worker has not created its tables yet."""
    try:
        with worker.db.connect() as conn:
            return list(conn.execute(text(sql)).all())
    except OperationalError as error:
        if "no such table" in str(error):
            return []
        raise


def effects(worker: Any) -> list[Any]:
    return rows(worker, "SELECT event_id, event_type, subject, sequence FROM effects ORDER BY id")


def deliveries_of(worker: Any, event_id: str) -> int:
    return len(rows(worker, f"SELECT id FROM deliveries WHERE event_id = '{event_id}'"))  # noqa: S608


def group_id(prefix: str = "test-consumer") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------- as a service runs it


def test_per_key_order_holds_across_six_partitions(
    publisher: EventPublisher,
    unique_topic: TopicFactory,
    consumer_worker: Callable[..., Any],
    eventually: Callable[..., Any],
) -> None:
    topic = unique_topic("order", partitions=6)
    keys = [f"sub-{n}" for n in range(8)]
    per_key = 40
    # Interleaved across keys and sent pipelined (several in flight), as a busy relay does.
    publisher.publish_many(
        [
            (
                topic,
                encode_event(plan_changed(key, sequence), source=SOURCES["intake"], subject=key),
            )
            for sequence in range(1, per_key + 1)
            for key in keys
        ]
    )
    worker = consumer_worker(topic, group_id())
    applied = eventually(
        lambda: (found := effects(worker)) and len(found) >= len(keys) * per_key and found,
        "every event to be applied",
    )

    assert len(applied) == len(keys) * per_key
    for key in keys:
        assert [row.sequence for row in applied if row.subject == key] == list(range(1, per_key + 1)), key
    assert len({row.event_id for row in applied}) == len(applied)


def test_a_consumer_killed_after_its_effect_gets_the_event_again_and_applies_it_once(
    publisher: EventPublisher,
    unique_topic: TopicFactory,
    consumer_worker: Callable[..., Any],
    eventually: Callable[..., Any],
) -> None:
    topic = unique_topic("crash", partitions=2)
    sent = [publisher.publish(topic, received("sub-1", n), subject="sub-1") for n in (1, 2, 3)]
    group = group_id()

    # The effect of the second event is committed, then the process dies before its handler
    # returned, so before the offset of its batch may be committed.
    first = consumer_worker(topic, group, "--crash-after", sent[1].id)
    assert first.wait_exit() == first.CRASH_EXIT_CODE, first.log()
    assert [row.event_id for row in effects(first)] == [sent[0].id, sent[1].id]
    assert deliveries_of(first, sent[1].id) == 1

    second = consumer_worker(topic, group)
    eventually(lambda: deliveries_of(second, sent[2].id), "the third event after the restart")

    assert deliveries_of(second, sent[1].id) == 2, "the event in flight at the crash was redelivered"
    assert [row.event_id for row in effects(second)] == [event.id for event in sent], "each applied once"


def test_undecodable_unknown_and_poison_records_go_to_the_dlq_and_consuming_goes_on(
    publisher: EventPublisher,
    kafka_settings: KafkaSettings,
    consumer_worker: Callable[..., Any],
    eventually: Callable[..., Any],
    read_topic: Callable[..., list[Any]],
) -> None:
    topic = f"dlq-test.{uuid.uuid4().hex[:12]}"
    dlq = Topics.dlq(topic)
    ensure_topics(kafka_settings, [TopicSpec(topic, partitions=2), TopicSpec(dlq, partitions=1)])

    key = "sub-9"
    unknown = publisher.publish(topic, BenchmarkJobRequested(job_id="job-1"), subject=key)
    corrupt = encode_event(received(key), source=SOURCES["intake"], subject=key)
    publisher.publish_record(
        topic, KafkaRecord(key=corrupt.key, value=b"\x0a\x05ab", headers=corrupt.headers)
    )
    publisher.publish_record(topic, KafkaRecord(key=key.encode(), value=b"no headers at all"))
    poison = publisher.publish(
        topic, SubmissionWithdrawn(submission_id=key, organisation="lab-a", reason="poison"), subject=key
    )
    valid = publisher.publish(topic, received(key), subject=key)

    worker = consumer_worker(topic, group_id())
    eventually(lambda: effects(worker), "the valid event after the bad ones to be applied")

    assert [row.event_id for row in effects(worker)] == [valid.id]
    originals = {record.offset: record for record in read_topic(topic, expected=5)}
    dead = read_topic(dlq, expected=4)
    reasons = []
    for record in dead:
        headers = headers_dict(record.headers)
        original = originals[int(headers["preflight_dlq_offset"])]
        assert headers["preflight_dlq_topic"] == topic
        assert int(headers["preflight_dlq_partition"]) == original.partition
        assert (record.key, record.value) == (original.key, original.value)
        assert headers.get("ce_id") == headers_dict(original.headers).get("ce_id")
        reasons.append(headers["preflight_dlq_reason"])
    assert reasons[0] == "unknown ce_type 'preflight.benchmark.v1.BenchmarkJobRequested'"
    assert reasons[1].startswith("value does not decode as preflight.intake.v1.SubmissionReceived")
    assert reasons[2] == "missing ce_type header"
    assert reasons[3] == "poison event: submission sub-9 cannot be withdrawn"
    assert len(dead) == 4
    assert headers_dict(dead[0].headers)["ce_id"] == unknown.id
    assert headers_dict(dead[3].headers)["ce_id"] == poison.id


def test_the_consumer_continues_the_producers_trace(
    publisher: EventPublisher,
    unique_topic: TopicFactory,
    consumer_worker: Callable[..., Any],
    eventually: Callable[..., Any],
    span_exporter: Any,
    tmp_path: Path,
) -> None:
    from opentelemetry import trace

    topic = unique_topic("trace", partitions=1)
    with trace.get_tracer(__name__).start_as_current_span("submit model") as root:
        sent = publisher.publish(topic, received("sub-t"), subject="sub-t")
    [publish_span] = [
        span
        for span in span_exporter.get_finished_spans()
        if span.attributes.get("messaging.message.id") == sent.id
    ]

    spans_file = tmp_path / "worker-spans.jsonl"
    worker = consumer_worker(topic, group_id(), "--spans", str(spans_file))
    eventually(lambda: effects(worker), "the event to be applied")
    assert worker.stop() == 0, worker.log()

    consumer_spans = [
        span
        for span in map(json.loads, spans_file.read_text().splitlines())
        if span["attributes"].get("messaging.message.id") == sent.id
    ]
    assert len(consumer_spans) == 1
    [consumed] = consumer_spans
    assert consumed["kind"] == "SpanKind.CONSUMER"
    assert int(consumed["context"]["trace_id"], 16) == root.get_span_context().trace_id
    assert int(consumed["parent_id"], 16) == publish_span.context.span_id
    assert publish_span.parent.span_id == root.get_span_context().span_id


def test_a_stopped_consumer_commits_what_it_handled_and_the_next_one_gets_the_rest(
    publisher: EventPublisher,
    unique_topic: TopicFactory,
    consumer_worker: Callable[..., Any],
    eventually: Callable[..., Any],
) -> None:
    topic = unique_topic("stop", partitions=1)
    sent = [publisher.publish(topic, received("sub-s", n), subject="sub-s") for n in range(1, 11)]
    group = group_id()

    # One fetched batch holds all ten; SIGTERM arrives while the busy handler is in its middle.
    first = consumer_worker(topic, group, "--handling-time", "0.3")
    eventually(lambda: len(effects(first)) >= 3, "three events applied")
    assert first.stop() == 0, first.log()
    handled = [row.event_id for row in effects(first)]
    assert len(handled) < len(sent), "stopped before the end of the batch"

    second = consumer_worker(topic, group)
    eventually(lambda: len(effects(second)) == len(sent), "every event applied")

    assert [row.event_id for row in effects(second)] == [event.id for event in sent]
    redelivered = [event.id for event in sent if deliveries_of(second, event.id) != 1]
    assert redelivered == [], "what the stopped consumer handled was committed, and nothing was skipped"


# ----------------------------------------------------------------- in the test's event loop


@asynccontextmanager
async def consuming(
    settings: KafkaSettings,
    routes: Sequence[Route],
    topics: Topics,
    *,
    group: str | None = None,
    liveness: Liveness | None = None,
    max_backoff: float = 30.0,
) -> AsyncIterator[EventConsumer]:
    """An `EventConsumer` of `routes` consuming as `settings`' principal (which also dead-letters)
    until the block ends."""
    publisher = EventPublisher(settings, source=SOURCES["benchmark"], send_timeout=10)
    consumer = EventConsumer(
        settings,
        group=group or group_id(),
        routes=routes,
        topics=topics,
        dead_letters=DeadLetters(publisher, liveness=liveness),
        max_backoff=max_backoff,
    )
    try:
        await consumer.start()
        yield consumer
    finally:
        await consumer.stop()
        publisher.close()


def dlq_reasons(read_topic: Callable[..., list[Any]], topic: str, expected: int) -> dict[int, str]:
    """The DLQ reason of each dead-lettered record of `topic`, by its original offset."""
    return {
        int(headers["preflight_dlq_offset"]): headers["preflight_dlq_reason"]
        for headers in (headers_dict(r.headers) for r in read_topic(Topics.dlq(topic), expected=expected))
    }


async def test_only_the_topics_owner_may_publish_on_it(
    kafka_settings: KafkaSettings,
    publisher: EventPublisher,
    unique_topic: TopicFactory,
    read_topic: Callable[..., list[Any]],
) -> None:
    topic, unowned = unique_topic("owned"), unique_topic("unowned")
    ensure_topics(kafka_settings, [TopicSpec(Topics.dlq(name), partitions=1) for name in (topic, unowned)])
    event = received("sub-1")
    for source in ("preflight-intake", SOURCES["clearinghouse"], SOURCES["intake"]):
        publisher.publish_record(topic, encode_event(event, source=source, subject="sub-1"))
    # The same event on a topic no service owns is nobody's to publish.
    publisher.publish_record(unowned, encode_event(event, source=SOURCES["intake"], subject="sub-1"))
    handled: list[EventAttributes] = []

    async def handler(attributes: EventAttributes, payload: Message) -> None:
        handled.append(attributes)

    routes = [Route(topic, REGISTRY, handler), Route(unowned, REGISTRY, handler)]
    async with consuming(kafka_settings, routes, Topics(submissions=topic)):
        reasons = await asyncio.to_thread(dlq_reasons, read_topic, topic, 2)
        unowned_reasons = await asyncio.to_thread(dlq_reasons, read_topic, unowned, 1)
        await until(lambda: handled, "the owner's event to be applied")

    assert [attributes.source for attributes in handled] == [SOURCES["intake"]]
    assert reasons == {
        0: f"source preflight-intake may not publish on {topic}",
        1: f"source preflight.clearinghouse may not publish on {topic}",
    }
    assert unowned_reasons == {0: f"no service owns {unowned}"}


async def test_an_event_lacking_a_required_field_is_dead_lettered_naming_it(
    kafka_settings: KafkaSettings,
    kafka_principal: PrincipalFactory,
    publisher: EventPublisher,
    unique_topic: TopicFactory,
    read_topic: Callable[..., list[Any]],
) -> None:
    topic = unique_topic("contract")
    ensure_topics(kafka_settings, [TopicSpec(Topics.dlq(topic), partitions=1)])
    topics = Topics(submissions=topic)
    # Consumed as the benchmark consumes the submissions topic: its principal, its production
    # grants (read the topic, write its DLQ, consumer groups preflight-benchmark…).
    benchmark = kafka_principal(service_principal("benchmark"), service_grants("benchmark", topics))
    without_model = received("sub-2")
    without_model.ClearField("model")
    events: list[Message] = [
        ReleasePlanChanged(),
        SubmissionWithdrawn(submission_id="sub-2"),
        without_model,
        SubmissionWithdrawn(submission_id="sub-2", organisation="lab-a"),
    ]
    for event in events:
        publisher.publish_record(topic, encode_event(event, source=SOURCES["intake"], subject="sub-2"))
    handled: list[Message] = []

    async def handler(attributes: EventAttributes, payload: Message) -> None:
        handled.append(payload)

    group = group_id(service_principal("benchmark"))
    async with consuming(benchmark, [Route(topic, REGISTRY, handler)], topics, group=group):
        await until(lambda: handled, "the complete event to be applied")
        reasons = await asyncio.to_thread(dlq_reasons, read_topic, topic, 3)

    assert handled == [events[3]]
    assert reasons == {
        0: "preflight.intake.v1.ReleasePlanChanged lacks required field(s): "
        "submission_id, organisation, planned_release, deadline_version",
        1: "preflight.intake.v1.SubmissionWithdrawn lacks required field(s): organisation",
        2: "preflight.intake.v1.SubmissionReceived lacks required field(s): model.name, model.version",
    }


def test_every_event_type_the_protos_document_declares_its_required_fields() -> None:
    protos = Path(__file__).resolve().parents[3] / "protos"
    documented = {
        match.group(1)
        for path in protos.rglob("*.proto")
        for match in re.finditer(r"// ce_type: ([\w.]+)", path.read_text(encoding="utf-8"))
    }

    assert documented
    assert documented == set(REQUIRED)
    for name, paths in REQUIRED.items():
        package, _, type_name = name.rpartition(".")
        message = getattr(importlib.import_module(f"{package}.events_pb2"), type_name)()
        assert missing_fields(message) == list(paths), name


def test_a_complete_event_lacks_nothing_and_one_without_a_single_required_field_names_it() -> None:
    assert missing_fields(received("sub-c")) == []
    for path in REQUIRED[SubmissionReceived.DESCRIPTOR.full_name]:
        event = received("sub-c")
        *parents, name = path.split(".")
        holder: Message = event
        for parent in parents:
            holder = getattr(holder, parent)
        holder.ClearField(name)
        assert missing_fields(event) == [path], path


async def test_an_event_awaiting_its_cause_is_retried_for_its_patience_then_dead_lettered(
    kafka_settings: KafkaSettings,
    publisher: EventPublisher,
    unique_topic: TopicFactory,
    read_topic: Callable[..., list[Any]],
) -> None:
    topic = unique_topic("cause")
    ensure_topics(kafka_settings, [TopicSpec(Topics.dlq(topic), partitions=1)])
    for subject in ("late", "forged", "after"):
        publisher.publish(topic, received(subject), subject=subject)
    attempts: dict[str, int] = {}
    applied: list[str] = []

    async def handler(attributes: EventAttributes, payload: Message) -> None:
        attempts[attributes.subject] = attempts.get(attributes.subject, 0) + 1
        # "late" finds its cause on the third attempt; "forged" never does.
        if attributes.subject == "forged" or attempts[attributes.subject] < 3:
            raise AwaitingCause(f"the cause of {attributes.subject} is not recorded", patience=1.0)
        applied.append(attributes.subject)

    started = time.monotonic()
    async with consuming(kafka_settings, [Route(topic, REGISTRY, handler)], Topics(submissions=topic)):
        reasons = await asyncio.to_thread(dlq_reasons, read_topic, topic, 1)
        waited = time.monotonic() - started
        await until(lambda: "after" in attempts and applied[-1:] == ["after"], "the next event")

    assert attempts["late"] == 3
    assert attempts["forged"] > 1 and waited >= 1.0
    assert reasons == {1: "the cause of forged is not recorded (waited 1 s for it)"}
    assert applied == ["late", "after"]


def partition_of(subject: str, partitions: int) -> int:
    """The partition the publishers' (Kafka's default) partitioner puts a subject's events in."""
    return (murmur2(subject.encode()) & 0x7FFFFFFF) % partitions


async def test_a_failing_event_holds_its_partition_in_order_while_the_others_go_on(
    kafka_settings: KafkaSettings, publisher: EventPublisher, unique_topic: TopicFactory
) -> None:
    topic = unique_topic("hold", partitions=2)
    held = next(f"held-{n}" for n in range(100) if partition_of(f"held-{n}", 2) == 0)
    free = next(f"free-{n}" for n in range(100) if partition_of(f"free-{n}", 2) == 1)

    def events_of(subject: str) -> list[tuple[str, KafkaRecord]]:
        return [
            (topic, encode_event(plan_changed(subject, sequence), source=SOURCES["intake"], subject=subject))
            for sequence in range(1, 6)
        ]

    publisher.publish_many(events_of(held))
    applied: list[tuple[str, int]] = []
    failures = 0

    async def handler(attributes: EventAttributes, payload: Message) -> None:
        nonlocal failures
        assert isinstance(payload, ReleasePlanChanged)
        # The held subject's second event fails until every event of the other partition is
        # applied, events published only once it failed: a consumer that waited on it as a whole
        # would never get to them.
        if (attributes.subject, payload.deadline_version) == (held, 2) and (
            not failures or len([step for step in applied if step[0] == free]) < 5
        ):
            failures += 1
            raise RuntimeError("the database is unavailable")
        applied.append((attributes.subject, payload.deadline_version))

    routes = [Route(topic, REGISTRY, handler)]
    async with consuming(kafka_settings, routes, Topics(submissions=topic), max_backoff=0.2):
        await until(lambda: failures, "the held event to fail")
        await asyncio.to_thread(publisher.publish_many, events_of(free))
        await until(lambda: len(applied) == 10, "every event applied")

    assert [sequence for subject, sequence in applied if subject == held] == [1, 2, 3, 4, 5]
    assert [sequence for subject, sequence in applied if subject == free] == [1, 2, 3, 4, 5]
    assert applied.index((free, 5)) < applied.index((held, 2))


async def test_a_member_commits_what_it_handled_before_its_partitions_move_to_another(
    kafka_settings: KafkaSettings, publisher: EventPublisher, unique_topic: TopicFactory
) -> None:
    topic = unique_topic("rebalance", partitions=2)
    subjects = [next(f"s{p}-{n}" for n in range(100) if partition_of(f"s{p}-{n}", 2) == p) for p in (0, 1)]
    publisher.publish_many(
        [
            (topic, encode_event(received(subject, sequence), source=SOURCES["intake"], subject=subject))
            for sequence in range(1, 9)
            for subject in subjects
        ]
    )
    deliveries: list[str] = []

    async def handler(attributes: EventAttributes, payload: Message) -> None:
        deliveries.append(attributes.id)
        await asyncio.sleep(0.2)  # a busy handler: the rebalance comes while one is in hand

    group = group_id()
    routes = [Route(topic, REGISTRY, handler)]
    topics = Topics(submissions=topic)
    async with consuming(kafka_settings, routes, topics, group=group) as first:
        await until(lambda: len(deliveries) >= 3, "the first member to apply three events")
        async with consuming(kafka_settings, routes, topics, group=group) as second:
            await until(lambda: len(set(deliveries)) == 16, "every event applied", timeout=120)
            assert first.assigned() and second.assigned(), "the partitions were shared"

    assert len(deliveries) == 16, "no event was delivered twice"


async def test_a_consumer_retrying_a_failing_handler_is_degraded_until_it_goes_on(
    kafka_settings: KafkaSettings,
    publisher: EventPublisher,
    unique_topic: TopicFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = unique_topic("degraded")
    publisher.publish(topic, SubmissionWithdrawn(submission_id="s-1", organisation="lab-a"), subject="s-1")
    liveness = Liveness()
    seen: list[dict[str, str]] = []

    async def handler(attributes: EventAttributes, payload: Message) -> None:
        seen.append(liveness.degraded())
        if len(seen) < 3:
            raise RuntimeError("database unavailable")

    routes, topics = [Route(topic, REGISTRY, handler)], Topics(submissions=topic)
    async with consuming(kafka_settings, routes, topics, liveness=liveness, max_backoff=0.1):
        await until(lambda: len(seen) == 3 and not liveness.degraded(), "the third attempt to succeed")

    assert seen[0] == {}
    assert seen[2] == {f"{topic}[0]": "offset 0: handler failed: RuntimeError('database unavailable')"}
    retries = [r for r in caplog.records if r.getMessage().startswith("handler failed")]
    assert len(retries) == 2
