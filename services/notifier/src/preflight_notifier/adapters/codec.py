"""Between the contracts (protobuf events, the Alert message, stored JSON) and the domain."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.common.v1 import common_pb2
from preflight.intake.v1 import events_pb2 as intake_events
from preflight.notifier.v1 import events_pb2 as notifier_events
from preflight_common.envelope import KafkaRecord, encode_event
from preflight_common.fields import timestamp
from preflight_common.telemetry import inject_headers

from preflight_notifier.domain.alerts import Alert
from preflight_notifier.domain.model import (
    AlertKind,
    Audience,
    BadEvent,
    Contact,
    DeadlineChange,
    DeadlineKind,
    Details,
    Severity,
    Tlp,
)

FindingState = clearinghouse_events.FindingState
EmbargoState = clearinghouse_events.EmbargoState

# Review alerts are about a confidential pre-release: bounded to the lab's organisation (and reviewers).
REVIEW_TLP = Tlp.AMBER_STRICT
_MAX_AFFECTED = 5


def moment(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def tlp_from_proto(value: common_pb2.Tlp.ValueType) -> Tlp:
    return Tlp(common_pb2.Tlp.Name(value).removeprefix("TLP_").lower())


def tlp_to_proto(value: Tlp) -> common_pb2.Tlp.ValueType:
    return common_pb2.Tlp.Value(f"TLP_{value.name}")


def kind_to_proto(kind: AlertKind) -> notifier_events.AlertKind.ValueType:
    return notifier_events.AlertKind.Value(f"ALERT_KIND_{kind.name}")


def kind_from_proto(value: notifier_events.AlertKind.ValueType) -> AlertKind:
    name = notifier_events.AlertKind.Name(value).removeprefix("ALERT_KIND_")
    if name == "UNSPECIFIED":
        raise ValueError("alert kind is unspecified")
    return AlertKind[name]


# --- events in -------------------------------------------------------------------------------


def _required(value: str, name: str) -> str:
    if not value:
        raise BadEvent(f"{name} is empty")
    return value


def contacts(event: intake_events.SubmissionReceived) -> tuple[Contact, ...]:
    """The lab's contacts a SubmissionReceived names, as the review deadline's audience keeps them."""
    return tuple(Contact(c.name, c.email, c.role) for c in event.contacts)


def review_received(event: intake_events.SubmissionReceived) -> DeadlineChange:
    """The review deadline of a newly accepted submission, to the lab's contacts and reviewers."""
    submission_id = _required(event.submission_id, "submission_id")
    due = event.review_deadline if event.HasField("review_deadline") else event.planned_release
    if not due.seconds and not due.nanos:
        raise BadEvent("review_deadline and planned_release are both unset")
    audience = Audience(
        lab_organisation=_required(event.organisation, "organisation"),
        contacts=contacts(event),
        reviewers=True,
    )
    return DeadlineChange(
        DeadlineKind.REVIEW, submission_id, moment(due), event.deadline_version, Details(audience, REVIEW_TLP)
    )


def review_moved(event: intake_events.ReleasePlanChanged) -> DeadlineChange:
    """The moved review deadline (who hears about it does not change)."""
    due = event.review_deadline if event.HasField("review_deadline") else event.planned_release
    if not due.seconds and not due.nanos:
        raise BadEvent("review_deadline and planned_release are both unset")
    return DeadlineChange(
        DeadlineKind.REVIEW,
        _required(event.submission_id, "submission_id"),
        moment(due),
        event.deadline_version,
    )


def finding_deadlines(notice: clearinghouse_events.FindingNotice) -> list[DeadlineChange]:
    """The embargo-end and remediation-due deadlines a finding notice sets (or clears).

    The audience and TLP are the clearinghouse's, unchanged; the text uses
    only the notice's fields, never who found the vulnerability.
    """
    finding_id = _required(notice.finding_id, "finding.finding_id")
    closed = notice.state in (FindingState.FINDING_STATE_INVALID, FindingState.FINDING_STATE_CLOSED)
    embargo_on = notice.HasField("embargo_end") and notice.embargo_state not in (
        EmbargoState.EMBARGO_STATE_NONE,
        EmbargoState.EMBARGO_STATE_EXITED,
    )
    remediation_on = (
        notice.HasField("remediation_due") and notice.state != FindingState.FINDING_STATE_PATCH_AVAILABLE
    )
    details = Details(
        audience=Audience(
            organisations=frozenset(notice.audience.organisations),
            sectors=frozenset(notice.audience.sectors),
            reviewers=True,
        ),
        tlp=tlp_from_proto(notice.tlp),
        title=notice.title,
        facts=_finding_facts(notice),
    )
    embargo_due = moment(notice.embargo_end) if embargo_on and not closed else None
    remediation_due = moment(notice.remediation_due) if remediation_on and not closed else None
    return [
        DeadlineChange(DeadlineKind.EMBARGO_END, finding_id, embargo_due, notice.revision, details),
        DeadlineChange(DeadlineKind.REMEDIATION_DUE, finding_id, remediation_due, notice.revision, details),
    ]


def _finding_facts(notice: clearinghouse_events.FindingNotice) -> tuple[str, ...]:
    facts = []
    if notice.severity:
        facts.append(f"Severity {notice.severity} (CVSS {notice.cvss_score:.1f}).")
    if notice.cwe_ids:
        facts.append(f"Weakness: {', '.join(notice.cwe_ids)}.")
    if notice.affected_products:
        shown = list(notice.affected_products[:_MAX_AFFECTED])
        more = len(notice.affected_products) - len(shown)
        facts.append(f"Affected: {', '.join(shown)}{f' and {more} more' if more else ''}.")
    return tuple(facts)


# --- the Alert message -----------------------------------------------------------------------


def alert_to_proto(alert: Alert, *, with_contacts: bool = True) -> notifier_events.Alert:
    """The Alert message. The topic copy leaves the lab's contacts out (`with_contacts=False`)."""
    audience = alert.audience
    return notifier_events.Alert(
        alert_id=alert.alert_id,
        kind=kind_to_proto(alert.kind),
        subject_id=alert.subject_id,
        threshold=alert.threshold,
        deadline=timestamp(alert.deadline_at),
        due_at=timestamp(alert.due_at),
        fired_at=timestamp(alert.fired_at),
        late=alert.late,
        deadline_version=alert.deadline_version,
        severity=alert.severity.value,
        title=alert.title,
        summary=alert.summary,
        audience=notifier_events.AlertAudience(
            operators=common_pb2.Audience(
                organisations=sorted(audience.organisations), sectors=sorted(audience.sectors)
            ),
            lab_organisation=audience.lab_organisation,
            contacts=[common_pb2.Contact(name=c.name, email=c.email, role=c.role) for c in audience.contacts]
            if with_contacts
            else [],
            reviewers=audience.reviewers,
        ),
        tlp=tlp_to_proto(alert.tlp),
    )


def alert_record(alert: Alert, *, source: str, event_id: str) -> KafkaRecord:
    """The alert's CloudEvent: key = subject, the lab's contacts left out, nothing in the headers
    but the CloudEvents attributes and the trace (the payload's audience is the recipient's)."""
    return encode_event(
        alert_to_proto(alert, with_contacts=False),
        source=source,
        subject=alert.subject_id,
        event_id=event_id,
        time=alert.fired_at,
        trace_headers=inject_headers(),
    )


def alert_from_proto(message: notifier_events.Alert) -> Alert:
    audience = message.audience
    return Alert(
        alert_id=message.alert_id,
        kind=kind_from_proto(message.kind),
        subject_id=message.subject_id,
        threshold=message.threshold,
        deadline_at=moment(message.deadline),
        due_at=moment(message.due_at),
        fired_at=moment(message.fired_at),
        late=message.late,
        deadline_version=message.deadline_version,
        severity=Severity(message.severity),
        title=message.title,
        summary=message.summary,
        audience=Audience(
            organisations=frozenset(audience.operators.organisations),
            sectors=frozenset(audience.operators.sectors),
            lab_organisation=audience.lab_organisation,
            contacts=tuple(Contact(c.name, c.email, c.role) for c in audience.contacts),
            reviewers=audience.reviewers,
        ),
        tlp=tlp_from_proto(message.tlp),
    )


def alert_from_bytes(payload: bytes) -> Alert:
    message = notifier_events.Alert()
    message.ParseFromString(payload)
    return alert_from_proto(message)


# --- stored JSON -----------------------------------------------------------------------------


def details_to_json(details: Details) -> tuple[str, str, str, str]:
    """(audience, tlp, title, facts) columns."""
    audience = details.audience
    return (
        json.dumps(
            {
                "organisations": sorted(audience.organisations),
                "sectors": sorted(audience.sectors),
                "lab_organisation": audience.lab_organisation,
                "contacts": [[c.name, c.email, c.role] for c in audience.contacts],
                "reviewers": audience.reviewers,
            }
        ),
        details.tlp.value,
        details.title,
        json.dumps(list(details.facts)),
    )


def details_from_json(audience: str, tlp: str, title: str, facts: str) -> Details:
    data: dict[str, Any] = json.loads(audience)
    return Details(
        audience=Audience(
            organisations=frozenset(data["organisations"]),
            sectors=frozenset(data["sectors"]),
            lab_organisation=data["lab_organisation"],
            contacts=tuple(Contact(*c) for c in data["contacts"]),
            reviewers=data["reviewers"],
        ),
        tlp=Tlp(tlp),
        title=title,
        facts=tuple(json.loads(facts)),
    )
