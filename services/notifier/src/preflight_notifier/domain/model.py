"""Deadlines and how events change them.

A deadline is one instant someone must hear about in time: a review's end (the
planned public release), a finding's embargo end, a finding's remediation due
date. It is *versioned*: every time its instant moves, its reminders are
replaced by a new set carrying the new version, so a reminder of an older
version can never fire.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime


class BadEvent(ValueError):
    """An event that can never be applied (the consumer dead-letters it)."""


class DeadlineKind(enum.StrEnum):
    """What the deadline is."""

    REVIEW = "review"
    EMBARGO_END = "embargo_end"
    REMEDIATION_DUE = "remediation_due"

    @property
    def alert_kind(self) -> AlertKind:
        return {
            DeadlineKind.REVIEW: AlertKind.REVIEW_DEADLINE,
            DeadlineKind.EMBARGO_END: AlertKind.EMBARGO_END,
            DeadlineKind.REMEDIATION_DUE: AlertKind.REMEDIATION_DUE,
        }[self]

    def deadline_id(self, subject_id: str) -> str:
        """The deadline's id: one deadline of each kind per submission or finding."""
        return f"{self.value}/{subject_id}"


class AlertKind(enum.StrEnum):
    """What an alert is about (mirrors `preflight.notifier.v1.AlertKind`)."""

    REVIEW_DEADLINE = "review_deadline"
    EMBARGO_END = "embargo_end"
    REMEDIATION_DUE = "remediation_due"
    REVIEW_MET = "review_met"

    @property
    def is_review(self) -> bool:
        return self in (AlertKind.REVIEW_DEADLINE, AlertKind.REVIEW_MET)

    def deadline_id(self, subject_id: str) -> str:
        """The id of the deadline an alert of this kind is about."""
        kind = DeadlineKind.REVIEW if self.is_review else DeadlineKind(self.value)
        return kind.deadline_id(subject_id)


class DeadlineState(enum.StrEnum):
    """ACTIVE deadlines have pending reminders; MET and CANCELLED ones have none."""

    ACTIVE = "active"
    MET = "met"
    CANCELLED = "cancelled"


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Tlp(enum.StrEnum):
    """Traffic Light Protocol 2.0 label; UNSPECIFIED is treated as the most restrictive."""

    UNSPECIFIED = "unspecified"
    CLEAR = "clear"
    GREEN = "green"
    AMBER = "amber"
    AMBER_STRICT = "amber_strict"
    RED = "red"

    @property
    def marking(self) -> str:
        """The label as TLP 2.0 writes it, e.g. `TLP:AMBER+STRICT`."""
        if self is Tlp.UNSPECIFIED:
            return "TLP:RED"
        return "TLP:" + self.value.upper().replace("_", "+")


@dataclass(frozen=True)
class Contact:
    """A person at the lab to reach about a submission."""

    name: str
    email: str
    role: str = ""


@dataclass(frozen=True)
class Audience:
    """Who may receive alerts about a deadline. Deny by default: empty reaches only reviewers."""

    organisations: frozenset[str] = frozenset()
    sectors: frozenset[str] = frozenset()
    lab_organisation: str = ""
    contacts: tuple[Contact, ...] = ()
    reviewers: bool = True


@dataclass(frozen=True)
class Details:
    """What alerts about a deadline say, and to whom."""

    audience: Audience = field(default_factory=Audience)
    tlp: Tlp = Tlp.UNSPECIFIED
    title: str = ""
    # Short lines for the alert summary (severity, affected products…), already bounded by the audience.
    facts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Deadline:
    """One deadline as the notifier keeps it."""

    deadline_id: str
    kind: DeadlineKind
    subject_id: str
    due_at: datetime | None
    # Version of the current reminder set (the source's version when the instant last moved).
    version: int
    # Newest source version applied (intake's deadline_version, a finding's revision).
    source_version: int
    state: DeadlineState
    details: Details = field(default_factory=Details)


@dataclass(frozen=True)
class DeadlineChange:
    """What one event says a deadline now is.

    `due_at` None: there is no deadline any more. `details` None: the event
    does not restate them (a release-plan change), keep the current ones.
    """

    kind: DeadlineKind
    subject_id: str
    due_at: datetime | None
    source_version: int
    details: Details | None = None

    @property
    def deadline_id(self) -> str:
        return self.kind.deadline_id(self.subject_id)


class Effect(enum.Enum):
    """What applying a change requires of the store."""

    NONE = "none"  # stale or duplicate: nothing changes
    REFRESH = "refresh"  # same instant: keep the reminders, update what alerts will say
    SCHEDULE = "schedule"  # new instant: cancel pending reminders, plan the new version's
    CANCEL = "cancel"  # no deadline any more: cancel pending reminders
    MET = "met"  # the review is done: cancel pending reminders, announce it


@dataclass(frozen=True)
class Decision:
    effect: Effect
    deadline: Deadline | None


def _is_final(deadline: Deadline) -> bool:
    # A met review or a withdrawn submission never comes back; a finding's
    # deadlines follow its newest revision, which may set a date again.
    return deadline.state is DeadlineState.MET or (
        deadline.kind is DeadlineKind.REVIEW and deadline.state is DeadlineState.CANCELLED
    )


def decide(current: Deadline | None, change: DeadlineChange) -> Decision:
    """Apply a deadline change from the source of truth.

    Changes older than (or as old as) the newest applied source version are
    ignored, so redelivered or reordered events cannot move a deadline back.
    A moved instant starts a new reminder version; an unchanged one keeps the
    reminders (and the alerts already fired) and refreshes the audience, TLP
    and text that future alerts will carry — never widening an alert already sent.
    """
    if current is not None and (_is_final(current) or change.source_version <= current.source_version):
        return Decision(Effect.NONE, None)
    if change.due_at is None:
        return Decision(
            Effect.CANCEL, replace(_refreshed(current or _new(change), change), state=DeadlineState.CANCELLED)
        )
    if current is not None and current.state is DeadlineState.ACTIVE and current.due_at == change.due_at:
        return Decision(Effect.REFRESH, _refreshed(current, change))
    scheduled = replace(
        _refreshed(current or _new(change), change),
        due_at=change.due_at,
        version=change.source_version,
        state=DeadlineState.ACTIVE,
    )
    return Decision(Effect.SCHEDULE, scheduled)


def close(current: Deadline | None, kind: DeadlineKind, subject_id: str, state: DeadlineState) -> Decision:
    """The deadline is met or withdrawn (terminal for reviews).

    An unknown deadline is recorded as closed, so that an event about it that
    arrives later (from another topic) does not schedule reminders.
    """
    if state is DeadlineState.ACTIVE:
        raise ValueError("close() takes MET or CANCELLED")
    if current is None:
        tombstone = Deadline(kind.deadline_id(subject_id), kind, subject_id, None, 0, 0, state)
        return Decision(Effect.CANCEL, tombstone)
    if current.state is not DeadlineState.ACTIVE:
        return Decision(Effect.NONE, None)
    effect = Effect.MET if state is DeadlineState.MET else Effect.CANCEL
    return Decision(effect, replace(current, state=state))


def _refreshed(base: Deadline, change: DeadlineChange) -> Deadline:
    return replace(base, details=change.details or base.details, source_version=change.source_version)


def _new(change: DeadlineChange) -> Deadline:
    return Deadline(
        deadline_id=change.deadline_id,
        kind=change.kind,
        subject_id=change.subject_id,
        due_at=None,
        version=0,
        source_version=0,
        state=DeadlineState.CANCELLED,
    )
