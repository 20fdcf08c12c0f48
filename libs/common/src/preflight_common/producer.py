"""Publishing events to Kafka: acks=all, idempotent, bounded retries, errors surfaced."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from kafka import KafkaProducer
from kafka.errors import KafkaError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from preflight_common.config import KafkaSettings
from preflight_common.envelope import EventAttributes, KafkaRecord, ce_type_of, encode_event
from preflight_common.telemetry import inject_headers

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

# No linger: a publish waits for its acknowledgement, so a 5 ms linger made each one cost ~10 ms
# (measured by bench/envelope_throughput.py); pipelined sends batch while a request is in flight.
LINGER_MS = 0
MAX_REQUEST_TIMEOUT_MS = 15_000


class PublishError(RuntimeError):
    """The broker did not acknowledge a record; the event was NOT published.

    `acknowledged` is how many leading records of a `publish_many` batch the broker did
    acknowledge before the failure (0 for a single record).
    """

    def __init__(self, message: str, *, acknowledged: int = 0) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged


class EventPublisher:
    """Publishes CloudEvents records. Thread-safe (kafka-python's producer is).

    Every `publish*` call blocks until the broker acknowledged the record with
    acks=all, or raises PublishError: nothing is dropped silently. The producer
    is idempotent, so its own retries never duplicate a record.

    `send_timeout` (seconds, at least 1) bounds each call: it is the longest the first call
    waits to reach the cluster, a send waits for metadata, and a record waits for its
    acknowledgement (retries included). The connection is made by the first `publish*` call,
    so a process can start (and, say, fill its outbox) while Kafka is down; a publish that
    cannot reach the cluster raises PublishError and the next one tries again with a new
    producer (kafka-python's can stay stuck on a partition after a broker was killed mid-request;
    a record the old one did deliver is sent again, which idempotent consumers absorb).
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
        delivery_timeout_ms = int(send_timeout * 1000)
        options: dict[str, Any] = {
            "acks": "all",
            "enable_idempotence": True,
            "retries": 5,
            "max_in_flight_requests_per_connection": 5,
            "retry_backoff_ms": 200,
            # kafka-python requires delivery_timeout_ms >= linger_ms + request_timeout_ms.
            "request_timeout_ms": min(MAX_REQUEST_TIMEOUT_MS, delivery_timeout_ms - LINGER_MS),
            "delivery_timeout_ms": delivery_timeout_ms,
            "linger_ms": LINGER_MS,
            "max_block_ms": delivery_timeout_ms,
            "bootstrap_timeout_ms": delivery_timeout_ms,
            # Reconnect within a second of a broker's return (kafka-python's default backs off to 30s).
            "reconnect_backoff_max_ms": 1000,
            "client_id": source,
        }
        options.update(settings.kafka_python_options())
        options.update(producer_options)
        self._options = options
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _connected(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                try:
                    self._producer = KafkaProducer(**self._options)
                except KafkaError as exc:
                    servers = ",".join(self._options["bootstrap_servers"])
                    raise PublishError(f"cannot reach Kafka at {servers}: {exc!r}") from exc
            return self._producer

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
        producer = self._connected()
        futures = []
        failure: KafkaError | None = None
        for topic, record in topic_records:
            try:
                futures.append(
                    producer.send(topic, key=record.key, value=record.value, headers=record.headers)
                )
            except KafkaError as exc:
                failure = exc
                break
        acknowledged = 0
        for future in futures:
            try:
                # A little longer than the delivery timeout, so the producer's own verdict wins.
                future.get(timeout=self._send_timeout + 1)
            except KafkaError as exc:
                failure = exc
                break
            acknowledged += 1
        if failure is not None:
            self._discard(producer)
            topics = ", ".join(sorted({topic for topic, _ in topic_records}))
            raise PublishError(
                f"publishing to {topics} failed after {acknowledged} of {len(topic_records)} "
                f"record(s): {failure!r}",
                acknowledged=acknowledged,
            ) from failure

    def _discard(self, producer: KafkaProducer) -> None:
        """Stop using `producer` (the next publish makes a new one) and close it at once."""
        with self._lock:
            if self._producer is producer:
                self._producer = None
        _close(producer, timeout=0)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is buffered (up to `timeout` seconds) and close."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            _close(producer, timeout)


def _close(producer: KafkaProducer, timeout: float) -> None:
    """Close `producer`, abandoning what it could not send within `timeout` seconds.

    kafka-python's close() flushes first and raises while batches are still pending, leaving its
    sender thread running; forcing the sender closed aborts those batches (their futures fail)
    so the producer can then close.
    """
    try:
        producer.close(timeout=timeout)
    except KafkaError:
        # No public way to abort pending batches: the sender's force_close is kafka-python's own.
        producer._sender.force_close()
        producer._sender.join(timeout=10)
        producer.close(timeout=0)
