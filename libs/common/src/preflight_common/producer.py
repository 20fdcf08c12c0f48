"""Publishing events to Kafka: acks=all, idempotent, bounded retries, errors surfaced.

The producer is aiokafka's, running on an event loop in a thread of the publisher's own, so that
its callers (the outbox relay's thread, a consumer's dead-lettering) keep a blocking contract.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from preflight_common.config import KafkaSettings
from preflight_common.envelope import EventAttributes, KafkaRecord, ce_type_of, encode_event
from preflight_common.telemetry import inject_headers

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
T = TypeVar("T")

# No linger: a publish waits for its acknowledgement, so a 5 ms linger made each one cost ~10 ms
# (measured by bench/envelope_throughput.py); pipelined sends batch while a request is in flight.
LINGER_MS = 0
CALL_SLACK = 5.0
"""Seconds a blocking call waits past `send_timeout` for the publisher's own verdict."""
STOP_TIMEOUT = 5.0
"""Seconds an abandoned producer gets to close its connections."""
MAX_REQUEST_SIZE = 1_048_576
"""aiokafka's default: the largest record (with its batch's overhead) a producer sends."""
_PARTITIONER = DefaultPartitioner()


class PublishError(RuntimeError):
    """The broker did not acknowledge a record; the event was NOT published.

    `acknowledged` is how many leading records of a `publish_many` batch the broker did
    acknowledge before the failure (0 for a single record).
    """

    def __init__(self, message: str, *, acknowledged: int = 0) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged


class EventPublisher:
    """Publishes CloudEvents records. Thread-safe: any thread may call it at any time.

    Every `publish*` call blocks until the broker acknowledged the record with
    acks=all, or raises PublishError: nothing is dropped silently. The producer
    is idempotent, so its own retries never duplicate a record.

    `send_timeout` (seconds, at least 1) bounds each call, from reaching the cluster (the first
    call) through the topics' metadata to the last acknowledgement (retries included). The
    connection is made by the first `publish*` call, so a process can start (and, say, fill its
    outbox) while Kafka is down; a publish that fails raises PublishError and the next one starts
    over with a new producer (a record the failed one did deliver is sent again, which idempotent
    consumers absorb).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        source: str,
        send_timeout: float = 30.0,
        **producer_options: Any,
    ) -> None:
        if send_timeout < 1:
            raise ValueError("send_timeout must be at least 1 second")
        self.source = source
        self._send_timeout = send_timeout
        options: dict[str, Any] = {
            "acks": "all",
            "enable_idempotence": True,
            # aiokafka's request timeout is also how long a record may wait for its
            # acknowledgement (retries included) and a send for the topic's metadata.
            "request_timeout_ms": int(send_timeout * 1000),
            "linger_ms": LINGER_MS,
            "client_id": source,
        }
        # Built again for each producer: a rotated SASL password is used on the next connection.
        self._options = lambda: {**options, **settings.aiokafka_options(), **producer_options}
        self._servers = ",".join(settings.servers())
        self._max_request_size = int(producer_options.get("max_request_size", MAX_REQUEST_SIZE))
        self._link: _Link | None = None
        self._lock = threading.Lock()

    def publish(
        self,
        topic: str,
        payload: Message,
        *,
        subject: str,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> EventAttributes:
        """Publish `payload` keyed by `subject` inside a PRODUCER span whose context the record carries."""
        with tracer.start_as_current_span(
            f"publish {ce_type_of(payload)}",
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
        ) as span:
            record = encode_event(
                payload,
                source=self.source,
                subject=subject,
                event_id=event_id,
                time=time,
                trace_headers=inject_headers(),
            )
            assert record.attributes is not None
            span.set_attribute("messaging.message.id", record.attributes.id)
            self.publish_record(topic, record)
            return record.attributes

    def publish_record(self, topic: str, record: KafkaRecord) -> None:
        """Publish a prepared record and wait for the broker's acknowledgement."""
        self.publish_many([(topic, record)])

    def publish_many(self, topic_records: Sequence[tuple[str, KafkaRecord]]) -> None:
        """Send several records, then wait for every acknowledgement (order per key holds).

        On failure, raises PublishError whose `acknowledged` counts the leading records that
        the broker acknowledged; later ones may or may not have been written.
        """
        if not topic_records:
            return
        with self._lock:
            if self._link is None:
                self._link = _Link(self._options, self._servers, self._max_request_size)
            future = self._link.submit(self._link.publish_many(topic_records, self._send_timeout))
        try:
            future.result(timeout=self._send_timeout + CALL_SLACK)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise PublishError(f"no verdict from the Kafka producer within {self._send_timeout:g}s") from exc
        except concurrent.futures.CancelledError as exc:
            raise PublishError("the publisher was closed before the broker acknowledged") from exc

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is in flight (up to `timeout` seconds), abandon what is left, and close."""
        with self._lock:
            link, self._link = self._link, None
        if link is not None:
            link.close(timeout)


class _Link:
    """One event loop thread and the producer on it; the producer's state is touched only there."""

    def __init__(self, options: Callable[[], dict[str, Any]], servers: str, max_request_size: int) -> None:
        """`options()` are the producer's options, read anew (with the password file) for each
        producer; `servers` names the cluster in errors."""
        self._options = options
        self._servers = servers
        self._max_request_size = max_request_size
        self._starting: asyncio.Task[AIOKafkaProducer] | None = None
        self._abandoning: set[asyncio.Task[None]] = set()
        ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

        async def serve() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await self._stop.wait()

        # A daemon: a producer wedged in a dead connection cannot keep the process alive.
        self._thread = threading.Thread(
            target=asyncio.run, args=(serve(),), name="kafka-publisher", daemon=True
        )
        self._thread.start()
        ready.wait()

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    def close(self, timeout: float) -> None:
        """Flush for up to `timeout` seconds, abandon the rest, and end the thread: whatever
        still waits on the loop then is cancelled (its callers raise PublishError)."""
        assert self._loop is not None and self._stop is not None
        try:
            self.submit(self._closed(timeout)).result(timeout + STOP_TIMEOUT + CALL_SLACK)
        except concurrent.futures.TimeoutError:
            log.warning("the Kafka producer did not close in time; abandoned")
        finally:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(STOP_TIMEOUT)

    async def publish_many(self, topic_records: Sequence[tuple[str, KafkaRecord]], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        producer = await self._producer(deadline)
        batches = _Batches(producer, self._max_request_size)
        failure: BaseException | None = None
        try:
            async with asyncio.timeout_at(deadline):
                for topic, record in topic_records:
                    await batches.add(topic, record)
                await batches.submit_open()
        except (KafkaError, TimeoutError) as exc:
            failure = exc
        if batches.submitted:
            await asyncio.wait(batches.submitted, timeout=max(0.0, deadline - loop.time()))
        acknowledged, failed = batches.acknowledged()
        if acknowledged == len(topic_records):
            return
        self._discard(producer)
        failure = failure or failed or TimeoutError(f"no acknowledgement within {timeout:g}s")
        topics = ", ".join(sorted({topic for topic, _ in topic_records}))
        raise PublishError(
            f"publishing to {topics} failed after {acknowledged} of {len(topic_records)} "
            f"record(s): {failure!r}",
            acknowledged=acknowledged,
        ) from failure

    async def _producer(self, deadline: float) -> AIOKafkaProducer:
        """The started producer, started now (shared by concurrent calls) unless it is already."""
        if self._starting is None:
            self._starting = asyncio.create_task(self._started())
            self._starting.add_done_callback(_retrieved)
        starting = self._starting
        if starting.done() and not starting.cancelled() and starting.exception() is None:
            return starting.result()  # every publish but the first: no wait to bound
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(starting)
        except Exception as exc:
            if starting.done() and self._starting is starting:
                self._starting = None  # the next publish tries again
            raise PublishError(f"cannot reach Kafka at {self._servers}: {exc!r}") from exc

    async def _started(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(**self._options())
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    def _discard(self, producer: AIOKafkaProducer) -> None:
        """Stop using `producer` (the next publish starts a new one) and abandon what it holds."""
        starting = self._starting
        if starting is not None and starting.done() and _outcome(starting) is producer:
            self._starting = None
        task = asyncio.create_task(_abandon(producer))
        self._abandoning.add(task)
        task.add_done_callback(self._abandoning.discard)

    async def _closed(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        starting, self._starting = self._starting, None
        if starting is not None:
            done, _ = await asyncio.wait({starting}, timeout=timeout)
            if done and starting.exception() is None:
                producer = starting.result()
                # flush() only waits on the records' futures: leaving it early abandons nothing.
                flushing = asyncio.ensure_future(producer.flush())
                await asyncio.wait({flushing}, timeout=max(0.0, deadline - loop.time()))
                flushing.cancel()
                await _abandon(producer)
        if self._abandoning:
            await asyncio.wait(self._abandoning, timeout=STOP_TIMEOUT)


class _Batches:
    """One `publish_many`'s records in batches, one open batch per partition, each submitted whole
    (aiokafka's batch interface: a record costs an append, not a send of its own).

    Records are placed as aiokafka's `send` places them (its default partitioner over the topic's
    partitions: one key, one partition), and a partition's batches are submitted in order, so the
    order per key holds. Before anything that waits or fails (a new topic's metadata, a record too
    large) the open batches are submitted, so that the records before it are published.
    """

    def __init__(self, producer: AIOKafkaProducer, max_request_size: int) -> None:
        self._producer = producer
        self._max_request_size = max_request_size
        self._partitions: dict[str, list[int]] = {}
        # Per (topic, partition): the batch being filled and its number.
        self._open: dict[tuple[str, int], tuple[Any, int]] = {}
        self._batch_of: list[int] = []  # per record added: its batch's number
        self._futures: list[asyncio.Future[Any] | None] = []  # per batch: its delivery, once submitted
        self.submitted: list[asyncio.Future[Any]] = []

    async def add(self, topic: str, record: KafkaRecord) -> None:
        partitions = self._partitions.get(topic)
        if partitions is None:
            await self.submit_open()
            partitions = self._partitions[topic] = sorted(await self._producer.partitions_for(topic))
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(record.key, record.value, record.headers)
        if size > self._max_request_size:
            await self.submit_open()
            raise MessageSizeTooLargeError(
                f"the record is {size} bytes, over the producer's max_request_size {self._max_request_size}"
            )
        tp = (topic, _PARTITIONER(record.key, partitions, partitions))
        opened = self._open.get(tp)
        if opened is None or not self._append(opened[0], record):
            if opened is not None:
                await self._submit(tp, *opened)
            opened = self._open[tp] = (self._producer.create_batch(), len(self._futures))
            self._futures.append(None)
            # An empty batch takes any record (the size was checked above).
            self._append(opened[0], record)
        self._batch_of.append(opened[1])

    async def submit_open(self) -> None:
        opened, self._open = self._open, {}
        for tp, (batch, number) in opened.items():
            await self._submit(tp, batch, number)

    def acknowledged(self) -> tuple[int, BaseException | None]:
        """How many leading records were acknowledged, and the failure of the next one (None when
        it was never submitted or is still unacknowledged)."""
        for count, number in enumerate(self._batch_of):
            future = self._futures[number]
            if future is None or not future.done() or future.cancelled():
                return count, None
            if future.exception() is not None:
                return count, future.exception()
        return len(self._batch_of), None

    @staticmethod
    def _append(batch: Any, record: KafkaRecord) -> bool:
        return (
            batch.append(timestamp=None, key=record.key, value=record.value, headers=record.headers)
            is not None
        )

    async def _submit(self, tp: tuple[str, int], batch: Any, number: int) -> None:
        batch.close()
        future = await self._producer.send_batch(batch, tp[0], partition=tp[1])
        # A failed batch's outcome is reported through PublishError.
        future.add_done_callback(_retrieved)
        self._futures[number] = future
        self.submitted.append(future)


async def _abandon(producer: AIOKafkaProducer) -> None:
    """Fail the records `producer` still holds (their senders get PublishError) and close it."""
    # No public way to abort pending batches: failing them is aiokafka's own accumulator's call.
    producer._message_accumulator.fail_all(KafkaError("the producer was abandoned"))
    stopping = asyncio.ensure_future(producer.stop())
    done, _ = await asyncio.wait({stopping}, timeout=STOP_TIMEOUT)
    if not done:
        log.warning("the Kafka producer did not close in %gs; abandoned", STOP_TIMEOUT)
    elif stopping.exception() is not None:
        log.warning("closing the Kafka producer failed: %r", stopping.exception())


def _outcome(task: asyncio.Task[T]) -> T | None:
    """A finished task's result; None when it failed or was cancelled."""
    if task.cancelled() or task.exception() is not None:
        return None
    return task.result()


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a future's outcome as seen (its failure is reported through PublishError)."""
    if not future.cancelled():
        future.exception()
