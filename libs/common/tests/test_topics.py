"""Topic administration against the real broker: created as configured, and idempotent."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from preflight_common.config import KafkaSettings, Topics
from preflight_common.topics import DAY_MS, TopicSpec, configured_specs, ensure_topics, main


@pytest.fixture
def admin(kafka_bootstrap: str) -> Iterator[Any]:
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
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
    specs = configured_specs(Topics(alerts="custom.alerts"))
    assert len(specs) == 2 * len(fields(Topics))
    assert TopicSpec("custom.alerts", 4, 1, 1000) in specs
    assert TopicSpec("custom.alerts.dlq", 1, 1, 2000) in specs
    assert TopicSpec("preflight.submissions.v1", 4, 1, 1000) in specs


def test_the_command_creates_the_configured_topics_once(
    kafka_bootstrap: str, admin: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
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

    expected = sorted([*names.values(), *(Topics.dlq(name) for name in names.values())])
    assert sorted(line.removeprefix("created ") for line in first.splitlines()[:-1]) == expected
    assert first.splitlines()[-1] == f"{len(expected)} topic(s) created; the rest already existed"
    assert second == "0 topic(s) created; the rest already existed\n"
    counts = partition_counts(admin, expected)
    assert counts[names["alerts"]] == 2
    assert counts[Topics.dlq(names["alerts"])] == 1
