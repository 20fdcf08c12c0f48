"""Alertmanager-style routing: a tree of routes matching alert labels to receivers.

Stages an alert goes through after it fired (each one tested alone):

1. **route** — walk the tree depth first; a route whose matchers hold sends the
   alert to its receiver unless a child route matches (a child with
   `continue: true` lets its later siblings match too); settings are inherited.
2. **audience gate** — a receiver stands for someone (`audience:`): the alert
   reaches it only if `may_see` allows it; a lab-contacts receiver reaches the
   contacts of the lab's own review alerts and nothing else. A route can never
   widen an alert's audience.
3. **group** — alerts for one receiver and recipient with equal `group_by`
   label values wait `group_wait` together and go out as one delivery; a group
   delivers again no sooner than `group_interval` after its last delivery.
4. **inhibit** — at flush time, an alert matching an inhibit rule's target
   is dropped while an alert matching its source with equal `equal` labels
   exists (a met review inhibits its overdue alerts).
5. **silence** — at flush time, an alert matching an active silence is dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

from preflight_notifier.domain.alerts import Alert, Labels
from preflight_notifier.domain.audience import Viewer, may_see
from preflight_notifier.domain.delivery import RetryPolicy
from preflight_notifier.domain.matchers import Matcher, match_all
from preflight_notifier.domain.model import DeadlineKind
from preflight_notifier.domain.schedule import DeadlinePolicy

EACH_ALERT = "..."


@dataclass(frozen=True)
class WebhookChannel:
    """POST the JSON digest to `url`, signed with the secret read from the file `secret_file`."""

    url: str
    secret_file: str = ""
    timeout: timedelta = timedelta(seconds=10)

    @property
    def recipient(self) -> str:
        """The URL as logged: without credentials, query or fragment."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class EmailChannel:
    """Send the digest by e-mail to `to`, or to the lab's contacts when the receiver says so."""

    to: tuple[str, ...] = ()


Channel = WebhookChannel | EmailChannel


@dataclass(frozen=True)
class Receiver:
    """A destination and whom it stands for. Exactly one of `viewer` and `lab_contacts`."""

    name: str
    channel: Channel | None
    viewer: Viewer | None = None
    lab_contacts: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.lab_contacts == (self.viewer is not None):
            raise ValueError(f"receiver {self.name}: give exactly one audience (a party or lab_contacts)")
        if self.lab_contacts and not isinstance(self.channel, EmailChannel):
            raise ValueError(f"receiver {self.name}: lab_contacts needs an email channel")

    def recipients(self, alert: Alert) -> tuple[str, ...]:
        """Where this receiver would send `alert`: empty unless the audience gate lets it through."""
        if self.channel is None:
            return ()
        if self.lab_contacts:
            if not alert.kind.is_review:
                return ()
            return tuple(sorted({c.email for c in alert.audience.contacts if c.email}))
        assert self.viewer is not None
        if not may_see(self.viewer, alert.kind, alert.audience, alert.tlp):
            return ()
        if isinstance(self.channel, WebhookChannel):
            return (self.channel.recipient,)
        return self.channel.to


@dataclass(frozen=True)
class Route:
    """A node of the routing tree; unset settings are inherited from the parent."""

    matchers: tuple[Matcher, ...] = ()
    receiver: str | None = None
    group_by: tuple[str, ...] | None = None
    group_wait: timedelta | None = None
    group_interval: timedelta | None = None
    continue_matching: bool = False
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True)
class RouteTarget:
    """Where a route sends an alert, with its grouping."""

    receiver: str
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta


_ROOT_DEFAULTS = RouteTarget("", ("kind", "subject_id"), timedelta(seconds=30), timedelta(minutes=5))


def resolve(route: Route, labels: Labels, parent: RouteTarget = _ROOT_DEFAULTS) -> list[RouteTarget]:
    """The targets of the routes that match `labels` (route stage, module docstring)."""
    if not match_all(route.matchers, labels):
        return []
    here = RouteTarget(
        receiver=route.receiver if route.receiver is not None else parent.receiver,
        group_by=route.group_by if route.group_by is not None else parent.group_by,
        group_wait=route.group_wait if route.group_wait is not None else parent.group_wait,
        group_interval=route.group_interval if route.group_interval is not None else parent.group_interval,
    )
    found: list[RouteTarget] = []
    for child in route.routes:
        matched = resolve(child, labels, here)
        if matched:
            found += matched
            if not child.continue_matching:
                break
    return found or [here]


@dataclass(frozen=True)
class InhibitRule:
    """While a `source` alert exists, `target` alerts with equal `equal` labels are not delivered."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ("subject_id",)

    def __post_init__(self) -> None:
        if "subject_id" not in self.equal:
            raise ValueError("inhibit rules compare alerts of one subject: `equal` must include subject_id")

    def inhibits(self, source: Labels, target: Labels) -> bool:
        return (
            match_all(self.target, target)
            and match_all(self.source, source)
            and all(source.get(name, ()) == target.get(name, ()) for name in self.equal)
        )


@dataclass(frozen=True)
class Notification:
    """An alert bound for one recipient of one receiver, in one group."""

    alert_id: str
    receiver: str
    recipient: str
    group_key: str
    group_labels: Mapping[str, str]
    group_wait: timedelta
    group_interval: timedelta


@dataclass(frozen=True)
class RoutingConfig:
    """Everything the routing file says."""

    policies: Mapping[DeadlineKind, DeadlinePolicy]
    route: Route
    receivers: Mapping[str, Receiver]
    inhibit_rules: tuple[InhibitRule, ...] = ()
    late_after: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        missing = sorted(_receivers_named(self.route) - set(self.receivers))
        if missing:
            raise ValueError(f"routes name unknown receivers: {', '.join(missing)}")
        if _receivers_named(self.route) and self.route.receiver is None:
            raise ValueError("the root route needs a receiver")

    def notifications(self, alert: Alert) -> list[Notification]:
        """Route `alert` and gate it by audience: one notification per (receiver, recipient)."""
        labels = alert.labels()
        out: dict[tuple[str, str], Notification] = {}
        for target in resolve(self.route, labels):
            receiver = self.receivers.get(target.receiver)
            if receiver is None:
                continue
            for recipient in receiver.recipients(alert):
                key, group_labels = group_key(receiver.name, recipient, target.group_by, labels)
                out.setdefault(
                    (receiver.name, recipient),
                    Notification(
                        alert.alert_id,
                        receiver.name,
                        recipient,
                        key,
                        group_labels,
                        target.group_wait,
                        target.group_interval,
                    ),
                )
        return list(out.values())

    def inhibited(self, alert: Alert, sources: Sequence[Alert]) -> bool:
        """Whether an inhibit rule drops `alert` given the other alerts of its subject."""
        labels = alert.labels()
        return any(
            rule.inhibits(source.labels(), labels)
            for rule in self.inhibit_rules
            for source in sources
            if source.alert_id != alert.alert_id
        )


def _receivers_named(route: Route) -> set[str]:
    names = {route.receiver} if route.receiver is not None else set()
    for child in route.routes:
        names |= _receivers_named(child)
    return names


def group_key(
    receiver: str, recipient: str, group_by: Sequence[str], labels: Labels
) -> tuple[str, dict[str, str]]:
    """A stable key for the group an alert joins, and the labels that define it."""
    names = sorted(labels) if tuple(group_by) == (EACH_ALERT,) else sorted(group_by)
    values = {name: ",".join(labels.get(name, ())) for name in names}
    canonical = json.dumps([receiver, recipient, values], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest(), values
