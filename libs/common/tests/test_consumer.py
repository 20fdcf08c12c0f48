"""faust agents built on `consume_events`, run as real worker processes against the real broker.

The worker (support/faust_worker.py) records every delivery, and applies each event with
`claim_event` and its effect in one SQLite transaction.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.benchmark.v1.events_pb2 import BenchmarkJobRequested
from preflight.intake.v1.events_pb2 import ReleasePlanChanged, SubmissionReceived, SubmissionWithdrawn
from preflight.intake.v1.submission_pb2 import AccessWindow, EndpointAccess, ModelAccess, ModelIdentity
from preflight_common.bus import SOURCES
from preflight_common.config import KafkaSettings, Topics
from preflight_common.consumer import AwaitingCause, DeadLetters, handle_record
from preflight_common.contracts import REQUIRED, missing_fields
from preflight_common.envelope import EventAttributes, EventRegistry, KafkaRecord, encode_event, headers_dict
from preflight_common.producer import EventPublisher
from preflight_common.topics import TopicSpec, ensure_topics
from preflight_testkit.fixtures import TopicFactory
from sqlalchemy import text
from sqlalchemy.exc import OperationalError


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


def app_id() -> str:
    return f"test-consumer-{uuid.uuid4().hex[:8]}"


def test_per_key_order_holds_across_six_partitions(
    publisher: EventPublisher,
    unique_topic: TopicFactory,
    faust_worker: Callable[..., Any],
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
    worker = faust_worker(topic, app_id())
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
    faust_worker: Callable[..., Any],
    eventually: Callable[..., Any],
) -> None:
    topic = unique_topic("crash", partitions=2)
    sent = [publisher.publish(topic, received("sub-1", n), subject="sub-1") for n in (1, 2, 3)]
    group = app_id()

    # The effect of the second event is committed, then the process dies before faust can
    # acknowledge the event or commit its offset.
    first = faust_worker(topic, group, "--crash-after", sent[1].id)
    assert first.wait_exit() == first.CRASH_EXIT_CODE, first.log()
    assert [row.event_id for row in effects(first)] == [sent[0].id, sent[1].id]
    assert deliveries_of(first, sent[1].id) == 1

    second = faust_worker(topic, group)
    eventually(lambda: deliveries_of(second, sent[2].id), "the third event after the restart")

    assert deliveries_of(second, sent[1].id) == 2, "the event in flight at the crash was redelivered"
    assert [row.event_id for row in effects(second)] == [event.id for event in sent], "each applied once"


def test_undecodable_unknown_and_poison_records_go_to_the_dlq_and_consuming_goes_on(
    publisher: EventPublisher,
    kafka_settings: KafkaSettings,
    faust_worker: Callable[..., Any],
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

    worker = faust_worker(topic, app_id())
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
    faust_worker: Callable[..., Any],
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
    worker = faust_worker(topic, app_id(), "--spans", str(spans_file))
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


@dataclass
class Consumed:
    """A consumed record as `handle_record` sees it (faust's Message has these attributes)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any


def consumed(topic: str, offset: int, record: KafkaRecord) -> Consumed:
    return Consumed(topic, 0, offset, record.key, record.value, record.headers)


def handle_all(
    kafka_settings: KafkaSettings, topics: Topics, records: list[Consumed]
) -> list[tuple[EventAttributes, Message]]:
    """Run `handle_record` on each record with real dead letters; return what reached the handler."""
    handled: list[tuple[EventAttributes, Message]] = []

    async def handler(attributes: EventAttributes, payload: Message) -> None:
        handled.append((attributes, payload))

    registry = EventRegistry([SubmissionReceived, ReleasePlanChanged, SubmissionWithdrawn])
    dead_publisher = EventPublisher(kafka_settings, source=SOURCES["benchmark"], send_timeout=10)
    try:

        async def run() -> None:
            for record in records:
                await handle_record(record, registry, handler, DeadLetters(dead_publisher), topics=topics)

        asyncio.run(run())
    finally:
        dead_publisher.close()
    return handled


def dlq_reasons(read_topic: Callable[..., list[Any]], topic: str, expected: int) -> dict[int, str]:
    """The DLQ reason of each dead-lettered record of `topic`, by its original offset."""
    return {
        int(headers["preflight_dlq_offset"]): headers["preflight_dlq_reason"]
        for headers in (headers_dict(r.headers) for r in read_topic(Topics.dlq(topic), expected=expected))
    }


def test_only_the_topics_owner_may_publish_on_it(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory, read_topic: Callable[..., list[Any]]
) -> None:
    topic = unique_topic("owned")
    unique_topic_dlq = Topics.dlq(topic)
    specs = [TopicSpec(unique_topic_dlq, partitions=1), TopicSpec(Topics.dlq(unique_topic_dlq), partitions=1)]
    ensure_topics(kafka_settings, specs)
    topics = Topics(submissions=topic)
    event = received("sub-1")
    records = [
        consumed(topic, 0, encode_event(event, source="preflight-intake", subject="sub-1")),
        consumed(topic, 1, encode_event(event, source=SOURCES["clearinghouse"], subject="sub-1")),
        consumed(topic, 2, encode_event(event, source=SOURCES["intake"], subject="sub-1")),
        # The same event on a topic no service owns is nobody's to publish.
        consumed(unique_topic_dlq, 3, encode_event(event, source=SOURCES["intake"], subject="sub-1")),
    ]

    handled = handle_all(kafka_settings, topics, records)

    assert [attributes.source for attributes, _ in handled] == [SOURCES["intake"]]
    assert dlq_reasons(read_topic, topic, expected=2) == {
        0: f"source preflight-intake may not publish on {topic}",
        1: f"source preflight.clearinghouse may not publish on {topic}",
    }
    assert dlq_reasons(read_topic, unique_topic_dlq, expected=1) == {3: f"no service owns {unique_topic_dlq}"}


def test_an_event_lacking_a_required_field_is_dead_lettered_naming_it(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory, read_topic: Callable[..., list[Any]]
) -> None:
    topic = unique_topic("contract")
    ensure_topics(kafka_settings, [TopicSpec(Topics.dlq(topic), partitions=1)])
    without_model = received("sub-2")
    without_model.ClearField("model")
    events: list[Message] = [
        ReleasePlanChanged(),
        SubmissionWithdrawn(submission_id="sub-2"),
        without_model,
        SubmissionWithdrawn(submission_id="sub-2", organisation="lab-a"),
    ]
    records = [
        consumed(topic, offset, encode_event(event, source=SOURCES["intake"], subject="sub-2"))
        for offset, event in enumerate(events)
    ]

    handled = handle_all(kafka_settings, Topics(submissions=topic), records)

    assert [payload for _, payload in handled] == [events[3]]
    assert dlq_reasons(read_topic, topic, expected=3) == {
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


def test_an_event_awaiting_its_cause_is_retried_for_its_patience_then_dead_lettered(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory, read_topic: Callable[..., list[Any]]
) -> None:
    topic = unique_topic("cause")
    ensure_topics(kafka_settings, [TopicSpec(Topics.dlq(topic), partitions=1)])
    attempts: dict[str, int] = {}

    async def handler(attributes: EventAttributes, payload: Message) -> None:
        attempts[attributes.subject] = attempts.get(attributes.subject, 0) + 1
        # "late" finds its cause on the third attempt; "forged" never does.
        if attributes.subject == "forged" or attempts[attributes.subject] < 3:
            raise AwaitingCause(f"the cause of {attributes.subject} is not recorded", patience=1.0)

    registry = EventRegistry([SubmissionReceived])
    publisher = EventPublisher(kafka_settings, source=SOURCES["benchmark"], send_timeout=10)
    records = [
        consumed(topic, offset, encode_event(received(subject), source=SOURCES["intake"], subject=subject))
        for offset, subject in enumerate(("late", "forged"))
    ]
    started = time.monotonic()
    try:

        async def run() -> None:
            for record in records:
                await handle_record(
                    record, registry, handler, DeadLetters(publisher), topics=Topics(submissions=topic)
                )

        asyncio.run(run())
    finally:
        publisher.close()

    assert attempts["late"] == 3
    assert attempts["forged"] > 1 and time.monotonic() - started >= 1.0
    assert dlq_reasons(read_topic, topic, expected=1) == {
        1: "the cause of forged is not recorded (waited 1 s for it)"
    }
