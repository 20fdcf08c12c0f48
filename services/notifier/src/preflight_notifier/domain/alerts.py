"""Alerts: what a fired reminder says, to whom, and the labels routing matches on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from preflight_notifier.domain.audience import Viewer, audience_seen_by, audience_tokens
from preflight_notifier.domain.durations import humanize
from preflight_notifier.domain.model import AlertKind, Audience, Deadline, DeadlineKind, Severity, Tlp
from preflight_notifier.domain.schedule import MET_THRESHOLD, PlannedReminder, Stage, alert_id

Labels = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class Alert:
    """One alert, as published and delivered. Its id is deterministic (deadline, threshold, version)."""

    alert_id: str
    kind: AlertKind
    subject_id: str
    threshold: str
    deadline_at: datetime
    due_at: datetime
    fired_at: datetime
    late: bool
    deadline_version: int
    severity: Severity
    title: str
    summary: str
    audience: Audience
    tlp: Tlp

    @property
    def stage(self) -> Stage:
        return Stage.of(self.threshold)

    def labels(self) -> Labels:
        """Routing and silence labels; `sector` and `audience` are multi-valued."""
        return {
            "kind": (self.kind.value,),
            "severity": (self.severity.value,),
            "threshold": (self.threshold,),
            "stage": (self.stage.value,),
            "subject_id": (self.subject_id,),
            "alert_id": (self.alert_id,),
            "tlp": (self.tlp.value,),
            "late": ("true" if self.late else "false",),
            "sector": tuple(sorted(self.audience.sectors)) if not self.kind.is_review else (),
            "audience": self.audience_tokens(),
        }

    def audience_tokens(self) -> tuple[str, ...]:
        return audience_tokens(self.kind, self.audience, self.tlp)

    def seen_by(self, viewer: Viewer) -> Alert:
        """This alert as `viewer` may receive it (`audience_seen_by`); call only when it may see it."""
        return replace(self, audience=audience_seen_by(viewer, self.audience, self.tlp))


_NOUN = {
    DeadlineKind.REVIEW: "Review deadline",
    DeadlineKind.EMBARGO_END: "Embargo end",
    DeadlineKind.REMEDIATION_DUE: "Remediation deadline",
}


def reminder_alert(deadline: Deadline, reminder: PlannedReminder, fired_at: datetime, late: bool) -> Alert:
    """The alert for a reminder of `deadline` (which must be scheduled)."""
    if deadline.due_at is None:
        raise ValueError("an unscheduled deadline has no reminders")
    noun = _NOUN[deadline.kind]
    subject = _subject(deadline)
    # A reminder sent late states the time left (or past) when it is sent, not at its threshold.
    left = deadline.due_at - (fired_at if late else reminder.due_at)
    if left > timedelta(0):
        headline = f"{noun} in {humanize(left)}: {subject}"
    elif left == timedelta(0):
        headline = f"{noun} reached: {subject}"
    else:
        headline = f"{noun} passed {humanize(left)} ago: {subject}"
    when = f"{_describe(deadline.kind)} {_utc(deadline.due_at)}."
    lateness = (
        [f"Sent late: the {reminder.threshold} reminder was due {_utc(reminder.due_at)}."] if late else []
    )
    return Alert(
        alert_id=alert_id(deadline.deadline_id, reminder.threshold, deadline.version),
        kind=deadline.kind.alert_kind,
        subject_id=deadline.subject_id,
        threshold=reminder.threshold,
        deadline_at=deadline.due_at,
        due_at=reminder.due_at,
        fired_at=fired_at,
        late=late,
        deadline_version=deadline.version,
        severity=reminder.severity,
        title=headline,
        summary=" ".join([when, *lateness, *deadline.details.facts]),
        audience=deadline.details.audience,
        tlp=deadline.details.tlp,
    )


def met_alert(deadline: Deadline, fired_at: datetime) -> Alert:
    """The announcement that a review deadline was met (it inhibits that review's overdue alerts)."""
    if deadline.kind is not DeadlineKind.REVIEW or deadline.due_at is None:
        raise ValueError("only a scheduled review deadline can be met")
    return Alert(
        alert_id=alert_id(deadline.deadline_id, MET_THRESHOLD, deadline.version),
        kind=AlertKind.REVIEW_MET,
        subject_id=deadline.subject_id,
        threshold=MET_THRESHOLD,
        deadline_at=deadline.due_at,
        due_at=fired_at,
        fired_at=fired_at,
        late=False,
        deadline_version=deadline.version,
        severity=Severity.INFO,
        title=f"Review report issued: {_subject(deadline)}",
        summary=f"The review report was issued; the review deadline ({_utc(deadline.due_at)}) is met.",
        audience=deadline.details.audience,
        tlp=deadline.details.tlp,
    )


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _subject(deadline: Deadline) -> str:
    if deadline.kind is DeadlineKind.REVIEW:
        return f"submission {deadline.subject_id}"
    return deadline.details.title or f"finding {deadline.subject_id}"


def _describe(kind: DeadlineKind) -> str:
    return {
        DeadlineKind.REVIEW: "The review is due at the planned public release,",
        DeadlineKind.EMBARGO_END: "The embargo ends",
        DeadlineKind.REMEDIATION_DUE: "Remediation is due",
    }[kind]
