"""The publisher's blocking contract over its own event loop: many threads at once, a failed
batch's acknowledged records, and a close that never waits on a cluster that does not answer."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from preflight.intake.v1.events_pb2 import ReleasePlanChanged
from preflight_common.bus import Grant, Operation, Pattern, ResourceType
from preflight_common.config import KafkaSettings
from preflight_common.envelope import KafkaRecord, headers_dict
from preflight_common.producer import EventPublisher, PublishError
from preflight_testkit.fixtures import PrincipalFactory, TopicFactory

SOURCE = "preflight-tests"
THREADS = 8
EVENTS_PER_THREAD = 5


def test_threads_publishing_at_once_share_one_publisher_and_keep_each_key_in_order(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory, read_topic: Callable[..., list[Any]]
) -> None:
    topic = unique_topic("publisher-threads")
    publisher = EventPublisher(kafka_settings, source=SOURCE, send_timeout=30)
    # Every thread's first publish races the others to the cluster: the connection is made once.
    start = threading.Barrier(THREADS)

    def publish(worker: int) -> list[str]:
        start.wait()
        subject = f"sub-{worker}"
        return [
            publisher.publish(
                topic, ReleasePlanChanged(submission_id=subject, deadline_version=n), subject=subject
            ).id
            for n in range(EVENTS_PER_THREAD)
        ]

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            sent = list(pool.map(publish, range(THREADS)))
    finally:
        publisher.close()

    arrived: dict[bytes, list[str]] = {}
    for record in read_topic(topic, expected=THREADS * EVENTS_PER_THREAD):
        arrived.setdefault(record.key, []).append(headers_dict(record.headers)["ce_id"])
    assert arrived == {f"sub-{worker}".encode(): ids for worker, ids in enumerate(sent)}


def test_a_record_too_large_fails_a_batch_after_the_records_before_it_were_published(
    publisher: EventPublisher, unique_topic: TopicFactory, read_topic: Callable[..., list[Any]]
) -> None:
    topic = unique_topic("publisher-too-large")
    small = [KafkaRecord(key=b"sub-1", value=f"event {n}".encode()) for n in range(3)]
    huge = KafkaRecord(key=b"sub-1", value=b"\xff" * 1_100_000)  # over the producer's 1 MiB requests
    with pytest.raises(PublishError) as failed:
        publisher.publish_many([(topic, small[0]), (topic, small[1]), (topic, huge), (topic, small[2])])

    assert failed.value.acknowledged == 2
    # Dead-lettering tells a record too large from other failures by this cause.
    assert isinstance(failed.value.__cause__, MessageSizeTooLargeError)
    assert [record.value for record in read_topic(topic, expected=2)] == [b"event 0", b"event 1"]


def test_close_does_not_wait_for_a_publish_stuck_on_a_cluster_that_does_not_answer() -> None:
    # A listening socket nobody accepts from: connections complete in the kernel's backlog and
    # no request is ever answered, so the first publish waits to reach the cluster.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        publisher = EventPublisher(
            KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"), source=SOURCE, send_timeout=120
        )
        outcome: list[BaseException | str] = []

        def publish() -> None:
            try:
                publisher.publish(
                    "preflight.submissions.v1", ReleasePlanChanged(submission_id="s"), subject="s"
                )
                outcome.append("published")
            except PublishError as exc:
                outcome.append(exc)

        caller = threading.Thread(target=publish)
        caller.start()
        try:
            # The publish is connecting once the silent socket has a connection waiting.
            readable, _, _ = select.select([silent], [], [], 60)
            assert readable, "the publisher never connected"
            began = time.monotonic()
            publisher.close(timeout=1)
            caller.join(timeout=30)
            took = time.monotonic() - began
        finally:
            publisher.close(timeout=0)
            caller.join(timeout=150)

    assert not caller.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], PublishError), outcome
    # Well under the 120 s the publish itself would have waited for the cluster.
    assert took < 30


def test_a_password_rotated_before_the_connection_is_the_one_used(
    kafka_principal: PrincipalFactory, unique_topic: TopicFactory, read_topic: Callable[..., list[Any]]
) -> None:
    """The publisher reads its password file when it connects, not when it is made: a password
    rotated in between (the broker's and the file's) is the one it signs in with."""
    topic = unique_topic("publisher-rotated")
    user = "test-rotating-publisher"
    grants = [
        Grant(f"User:{user}", ResourceType.TOPIC, topic, Pattern.LITERAL, operation)
        for operation in (Operation.WRITE, Operation.DESCRIBE)
    ]
    publisher = EventPublisher(kafka_principal(user, grants), source=SOURCE, send_timeout=10)
    kafka_principal(user, grants)  # a new password, on the broker and in the same file
    try:
        publisher.publish(topic, ReleasePlanChanged(submission_id="rotated"), subject="rotated")
    finally:
        publisher.close()
    assert [r.key for r in read_topic(topic, expected=1)] == [b"rotated"]
