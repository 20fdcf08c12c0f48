"""Provisioning against the real broker: topics created as configured and idempotently, and
principals whose ACLs let each do its part of the bus and nothing else."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka import errors as aiokafka_errors
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import KafkaError, TopicAuthorizationFailedError
from preflight.benchmark.v1.events_pb2 import BenchmarkCompleted
from preflight_common import bus
from preflight_common.config import ConfigError, KafkaSettings, Topics
from preflight_common.producer import EventPublisher, PublishError
from preflight_common.topics import (
    DAY_MS,
    TopicSpec,
    configured_specs,
    ensure_topics,
    load_participants,
    main,
    provision,
)
from preflight_testkit.clients import assert_read_refused, read_records, write_records


@pytest.fixture
def admin(kafka_settings: KafkaSettings) -> Iterator[Any]:
    client = KafkaAdminClient(**kafka_settings.kafka_python_options())
    try:
        yield client
    finally:
        client.close()


def partition_counts(admin: Any, names: list[str]) -> dict[str, int]:
    return {topic["name"]: len(topic["partitions"]) for topic in admin.describe_topics(names)}


def retention_ms(admin: Any, name: str) -> int:
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name, ["retention.ms"])])
    return int(configs["topic"][name]["retention.ms"]["value"])


def fresh(name: str) -> str:
    return f"{name}.{uuid.uuid4().hex[:12]}"


def test_creating_the_topics_twice_is_harmless(kafka_settings: KafkaSettings, admin: Any) -> None:
    specs = [TopicSpec(fresh("jobs"), partitions=6), TopicSpec(fresh("jobs.dlq"), 1, 1, 3 * DAY_MS)]
    names = [spec.name for spec in specs]

    assert ensure_topics(kafka_settings, specs) == names
    assert ensure_topics(kafka_settings, specs) == []

    assert partition_counts(admin, names) == {names[0]: 6, names[1]: 1}
    assert retention_ms(admin, names[0]) == 30 * DAY_MS
    assert retention_ms(admin, names[1]) == 3 * DAY_MS


def test_an_existing_topic_is_left_as_it_is(kafka_settings: KafkaSettings, admin: Any) -> None:
    name = fresh("existing")
    ensure_topics(kafka_settings, [TopicSpec(name, partitions=2)])
    assert ensure_topics(kafka_settings, [TopicSpec(name, partitions=6)]) == []
    assert partition_counts(admin, [name]) == {name: 2}


def test_concurrent_creation_of_the_same_topics_succeeds_once(kafka_settings: KafkaSettings) -> None:
    specs = [TopicSpec(fresh("race"), partitions=3) for _ in range(3)]
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            results.append(ensure_topics(kafka_settings, specs))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    created = [name for result in results for name in result]
    assert sorted(created) == sorted(spec.name for spec in specs)


def test_configured_specs_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLIGHT_TOPIC_PARTITIONS", "4")
    monkeypatch.setenv("PREFLIGHT_TOPIC_RETENTION_MS", "1000")
    monkeypatch.setenv("PREFLIGHT_DLQ_RETENTION_MS", "2000")
    specs = configured_specs(Topics(review_alerts="custom.alerts", alerts_prefix="custom.prefix"))
    assert len(specs) == 2 * len(Topics().all())
    assert TopicSpec("custom.alerts", 4, 1, 1000) in specs
    assert TopicSpec("custom.alerts.dlq", 1, 1, 2000) in specs
    # The prefix names no topic: the per-audience alert topics come from the participants.
    assert not [spec for spec in specs if spec.name.startswith("custom.prefix")]
    assert TopicSpec("preflight.submissions.v1", 4, 1, 1000) in specs


def test_the_command_creates_the_configured_topics_once(
    kafka_settings: KafkaSettings,
    admin: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for variable, value in kafka_settings.env().items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("PREFLIGHT_TOPIC_PARTITIONS", "2")
    prefix = fresh("cli")
    names = {}
    for field in (f.name for f in fields(Topics)):
        names[field] = f"{prefix}.{field}"
        monkeypatch.setenv(f"PREFLIGHT_TOPIC_{field.upper()}", names[field])

    assert main([]) == 0
    first = capsys.readouterr().out
    assert main([]) == 0
    second = capsys.readouterr().out

    fixed = [name for field, name in names.items() if field != "alerts_prefix"]
    expected = sorted([*fixed, *(Topics.dlq(name) for name in fixed)])
    assert sorted(line.removeprefix("created ") for line in first.splitlines()[:-1]) == expected
    assert first.splitlines()[-1] == f"{len(expected)} topic(s) created; the rest already existed"
    assert second == "0 topic(s) created; the rest already existed\n"
    counts = partition_counts(admin, expected)
    assert counts[names["review_alerts"]] == 2
    assert counts[Topics.dlq(names["review_alerts"])] == 1


def fresh_topics() -> Topics:
    prefix = fresh("bus")
    return Topics(**{field.name: f"{prefix}.{field.name}" for field in fields(Topics)})


def principal_settings(admin_settings: KafkaSettings, credentials: Path, principal: str) -> KafkaSettings:
    """How `principal` connects with the password provisioning left in `credentials`."""
    return replace(
        admin_settings,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=principal,
        sasl_password_file=str(credentials / f"{principal}.password"),
    )


def test_provisioning_lets_each_principal_do_its_part_and_nothing_more(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    topics = fresh_topics()
    participants = bus.Participants(
        (bus.Organisation("bank-a", ("finance",)), bus.Organisation("grid-b", ("energy",)))
    )
    credentials = tmp_path / "credentials"

    created = provision(kafka_settings, topics, participants, acls=True, credentials_dir=credentials)

    alert_a, alert_b = (bus.org_alert_topic(topics, org) for org in ("bank-a", "grid-b"))
    finance, energy = (bus.sector_alert_topic(topics, sector) for sector in ("finance", "energy"))
    fixed = topics.all()
    assert sorted(created) == sorted([*fixed, *map(Topics.dlq, fixed), alert_a, alert_b, finance, energy])
    for principal in ("preflight-intake", "preflight-benchmark", "operator-bank-a", "operator-grid-b"):
        assert (credentials / f"{principal}.password").stat().st_mode & 0o777 == 0o600

    def as_principal(principal: str) -> KafkaSettings:
        return principal_settings(kafka_settings, credentials, principal)

    # A service writes the topics it owns and no other: intake cannot forge a benchmark result,
    # not even a well-formed BenchmarkCompleted sent through the services' own publisher.
    intake = as_principal("preflight-intake")
    write_records(intake, topics.submissions, [b"submission"])
    with pytest.raises(TopicAuthorizationFailedError):
        write_records(intake, topics.benchmark_results, [b"forged result"])
    publisher = EventPublisher(intake, source=bus.SOURCES["intake"], send_timeout=10)
    try:
        forged = BenchmarkCompleted(job_id="sub-1/cyber.knowledge/1.0.0", submission_id="sub-1", attempt=1)
        with pytest.raises(PublishError) as refused:
            publisher.publish(topics.benchmark_results, forged, subject="sub-1")
        assert isinstance(refused.value.__cause__, aiokafka_errors.TopicAuthorizationFailedError)
    finally:
        publisher.close()
    benchmark = as_principal("preflight-benchmark")
    assert [r.value for r in read_records(benchmark, topics.submissions, expected=1)] == [b"submission"]
    write_records(benchmark, topics.benchmark_results, [b"result"])
    assert_read_refused(benchmark, topics.reviews)

    # The notifier writes every alert topic; an operator reads its own organisation's and
    # sectors' alerts only, and writes nothing.
    notifier = as_principal("preflight-notifier")
    for topic in (alert_a, alert_b, finance, energy, topics.review_alerts):
        write_records(notifier, topic, [f"alert on {topic}".encode()])
    operator = as_principal("operator-bank-a")
    for topic in (alert_a, finance):
        assert [r.value for r in read_records(operator, topic, expected=1)] == [f"alert on {topic}".encode()]
    for topic in (alert_b, energy, topics.findings, topics.review_alerts, topics.submissions):
        assert_read_refused(operator, topic)
    for topic in (alert_a, finance, topics.submissions):
        # Allowed to write nowhere, it is refused even the idempotent producer's id (a cluster
        # authorization error) before any topic is checked.
        with pytest.raises(KafkaError, match="AuthorizationFailed"):
            write_records(operator, topic, [b"forged"])

    # Provisioning again changes nothing: no topic is created, no password rotated.
    passwords = {path.name: path.read_text() for path in credentials.iterdir()}
    assert provision(kafka_settings, topics, participants, acls=True, credentials_dir=credentials) == []
    assert {path.name: path.read_text() for path in credentials.iterdir()} == passwords
    write_records(intake, topics.submissions, [b"second submission"])


def test_the_command_provisions_the_registered_participants(
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = fresh_topics()
    for variable, value in kafka_settings.env().items():
        monkeypatch.setenv(variable, value)
    for field in fields(Topics):
        monkeypatch.setenv(f"PREFLIGHT_TOPIC_{field.name.upper()}", getattr(topics, field.name))
    participants = tmp_path / "participants.yaml"
    participants.write_text("organisations:\n  - name: bank-c\n    sectors: [finance]\n", encoding="utf-8")
    monkeypatch.setenv("PREFLIGHT_PARTICIPANTS_FILE", str(participants))
    credentials = tmp_path / "credentials"

    assert main(["--acls", "--credentials-dir", str(credentials)]) == 0

    alert = bus.org_alert_topic(topics, "bank-c")
    assert f"created {alert}" in capsys.readouterr().out.splitlines()
    write_records(principal_settings(kafka_settings, credentials, "preflight-notifier"), alert, [b"alert"])
    operator = principal_settings(kafka_settings, credentials, "operator-bank-c")
    assert [r.value for r in read_records(operator, alert, expected=1)] == [b"alert"]


def test_an_unreadable_participants_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFLIGHT_PARTICIPANTS_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="PREFLIGHT_PARTICIPANTS_FILE"):
        load_participants()
