"""faust agents built on `consume_events`, run as real worker processes against the real broker.

The worker (support/faust_worker.py) records every delivery, and applies each event with
`claim_event` and its effect in one SQLite transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from preflight.benchmark.v1.events_pb2 import BenchmarkJobRequested
from preflight.intake.v1.events_pb2 import ReleasePlanChanged, SubmissionReceived, SubmissionWithdrawn
from preflight_common.config import KafkaSettings, Topics
from preflight_common.envelope import KafkaRecord, encode_event, headers_dict
from preflight_common.producer import EventPublisher
from preflight_common.testing.fixtures import TopicFactory
from preflight_common.topics import TopicSpec, ensure_topics
from sqlalchemy import text
from sqlalchemy.exc import OperationalError


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
                encode_event(
                    ReleasePlanChanged(submission_id=key, deadline_version=sequence),
                    source="preflight-tests",
                    subject=key,
                ),
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
    sent = [
        publisher.publish(
            topic, SubmissionReceived(submission_id="sub-1", deadline_version=n), subject="sub-1"
        )
        for n in (1, 2, 3)
    ]
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
    corrupt = encode_event(SubmissionReceived(submission_id=key), source="preflight-tests", subject=key)
    publisher.publish_record(
        topic, KafkaRecord(key=corrupt.key, value=b"\x0a\x05ab", headers=corrupt.headers)
    )
    publisher.publish_record(topic, KafkaRecord(key=key.encode(), value=b"no headers at all"))
    poison = publisher.publish(topic, SubmissionWithdrawn(submission_id=key, reason="poison"), subject=key)
    valid = publisher.publish(topic, SubmissionReceived(submission_id=key, deadline_version=1), subject=key)

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
        sent = publisher.publish(topic, SubmissionReceived(submission_id="sub-t"), subject="sub-t")
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
