"""The CloudEvents Kafka binary binding: what goes on the wire, and decoding it back."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace
from preflight.benchmark.v1.events_pb2 import BenchmarkJobRequested
from preflight.common.v1.common_pb2 import Contact
from preflight.intake.v1.events_pb2 import ReleasePlanChanged, SubmissionReceived
from preflight.intake.v1.submission_pb2 import (
    AccessWindow,
    EndpointAccess,
    ModelAccess,
    ModelIdentity,
    SharingConsent,
)
from preflight_common.bus import SOURCES
from preflight_common.config import KafkaSettings
from preflight_common.envelope import (
    CONTENT_TYPE,
    EventRegistry,
    UndecodableEvent,
    UnknownEventType,
    ce_type_of,
    decode_record,
    encode_event,
    headers_dict,
)
from preflight_common.producer import EventPublisher, PublishError
from preflight_testkit.fixtures import TopicFactory

REGISTRY = EventRegistry([SubmissionReceived, ReleasePlanChanged])
SOURCE = "preflight-tests"


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def submission(submission_id: str) -> SubmissionReceived:
    """A fully populated SubmissionReceived, as intake publishes it."""
    release = datetime(2026, 9, 1, tzinfo=UTC)
    return SubmissionReceived(
        submission_id=submission_id,
        organisation="frontier-lab",
        model=ModelIdentity(developer="Frontier Lab", name="atlas", version="3.1"),
        planned_release=timestamp(release),
        review_deadline=timestamp(release),
        access=ModelAccess(
            endpoint=EndpointAccess(
                base_url="https://models.example/v1", model_name="atlas-3.1", credential_ref="cred-1"
            )
        ),
        access_window=AccessWindow(
            start=timestamp(release - timedelta(days=30)), end=timestamp(release - timedelta(days=1))
        ),
        contacts=[Contact(name="Ada", email="ada@lab.example", role="security")],
        declared_capabilities=["code-generation", "vulnerability-discovery"],
        intended_use="general assistant",
        consent=SharingConsent(share_identity_with_operators=False),
        flags=["SHORT_ACCESS_WINDOW"],
        received_at=timestamp(release - timedelta(days=31)),
        deadline_version=1,
    )


# ------------------------------------------------------------------------- in memory


def test_encode_sets_every_attribute_and_decodes_to_an_equal_message() -> None:
    payload = submission("sub-1")
    moment = datetime(2026, 7, 1, 12, 30, 15, 250_000, tzinfo=timezone(timedelta(hours=2)))
    record = encode_event(payload, source=SOURCE, subject="sub-1", event_id="evt-1", time=moment)

    assert record.key == b"sub-1"
    assert headers_dict(record.headers) == {
        "ce_specversion": "1.0",
        "ce_id": "evt-1",
        "ce_type": "preflight.intake.v1.SubmissionReceived",
        "ce_source": SOURCE,
        "ce_time": "2026-07-01T10:30:15.250000Z",
        "ce_subject": "sub-1",
        "content-type": CONTENT_TYPE,
    }
    attributes, decoded = decode_record(record.headers, record.value, REGISTRY)
    assert decoded == payload
    assert attributes == record.attributes
    assert attributes.time == moment


def test_event_ids_are_fresh_uuids_unless_given() -> None:
    first = encode_event(submission("s"), source=SOURCE, subject="s").attributes
    second = encode_event(submission("s"), source=SOURCE, subject="s").attributes
    assert first is not None and second is not None
    assert first.id != second.id
    assert uuid.UUID(first.id).version == 4


def test_trace_headers_are_carried() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    record = encode_event(
        submission("s"),
        source=SOURCE,
        subject="s",
        trace_headers={"traceparent": parent, "tracestate": "k=v"},
    )
    attributes, _ = decode_record(record.headers, record.value, REGISTRY)
    assert (attributes.traceparent, attributes.tracestate) == (parent, "k=v")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subject": "", "source": SOURCE}, "subject"),
        ({"subject": "s", "source": ""}, "source"),
        ({"subject": "s", "source": SOURCE, "time": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_encode_rejects_incomplete_events(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_event(submission("s"), **kwargs)


def good_headers() -> list[tuple[str, bytes]]:
    return encode_event(submission("s"), source=SOURCE, subject="s").headers


def replaced(name: str, value: bytes | None) -> list[tuple[str, bytes]]:
    kept = [(n, v) for n, v in good_headers() if n != name]
    return kept if value is None else [*kept, (name, value)]


@pytest.mark.parametrize(
    ("headers", "value", "error", "reason"),
    [
        (replaced("ce_type", None), b"", UnknownEventType, "missing ce_type header"),
        (
            replaced("ce_type", b"preflight.benchmark.v1.BenchmarkJobRequested"),
            b"",
            UnknownEventType,
            "unknown ce_type 'preflight.benchmark.v1.BenchmarkJobRequested'",
        ),
        (replaced("ce_id", None), b"", UndecodableEvent, "missing ce_id header"),
        (replaced("ce_subject", b""), b"", UndecodableEvent, "missing ce_subject header"),
        (replaced("ce_specversion", b"0.3"), b"", UndecodableEvent, "unsupported ce_specversion '0.3'"),
        (replaced("content-type", b"application/json"), b"", UndecodableEvent, "unsupported content-type"),
        (replaced("ce_time", b"yesterday"), b"", UndecodableEvent, "ce_time 'yesterday' is not"),
        (
            replaced("ce_time", b"2026-01-01T00:00:00"),
            b"",
            UndecodableEvent,
            "ce_time '2026-01-01T00:00:00' has no",
        ),
        (replaced("ce_source", b"\xff\xfe"), b"", UndecodableEvent, "header 'ce_source' is not UTF-8"),
        (good_headers(), None, UndecodableEvent, "record has no value"),
        (good_headers(), b"\x0a\x05ab", UndecodableEvent, "value does not decode as"),
    ],
)
def test_decode_rejects_with_a_reason(
    headers: list[tuple[str, bytes]], value: bytes | None, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error) as caught:
        decode_record(headers, value, REGISTRY)
    assert getattr(caught.value, "reason", "").startswith(reason)


def test_decode_accepts_headers_as_a_mapping() -> None:
    record = encode_event(submission("s"), source=SOURCE, subject="s")
    _, payload = decode_record(dict(record.headers), record.value, REGISTRY)
    assert payload == submission("s")


def test_registry_knows_its_types() -> None:
    assert ce_type_of(SubmissionReceived) == "preflight.intake.v1.SubmissionReceived"
    assert "preflight.intake.v1.ReleasePlanChanged" in REGISTRY
    assert ce_type_of(BenchmarkJobRequested) not in REGISTRY


# ------------------------------------------------------------------------ on the broker


def test_published_event_arrives_with_every_cloudevents_header(
    publisher: EventPublisher,
    unique_topic: TopicFactory,
    read_topic: Callable[..., list[Any]],
    span_exporter: Any,
) -> None:
    topic = unique_topic("envelope", partitions=3)
    traced_payload, plain_payload = submission("sub-traced"), submission("sub-plain")
    with trace.get_tracer(__name__).start_as_current_span("submit") as span:
        traced = publisher.publish(topic, traced_payload, subject="sub-traced")
    plain = publisher.publish(topic, plain_payload, subject="sub-plain")

    records = {record.key: record for record in read_topic(topic, expected=2)}
    assert len(records) == 2

    for key, attributes, payload in [
        (b"sub-traced", traced, traced_payload),
        (b"sub-plain", plain, plain_payload),
    ]:
        record = records[key]
        headers = headers_dict(record.headers)
        assert headers["ce_specversion"] == "1.0"
        assert headers["ce_id"] == attributes.id
        assert headers["ce_type"] == "preflight.intake.v1.SubmissionReceived"
        assert headers["ce_source"] == attributes.source == SOURCES["intake"]  # the publisher's
        assert headers["ce_subject"] == key.decode()
        assert datetime.fromisoformat(headers["ce_time"]) == attributes.time
        assert headers["content-type"] == "application/protobuf"
        decoded_attributes, decoded = decode_record(record.headers, record.value, REGISTRY)
        assert decoded == payload
        assert decoded_attributes == attributes

    # The traced record carries the context of the publisher's span, a child of the active one.
    traceparent = headers_dict(records[b"sub-traced"].headers)["traceparent"]
    version, trace_id, parent_id, flags = traceparent.split("-")
    assert version == "00"
    assert int(flags, 16) & 1, "sampled flag"
    assert int(trace_id, 16) == span.get_span_context().trace_id
    [publish_span] = [
        s for s in span_exporter.get_finished_spans() if s.attributes.get("messaging.message.id") == traced.id
    ]
    assert int(parent_id, 16) == publish_span.context.span_id
    assert publish_span.parent.span_id == span.get_span_context().span_id
    # Published outside that span, the other record starts a trace of its own.
    plain_traceparent = headers_dict(records[b"sub-plain"].headers).get("traceparent", "")
    assert trace_id not in plain_traceparent


def test_publishing_to_a_missing_topic_raises(kafka_settings: Any) -> None:
    # Topics are never auto-created: the send cannot complete and must not pass silently.
    publisher = EventPublisher(kafka_settings, source=SOURCE, send_timeout=2)
    try:
        with pytest.raises(PublishError, match=r"missing-topic"):
            publisher.publish(f"missing-topic.{uuid.uuid4().hex}", submission("s"), subject="s")
    finally:
        publisher.close()


def test_publisher_starts_while_kafka_is_unreachable_and_raises_on_publish() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    publisher = EventPublisher(
        KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"), source=SOURCE, send_timeout=1
    )
    try:
        with pytest.raises(PublishError, match=f"cannot reach Kafka at 127.0.0.1:{port}"):
            publisher.publish("preflight.submissions.v1", submission("s"), subject="s")
    finally:
        publisher.close()
