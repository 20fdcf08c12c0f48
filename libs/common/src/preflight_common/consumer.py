"""Consuming Preflight events with faust-streaming agents.

The contract of `consume_events` (use it as the whole body of an agent):

* every record is decoded with the CloudEvents envelope; a record whose
  `ce_type` is unknown, or whose headers/value do not decode, is published to
  the topic's `.dlq` twin with the reason in headers, and the agent goes on;
* an event is accepted only from the service that owns its topic: its
  `ce_source` must be `bus.SOURCES[bus.owner_of(topics, topic)]`; an event from
  any other source (or on a topic no service owns) is dead-lettered
  ("source X may not publish on T") — the broker's ACLs keep others from
  writing, and the consumer still trusts only the owner;
* an event lacking a field its type requires (`preflight_common.contracts`) is
  dead-lettered naming the field, before the handler runs;
* the producer's trace is continued: the handler runs inside a CONSUMER span
  whose parent is the record's `traceparent`;
* the handler must be idempotent (see `preflight_common.idempotency`): it
  applies the effect and records the event id in one transaction;
* a handler raising `PoisonEvent` sends the record to the DLQ; one raising
  `AwaitingCause` (the event's cause, on another topic, is not recorded yet) is
  retried for at most the exception's `patience`, then dead-lettered; any other
  exception is retried with capped exponential backoff, indefinitely — the
  partition waits, nothing is skipped;
* faust acknowledges an event when the agent asks for the next one, and
  commits only acknowledged offsets, so an offset is committed only after the
  handler returned (the effect is durable). A crash in between redelivers the
  event, which the idempotent handler then skips.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faust
from google.protobuf.message import Message
from kafka.errors import MessageSizeTooLargeError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from preflight_common import bus
from preflight_common.config import KafkaSettings, Topics, env_float
from preflight_common.contracts import missing_fields
from preflight_common.envelope import (
    EnvelopeError,
    EventAttributes,
    EventRegistry,
    KafkaRecord,
    decode_record,
)
from preflight_common.liveness import Liveness
from preflight_common.producer import EventPublisher, PublishError
from preflight_common.telemetry import extract_context

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

EventHandler = Callable[[EventAttributes, Message], Awaitable[None]]
"""Applies one decoded, accepted event (idempotently: see `preflight_common.idempotency`)."""


@dataclass(frozen=True)
class Route:
    """One consumed topic: the event types it carries and the handler that applies them.

    A service lists its routes; `preflight_common.runtime.KafkaSide` consumes them.
    """

    topic: str
    registry: EventRegistry
    handler: EventHandler


class PoisonEvent(Exception):
    """Raised by a handler for an event that can never be applied (bad content).

    The record goes to the DLQ with this exception's message as the reason.
    """


class AwaitingCause(Exception):
    """Raised by a handler for an event whose cause, an event on another topic, is not recorded yet.

    The event is retried like any failure, but for at most `patience` seconds from its first
    attempt: its cause comes first in any honest history, so an event still without one then is
    taken for a forgery and dead-lettered with this exception's message.
    """

    def __init__(self, message: str, *, patience: float) -> None:
        super().__init__(message)
        self.patience = patience


class ConsumedRecord(Protocol):
    """The parts of a consumed record this module needs (faust's Message has them)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any


class DeadLetters:
    """Publishes records that cannot be applied to `<topic>.dlq`, with the reason in headers.

    With `liveness`, the consumers that use it report there while they retry a record.
    """

    def __init__(self, publisher: EventPublisher, *, liveness: Liveness | None = None) -> None:
        self._publisher = publisher
        self.liveness = liveness

    def send(self, record: ConsumedRecord, reason: str) -> None:
        """Publish `record` unchanged (key, value, original headers) plus the reason headers.

        A copy too large for the broker (the added headers can push a record that fit over the
        limit) is replaced by a reference: the reason and origin headers, the key, no value and
        none of the original headers, and `preflight_dlq_omitted` saying what was left out; the
        original stays readable at its topic, partition and offset until retention removes it.
        """
        raw_headers = record.headers.items() if isinstance(record.headers, dict) else (record.headers or [])
        original = [
            (str(name), value if isinstance(value, bytes) else str(value).encode())
            for name, value in raw_headers
        ]
        origin = [
            ("preflight_dlq_reason", reason.encode()),
            ("preflight_dlq_topic", record.topic.encode()),
            ("preflight_dlq_partition", str(record.partition).encode()),
            ("preflight_dlq_offset", str(record.offset).encode()),
        ]
        key, value = record.key or b"", record.value or b""
        try:
            self._publisher.publish_record(
                Topics.dlq(record.topic), KafkaRecord(key=key, value=value, headers=original + origin)
            )
        except PublishError as exc:
            if not isinstance(exc.__cause__, MessageSizeTooLargeError):
                raise
            omitted = f"value ({len(value)} bytes) and original headers: the copy was too large"
            reference = KafkaRecord(
                key=key, value=b"", headers=[*origin, ("preflight_dlq_omitted", omitted.encode())]
            )
            self._publisher.publish_record(Topics.dlq(record.topic), reference)
        log.warning("dead-lettered %s[%s]@%s: %s", record.topic, record.partition, record.offset, reason)


def make_faust_app(app_id: str, settings: KafkaSettings, **overrides: Any) -> faust.App:
    """A faust App for Preflight agents: raw serializers, earliest offset, no web server.

    Timeouts come from the environment so tests can shorten them:
    `PREFLIGHT_KAFKA_SESSION_TIMEOUT` (s, default 30), `PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL`
    (s, default 3), `PREFLIGHT_KAFKA_COMMIT_INTERVAL` (s, default 1). The store is in memory;
    faust's data folder (which it needs but we do not use) is a fresh temporary folder unless
    `datadir` is given (created with its parents), so no process writes into its working directory.
    """
    options: dict[str, Any] = {
        "datadir": tempfile.mkdtemp(prefix=f"faust-{app_id}-"),
        "broker": settings.faust_broker(),
        "broker_credentials": _faust_credentials(settings),
        "value_serializer": "raw",
        "key_serializer": "raw",
        "store": "memory://",
        "web_enabled": False,
        "consumer_auto_offset_reset": "earliest",
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "broker_session_timeout": env_float("PREFLIGHT_KAFKA_SESSION_TIMEOUT", 30.0),
        "broker_heartbeat_interval": env_float("PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL", 3.0),
        "broker_commit_interval": env_float("PREFLIGHT_KAFKA_COMMIT_INTERVAL", 1.0),
        "broker_commit_every": 100,
        "producer_acks": -1,
    }
    options.update(overrides)
    # faust creates its data folder but not the folders above it.
    Path(options["datadir"]).mkdir(parents=True, exist_ok=True)
    return faust.App(app_id, **options)


def _faust_credentials(settings: KafkaSettings) -> Any:
    if settings.sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password(),
            mechanism=settings.sasl_mechanism,
            ssl_context=settings.ssl_context(),
        )
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(settings.ssl_context())
    return None


def add_agent(
    app: faust.App,
    service: str,
    topic: str,
    registry: EventRegistry,
    handler: EventHandler,
    dead_letters: DeadLetters,
    topics: Topics,
) -> None:
    """Add to `app` the agent `<service>_<topic>` whose whole body is `consume_events` over `topic`."""

    async def agent(stream: Any) -> None:
        await consume_events(stream.events(), registry, handler, dead_letters, topics=topics)

    agent.__name__ = f"{service}_{topic.replace('.', '_').replace('-', '_')}"
    app.agent(app.topic(topic), name=agent.__name__)(agent)


async def consume_events(
    events: AsyncIterator[Any],
    registry: EventRegistry,
    handler: EventHandler,
    dead_letters: DeadLetters,
    *,
    topics: Topics,
    max_backoff: float = 30.0,
) -> None:
    """Run `handler` for every event of a faust stream (`stream.events()`), per the module contract.

    `topics` are the deployment's topic names: they say which service owns the consumed topic.
    """
    async for event in events:
        await handle_record(
            event.message, registry, handler, dead_letters, topics=topics, max_backoff=max_backoff
        )
        if dead_letters.liveness is not None:
            dead_letters.liveness.recovered(_partition(event.message))


async def handle_record(
    record: ConsumedRecord,
    registry: EventRegistry,
    handler: EventHandler,
    dead_letters: DeadLetters,
    *,
    topics: Topics,
    max_backoff: float = 30.0,
) -> None:
    """Decode one record and apply it (see the module contract); return once applied or dead-lettered."""
    try:
        attributes, payload = decode_record(record.headers, record.value, registry)
    except EnvelopeError as exc:
        await _dead_letter(dead_letters, record, exc.reason, max_backoff)
        return
    refusal = refusal_of(record.topic, attributes, payload, topics)
    if refusal is not None:
        await _dead_letter(dead_letters, record, refusal, max_backoff)
        return
    parent = extract_context(record.headers)
    backoff = 0.1
    started = time.monotonic()
    while True:
        with tracer.start_as_current_span(
            f"consume {attributes.type}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.message.id": attributes.id,
                "preflight.subject": attributes.subject,
            },
        ):
            try:
                await handler(attributes, payload)
                return
            except PoisonEvent as exc:
                await _dead_letter(dead_letters, record, f"poison event: {exc}", max_backoff)
                return
            except AwaitingCause as exc:
                if time.monotonic() - started >= exc.patience:
                    reason = f"{exc} (waited {exc.patience:g} s for it)"
                    await _dead_letter(dead_letters, record, reason, max_backoff)
                    return
                log.info("%s %s waits: %s; retrying in %.1fs", attributes.type, attributes.id, exc, backoff)
            except Exception as exc:
                log.exception(
                    "handler failed for %s %s; retrying in %.1fs", attributes.type, attributes.id, backoff
                )
                _retrying(dead_letters, record, f"handler failed: {exc!r}")
        await asyncio.sleep(backoff)
        backoff = min(max_backoff, backoff * 2)


def refusal_of(topic: str, attributes: EventAttributes, payload: Message, topics: Topics) -> str | None:
    """Why a consumer must not apply this decoded event from `topic`, or None when it may.

    Refused: an event on a topic no service owns, one whose source is not the owner's, one that
    lacks a field its type requires.
    """
    owner = bus.owner_of(topics, topic)
    if owner is None:
        return f"no service owns {topic}"
    if attributes.source != bus.SOURCES[owner]:
        return f"source {attributes.source} may not publish on {topic}"
    missing = missing_fields(payload)
    if missing:
        return f"{attributes.type} lacks required field(s): {', '.join(missing)}"
    return None


async def _dead_letter(
    dead_letters: DeadLetters, record: ConsumedRecord, reason: str, max_backoff: float
) -> None:
    """Publish `record` to its DLQ, retrying while Kafka refuses: the partition waits, nothing is skipped."""
    backoff = 0.1
    while True:
        try:
            await asyncio.to_thread(dead_letters.send, record, reason)
            return
        except PublishError as exc:
            log.warning(
                "dead-lettering %s[%s]@%s failed; retrying in %.1fs: %s",
                record.topic,
                record.partition,
                record.offset,
                backoff,
                exc,
            )
            _retrying(dead_letters, record, f"dead-lettering failed: {exc}")
        await asyncio.sleep(backoff)
        backoff = min(max_backoff, backoff * 2)


def _partition(record: ConsumedRecord) -> str:
    return f"{record.topic}[{record.partition}]"


def _retrying(dead_letters: DeadLetters, record: ConsumedRecord, reason: str) -> None:
    """Report the partition of `record` stuck retrying it, until its consumer goes on."""
    if dead_letters.liveness is not None:
        dead_letters.liveness.retrying(_partition(record), f"offset {record.offset}: {reason}")
