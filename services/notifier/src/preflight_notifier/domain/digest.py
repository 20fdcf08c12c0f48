"""What a delivery says: the webhook JSON body and the e-mail text for a group of alerts.

Both carry the alerts' own fields only. Neither names the alert's other
recipients (the audience), and both show each alert's TLP marking.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from preflight_notifier.domain.alerts import Alert
from preflight_notifier.domain.model import Tlp

WEBHOOK_VERSION = "1"
_TLP_ORDER = (Tlp.CLEAR, Tlp.GREEN, Tlp.AMBER, Tlp.AMBER_STRICT, Tlp.RED, Tlp.UNSPECIFIED)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def alert_json(alert: Alert) -> dict[str, Any]:
    """One alert as the webhook body lists it."""
    return {
        "alert_id": alert.alert_id,
        "kind": alert.kind.value,
        "subject_id": alert.subject_id,
        "threshold": alert.threshold,
        "stage": alert.stage.value,
        "severity": alert.severity.value,
        "title": alert.title,
        "summary": alert.summary,
        "tlp": alert.tlp.marking,
        "deadline": _time(alert.deadline_at),
        "due_at": _time(alert.due_at),
        "fired_at": _time(alert.fired_at),
        "late": alert.late,
        "deadline_version": alert.deadline_version,
    }


def webhook_body(
    delivery_id: str, receiver: str, group_labels: Mapping[str, str], alerts: Sequence[Alert]
) -> str:
    """The JSON document POSTed to a webhook (compact, keys sorted: the signed bytes are stable)."""
    document = {
        "version": WEBHOOK_VERSION,
        "delivery_id": delivery_id,
        "receiver": receiver,
        "group_labels": dict(group_labels),
        "alerts": [alert_json(a) for a in alerts],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class EmailText:
    subject: str
    body: str


def most_restrictive(alerts: Sequence[Alert]) -> Tlp:
    return max((a.tlp for a in alerts), key=_TLP_ORDER.index)


def email_text(alerts: Sequence[Alert]) -> EmailText:
    """Subject and plain-text body of the e-mail for a group of alerts (at least one)."""
    if not alerts:
        raise ValueError("an e-mail needs at least one alert")
    marking = most_restrictive(alerts).marking
    first = alerts[0].title
    subject = first if len(alerts) == 1 else f"{len(alerts)} alerts: {first} (and {len(alerts) - 1} more)"
    blocks = [
        "\n".join(
            [
                f"[{a.severity.value.upper()}] {a.title}",
                a.summary,
                f"Threshold {a.threshold}{' (late)' if a.late else ''}; deadline {_time(a.deadline_at)}; "
                f"{a.tlp.marking}; alert id {a.alert_id}",
            ]
        )
        for a in alerts
    ]
    body = f"{marking}\n\n" + "\n\n".join(blocks) + "\n"
    return EmailText(f"[Preflight] [{marking}] {subject}", body)
