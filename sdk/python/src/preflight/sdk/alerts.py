"""Finding alerts for an operator organisation, straight from the event bus (Kafka).

    subscription = AlertSubscription(
        bootstrap_servers="kafka.preflight.example:9093",
        organisation="bank-a",
        sectors=("finance",),
        password_file="/etc/preflight/operator-bank-a.password",
        ca_file="/etc/preflight/kafka-ca.pem",
    )
    for received in subscribe_alerts(subscription):
        print(received.alert.title)

The notifier writes each finding alert once to the topic of every registered organisation it
is addressed to and, when its TLP allows sector-wide sharing, once to the topic of every
registered sector in its audience (`preflight.sdk.naming`). The subscription connects as the
organisation's principal (``operator-<organisation>``, SASL SCRAM-SHA-512 by default, the
password read from a file), reads its organisation's topic and its sectors' topics in the
consumer group ``operator-<organisation>.<name>``, and yields each alert once: an alert that
reaches the organisation by name and by sector, or is delivered again, carries the same
alert id and is yielded only the first time within the subscription. The offset of a record
is committed only after the loop body that received it has finished (at-least-once: a crash
replays the alert rather than losing it; a consumer that must never act twice across
restarts keeps the alert ids it handled).

Needs the `kafka` extra (``pip install 'preflight-sdk[kafka]'``, which brings aiokafka: it
reports a topic or group the broker refuses, where kafka-python's consumer silently reads
nothing). `preflight.sdk.aio.subscribe_alerts` is the asyncio twin.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from preflight.notifier.v1 import events_pb2
from preflight.sdk.errors import PermissionDenied, PreflightError, Unauthenticated, Unavailable
from preflight.sdk.naming import (
    DEFAULT_ALERTS_PREFIX,
    check_name,
    event_source,
    operator_group_prefix,
    operator_principal,
    org_alert_topic,
    sector_alert_topic,
)

ALERT_TYPE = events_pb2.Alert.DESCRIPTOR.full_name
"""The CloudEvents type (``ce_type``) of an alert record."""

ALERT_SOURCE = event_source("notifier")
"""The CloudEvents source (``ce_source``) of an alert record: only the notifier publishes alerts."""

SEEN_ALERTS = 100_000
"""How many alert ids a subscription remembers to drop repeats (the oldest are forgotten first)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertSubscription:
    """Who subscribes, and how it reaches the event bus.

    `organisation` and `sectors` are the operator's (as registered with Preflight); `name`
    distinguishes several consumer groups of one organisation (``operator-<organisation>.<name>``:
    processes sharing a name share the work, another name gets its own copy of every alert).
    `username` defaults to the organisation's principal. The password is read from
    `password_file` when connecting, never passed as a value. `from_beginning`: a new consumer
    group starts at the oldest alert kept rather than at the next one.
    """

    bootstrap_servers: str
    organisation: str
    password_file: str | Path
    sectors: tuple[str, ...] = ()
    name: str = "alerts"
    username: str = ""
    security_protocol: str = "SASL_SSL"
    sasl_mechanism: str = "SCRAM-SHA-512"
    ca_file: str | Path | None = None
    alerts_prefix: str = DEFAULT_ALERTS_PREFIX
    from_beginning: bool = False

    def __post_init__(self) -> None:
        check_name(self.organisation, "organisation")
        for sector in self.sectors:
            check_name(sector, "sector")
        if not self.name:
            raise ValueError("name must not be empty")

    def topics(self) -> list[str]:
        """The organisation's alert topic and its sectors' (sorted, without repeats)."""
        names = {org_alert_topic(self.alerts_prefix, self.organisation)}
        names |= {sector_alert_topic(self.alerts_prefix, sector) for sector in self.sectors}
        return sorted(names)

    def group_id(self) -> str:
        return f"{operator_group_prefix(self.organisation)}{self.name}"

    def principal(self) -> str:
        return self.username or operator_principal(self.organisation)

    def servers(self) -> list[str]:
        return [server.strip() for server in self.bootstrap_servers.split(",") if server.strip()]

    def password(self) -> str:
        """The SASL password, read from its file (ValueError naming the file, never the password)."""
        try:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read the password file {self.password_file}: {exc.strerror}") from None

    def auto_offset_reset(self) -> str:
        return "earliest" if self.from_beginning else "latest"


@dataclass(frozen=True)
class ReceivedAlert:
    """One alert as received: the `Alert` (its audience names the recipient only), where it came
    from (the organisation's or a sector's topic) and its CloudEvents id."""

    alert: events_pb2.Alert
    topic: str
    event_id: str


def decode(
    topic: str, headers: Sequence[tuple[str, bytes | None]] | None, value: bytes | None
) -> ReceivedAlert | None:
    """The alert in one record, or None (logged) when the record is not a decodable alert published
    by the notifier."""
    fields = {key: item.decode("utf-8", "replace") for key, item in headers or () if item is not None}
    if fields.get("ce_type") != ALERT_TYPE or value is None:
        log.warning("skipping a record on %s that is not a %s", topic, ALERT_TYPE)
        return None
    if fields.get("ce_source") != ALERT_SOURCE:
        log.warning("skipping a record on %s that does not come from %s", topic, ALERT_SOURCE)
        return None
    if fields.get("content-type", "application/protobuf") != "application/protobuf":
        log.warning("skipping a record on %s with content type %s", topic, fields["content-type"])
        return None
    alert = events_pb2.Alert()
    try:
        alert.ParseFromString(value)
    except DecodeError:
        log.warning("skipping a record on %s that does not decode as %s", topic, ALERT_TYPE)
        return None
    return ReceivedAlert(alert, topic, fields.get("ce_id", ""))


class SeenAlerts:
    """The alert ids already yielded (bounded: the oldest are forgotten first)."""

    def __init__(self, capacity: int = SEEN_ALERTS) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def first_time(self, alert_id: str) -> bool:
        """True the first time an alert id is offered, False for a repeat."""
        if alert_id in self._ids:
            self._ids.move_to_end(alert_id)
            return False
        self._ids[alert_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


def _denied(exc: Exception) -> PreflightError:
    """The typed error for a refused subscription: the broker did not authorize a topic or the group."""
    return PermissionDenied(
        grpc.StatusCode.PERMISSION_DENIED,
        f"the event bus refused this subscription ({type(exc).__name__}): check the organisation, "
        "sectors and consumer group name registered for your principal",
    )


def _unauthenticated(exc: Exception) -> PreflightError:
    """The typed error for a failed SASL login."""
    return Unauthenticated(
        grpc.StatusCode.UNAUTHENTICATED,
        f"the event bus did not accept the credentials ({type(exc).__name__}): check the user and "
        "password file",
    )


async def stream_alerts(
    subscription: AlertSubscription, *, poll_timeout: float = 1.0
) -> AsyncGenerator[ReceivedAlert, None]:
    """The alerts of `subscribe_alerts`, as an asyncio generator (aiokafka; also
    `preflight.sdk.aio.subscribe_alerts`)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka import errors as kafka_errors
    from aiokafka.helpers import create_ssl_context

    options: dict[str, Any] = {}
    if subscription.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = subscription.sasl_mechanism
        options["sasl_plain_username"] = subscription.principal()
        options["sasl_plain_password"] = subscription.password()
    if subscription.security_protocol.endswith("SSL"):
        options["ssl_context"] = create_ssl_context(cafile=subscription.ca_file)
    consumer = AIOKafkaConsumer(
        *subscription.topics(),
        bootstrap_servers=subscription.servers(),
        security_protocol=subscription.security_protocol,
        group_id=subscription.group_id(),
        enable_auto_commit=False,
        auto_offset_reset=subscription.auto_offset_reset(),
        **options,
    )
    seen = SeenAlerts()
    try:
        await consumer.start()
        while True:
            batches = await consumer.getmany(timeout_ms=int(poll_timeout * 1000))
            for partition, records in batches.items():
                for record in records:
                    received = decode(record.topic, record.headers, record.value)
                    if received is not None and seen.first_time(received.alert.alert_id):
                        yield received
                    await consumer.commit({partition: record.offset + 1})
    except (
        kafka_errors.TopicAuthorizationFailedError,
        kafka_errors.GroupAuthorizationFailedError,
        kafka_errors.ClusterAuthorizationFailedError,
    ) as exc:
        raise _denied(exc) from exc
    except (kafka_errors.SaslAuthenticationFailed, kafka_errors.AuthenticationFailedError) as exc:
        raise _unauthenticated(exc) from exc
    except kafka_errors.KafkaConnectionError as exc:
        raise Unavailable(
            grpc.StatusCode.UNAVAILABLE,
            "the event bus could not be reached: check the bootstrap servers and the security protocol",
        ) from exc
    finally:
        await consumer.stop()


def subscribe_alerts(
    subscription: AlertSubscription, *, poll_timeout: float = 1.0
) -> Generator[ReceivedAlert, None, None]:
    """Each alert for the subscribing organisation, once, as it arrives (runs until closed).

    The offset of a record is committed when the loop asks for the next alert, after the body
    that handled it (not when the loop breaks out: that alert comes again to the group's next
    subscription). Raises `PermissionDenied` when the broker refuses one of the topics or the
    consumer group, `Unauthenticated` when it refuses the login, `Unavailable` when no broker
    can be reached. It runs its own event loop:
    inside asyncio, use `preflight.sdk.aio.subscribe_alerts`.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no event loop running here: this generator may run its own
    else:
        raise RuntimeError("subscribe_alerts blocks: inside asyncio, use preflight.sdk.aio.subscribe_alerts")
    loop = asyncio.new_event_loop()
    alerts = stream_alerts(subscription, poll_timeout=poll_timeout)
    try:
        while True:
            yield loop.run_until_complete(anext(alerts))
    finally:
        loop.run_until_complete(alerts.aclose())
        loop.close()
