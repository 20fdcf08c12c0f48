"""Provisioning the event bus: topics, principals and ACLs, idempotently.

Console script `preflight-topics`: creates every topic of `Topics.from_env()` and its `.dlq`
twin with `PREFLIGHT_TOPIC_PARTITIONS` (default 6), `PREFLIGHT_TOPIC_REPLICATION` (default 1)
and `PREFLIGHT_TOPIC_RETENTION_MS` (default 30 days; the DLQ keeps records for
`PREFLIGHT_DLQ_RETENTION_MS`, default 90 days), and one alert topic per organisation and
sector registered in `PREFLIGHT_PARTICIPANTS_FILE` (see `preflight_common.bus`). Existing topics
are left as they are. With `--acls` it also applies every grant of `preflight_common.bus`
(ACLs the broker's authorizer enforces); with `--credentials-dir DIR` it creates or updates the
SCRAM-SHA-512 credential of every principal from `DIR/<principal>.password`, generating the
file (mode 0600) when missing. It connects with the `PREFLIGHT_KAFKA_*` settings of an
administrator of the cluster.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourceType,
)
from kafka.admin._users import ScramMechanism, UserScramCredentialUpsertion
from kafka.errors import TopicAlreadyExistsError

from preflight_common import bus
from preflight_common.config import ConfigError, KafkaSettings, Topics, env_int, read_or_create_secret

SCRAM_ITERATIONS = 8192

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


def alert_specs(topics: Topics, participants: bus.Participants) -> list[TopicSpec]:
    """The per-audience alert topics of the registered participants, sized like the others."""
    partitions = env_int("PREFLIGHT_TOPIC_PARTITIONS", 6)
    replication = env_int("PREFLIGHT_TOPIC_REPLICATION", 1)
    retention = env_int("PREFLIGHT_TOPIC_RETENTION_MS", 30 * DAY_MS)
    return [
        TopicSpec(name, partitions, replication, retention) for name in bus.alert_topics(topics, participants)
    ]


def _acl(grant: bus.Grant) -> ACL:
    return ACL(
        principal=grant.principal,
        host="*",
        operation=ACLOperation[grant.operation.value],
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(
            ResourceType[grant.resource_type.value],
            grant.name,
            ACLResourcePatternType[grant.pattern.value],
        ),
    )


def ensure_acls(settings: KafkaSettings, grants: Iterable[bus.Grant], timeout_ms: int = 30_000) -> int:
    """Apply `grants` as ALLOW ACLs (creating an existing one changes nothing); return how many were sent.

    Raises RuntimeError naming the grants the broker refused.
    """
    acls = [_acl(grant) for grant in grants]
    if not acls:
        return 0
    admin = KafkaAdminClient(request_timeout_ms=timeout_ms, **settings.kafka_python_options())
    try:
        result = admin.create_acls(acls)
    finally:
        admin.close()
    failed = result.get("failed") or []
    if failed:
        raise RuntimeError(f"the broker refused {len(failed)} ACL(s): {failed[:3]}")
    return len(acls)


def ensure_principals(
    settings: KafkaSettings, credentials: Mapping[str, str], timeout_ms: int = 30_000
) -> None:
    """Create or update each user's SCRAM-SHA-512 credential (`credentials`: user -> password), in
    one request; the passwords never leave this call. Raises RuntimeError naming a refused user."""
    if not credentials:
        return
    admin = KafkaAdminClient(request_timeout_ms=timeout_ms, **settings.kafka_python_options())
    try:
        result = admin.alter_user_scram_credentials(
            [
                UserScramCredentialUpsertion(
                    user, ScramMechanism.SCRAM_SHA_512, password, iterations=SCRAM_ITERATIONS
                )
                for user, password in credentials.items()
            ]
        )
    finally:
        admin.close()
    refused = {user: error for user, error in result.items() if error is not None}
    if refused:
        raise RuntimeError(f"the broker refused the credentials of {sorted(refused)}: {refused}")


def principals(participants: bus.Participants) -> list[str]:
    """Every principal of a deployment: the services' and the registered operators'."""
    names = [bus.service_principal(service) for service in bus.SERVICES]
    return names + [bus.operator_principal(o.name) for o in participants.organisations]


def load_participants() -> bus.Participants:
    """The participants registered in `PREFLIGHT_PARTICIPANTS_FILE` (none when unset)."""
    path = os.environ.get("PREFLIGHT_PARTICIPANTS_FILE", "")
    if not path:
        return bus.Participants()
    try:
        return bus.Participants.load(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"PREFLIGHT_PARTICIPANTS_FILE: {exc}") from None


def provision(
    settings: KafkaSettings,
    topics: Topics,
    participants: bus.Participants,
    *,
    acls: bool = False,
    credentials_dir: Path | None = None,
) -> list[str]:
    """Create the topics (fixed, DLQ and per-audience), and optionally ACLs and credentials.

    Idempotent; returns the names of the topics created now.
    """
    if credentials_dir is not None:
        ensure_principals(
            settings,
            {
                principal: read_or_create_secret(credentials_dir / f"{principal}.password")
                for principal in principals(participants)
            },
        )
    created = ensure_topics(settings, [*configured_specs(topics), *alert_specs(topics, participants)])
    if acls:
        ensure_acls(settings, bus.grants(topics, participants))
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="preflight-topics",
        description="Create Preflight's Kafka topics, their .dlq twins and the registered participants' "
        "alert topics; optionally principals and ACLs (idempotent). Configured by PREFLIGHT_KAFKA_*, "
        "PREFLIGHT_TOPIC_* and PREFLIGHT_PARTICIPANTS_FILE environment variables.",
    )
    parser.add_argument("--acls", action="store_true", help="apply the ACLs of every principal")
    parser.add_argument(
        "--credentials-dir",
        type=Path,
        help="create or update each principal's SCRAM-SHA-512 credential from DIR/<principal>.password",
    )
    args = parser.parse_args(argv)
    created = provision(
        KafkaSettings.from_env(),
        Topics.from_env(),
        load_participants(),
        acls=args.acls,
        credentials_dir=args.credentials_dir,
    )
    for name in created:
        print(f"created {name}")
    print(f"{len(created)} topic(s) created; the rest already existed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
