"""CloudEvents Kafka binary binding for Preflight's protobuf events.

A record is: key = subject (the submission or finding id), value = the
serialized protobuf payload, headers = `ce_specversion`, `ce_id`, `ce_type`,
`ce_source`, `ce_time`, `ce_subject`, `content-type: application/protobuf`,
plus W3C `traceparent`/`tracestate` when a trace is active. `ce_type` is the
payload's full protobuf name, so the registry of known types is the set of
message classes a consumer accepts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.message import DecodeError, Message

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/protobuf"

Headers = list[tuple[str, bytes]]


class EnvelopeError(ValueError):
    """A record cannot be turned into an event; `reason` says why (for the DLQ)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownEventType(EnvelopeError):
    """The `ce_type` is missing or not one this consumer knows."""


class UndecodableEvent(EnvelopeError):
    """The headers are incomplete or the value does not decode as the declared type."""


@dataclass(frozen=True)
class EventAttributes:
    """The CloudEvents context attributes of one event."""

    id: str
    type: str
    source: str
    time: datetime
    subject: str
    specversion: str = SPEC_VERSION
    traceparent: str | None = None
    tracestate: str | None = None


@dataclass(frozen=True)
class KafkaRecord:
    """What goes on the wire: key, value and headers."""

    key: bytes
    value: bytes
    headers: Headers = field(default_factory=list)
    attributes: EventAttributes | None = None


def ce_type_of(message: Message | type[Message]) -> str:
    """The CloudEvents type of a payload: its full protobuf name."""
    return message.DESCRIPTOR.full_name


class EventRegistry:
    """The payload types a consumer accepts, by `ce_type`."""

    def __init__(self, message_types: Iterable[type[Message]]) -> None:
        self._types: dict[str, type[Message]] = {ce_type_of(t): t for t in message_types}

    def lookup(self, ce_type: str) -> type[Message]:
        """The message class for `ce_type`; raises UnknownEventType."""
        try:
            return self._types[ce_type]
        except KeyError:
            raise UnknownEventType(f"unknown ce_type {ce_type!r}") from None

    def __contains__(self, ce_type: object) -> bool:
        return ce_type in self._types


def _format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("event time must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def encode_event(
    payload: Message,
    *,
    source: str,
    subject: str,
    event_id: str | None = None,
    time: datetime | None = None,
    trace_headers: Mapping[str, str] | None = None,
) -> KafkaRecord:
    """Build the record for `payload`.

    `event_id` defaults to a random UUID; give a deterministic one whenever the
    event is derived from another so that a redelivered cause yields the same
    event id. `trace_headers` (`traceparent`, `tracestate`) are copied as given.
    """
    if not subject:
        raise ValueError("subject (the record key) must not be empty")
    if not source:
        raise ValueError("source must not be empty")
    attributes = EventAttributes(
        id=event_id or str(uuid.uuid4()),
        type=ce_type_of(payload),
        source=source,
        time=time or datetime.now(UTC),
        subject=subject,
        traceparent=(trace_headers or {}).get("traceparent"),
        tracestate=(trace_headers or {}).get("tracestate"),
    )
    headers: Headers = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", attributes.id.encode()),
        ("ce_type", attributes.type.encode()),
        ("ce_source", attributes.source.encode()),
        ("ce_time", _format_time(attributes.time).encode()),
        ("ce_subject", attributes.subject.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if attributes.traceparent:
        headers.append(("traceparent", attributes.traceparent.encode()))
    if attributes.tracestate:
        headers.append(("tracestate", attributes.tracestate.encode()))
    return KafkaRecord(
        key=subject.encode(), value=payload.SerializeToString(), headers=headers, attributes=attributes
    )


RawHeaders = Sequence[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None


def headers_dict(headers: RawHeaders) -> dict[str, str]:
    """Kafka headers (a list of pairs or a mapping) as a str → str dict; the last value wins."""
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    out: dict[str, str] = {}
    for name, value in items:
        if value is None:
            continue
        try:
            out[name] = value.decode() if isinstance(value, bytes | bytearray) else str(value)
        except UnicodeDecodeError:
            raise UndecodableEvent(f"header {name!r} is not UTF-8") from None
    return out


def _parse_time(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UndecodableEvent(f"ce_time {raw!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise UndecodableEvent(f"ce_time {raw!r} has no timezone")
    return moment


def decode_record(
    headers: RawHeaders,
    value: bytes | None,
    registry: EventRegistry,
) -> tuple[EventAttributes, Message]:
    """Turn a consumed record into (attributes, payload).

    Raises UnknownEventType when `ce_type` is absent or unknown, and
    UndecodableEvent when a required attribute is missing, the content type is
    not protobuf, or the value does not parse as the declared type.
    """
    h = headers_dict(headers)
    ce_type = h.get("ce_type")
    if not ce_type:
        raise UnknownEventType("missing ce_type header")
    message_type = registry.lookup(ce_type)
    for required in ("ce_specversion", "ce_id", "ce_source", "ce_time", "ce_subject"):
        if not h.get(required):
            raise UndecodableEvent(f"missing {required} header")
    if h["ce_specversion"] != SPEC_VERSION:
        raise UndecodableEvent(f"unsupported ce_specversion {h['ce_specversion']!r}")
    if h.get("content-type", CONTENT_TYPE) != CONTENT_TYPE:
        raise UndecodableEvent(f"unsupported content-type {h['content-type']!r}")
    if value is None:
        raise UndecodableEvent("record has no value")
    payload = message_type()
    try:
        payload.ParseFromString(value)
    except DecodeError as exc:
        raise UndecodableEvent(f"value does not decode as {ce_type}: {exc}") from None
    attributes = EventAttributes(
        id=h["ce_id"],
        type=ce_type,
        source=h["ce_source"],
        time=_parse_time(h["ce_time"]),
        subject=h["ce_subject"],
        specversion=h["ce_specversion"],
        traceparent=h.get("traceparent"),
        tracestate=h.get("tracestate"),
    )
    return attributes, payload
