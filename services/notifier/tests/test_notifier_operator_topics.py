"""Operators read their finding alerts from their own topics, as their own principals, through the SDK —
and nothing else: another organisation's or sector's topic, the findings, the review alerts or any service
topic is refused by the broker, and so is every write."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import errors as aiokafka_errors
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kafka_errors
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.common.v1 import common_pb2
from preflight.sdk import aio, cli
from preflight.sdk.alerts import AlertSubscription, ReceivedAlert, subscribe_alerts
from preflight.sdk.errors import PermissionDenied
from preflight_common import bus
from preflight_common.config import KafkaSettings, Topics
from preflight_common.outbox import OutboxRelay
from preflight_common.producer import EventPublisher
from preflight_common.topics import TopicSpec, ensure_topics
from preflight_notifier.adapters import tables
from preflight_notifier.bootstrap import Components
from preflight_notifier.config import NotifierSettings
from preflight_testkit.fixtures import PrincipalFactory, TopicFactory
from preflight_testkit.notifier import (
    START,
    ManualClock,
    SmtpServer,
    apply,
    finding_notice,
    loopback_settings,
)
from preflight_testkit.waiting import wait_until

BANK = bus.Organisation("bank-a", ("finance",))
AQUA = bus.Organisation("aqua-co", ("water",))
PARTICIPANTS = bus.Participants((BANK, AQUA))
DEADLINE = 60.0


@pytest.fixture
def topics(unique_topic: TopicFactory, kafka_settings: KafkaSettings) -> Topics:
    topics = Topics(
        submissions=unique_topic("submissions"),
        reviews=unique_topic("reviews"),
        findings=unique_topic("findings"),
        review_alerts=unique_topic("review-alerts"),
        alerts_prefix=f"alerts-{uuid.uuid4().hex[:12]}",
    )
    ensure_topics(kafka_settings, [TopicSpec(name, 1) for name in bus.alert_topics(topics, PARTICIPANTS)])
    return topics


@pytest.fixture
def settings(tmp_path: Path, routing_file: Path, smtp_server: SmtpServer, topics: Topics) -> NotifierSettings:
    return loopback_settings(
        f"sqlite:///{tmp_path / 'notifier.db'}",
        routing_file,
        smtp_server,
        topics=topics,
        participants=PARTICIPANTS,
    )


def subscription(
    principal: KafkaSettings, organisation: bus.Organisation, topics: Topics
) -> AlertSubscription:
    return AlertSubscription(
        bootstrap_servers=principal.bootstrap_servers,
        organisation=organisation.name,
        sectors=organisation.sectors,
        password_file=principal.sasl_password_file,
        security_protocol=principal.security_protocol,
        alerts_prefix=topics.alerts_prefix,
        from_beginning=True,
    )


def fire_and_publish(notifier: Components, clock: ManualClock, publisher_settings: KafkaSettings) -> None:
    """Findings for bank-a by name, for finance and water by sector, both, an unregistered one; relayed."""
    embargo = START + 4 * timedelta(days=1)
    notices = [
        finding_notice("f-bank", embargo_end=embargo, organisations=("bank-a",)),
        # RED: aqua-co by name only; finance (bank-a's sector) may not have it.
        finding_notice(
            "f-aqua-red",
            embargo_end=embargo,
            organisations=("aqua-co",),
            sectors=("finance",),
            tlp=common_pb2.TLP_RED,
        ),
        finding_notice(
            "f-finance", embargo_end=embargo, organisations=(), sectors=("finance",), tlp=common_pb2.TLP_GREEN
        ),
        # bank-a by name and by sector (the same alert twice), aqua-co by sector.
        finding_notice(
            "f-both", embargo_end=embargo, organisations=("bank-a",), sectors=("finance", "water")
        ),
        finding_notice("f-ghost", embargo_end=embargo, organisations=("ghost-org",), sectors=("energy",)),
    ]
    for notice in notices:
        apply(notifier, clearinghouse_events.FindingPublished(finding=notice))
    clock.set(START + timedelta(days=1))
    notifier.scheduler.run_pass()
    publisher = EventPublisher(publisher_settings, source="preflight.notifier")
    relay = OutboxRelay(notifier.engine, tables.outbox, publisher)
    try:
        published = 0
        while relay.pending():
            published += relay.run_once()
    finally:
        publisher.close()
    assert published == 6  # f-bank 1, f-aqua-red 1, f-finance 1, f-both 3 (bank-a, finance, water), f-ghost 0


def group_caught_up(admin_settings: KafkaSettings, sub: AlertSubscription) -> bool:
    """Whether the subscription's group committed every record of its topics (asked as the administrator)."""
    consumer = KafkaConsumer(
        group_id=sub.group_id(), enable_auto_commit=False, **admin_settings.kafka_python_options()
    )
    try:
        ends = consumer.end_offsets([TopicPartition(topic, 0) for topic in sub.topics()])
        return all((consumer.committed(tp) or 0) >= end for tp, end in ends.items())
    finally:
        consumer.close()


def assert_only_addressed_to(received: list[ReceivedAlert], organisation: bus.Organisation) -> None:
    for item in received:
        operators = item.alert.audience.operators
        assert [*operators.organisations, *operators.sectors] in (
            [organisation.name],
            *[[s] for s in organisation.sectors],
        )
        assert b"Secret Lab" not in item.alert.SerializeToString()


async def test_each_operator_reads_its_own_alerts_and_is_refused_everything_else(
    notifier: Components,
    clock: ManualClock,
    topics: Topics,
    kafka_settings: KafkaSettings,
    kafka_principal: PrincipalFactory,
) -> None:
    notifier_principal = kafka_principal("preflight-notifier", bus.service_grants("notifier", topics))
    bank = kafka_principal(bus.operator_principal(BANK.name), bus.operator_grants(BANK, topics))
    aqua = kafka_principal(bus.operator_principal(AQUA.name), bus.operator_grants(AQUA, topics))
    await asyncio.to_thread(fire_and_publish, notifier, clock, notifier_principal)

    # bank-a, with the asyncio subscriber, until its group has committed everything on its topics:
    # f-both came on its organisation's and on finance's topic, and is received once.
    bank_sub = subscription(bank, BANK, topics)
    arrived: asyncio.Queue[ReceivedAlert] = asyncio.Queue()

    async def follow() -> None:
        async for item in aio.subscribe_alerts(bank_sub, poll_timeout=0.2):
            await arrived.put(item)

    task = asyncio.create_task(follow())
    try:
        await asyncio.to_thread(
            wait_until,
            lambda: group_caught_up(kafka_settings, bank_sub),
            DEADLINE,
            "bank-a's group caught up",
        )
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    bank_received = [arrived.get_nowait() for _ in range(arrived.qsize())]
    assert sorted(item.alert.subject_id for item in bank_received) == ["f-bank", "f-both", "f-finance"]
    assert_only_addressed_to(bank_received, BANK)

    # aqua-co, with the blocking subscriber: f-aqua-red by name, f-both by its sector.
    aqua_received = await asyncio.to_thread(take, subscription(aqua, AQUA, topics), 2)
    assert sorted(item.alert.subject_id for item in aqua_received) == ["f-aqua-red", "f-both"]
    assert_only_addressed_to(aqua_received, AQUA)

    # The same, from the command line (its own consumer group).
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "alert",
        "follow",
        "--bootstrap",
        aqua.bootstrap_servers,
        "--organisation",
        AQUA.name,
        "--sector",
        "water",
        "--password-file",
        aqua.sasl_password_file,
        "--security-protocol",
        aqua.security_protocol,
        "--alerts-prefix",
        topics.alerts_prefix,
        "--name",
        "cli",
        "--from-beginning",
        "--limit",
        "2",
        "--json",
    ]
    assert await asyncio.to_thread(cli.main, argv, out, err) == 0, err.getvalue()
    printed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted(alert["subject_id"] for alert in printed) == ["f-aqua-red", "f-both"]

    # Everything else is refused, to both: the other's alerts, the findings, the review alerts and
    # every other topic of the services, with their dead-letter twins.
    for principal, own, other in ((bank, BANK, AQUA), (aqua, AQUA, BANK)):
        forbidden = [
            bus.org_alert_topic(topics, other.name),
            *(bus.sector_alert_topic(topics, s) for s in other.sectors),
            *topics.all(),
            *map(Topics.dlq, topics.all()),
        ]
        for topic in forbidden:
            await assert_read_refused(principal, topic)
        wider = subscription(principal, bus.Organisation(own.name, (*own.sectors, *other.sectors)), topics)
        with pytest.raises(PermissionDenied):
            await asyncio.to_thread(take, wider, 1)
        for topic in [bus.org_alert_topic(topics, own.name), *forbidden]:
            await asyncio.to_thread(assert_write_refused, principal, topic)


def take(sub: AlertSubscription, count: int) -> list[ReceivedAlert]:
    """The first `count` alerts of a blocking subscription."""
    received: list[ReceivedAlert] = []
    alerts = subscribe_alerts(sub, poll_timeout=0.2)
    try:
        for item in alerts:
            received.append(item)
            if len(received) == count:
                break
    finally:
        alerts.close()
    return received


async def assert_read_refused(principal: KafkaSettings, topic: str) -> None:
    """Reading `topic` as `principal` (without a consumer group) fails with a topic authorization error."""
    options = principal.kafka_python_options()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=options["bootstrap_servers"],
        security_protocol=options["security_protocol"],
        sasl_mechanism=options["sasl_mechanism"],
        sasl_plain_username=options["sasl_plain_username"],
        sasl_plain_password=options["sasl_plain_password"],
        auto_offset_reset="earliest",
    )
    try:
        with pytest.raises(aiokafka_errors.TopicAuthorizationFailedError):
            await consumer.start()
            await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()


def assert_write_refused(principal: KafkaSettings, topic: str) -> None:
    producer: Any = KafkaProducer(
        **principal.kafka_python_options(), enable_idempotence=False, max_block_ms=30_000
    )
    try:
        with pytest.raises(kafka_errors.TopicAuthorizationFailedError):
            producer.send(topic, b"forged").get(timeout=30)
    finally:
        producer.close()
