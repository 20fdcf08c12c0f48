"""The names Preflight and operators agree on: organisations, sectors, alert topics, principals.

An organisation or sector name appears in tokens, certificates, sharing audiences, routing
files and Kafka topic names (``preflight.alerts.v1.org.<organisation>``), so it is held to
the strictest of those: 1 to 63 characters of lowercase ASCII letters, digits and ``-``,
starting and ending with a letter or digit (a DNS label). Nothing is normalised: a name
that does not match is refused, never rewritten.

Finding alerts go to one Kafka topic per audience: ``<alerts prefix>.org.<organisation>``
for each registered organisation and ``<alerts prefix>.sector.<sector>`` for each sector a
registered organisation belongs to. An operator organisation authenticates to the event bus
as ``operator-<organisation>`` and names its consumer groups ``operator-<organisation>.…``.
The services (`preflight_common.bus`) and the SDK's subscriber both derive these names here.
"""

from __future__ import annotations

import re
from typing import Final

NAME_MAX_LENGTH: Final = 63
NAME_PATTERN: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
NAME_RULE: Final = "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"

DEFAULT_ALERTS_PREFIX: Final = "preflight.alerts.v1"
"""The prefix of the per-audience alert topics unless a deployment configures another."""

KAFKA_TOPIC_MAX: Final = 249
_KAFKA_TOPIC: Final = re.compile(r"^[a-zA-Z0-9._-]+$")


def is_valid_name(name: str) -> bool:
    """True if `name` is a legal organisation or sector name."""
    return bool(NAME_PATTERN.fullmatch(name))


def check_name(name: str, what: str) -> str:
    """Return `name` if legal; raise ValueError saying which `what` (e.g. "organisation") is not."""
    if not is_valid_name(name):
        raise ValueError(f"{what} {NAME_RULE}")
    return name


def check_topic_name(name: str) -> str:
    """Return `name` if Kafka accepts it as a topic name (legal characters, length); else ValueError."""
    if not _KAFKA_TOPIC.fullmatch(name) or len(name) > KAFKA_TOPIC_MAX or name in (".", ".."):
        raise ValueError(f"{name!r} is not a legal Kafka topic name")
    return name


def org_alert_topic(alerts_prefix: str, organisation: str) -> str:
    """The alert topic of one organisation."""
    return check_topic_name(f"{alerts_prefix}.org.{check_name(organisation, 'organisation')}")


def sector_alert_topic(alerts_prefix: str, sector: str) -> str:
    """The alert topic of one sector (only TLP that allows sector-wide sharing goes there)."""
    return check_topic_name(f"{alerts_prefix}.sector.{check_name(sector, 'sector')}")


def operator_principal(organisation: str) -> str:
    """The Kafka principal (SASL user name) of an operator organisation."""
    return f"operator-{check_name(organisation, 'organisation')}"


def operator_group_prefix(organisation: str) -> str:
    """Every consumer group of an operator starts with this."""
    return f"{operator_principal(organisation)}."


def event_source(service: str) -> str:
    """The CloudEvents ``source`` of the events a Preflight service publishes (e.g. ``notifier``)."""
    return f"preflight.{service}"
