"""Who owns, writes and reads what on the event bus — the one place it is written down.

Everything that enforces the bus's trust boundary is derived from this module:

* the ACLs the provisioning command (`preflight-topics`) applies to the broker and the
  Helm chart renders for Strimzi (`grants`);
* the per-audience alert topics (`alert_topics`): one per registered organisation,
  ``<alerts_prefix>.org.<organisation>``, and one per registered sector,
  ``<alerts_prefix>.sector.<sector>`` — no topic for an audience nobody registered;
* the consumers' source check (`owner_of`): a consumer accepts an event from a topic only
  if its CloudEvents ``source`` is the owning service's (`SOURCES`).

Principals: each service authenticates as ``preflight-<service>`` and each operator
organisation as ``operator-<organisation>``; the broker's administrator (a super user) is
used only by provisioning. A service may write only the topics it owns and the `.dlq` twins
of the topics it reads, read only the topics it consumes, and join only consumer groups
named ``preflight-<service>…``. An operator may read only its organisation's and sectors'
alert topics, with consumer groups named ``operator-<organisation>.…``, and write nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import yaml
from preflight.sdk import naming
from preflight.sdk.naming import check_name, event_source
from preflight.sdk.naming import operator_group_prefix as operator_group_prefix
from preflight.sdk.naming import operator_principal as operator_principal

from preflight_common.config import Topics

SERVICES: Final = ("intake", "benchmark", "clearinghouse", "notifier")

SOURCES: Final[Mapping[str, str]] = {service: event_source(service) for service in SERVICES}
"""The CloudEvents ``source`` of the events each service publishes."""

OWNERS: Final[Mapping[str, str]] = {
    "submissions": "intake",
    "benchmark_jobs": "benchmark",
    "benchmark_results": "benchmark",
    "reviews": "clearinghouse",
    "findings": "clearinghouse",
    "review_alerts": "notifier",
    "audit_checkpoints": "clearinghouse",
}
"""The service that owns (alone writes) each topic of `Topics`, by field name."""

ALERTS_OWNER: Final = "notifier"
"""The per-audience alert topics are the notifier's."""

CONSUMES: Final[Mapping[str, tuple[str, ...]]] = {
    "intake": ("benchmark_jobs", "benchmark_results", "reviews"),
    "benchmark": ("submissions",),
    # The audit checkpoints: `preflight-clearinghouse verify-audit` reads the last one back.
    "clearinghouse": ("submissions", "benchmark_jobs", "benchmark_results", "audit_checkpoints"),
    "notifier": ("submissions", "reviews", "findings"),
}
"""The topics (by `Topics` field name) each service consumes."""


KNOWN_SECTORS: Final[frozenset[str]] = frozenset(
    {
        "chemical",
        "commercial-facilities",
        "communications",
        "critical-manufacturing",
        "dams",
        "defense-industrial-base",
        "emergency-services",
        "energy",
        "finance",
        "food-agriculture",
        "government",
        "healthcare",
        "information-technology",
        "nuclear",
        "transportation",
        "water",
    }
)
"""The critical-infrastructure sectors (CISA's sixteen) a finding's audience may name."""


def service_principal(service: str) -> str:
    """The Kafka principal (SASL user name) of a Preflight service."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    return f"preflight-{service}"


def org_alert_topic(topics: Topics, organisation: str) -> str:
    """The alert topic of one organisation (named by `preflight.sdk.naming`, as operators derive it)."""
    return naming.org_alert_topic(topics.alerts_prefix, organisation)


def sector_alert_topic(topics: Topics, sector: str) -> str:
    """The alert topic of one sector (only TLP that allows sector-wide sharing goes there)."""
    return naming.sector_alert_topic(topics.alerts_prefix, sector)


def owner_of(topics: Topics, topic: str) -> str | None:
    """The service that owns `topic` (a configured topic or an alert topic), or None."""
    for name, owner in OWNERS.items():
        if getattr(topics, name) == topic:
            return owner
    if topic.startswith(f"{topics.alerts_prefix}.") and not topic.endswith(".dlq"):
        return ALERTS_OWNER
    return None


@dataclass(frozen=True)
class Organisation:
    """An operator organisation registered to receive alerts, and the sectors it belongs to."""

    name: str
    sectors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_name(self.name, "organisation")
        for sector in self.sectors:
            check_name(sector, "sector")


@dataclass(frozen=True)
class Participants:
    """The registered operator organisations: the only audiences that have alert topics.

    Loaded from a YAML file (`PREFLIGHT_PARTICIPANTS_FILE`)::

        organisations:
          - name: bank-a
            sectors: [finance]
    """

    organisations: tuple[Organisation, ...] = ()
    _by_name: Mapping[str, Organisation] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Organisation] = {}
        for organisation in self.organisations:
            if organisation.name in by_name:
                raise ValueError(f"organisation {organisation.name!r} is registered twice")
            by_name[organisation.name] = organisation
        object.__setattr__(self, "_by_name", by_name)

    @classmethod
    def parse(cls, data: Any) -> Participants:
        """Participants from parsed YAML; ValueError saying what is wrong."""
        if data is None:
            return cls()
        if not isinstance(data, dict) or set(data) - {"organisations"}:
            raise ValueError("a participants file has one key, 'organisations'")
        entries = data.get("organisations") or []
        if not isinstance(entries, list):
            raise ValueError("'organisations' must be a list")
        organisations = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ValueError("each organisation needs a 'name'")
            sectors = entry.get("sectors") or []
            if not isinstance(sectors, list) or not all(isinstance(s, str) for s in sectors):
                raise ValueError(f"sectors of {entry['name']!r} must be a list of names")
            organisations.append(Organisation(entry["name"], tuple(sectors)))
        return cls(tuple(organisations))

    @classmethod
    def load(cls, path: Path | str) -> Participants:
        """Participants from a YAML file."""
        return cls.parse(yaml.safe_load(Path(path).read_text(encoding="utf-8")))

    def organisation(self, name: str) -> Organisation | None:
        """The registered organisation of that name, or None."""
        return self._by_name.get(name)

    def sectors(self) -> list[str]:
        """Every sector some registered organisation belongs to, sorted."""
        return sorted({sector for o in self.organisations for sector in o.sectors})


def alert_topics(topics: Topics, participants: Participants) -> list[str]:
    """Every per-audience alert topic the registered participants need."""
    names = [org_alert_topic(topics, o.name) for o in participants.organisations]
    names += [sector_alert_topic(topics, s) for s in participants.sectors()]
    return names


class Operation(StrEnum):
    READ = "READ"
    WRITE = "WRITE"
    DESCRIBE = "DESCRIBE"


class ResourceType(StrEnum):
    TOPIC = "TOPIC"
    GROUP = "GROUP"


class Pattern(StrEnum):
    LITERAL = "LITERAL"
    PREFIXED = "PREFIXED"


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW rule: `principal` may do `operation` on the resource (`name`, `pattern`)."""

    principal: str
    resource_type: ResourceType
    name: str
    pattern: Pattern
    operation: Operation


def _topic_grants(
    principal: str, name: str, pattern: Pattern, operations: Iterable[Operation]
) -> list[Grant]:
    return [Grant(principal, ResourceType.TOPIC, name, pattern, op) for op in operations]


def service_grants(service: str, topics: Topics) -> list[Grant]:
    """What one service may do: write what it owns and its consumed topics' DLQs, read what it consumes."""
    principal = f"User:{service_principal(service)}"
    write = (Operation.WRITE, Operation.DESCRIBE)
    read = (Operation.READ, Operation.DESCRIBE)
    grants: list[Grant] = []
    for name, owner in OWNERS.items():
        if owner == service:
            grants += _topic_grants(principal, getattr(topics, name), Pattern.LITERAL, write)
    if service == ALERTS_OWNER:
        grants += _topic_grants(principal, f"{topics.alerts_prefix}.", Pattern.PREFIXED, write)
    for name in CONSUMES[service]:
        grants += _topic_grants(principal, getattr(topics, name), Pattern.LITERAL, read)
        grants += _topic_grants(principal, Topics.dlq(getattr(topics, name)), Pattern.LITERAL, write)
    grants.append(
        Grant(principal, ResourceType.GROUP, service_principal(service), Pattern.PREFIXED, Operation.READ)
    )
    return grants


def operator_grants(organisation: Organisation, topics: Topics) -> list[Grant]:
    """What one operator organisation may do: read its own and its sectors' alert topics, nothing else."""
    principal = f"User:{operator_principal(organisation.name)}"
    read = (Operation.READ, Operation.DESCRIBE)
    grants = _topic_grants(principal, org_alert_topic(topics, organisation.name), Pattern.LITERAL, read)
    for sector in organisation.sectors:
        grants += _topic_grants(principal, sector_alert_topic(topics, sector), Pattern.LITERAL, read)
    grants.append(
        Grant(
            principal,
            ResourceType.GROUP,
            operator_group_prefix(organisation.name),
            Pattern.PREFIXED,
            Operation.READ,
        )
    )
    return grants


def grants(topics: Topics, participants: Participants) -> list[Grant]:
    """Every grant of a deployment: each service's and each registered operator's, sorted."""
    rules = [g for service in SERVICES for g in service_grants(service, topics)]
    rules += [g for organisation in participants.organisations for g in operator_grants(organisation, topics)]
    return sorted(set(rules))
