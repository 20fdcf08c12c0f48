"""Kafka over mutual TLS: a client authenticated by its certificate alone is the principal its
subject's CN names, held to that principal's ACLs, through kafka-python and the asyncio
clients (aiokafka: the services' event consumer) alike; the SASL listener stays as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError
from preflight.intake.v1.events_pb2 import SubmissionWithdrawn
from preflight_common.bus import (
    SOURCES,
    Grant,
    Operation,
    Pattern,
    ResourceType,
    service_grants,
    service_principal,
)
from preflight_common.config import KafkaSettings, Topics
from preflight_common.consumer import DeadLetters, EventConsumer, Route
from preflight_common.envelope import EventAttributes, EventRegistry
from preflight_common.localkafka import BrokerTLS, LocalKafka, find_repo_root
from preflight_common.producer import EventPublisher
from preflight_common.topics import TopicSpec, ensure_acls, ensure_topics
from preflight_testkit.clients import assert_read_refused, read_records, write_records
from preflight_testkit.tls import Issued, TestAuthority

# These tests start a broker of their own, with a TLS listener.
pytestmark = pytest.mark.slow

WRITER = "test-mtls-writer"


@dataclass(frozen=True)
class TLSBroker:
    kafka: LocalKafka
    authority: TestAuthority
    ca_file: Path
    files: Path

    def client(self, name: str, issued: Issued) -> KafkaSettings:
        """SSL client settings presenting `issued` (its certificate and key as PEM files)."""
        certificate = self.files / f"{name}.crt"
        certificate.write_bytes(issued.certificate)
        key = self.files / f"{name}.key"
        key.write_bytes(issued.key)
        key.chmod(0o600)
        return KafkaSettings(
            bootstrap_servers=self.kafka.tls_bootstrap_servers,
            security_protocol="SSL",
            ssl_cafile=str(self.ca_file),
            ssl_certfile=str(certificate),
            ssl_keyfile=str(key),
        )


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSBroker]:
    files = tmp_path_factory.mktemp("kafka-tls-files")
    authority = TestAuthority("preflight test Kafka CA")
    ca_file = files / "ca.crt"
    ca_file.write_bytes(authority.pem)
    server = authority.issue("localhost")
    keystore = files / "broker.pem"
    keystore.write_bytes(server.key + server.certificate)
    keystore.chmod(0o600)
    kafka = LocalKafka(
        tmp_path_factory.mktemp("kafka-tls"),
        repo_root=find_repo_root(Path(__file__).parent),
        tls=BrokerTLS(keystore=keystore, client_ca=ca_file),
    )
    kafka.start()
    try:
        yield TLSBroker(kafka, authority, ca_file, files)
    finally:
        kafka.stop()


def topic_grants(user: str, topic: str, *operations: Operation) -> list[Grant]:
    return [Grant(f"User:{user}", ResourceType.TOPIC, topic, Pattern.LITERAL, op) for op in operations]


def cannot_connect(settings: KafkaSettings) -> None:
    """Fail unless a client with these settings is kept from the cluster (bootstrap times out)."""
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        admin = KafkaAdminClient(bootstrap_timeout_ms=3_000, **settings.kafka_python_options())
        admin.close()


def test_a_certificate_principal_writes_only_what_its_acls_allow(tls_broker: TLSBroker) -> None:
    admin = tls_broker.kafka.admin_settings()
    allowed, forbidden = "mtls.allowed", "mtls.forbidden"
    ensure_topics(admin, [TopicSpec(allowed, partitions=1), TopicSpec(forbidden, partitions=1)])
    ensure_acls(admin, topic_grants(WRITER, allowed, Operation.WRITE, Operation.DESCRIBE))
    # The subject carries more than the CN, as Strimzi's and most CAs' certificates do.
    writer = tls_broker.client(WRITER, tls_broker.authority.issue(WRITER, organisation="preflight"))

    write_records(writer, allowed, [b"over-mtls"])
    with pytest.raises(TopicAuthorizationFailedError):
        write_records(writer, forbidden, [b"forged"])
    assert_read_refused(writer, allowed)
    assert [record.value for record in read_records(admin, allowed, expected=1)] == [b"over-mtls"]

    # Another CN is another principal, with none of the writer's grants.
    stranger = tls_broker.client("stranger", tls_broker.authority.issue("test-mtls-stranger"))
    with pytest.raises(TopicAuthorizationFailedError):
        write_records(stranger, allowed, [b"forged"])


def test_the_asyncio_clients_present_the_certificate(tls_broker: TLSBroker) -> None:
    admin = tls_broker.kafka.admin_settings()
    topic = "mtls.asyncio"
    ensure_topics(admin, [TopicSpec(topic, partitions=1)])
    ensure_acls(admin, topic_grants(WRITER, topic, Operation.WRITE, Operation.DESCRIBE))
    writer = tls_broker.client(WRITER, tls_broker.authority.issue(WRITER))

    async def produce() -> None:
        # The options every asyncio client of the services (the event consumers) is built with.
        producer = AIOKafkaProducer(**writer.aiokafka_options(), request_timeout_ms=30_000)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"from-asyncio", key=b"key")
        finally:
            await producer.stop()

    asyncio.run(asyncio.wait_for(produce(), timeout=90))
    assert [record.value for record in read_records(admin, topic, expected=1)] == [b"from-asyncio"]


def test_the_tls_listener_refuses_clients_without_a_certificate_of_its_ca(tls_broker: TLSBroker) -> None:
    without_certificate = KafkaSettings(
        bootstrap_servers=tls_broker.kafka.tls_bootstrap_servers,
        security_protocol="SSL",
        ssl_cafile=str(tls_broker.ca_file),
    )
    cannot_connect(without_certificate)
    foreign = TestAuthority("another CA").issue(WRITER)
    cannot_connect(tls_broker.client("foreign", foreign))


def test_a_service_consumes_as_its_certificate_principal_with_its_production_grants(
    tls_broker: TLSBroker,
) -> None:
    admin = tls_broker.kafka.admin_settings()
    topics = Topics(submissions="mtls.submissions")
    ensure_topics(
        admin,
        [TopicSpec(name, partitions=1) for name in (topics.submissions, Topics.dlq(topics.submissions))],
    )
    notifier = service_principal("notifier")
    ensure_acls(admin, service_grants("notifier", topics))
    consumer_settings = tls_broker.client(notifier, tls_broker.authority.issue(notifier))
    publisher = EventPublisher(admin, source=SOURCES["intake"], send_timeout=30)
    try:
        sent = publisher.publish(
            topics.submissions,
            SubmissionWithdrawn(submission_id="sub-m", organisation="lab-a", reason="test"),
            subject="sub-m",
        )
    finally:
        publisher.close()
    received: list[str] = []
    arrived = asyncio.Event()

    async def handle(attributes: EventAttributes, payload: Message) -> None:
        received.append(attributes.id)
        arrived.set()

    async def consume() -> None:
        dead_letters = EventPublisher(consumer_settings, source=SOURCES["notifier"], send_timeout=30)
        consumer = EventConsumer(
            consumer_settings,
            group=f"{notifier}-mtls",
            routes=[Route(topics.submissions, EventRegistry([SubmissionWithdrawn]), handle)],
            topics=topics,
            dead_letters=DeadLetters(dead_letters),
        )
        try:
            await consumer.start()
            await arrived.wait()
        finally:
            await consumer.stop()
            dead_letters.close()

    asyncio.run(asyncio.wait_for(consume(), timeout=90))
    assert received == [sent.id]
