"""Topic administration: create the configured topics idempotently.

Console script `preflight-topics`: creates every topic of `Topics.from_env()`
and its `.dlq` twin with `PREFLIGHT_TOPIC_PARTITIONS` (default 6),
`PREFLIGHT_TOPIC_REPLICATION` (default 1) and `PREFLIGHT_TOPIC_RETENTION_MS`
(default 30 days; the DLQ keeps records for `PREFLIGHT_DLQ_RETENTION_MS`,
default 90 days). Existing topics are left as they are.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from preflight_common.config import KafkaSettings, Topics, env_int

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create."""

    name: str
    partitions: int = 6
    replication: int = 1
    retention_ms: int = 30 * DAY_MS


def ensure_topics(settings: KafkaSettings, specs: Iterable[TopicSpec], timeout_ms: int = 30_000) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Each created topic has a leader for every partition when this returns.
    """
    admin = KafkaAdminClient(request_timeout_ms=timeout_ms, **settings.kafka_python_options())
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        created: list[str] = []
        for spec in missing:
            options = {
                "num_partitions": spec.partitions,
                "replication_factor": spec.replication,
                "configs": {"retention.ms": str(spec.retention_ms)},
            }
            try:
                # Return only once every partition has a leader: the topic is usable at once.
                admin.create_topics({spec.name: options}, timeout_ms=timeout_ms, wait_for_metadata=True)
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: the desired state holds
        return created
    finally:
        admin.close()


def configured_specs(topics: Topics) -> list[TopicSpec]:
    """Every configured topic and its DLQ twin, sized from the environment."""
    partitions = env_int("PREFLIGHT_TOPIC_PARTITIONS", 6)
    replication = env_int("PREFLIGHT_TOPIC_REPLICATION", 1)
    retention = env_int("PREFLIGHT_TOPIC_RETENTION_MS", 30 * DAY_MS)
    dlq_retention = env_int("PREFLIGHT_DLQ_RETENTION_MS", 90 * DAY_MS)
    specs = []
    for name in topics.all():
        specs.append(TopicSpec(name, partitions, replication, retention))
        specs.append(TopicSpec(Topics.dlq(name), 1, replication, dlq_retention))
    return specs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="preflight-topics",
        description="Create Preflight's Kafka topics and their .dlq twins (idempotent). "
        "Configured by PREFLIGHT_KAFKA_* and PREFLIGHT_TOPIC_* environment variables.",
    )
    parser.parse_args(argv)
    created = ensure_topics(KafkaSettings.from_env(), configured_specs(Topics.from_env()))
    for name in created:
        print(f"created {name}")
    print(f"{len(created)} topic(s) created; the rest already existed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
