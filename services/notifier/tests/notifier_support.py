"""Helpers for the notifier's tests: a controllable clock, loopback receivers' state, events, routing."""

from __future__ import annotations

import email
import email.policy
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.common.v1 import common_pb2
from preflight.intake.v1 import events_pb2 as intake_events
from preflight.intake.v1 import submission_pb2
from preflight_notifier.adapters.email import SmtpSettings
from preflight_notifier.bootstrap import Components
from preflight_notifier.config import NotifierSettings
from sqlalchemy import text

START = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
WEBHOOK_SECRET = "whsec-test-0123456789"


class ManualClock:
    """A clock (`preflight_common.clock.Clock`) that moves only when told to."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers each path with the scripted statuses in turn (then 200), recording every request."""

    port: int
    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, list[int]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    content: str

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_string(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class MailHandler:
    def __init__(self) -> None:
        self.messages: list[Mail] = []
        self.replies: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        content = envelope.content.decode("utf-8", errors="replace")
        self.messages.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    port: int
    handler: MailHandler

    @property
    def messages(self) -> list[Mail]:
        return self.handler.messages


def loopback_settings(
    database_url: str, routing_file: Path, smtp_server: SmtpServer, **overrides: Any
) -> NotifierSettings:
    """A notifier's settings over the test routing file and the loopback SMTP server; `overrides` sets
    any other field (Kafka, topics, participants)."""
    return NotifierSettings(
        database_url=database_url,
        routing_file=routing_file,
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_server.port, security="none", timeout=5.0),
        **overrides,
    )


def routing_document(receiver: WebhookReceiver, secret_file: Path) -> dict[str, Any]:
    """The test routing: reviewers and two operators on webhooks (signed with the secret in
    `secret_file`), lab contacts and an operator by e-mail."""

    def hook(path: str) -> dict[str, Any]:
        return {"url": receiver.url(path), "secret_file": str(secret_file), "timeout": "2s"}

    retry = {"initial": "10s", "maximum": "5m", "max_attempts": 5}
    return {
        "deadlines": {
            "late_after": "1m",
            "review": {
                "thresholds": [
                    {"before": "7d", "severity": "info"},
                    {"before": "3d", "severity": "info"},
                    {"before": "1d", "severity": "warning"},
                    {"before": "0", "severity": "critical"},
                ],
                "repeat_interval": "1d",
            },
            "embargo_end": {
                "thresholds": [{"before": "3d"}, {"before": "1d", "severity": "warning"}, {"before": "0"}]
            },
            "remediation_due": {"thresholds": [{"before": "7d"}, {"before": "0", "severity": "critical"}]},
        },
        "route": {
            "receiver": "reviewers",
            "group_by": ["kind", "subject_id", "threshold"],
            "group_wait": "30s",
            "group_interval": "5m",
            "routes": [
                {
                    "matchers": ['kind=~"review_deadline|review_met"'],
                    "receiver": "lab-contacts",
                    "continue": True,
                },
                {"matchers": ['kind=~"review_deadline|review_met"'], "receiver": "reviewers"},
                {
                    "matchers": ['kind=~"embargo_end|remediation_due"'],
                    "group_by": ["kind"],
                    "receiver": "bank-a",
                    "continue": True,
                },
                {"matchers": ['kind=~"embargo_end|remediation_due"'], "receiver": "bank-b", "continue": True},
                {
                    "matchers": ['kind=~"embargo_end|remediation_due"'],
                    "receiver": "bank-b-mail",
                    "continue": True,
                },
                {"matchers": ['kind=~"embargo_end|remediation_due"'], "receiver": "water-mail"},
            ],
        },
        "receivers": [
            {
                "name": "reviewers",
                "audience": {"role": "reviewer"},
                "webhook": hook("/reviewers"),
                "retry": retry,
            },
            {"name": "lab-contacts", "audience": "lab_contacts", "email": {}, "retry": retry},
            {
                "name": "bank-a",
                "audience": {"role": "operator", "organisation": "bank-a", "sectors": ["finance"]},
                "webhook": hook("/bank-a"),
                "retry": retry,
            },
            {
                "name": "bank-b",
                "audience": {"role": "operator", "organisation": "bank-b", "sectors": ["finance"]},
                "webhook": hook("/bank-b"),
                "retry": retry,
            },
            {
                "name": "bank-b-mail",
                "audience": {"role": "operator", "organisation": "bank-b", "sectors": ["finance"]},
                "email": {"to": ["soc@bank-b.example"]},
                "retry": retry,
            },
            {
                "name": "water-mail",
                "audience": {"role": "operator", "organisation": "water-co", "sectors": ["water"]},
                "email": {"to": ["ops@water-co.example"]},
                "retry": retry,
            },
        ],
        "inhibit_rules": [
            {
                "source_matchers": ['kind="review_met"'],
                "target_matchers": ['kind="review_deadline"', 'stage="overdue"'],
                "equal": ["subject_id"],
            }
        ],
    }


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def submission_received(
    submission_id: str, release: datetime, *, version: int = 1, organisation: str = "lab-a"
) -> intake_events.SubmissionReceived:
    return intake_events.SubmissionReceived(
        submission_id=submission_id,
        organisation=organisation,
        model=submission_pb2.ModelIdentity(developer=organisation, name="frontier", version="1.0"),
        access=submission_pb2.ModelAccess(
            endpoint=submission_pb2.EndpointAccess(base_url="https://model.example/v1", model_name="frontier")
        ),
        access_window=submission_pb2.AccessWindow(start=ts(release - timedelta(days=10)), end=ts(release)),
        received_at=ts(release - timedelta(days=20)),
        planned_release=ts(release),
        review_deadline=ts(release),
        deadline_version=version,
        contacts=[common_pb2.Contact(name="Ada", email="ada@lab-a.example", role="security")],
    )


def release_moved(
    submission_id: str, release: datetime, version: int, organisation: str = "lab-a"
) -> intake_events.ReleasePlanChanged:
    return intake_events.ReleasePlanChanged(
        submission_id=submission_id,
        organisation=organisation,
        planned_release=ts(release),
        review_deadline=ts(release),
        deadline_version=version,
    )


def finding_notice(
    finding_id: str,
    *,
    embargo_end: datetime | None = None,
    remediation_due: datetime | None = None,
    organisations: tuple[str, ...] = ("bank-a",),
    sectors: tuple[str, ...] = (),
    tlp: int = common_pb2.TLP_AMBER,
    revision: int = 1,
    state: int = clearinghouse_events.FINDING_STATE_VALIDATED,
) -> clearinghouse_events.FindingNotice:
    notice = clearinghouse_events.FindingNotice(
        finding_id=finding_id,
        title="Heap overflow in libexample",
        state=state,
        embargo_state=clearinghouse_events.EMBARGO_STATE_ACTIVE,
        cvss_score=8.1,
        severity="HIGH",
        cwe_ids=["CWE-122"],
        affected_products=["pkg:generic/libexample@1.2.3"],
        tlp=tlp,
        audience=common_pb2.Audience(organisations=list(organisations), sectors=list(sectors)),
        source=clearinghouse_events.FindingSource(
            submission_id="sub-secret", developer="Secret Lab", model_name="secret-model"
        ),
        revision=revision,
        updated_at=ts(START),
    )
    if embargo_end is not None:
        notice.embargo_end.CopyFrom(ts(embargo_end))
    if remediation_due is not None:
        notice.remediation_due.CopyFrom(ts(remediation_due))
    return notice


def apply(components: Components, payload: Message, event_id: str | None = None) -> bool:
    """Apply an event as the consumer would (a fresh event id unless given)."""
    return components.keeper.apply(event_id or str(uuid.uuid4()), payload)


def rows(components: Components, sql: str, **params: Any) -> list[Any]:
    with components.engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())
