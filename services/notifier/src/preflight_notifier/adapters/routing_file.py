"""Reading the routing file (YAML) into a `RoutingConfig`; errors name the offending entry.

See `routing/routing.yaml` (the default, shipped in the package) for the
format: `deadlines` (thresholds per kind, the overdue repeat interval,
`late_after`), `route` (the tree), `receivers` and `inhibit_rules`. Secrets
are never in the file: a webhook names the file holding its signing secret
(`secret_file`; `secret_env` is refused, a secret is never an environment variable).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from preflight.sdk.naming import check_name
from preflight_common.config import ConfigError

from preflight_notifier.domain.audience import Viewer, ViewerRole
from preflight_notifier.domain.delivery import RetryPolicy
from preflight_notifier.domain.durations import parse_duration
from preflight_notifier.domain.matchers import Matcher
from preflight_notifier.domain.model import DeadlineKind, Severity
from preflight_notifier.domain.routing import (
    Channel,
    EmailChannel,
    InhibitRule,
    Receiver,
    Route,
    RoutingConfig,
    WebhookChannel,
)
from preflight_notifier.domain.schedule import DeadlinePolicy, OverdueRepeat, Threshold

T = TypeVar("T")
LAB_CONTACTS = "lab_contacts"


def default_routing_path() -> Path:
    return Path(str(resources.files("preflight_notifier").joinpath("routing/routing.yaml")))


def load_routing(path: Path) -> RoutingConfig:
    """Parse the routing file at `path`; raises ConfigError naming the file and the entry at fault."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"routing file {path}: {exc}") from None
    try:
        return parse_routing(data)
    except ConfigError as exc:
        raise ConfigError(f"routing file {path}: {exc}") from None


def parse_routing(data: Any) -> RoutingConfig:
    """Build the routing configuration from the file's parsed YAML."""
    root = _mapping(data, "(top level)")
    deadlines = _mapping(root.get("deadlines", {}), "deadlines")
    policies = {
        kind: _at(f"deadlines.{kind.value}", _policy, deadlines[kind.value])
        for kind in DeadlineKind
        if kind.value in deadlines
    }
    receivers = {}
    for index, entry in enumerate(_list(root.get("receivers", []), "receivers")):
        receiver = _at(f"receivers[{index}]", _receiver, entry)
        if receiver.name in receivers:
            raise ConfigError(f"receivers[{index}].name: {receiver.name!r} is defined twice")
        receivers[receiver.name] = receiver
    route = _at("route", _route, root.get("route", {}))
    inhibit_rules = tuple(
        _at(f"inhibit_rules[{i}]", _inhibit_rule, rule)
        for i, rule in enumerate(_list(root.get("inhibit_rules", []), "inhibit_rules"))
    )
    late_after = _duration(deadlines.get("late_after", "1m"), "deadlines.late_after")
    try:
        return RoutingConfig(policies, route, receivers, inhibit_rules, late_after)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _at(where: str, build: Callable[[Any], T], value: Any) -> T:
    try:
        return build(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except KeyError as exc:
        raise ConfigError(f"{where}: {exc.args[0]} is required") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list")
    return value


def _duration(value: Any, where: str) -> timedelta:
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _policy(value: Any) -> DeadlinePolicy:
    entry = _mapping(value, "policy")
    thresholds = tuple(
        Threshold(_duration(t["before"], "before"), Severity(t.get("severity", "info")))
        for t in _list(entry.get("thresholds", []), "thresholds")
    )
    overdue = None
    if "repeat_interval" in entry:
        overdue = OverdueRepeat(
            _duration(entry["repeat_interval"], "repeat_interval"),
            Severity(entry.get("overdue_severity", "critical")),
        )
    return DeadlinePolicy(thresholds, overdue)


def _matchers(value: Any) -> tuple[Matcher, ...]:
    return tuple(Matcher.parse(str(m)) for m in _list(value, "matchers"))


def _route(value: Any) -> Route:
    entry = _mapping(value, "route")
    group_by = entry.get("group_by")
    return Route(
        matchers=_matchers(entry.get("matchers", [])),
        receiver=entry.get("receiver"),
        group_by=tuple(str(g) for g in _list(group_by, "group_by")) if group_by is not None else None,
        group_wait=_duration(entry["group_wait"], "group_wait") if "group_wait" in entry else None,
        group_interval=_duration(entry["group_interval"], "group_interval")
        if "group_interval" in entry
        else None,
        continue_matching=bool(entry.get("continue", False)),
        routes=tuple(
            _at(f"routes[{i}]", _route, r) for i, r in enumerate(_list(entry.get("routes", []), "routes"))
        ),
    )


def _viewer(value: Any) -> Viewer:
    entry = _mapping(value, "audience")
    role = ViewerRole(entry["role"])
    if role is ViewerRole.OTHER:
        raise ValueError("role must be reviewer, lab or operator")
    if role is not ViewerRole.REVIEWER and not entry.get("organisation"):
        raise ValueError("a lab or operator audience needs its organisation")
    organisation = str(entry.get("organisation", ""))
    if organisation:
        check_name(organisation, "organisation")
    sectors = frozenset(check_name(str(s), "sector") for s in _list(entry.get("sectors", []), "sectors"))
    return Viewer(role, organisation, sectors)


def _channel(entry: Mapping[str, Any]) -> Channel | None:
    if "webhook" in entry and "email" in entry:
        raise ValueError("a receiver has one channel: webhook or email")
    if "webhook" in entry:
        hook = _mapping(entry["webhook"], "webhook")
        if not str(hook.get("url", "")).startswith(("https://", "http://")):
            raise ValueError("webhook.url must be an http(s) URL")
        if "secret_env" in hook:
            raise ValueError(
                "webhook.secret_env is not accepted: a secret is never an environment variable; "
                "name the file holding it in webhook.secret_file"
            )
        if not hook.get("secret_file"):
            raise ValueError("webhook needs secret_file (the secret itself never goes in this file)")
        return WebhookChannel(
            url=str(hook["url"]),
            secret_file=str(hook["secret_file"]),
            timeout=_duration(hook.get("timeout", "10s"), "webhook.timeout"),
        )
    if "email" in entry:
        mail = _mapping(entry["email"] or {}, "email")
        return EmailChannel(to=tuple(str(a) for a in mail.get("to", [])))
    return None


def _receiver(value: Any) -> Receiver:
    entry = _mapping(value, "receiver")
    retry = _mapping(entry.get("retry", {}), "retry")
    defaults = RetryPolicy()
    audience = entry.get("audience")
    if audience is None:
        raise ValueError("audience is required (whom the receiver stands for)")
    return Receiver(
        name=str(entry["name"]),
        channel=_channel(entry),
        viewer=None if audience == LAB_CONTACTS else _viewer(audience),
        lab_contacts=audience == LAB_CONTACTS,
        retry=RetryPolicy(
            initial=_duration(retry.get("initial", "10s"), "retry.initial"),
            maximum=_duration(retry.get("maximum", "10m"), "retry.maximum"),
            max_attempts=int(retry.get("max_attempts", defaults.max_attempts)),
        ),
    )


def _inhibit_rule(value: Any) -> InhibitRule:
    entry = _mapping(value, "inhibit rule")
    return InhibitRule(
        source=_matchers(entry.get("source_matchers", [])),
        target=_matchers(entry.get("target_matchers", [])),
        equal=tuple(str(e) for e in entry.get("equal", ["subject_id"])),
    )
