"""Consuming Preflight events: a service lists its `Route`s, `EventConsumer` does the rest.

A record goes through small steps, each of which passes the event on or says why not:

    decode (`decoded`) → check its source and required fields (`checked`) → continue its trace
    (`traced`) → route it by topic to its handler (`routed`) → dead-letter what was rejected

The contract, for every record:

* every record is decoded with the CloudEvents envelope; a record whose `ce_type` is unknown
  to its route's registry, or whose headers/value do not decode, is published to the topic's
  `.dlq` twin with the reason in headers, and consuming goes on;
* an event is accepted only from the service that owns its topic: its `ce_source` must be
  `bus.SOURCES[bus.owner_of(topics, topic)]`; an event from any other source (or on a topic no
  service owns) is dead-lettered ("source X may not publish on T") — the broker's ACLs keep
  others from writing, and the consumer still trusts only the owner;
* an event lacking a field its type requires (`preflight_common.contracts`) is dead-lettered
  naming the field, before the handler runs;
* the producer's trace is continued: the handler runs inside a CONSUMER span whose parent is
  the record's `traceparent`;
* the handler must be idempotent (see `preflight_common.idempotency`): it applies the effect
  and records the event id in one transaction — that claim is the handler's unit of work;
* a handler raising `PoisonEvent` sends the record to the DLQ; one raising `AwaitingCause` (the
  event's cause, on another topic, is not recorded yet) is retried for at most the exception's
  `patience`, then dead-lettered; any other exception, and a DLQ publish that fails, is retried
  with capped exponential backoff, indefinitely — the partition waits at that record, nothing
  is skipped, while the consumer's other partitions go on (the waiting partition is paused and
  sought back to the record);
* records are fetched in batches (`getmany`) and the offsets of a batch are committed once its
  records were handled (applied or dead-lettered): an offset is committed only after the
  handler returned (the effect is durable). A crash in between redelivers the events, which
  the idempotent handler then skips. When partitions are revoked (another member joins or
  leaves) and when the consumer stops, it finishes the record in hand and commits what it
  handled first.

Handlers run one at a time per consumer, in the order of each partition: a handler is a short
unit of work (one transaction), and what must wait (a retry, an awaited cause) never holds the
consumer, only its partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError
from google.protobuf.message import Message
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

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

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

EventHandler = Callable[[EventAttributes, Message], Awaitable[None]]
"""Applies one decoded, accepted event (idempotently: see `preflight_common.idempotency`)."""

MAX_RECORDS = 1000
"""Records fetched (and then committed) at most per batch."""
POLL_TIMEOUT = 0.5
"""Seconds a fetch waits for records: how soon a stopping consumer notices when idle."""
YIELD_EVERY = 50
"""Records handled between two turns given to the Kafka client's tasks."""
FIRST_BACKOFF = 0.1
"""Seconds before the first retry of a record; doubled at each retry up to the maximum."""


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


class Rejected(Exception):
    """A step's verdict that a record can never be applied: it goes to the DLQ with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConsumedRecord(Protocol):
    """The parts of a consumed record the consume path needs (aiokafka's ConsumerRecord has them)."""

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


@dataclass(frozen=True)
class Event:
    """A decoded record on its way to its handler."""

    record: ConsumedRecord
    attributes: EventAttributes
    payload: Message


Step = Callable[[Event], Awaitable[None]]
"""A step of the consume path that wraps the rest of it: passes the event on, or raises —
`Rejected` (dead-letter it), `AwaitingCause` or any other exception (retry it). The steps before
it (`decoded`, `checked`) are plain functions that return the event or raise `Rejected`."""


def decoded(record: ConsumedRecord, registry: EventRegistry) -> Event:
    """The record as an event of `registry`; `Rejected` with the envelope's reason when it is not one."""
    try:
        attributes, payload = decode_record(record.headers, record.value, registry)
    except EnvelopeError as exc:
        raise Rejected(exc.reason) from None
    return Event(record, attributes, payload)


def checked(topics: Topics) -> Callable[[Event], None]:
    """The bus's trust rules as a step: reject an event `refusal_of` refuses."""

    def check(event: Event) -> None:
        refusal = refusal_of(event.record.topic, event.attributes, event.payload, topics)
        if refusal is not None:
            raise Rejected(refusal)

    return check


def traced(then: Step) -> Step:
    """Run the rest of the path in a CONSUMER span continuing the producer's trace; an exception
    is recorded on the span, which then ends in error."""

    async def trace_event(event: Event) -> None:
        attributes = event.attributes
        parent = None
        if attributes.traceparent:
            carrier = {"traceparent": attributes.traceparent, "tracestate": attributes.tracestate}
            parent = propagate.extract(carrier)
        span = tracer.start_span(f"consume {attributes.type}", context=parent, kind=SpanKind.CONSUMER)
        if span.is_recording():
            span.set_attributes(
                {
                    "messaging.system": "kafka",
                    "messaging.destination.name": event.record.topic,
                    "messaging.message.id": attributes.id,
                    "preflight.subject": attributes.subject,
                }
            )
        # What `start_as_current_span` does, without its two context managers: they cost twice
        # what the rest of this step does, on every event.
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await then(event)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            otel_context.detach(token)
            span.end()

    return trace_event


def routed(routes: Sequence[Route]) -> Step:
    """Hand the event to its topic's handler; a `PoisonEvent` it raises is rejected."""
    handlers = {route.topic: route.handler for route in routes}

    async def route(event: Event) -> None:
        try:
            await handlers[event.record.topic](event.attributes, event.payload)
        except PoisonEvent as exc:
            raise Rejected(f"poison event: {exc}") from exc

    return route


def consume_path(routes: Sequence[Route], topics: Topics) -> Callable[[ConsumedRecord], Awaitable[None]]:
    """The whole path of a record of one of `routes`' topics, up to its dead-lettering (the caller's).

    `topics` are the deployment's topic names: they say which service owns a consumed topic.
    Returns once the record is applied; raises `Rejected`, `AwaitingCause` or the handler's error.
    """
    registries = {route.topic: route.registry for route in routes}
    if len(registries) != len(routes):
        raise ValueError("each topic has one route")
    check = checked(topics)
    apply = traced(routed(routes))

    async def consume(record: ConsumedRecord) -> None:
        event = decoded(record, registries[record.topic])
        check(event)
        await apply(event)

    return consume


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


@dataclass
class _Retry:
    """A partition waiting to retry its record at `offset` (paused, sought back to it)."""

    offset: int
    first_attempt: float
    backoff: float = FIRST_BACKOFF
    resume_at: float = 0.0
    paused: bool = False


class EventConsumer:
    """A member of the consumer group `group` applying `routes` through the consume path (module
    contract), with `dead_letters` as the DLQ (and its `Liveness`, told while a partition retries).

    `start()` joins the group and consumes in a task of the running loop; `stop()` finishes the
    record in hand, commits what was handled and leaves the group. Offsets are committed manually,
    once per fetched batch. Group timings come from the environment:
    `PREFLIGHT_KAFKA_SESSION_TIMEOUT` (s, default 30), `PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL` (s,
    default 3). It is the lag source of `preflight_common.metrics.watch_consumer_lag`.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        group: str,
        routes: Sequence[Route],
        topics: Topics,
        dead_letters: DeadLetters,
        max_records: int = MAX_RECORDS,
        max_backoff: float = 30.0,
    ) -> None:
        self.group = group
        self._settings = settings
        self._subscribed = [route.topic for route in routes]
        self._consume = consume_path(routes, topics)
        self._dead_letters = dead_letters
        self._max_records = max_records
        self._max_backoff = max_backoff
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._handling = asyncio.Lock()
        self._stopping = False
        self._revoking = 0
        self._fetch_failed = False
        # Per partition: the next offset to commit (handled, not committed yet), the group's
        # committed offset as last known, and the record it waits to retry.
        self._handled: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int | None] = {}
        self._retries: dict[TopicPartition, _Retry] = {}
        self._committing: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Connect and join the group, then consume; raises while the brokers cannot be reached
        (`stop()` then releases the client)."""
        client = AIOKafkaConsumer(
            **self._settings.aiokafka_options(),
            group_id=self.group,
            client_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=round(env_float("PREFLIGHT_KAFKA_SESSION_TIMEOUT", 30.0) * 1000),
            heartbeat_interval_ms=round(env_float("PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL", 3.0) * 1000),
        )
        client.subscribe(self._subscribed, listener=_Rebalance(self))
        self._client = client
        await client.start()
        self._task = asyncio.create_task(self._run(), name=f"consumer {self.group}")

    @property
    def running(self) -> bool:
        """Whether the consuming task runs (it ends only when stopped, or by a bug it logged)."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Finish the record in hand, commit what was handled and leave the group."""
        self._stopping = True
        if self._task is not None:
            await asyncio.wait({self._task})  # a task that failed was logged; its client is still stopped
        if self._client is not None:
            await self._commit()
            await self._client.stop()

    async def _run(self) -> None:
        try:
            while not self._stopping:
                batches = await self._fetch()
                async with self._handling:
                    for tp, records in batches.items():
                        await self._handle_batch(tp, records)
                await self._commit(wait=False)
        except Exception:
            log.exception("the consumer of group %s failed; it no longer consumes", self.group)
            raise

    async def _fetch(self) -> dict[TopicPartition, list[Any]]:
        """The next batch of records by partition (none for partitions waiting to retry)."""
        self._resume_due()
        try:
            batches: dict[TopicPartition, list[Any]] = await self._client.getmany(
                timeout_ms=self._poll_timeout_ms(), max_records=self._max_records
            )
        except Exception as exc:  # the client reconnects by itself; what it raises meanwhile varies
            if not self._stopping:
                log.warning("consumer group %s: fetching failed; retrying: %s", self.group, exc)
                self._report(f"consumer group {self.group}", f"fetching failed: {exc!r}")
                self._fetch_failed = True
                await asyncio.sleep(POLL_TIMEOUT)
            return {}
        if self._fetch_failed:
            self._fetch_failed = False
            self._recovered(f"consumer group {self.group}")
        return batches

    async def _handle_batch(self, tp: TopicPartition, records: Iterable[ConsumedRecord]) -> None:
        """Handle `records` of `tp` in order, until one must wait or the consumer must yield."""
        for index, record in enumerate(records, 1):
            if self._stopping or self._revoking:
                return
            if not index % YIELD_EVERY:
                # Handlers that never wait, and fetching records already buffered, do not yield to
                # the event loop: the client's own tasks (the commit in flight, the next fetches)
                # get their turns here, and so overlap with the handling.
                await asyncio.sleep(0)
            if not await self._handled_record(tp, record):
                return
            self._handled[tp] = record.offset + 1

    async def _handled_record(self, tp: TopicPartition, record: ConsumedRecord) -> bool:
        """Apply or dead-letter `record`: True once done, False when it waits for a retry."""
        try:
            await self._consume(record)
        except Rejected as exc:
            reason = exc.reason
        except AwaitingCause as exc:
            retry = self._retry_of(tp, record)
            if time.monotonic() - retry.first_attempt < exc.patience:
                log.info("%s waits: %s; retrying in %.1fs", _where(record), exc, retry.backoff)
                self._later(tp, retry)
                return False
            reason = f"{exc} (waited {exc.patience:g} s for it)"
        except Exception as exc:
            retry = self._retry_of(tp, record)
            log.exception("handler failed for %s; retrying in %.1fs", _where(record), retry.backoff)
            self._later(tp, retry, f"handler failed: {exc!r}")
            return False
        else:
            self._went_on(tp)
            return True
        try:
            await asyncio.to_thread(self._dead_letters.send, record, reason)
        except PublishError as exc:
            retry = self._retry_of(tp, record)
            log.warning("dead-lettering %s failed; retrying in %.1fs: %s", _where(record), retry.backoff, exc)
            self._later(tp, retry, f"dead-lettering failed: {exc}")
            return False
        self._went_on(tp)
        return True

    def _retry_of(self, tp: TopicPartition, record: ConsumedRecord) -> _Retry:
        retry = self._retries.get(tp)
        if retry is None or retry.offset != record.offset:
            retry = self._retries[tp] = _Retry(record.offset, time.monotonic())
        return retry

    def _later(self, tp: TopicPartition, retry: _Retry, failure: str | None = None) -> None:
        """Hold `tp` at the record to retry until its backoff has passed; other partitions go on.

        A `failure` is reported to the `Liveness` (degraded) until the partition goes on."""
        if failure is not None:
            self._report(_key(tp.topic, tp.partition), f"offset {retry.offset}: {failure}")
        retry.resume_at = time.monotonic() + retry.backoff
        retry.backoff = min(self._max_backoff, retry.backoff * 2)
        retry.paused = True
        self._client.seek(tp, retry.offset)
        self._client.pause(tp)

    def _resume_due(self) -> None:
        if not self._retries:
            return
        now = time.monotonic()
        assigned = self._client.assignment()
        for tp, retry in self._retries.items():
            if retry.paused and retry.resume_at <= now and tp in assigned:
                retry.paused = False
                self._client.resume(tp)

    def _poll_timeout_ms(self) -> int:
        waits = [retry.resume_at for retry in self._retries.values() if retry.paused]
        timeout = min([POLL_TIMEOUT, *(at - time.monotonic() for at in waits)])
        return max(0, round(timeout * 1000))

    def _went_on(self, tp: TopicPartition) -> None:
        if self._retries and self._retries.pop(tp, None) is not None:
            self._recovered(_key(tp.topic, tp.partition))

    def _report(self, key: str, reason: str) -> None:
        if self._dead_letters.liveness is not None:
            self._dead_letters.liveness.retrying(key, reason)

    def _recovered(self, key: str) -> None:
        if self._dead_letters.liveness is not None:
            self._dead_letters.liveness.recovered(key)

    async def _commit(self, *, wait: bool = True) -> None:
        """Commit the offsets handled since the last commit, once the commit in flight is done (one
        at a time: offsets are committed in order). Returns when it is done, or without `wait` as
        soon as it is sent: the loop handles the next batch meanwhile."""
        if self._committing is not None:
            await self._committing
            self._committing = None
        if not self._handled:
            return
        offsets, self._handled = self._handled, {}
        committing = asyncio.ensure_future(self._commit_offsets(offsets))
        if wait:
            await committing
        else:
            self._committing = committing

    async def _commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit `offsets`; on failure keep those of partitions still assigned for the next commit."""
        try:
            await self._client.commit(offsets)
        except Exception as exc:  # e.g. the group is rebalancing: the next owner then redelivers
            log.warning("consumer group %s: committing %s failed: %s", self.group, _offsets(offsets), exc)
            assigned = self._client.assignment()
            for tp, offset in offsets.items():
                if tp in assigned:
                    self._handled.setdefault(tp, offset)
            return
        self._committed.update(offsets)

    async def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        """Before a rebalance: finish the record in hand and commit what was handled, while the
        partitions are still this member's; then forget their state (the next owner starts at the
        committed offsets)."""
        self._revoking += 1
        try:
            async with self._handling:
                await self._commit()
        finally:
            self._revoking -= 1
        for tp in partitions:
            self._handled.pop(tp, None)
            self._committed.pop(tp, None)
            if self._retries.pop(tp, None) is not None:
                self._recovered(_key(tp.topic, tp.partition))

    # The lag source of `preflight_common.metrics.watch_consumer_lag`.

    def assigned(self) -> list[tuple[str, int]]:
        """The partitions assigned to this member now."""
        if self._client is None:
            return []
        return [(tp.topic, tp.partition) for tp in self._client.assignment()]

    def highwater(self, topic: str, partition: int) -> int | None:
        """The partition's high watermark as of its last fetch (None before its first)."""
        value: int | None = self._client.highwater(TopicPartition(topic, partition))
        return value

    async def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset of an assigned partition (None while nothing is committed):
        asked of the broker once per assignment, then kept as this member commits."""
        tp = TopicPartition(topic, partition)
        if tp not in self._committed:
            offset: int | None = await self._client.committed(tp)
            return self._committed.setdefault(tp, offset)
        return self._committed[tp]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what an `EventConsumer` handled before its partitions are revoked."""

    def __init__(self, consumer: EventConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._consumer.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("consumer group %s: assigned %s", self._consumer.group, sorted(assigned))


def _key(topic: str, partition: int) -> str:
    """The `Liveness` key of a partition while it retries a record."""
    return f"{topic}[{partition}]"


def _where(record: ConsumedRecord) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


def _offsets(offsets: dict[TopicPartition, int]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]@{offset}" for tp, offset in sorted(offsets.items()))
