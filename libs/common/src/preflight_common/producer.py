"""Publishing events to Kafka: acks=all, idempotent, bounded retries, errors surfaced."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from kafka import KafkaProducer
from kafka.errors import KafkaError

from preflight_common.config import KafkaSettings
from preflight_common.envelope import EventAttributes, KafkaRecord, encode_event
from preflight_common.telemetry import inject_headers

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """The broker did not acknowledge a record; the event was NOT published."""


class EventPublisher:
    """Publishes CloudEvents records. Thread-safe (kafka-python's producer is).

    Every `publish*` call blocks until the broker acknowledged the record with
    acks=all, or raises PublishError: nothing is dropped silently. The producer
    is idempotent, so its own retries never duplicate a record.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        source: str,
        send_timeout: float = 30.0,
        **producer_options: Any,
    ) -> None:
        self.source = source
        self._send_timeout = send_timeout
        options: dict[str, Any] = {
            "acks": "all",
            "enable_idempotence": True,
            "retries": 5,
            "max_in_flight_requests_per_connection": 5,
            "retry_backoff_ms": 200,
            "request_timeout_ms": 15_000,
            "delivery_timeout_ms": int(send_timeout * 1000),
            "linger_ms": 5,
            "max_block_ms": int(send_timeout * 1000),
            "client_id": source,
        }
        options.update(settings.kafka_python_options())
        options.update(producer_options)
        self._producer = KafkaProducer(**options)

    def publish(
        self,
        topic: str,
        payload: Message,
        *,
        subject: str,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> EventAttributes:
        """Publish `payload` keyed by `subject`, carrying the current trace context."""
        record = encode_event(
            payload,
            source=self.source,
            subject=subject,
            event_id=event_id,
            time=time,
            trace_headers=inject_headers(),
        )
        self.publish_record(topic, record)
        assert record.attributes is not None
        return record.attributes

    def publish_record(self, topic: str, record: KafkaRecord) -> None:
        """Publish a prepared record and wait for the broker's acknowledgement."""
        try:
            future = self._producer.send(topic, key=record.key, value=record.value, headers=record.headers)
            future.get(timeout=self._send_timeout)
        except KafkaError as exc:
            raise PublishError(f"publishing to {topic} failed: {exc}") from exc

    def publish_many(self, topic_records: list[tuple[str, KafkaRecord]]) -> None:
        """Send several records, then wait for all acknowledgements (order per key holds)."""
        try:
            futures = [
                self._producer.send(topic, key=r.key, value=r.value, headers=r.headers)
                for topic, r in topic_records
            ]
            for future in futures:
                future.get(timeout=self._send_timeout)
        except KafkaError as exc:
            raise PublishError(f"publishing failed: {exc}") from exc

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is buffered and close."""
        try:
            self._producer.flush(timeout=timeout)
        finally:
            self._producer.close(timeout=timeout)
