"""Principals and plain kafka-python clients for tests: create a principal, write records,
read them back, and check what a principal is refused.

Every client function connects as the principal of the `KafkaSettings` it is given, so a test
states who writes or reads: the broker's administrator (the ``kafka_settings`` fixture) to
play any service, or a principal (``kafka_principal``, `create_principal`) to prove what its
ACLs allow.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import TopicAuthorizationFailedError
from kafka.structs import TopicPartition
from preflight_common import bus
from preflight_common.config import KafkaSettings, Topics
from preflight_common.envelope import headers_dict
from preflight_common.topics import ensure_acls, ensure_principals

__all__ = [
    "assert_read_refused",
    "create_principal",
    "dead_letter_reasons",
    "read_records",
    "service_grants_as",
    "write_records",
]


def create_principal(
    admin: KafkaSettings, user: str, grants: Iterable[bus.Grant], password_file: Path
) -> KafkaSettings:
    """The client settings of SCRAM-SHA-512 principal `user`, created (or given a new password)
    by the administrator `admin`, with the ALLOW `grants` added.

    The random password is written to `password_file` (mode 0600) and never leaves files.
    """
    password_file.write_text(secrets.token_urlsafe(18), encoding="utf-8")
    password_file.chmod(0o600)
    ensure_principals(admin, {user: password_file.read_text(encoding="utf-8")})
    ensure_acls(admin, list(grants))
    return KafkaSettings(
        bootstrap_servers=admin.bootstrap_servers,
        security_protocol=admin.security_protocol,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user,
        sasl_password_file=str(password_file),
        ssl_cafile=admin.ssl_cafile,
    )


def service_grants_as(user: str, service: str, topics: Topics) -> list[bus.Grant]:
    """Exactly the production grants of `service` on `topics`, given to principal `user`.

    For a test server that outlives one test: as a principal of its own, its password is not
    changed by a later test creating the service's principal again.
    """
    return [replace(grant, principal=f"User:{user}") for grant in bus.service_grants(service, topics)]


def write_records(
    settings: KafkaSettings, topic: str, values: Iterable[bytes], *, key: bytes = b"key"
) -> None:
    """Write each value to `topic`, each acknowledged by every replica before the next.

    Raises what the broker answered, e.g. `TopicAuthorizationFailedError` when no ACL lets
    the principal write the topic.
    """
    producer = KafkaProducer(acks="all", max_block_ms=10_000, **settings.kafka_python_options())
    try:
        for value in values:
            producer.send(topic, key=key, value=value).get(timeout=10)
    finally:
        producer.close()


def read_records(
    settings: KafkaSettings, topic: str, expected: int, timeout: float = 30.0, settle: float = 0.0
) -> list[Any]:
    """Every record of every partition of `topic` from the start, once `expected` have arrived
    or `timeout` seconds have passed (the caller checks what came); with `settle`, one more poll
    of that many seconds then catches any surplus (a duplicate, say)."""
    consumer = KafkaConsumer(enable_auto_commit=False, **settings.kafka_python_options())
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise AssertionError(
                f"{topic} has no partitions visible to {settings.sasl_username or 'the client'}"
            )
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        if settle > 0:
            for batch in consumer.poll(timeout_ms=int(settle * 1000)).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def dead_letter_reasons(
    settings: KafkaSettings, topic: str, event_ids: set[str], timeout: float = 90.0
) -> dict[str, str]:
    """The DLQ reason of each of `event_ids` dead-lettered from `topic` (its `.dlq` twin, read from
    the start), once all have arrived; AssertionError naming what came if they do not in `timeout`."""
    consumer = KafkaConsumer(
        Topics.dlq(topic), auto_offset_reset="earliest", **settings.kafka_python_options()
    )
    reasons: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    try:
        while reasons.keys() != event_ids:
            if time.monotonic() > deadline:
                raise AssertionError(f"after {timeout:.0f}s only {reasons} reached the DLQ of {topic}")
            for batch in consumer.poll(timeout_ms=250).values():
                for record in batch:
                    headers = headers_dict(record.headers)
                    if headers.get("ce_id") in event_ids:
                        reasons[headers["ce_id"]] = headers["preflight_dlq_reason"]
        return reasons
    finally:
        consumer.close()


def assert_read_refused(settings: KafkaSettings, topic: str, timeout: float = 30.0) -> None:
    """Raise AssertionError unless the broker refuses the principal a fetch from `topic`.

    A principal that may not even describe the topic is refused its offsets; one that may
    (as every writer is) then fetches from offset 0 of partition 0, which takes the READ
    permission itself.
    """
    consumer = KafkaConsumer(enable_auto_commit=False, **settings.kafka_python_options())
    partition = TopicPartition(topic, 0)
    try:
        consumer.beginning_offsets([partition])
        consumer.assign([partition])
        consumer.seek(partition, 0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if consumer.poll(timeout_ms=500):
                raise AssertionError(f"{settings.sasl_username} read {topic}")
    except TopicAuthorizationFailedError:
        return
    finally:
        consumer.close()
    raise AssertionError(f"{settings.sasl_username} was not refused reading {topic} within {timeout:.0f}s")
