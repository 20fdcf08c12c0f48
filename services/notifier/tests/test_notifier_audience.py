"""An operator outside a finding's audience receives nothing on any channel: its alert topics (on a real
broker), webhooks, e-mail and the gRPC stream."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.notifier.v1 import events_pb2, notifier_pb2
from preflight_common import bus
from preflight_common.config import KafkaSettings, Topics
from preflight_common.outbox import OutboxRelay
from preflight_common.producer import EventPublisher
from preflight_common.topics import TopicSpec, ensure_topics
from preflight_notifier.adapters import tables
from preflight_notifier.bootstrap import Components
from preflight_notifier.config import NotifierSettings
from preflight_testkit.fixtures import TopicFactory
from preflight_testkit.notifier import (
    START,
    Api,
    ManualClock,
    SmtpServer,
    WebhookReceiver,
    apply,
    finding_notice,
    loopback_settings,
    submission_received,
)

PARTICIPANTS = bus.Participants(
    (
        bus.Organisation("bank-a", ("finance",)),
        bus.Organisation("bank-b", ("finance",)),
        bus.Organisation("water-co", ("water",)),
    )
)


@pytest.fixture
def settings(
    tmp_path: Path,
    routing_file: Path,
    smtp_server: SmtpServer,
    unique_topic: TopicFactory,
    kafka_settings: KafkaSettings,
) -> NotifierSettings:
    topics = Topics(
        alerts_prefix=f"alerts-{uuid.uuid4().hex[:12]}", review_alerts=unique_topic("review-alerts")
    )
    ensure_topics(kafka_settings, [TopicSpec(name, 1) for name in bus.alert_topics(topics, PARTICIPANTS)])
    return loopback_settings(
        f"sqlite:///{tmp_path / 'notifier.db'}",
        routing_file,
        smtp_server,
        kafka=kafka_settings,
        topics=topics,
        participants=PARTICIPANTS,
    )


def topic_records(settings: NotifierSettings, topic: str) -> list[Any]:
    """Every record on a one-partition topic (read as the administrator), up to its end."""
    consumer = KafkaConsumer(**settings.kafka.kafka_python_options(), enable_auto_commit=False)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    end = consumer.end_offsets([partition])[partition]
    records: list[Any] = []
    try:
        while consumer.position(partition) < end:
            for batch in consumer.poll(timeout_ms=500).values():
                records += batch
    finally:
        consumer.close()
    return records


def subjects_on(settings: NotifierSettings, topic: str) -> list[str]:
    return [events_pb2.Alert.FromString(r.value).subject_id for r in topic_records(settings, topic)]


async def test_an_operator_outside_the_audience_receives_nothing_on_any_channel(
    notifier: Components,
    settings: NotifierSettings,
    clock: ManualClock,
    api: Api,
    webhook_receiver: WebhookReceiver,
    smtp_server: SmtpServer,
) -> None:
    # f-secret is for bank-a only; f-sentinel, for bank-b, fires an hour later: whatever bank-b receives
    # first on an ordered channel shows that f-secret was withheld, with no waiting for "nothing".
    secret = finding_notice("f-secret", embargo_end=START + 4 * timedelta(days=1), organisations=("bank-a",))
    sentinel = finding_notice(
        "f-sentinel",
        embargo_end=START + 4 * timedelta(days=1) + timedelta(hours=1),
        organisations=("bank-b",),
    )
    apply(notifier, clearinghouse_events.FindingPublished(finding=secret))
    apply(notifier, clearinghouse_events.FindingPublished(finding=sentinel))
    clock.set(START + timedelta(days=1))
    notifier.scheduler.run_pass()
    clock.advance(hours=1)
    notifier.scheduler.run_pass()
    clock.advance(seconds=30)
    notifier.dispatcher.run_pass()
    await notifier.deliverer.run_pass()

    # Webhooks and e-mail.
    def subjects(path: str) -> list[str]:
        return [a["subject_id"] for r in webhook_receiver.to(path) for a in r.json()["alerts"]]

    assert subjects("/bank-a") == ["f-secret"]
    assert subjects("/bank-b") == ["f-sentinel"]
    mailed = {tuple(m.recipients): m.message["Subject"] for m in smtp_server.messages}
    assert list(mailed) == [("soc@bank-b.example",)]
    assert "Heap overflow" in mailed[("soc@bank-b.example",)]
    assert all("f-secret" not in m.content for m in smtp_server.messages)

    # The alert topics: each organisation's holds its own alert only, the sectors' nothing.
    publisher = EventPublisher(settings.kafka, source="test")
    try:
        assert OutboxRelay(notifier.engine, tables.outbox, publisher).run_once() == 2
    finally:
        publisher.close()
    topics = settings.topics
    assert subjects_on(settings, bus.org_alert_topic(topics, "bank-b")) == ["f-sentinel"]
    assert subjects_on(settings, bus.org_alert_topic(topics, "bank-a")) == ["f-secret"]
    assert subjects_on(settings, bus.org_alert_topic(topics, "water-co")) == []
    assert subjects_on(settings, bus.sector_alert_topic(topics, "finance")) == []
    for topic in bus.alert_topics(topics, PARTICIPANTS):
        for record in topic_records(settings, topic):
            assert b"Secret Lab" not in record.value and b"secret-model" not in record.value

    # The gRPC stream and list.
    streams = {
        who: api.stub.SubscribeAlerts(
            notifier_pb2.SubscribeAlertsRequest(after_sequence=0), metadata=api.auth(who)
        )
        for who in ("bank-a", "bank-b")
    }
    first = {
        who: (await asyncio.wait_for(s.read(), timeout=10)).alert.alert.subject_id
        for who, s in streams.items()
    }
    assert first == {"bank-a": "f-secret", "bank-b": "f-sentinel"}
    for stream in streams.values():
        stream.cancel()
    listed = await api.stub.ListAlerts(notifier_pb2.ListAlertsRequest(), metadata=api.auth("bank-b"))
    assert [r.alert.subject_id for r in listed.alerts] == ["f-sentinel"]


def test_review_alerts_name_a_lab_and_so_never_reach_the_operators_topic(
    notifier: Components, settings: NotifierSettings, clock: ManualClock
) -> None:
    apply(notifier, submission_received("sub-1", START + 8 * timedelta(days=1)))
    apply(
        notifier,
        clearinghouse_events.FindingPublished(
            finding=finding_notice(
                "f-1", embargo_end=START + 4 * timedelta(days=1), organisations=("bank-a",)
            )
        ),
    )
    clock.set(START + timedelta(days=1, hours=1))
    notifier.scheduler.run_pass()
    publisher = EventPublisher(settings.kafka, source="test")
    try:
        assert OutboxRelay(notifier.engine, tables.outbox, publisher).run_once() == 2
    finally:
        publisher.close()
    operators = [
        r for t in bus.alert_topics(settings.topics, PARTICIPANTS) for r in topic_records(settings, t)
    ]
    reviews = topic_records(settings, settings.topics.review_alerts)
    assert [r.key for r in operators] == [b"f-1"]
    assert [r.key for r in reviews] == [b"sub-1"]
    assert all(b"lab-a" not in r.value and b"sub-1" not in r.value for r in operators)
