"""Signed audit checkpoints outside the database: the file form, the topic.

A checkpoint is held only when its body verifies with the clearinghouse's own public key
(`domain.audit.verified_checkpoint`). A
checkpoint file is JSON with the base64 of a signed `body` and its `signature` — the protobuf
JSON form of an AuditCheckpoint or of a ReviewReportReady/ReviewReport both have them. On the
topic, the newest checkpoint (highest sequence) among the last records of each partition counts.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from pathlib import Path

from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from preflight.clearinghouse.v1 import events_pb2 as events
from preflight_common.config import KafkaSettings
from preflight_common.envelope import EnvelopeError, EventRegistry, decode_record

from preflight_clearinghouse.domain.audit import Checkpoint, verified_checkpoint

CHECKPOINTS = EventRegistry([events.AuditCheckpoint])
# Records read back from the end of each partition when looking for the newest checkpoint.
TAIL = 64


def read_checkpoint_file(path: Path) -> tuple[bytes, bytes]:
    """(body, signature) of a checkpoint file; ValueError saying what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return base64.b64decode(data["body"], validate=True), base64.b64decode(
            data["signature"], validate=True
        )
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ValueError(f"{path} is not JSON with the base64 of a signed 'body' and 'signature'") from None


def last_published(
    settings: KafkaSettings, topic: str, public_key: bytes, *, timeout: float = 30.0
) -> Checkpoint | None:
    """The newest checkpoint on `topic` that verifies with `public_key` (None when there is none).

    Raises `TimeoutError` when the broker does not answer within `timeout` seconds.
    """
    consumer = KafkaConsumer(
        enable_auto_commit=False, request_timeout_ms=int(timeout * 1000), **settings.kafka_python_options()
    )
    try:
        numbers = consumer.partitions_for_topic(topic)
        if numbers is None:
            raise TimeoutError(f"topic {topic} is not visible on the brokers")
        partitions = [TopicPartition(topic, p) for p in sorted(numbers)]
        ends = consumer.end_offsets(partitions)
        wanted = {p: end for p, end in ends.items() if end > 0}
        consumer.assign(partitions)
        for partition in partitions:
            consumer.seek(partition, max(0, ends[partition] - TAIL))
        newest: Checkpoint | None = None
        deadline = time.monotonic() + timeout
        while wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout:.0f}s")
            for partition, batch in consumer.poll(timeout_ms=200).items():
                for record in batch:
                    found = _checkpoint(record.headers, record.value, public_key)
                    if found is not None and (newest is None or found.seq > newest.seq):
                        newest = found
                if consumer.position(partition) >= wanted.get(partition, 0):
                    wanted.pop(partition, None)
        return newest
    finally:
        consumer.close()


def _checkpoint(
    headers: list[tuple[str, bytes]], value: bytes | None, public_key: bytes
) -> Checkpoint | None:
    try:
        _attributes, payload = decode_record(headers, value, CHECKPOINTS)
        assert isinstance(payload, events.AuditCheckpoint)
        return verified_checkpoint(public_key, payload.body, payload.signature)
    except (EnvelopeError, ValueError):
        return None  # not a checkpoint of this key: it vouches for nothing
