"""Thresholds, reminders and the catch-up rule.

A deadline's policy names its thresholds (`T-7d`, `T-3d`, `T-1d`, `T-0`) and,
optionally, an overdue repeat (`overdue+1d`, `overdue+2d`, … while unmet).
Each threshold becomes one reminder per deadline version, fired once.

Catch-up (what fires when the scheduler finds several reminders of one
deadline already due — after downtime, or when a deadline is first learnt or
moved close): only the most recent *advance* reminder fires (marked late);
older advance reminders are recorded as superseded, because a flood of stale
"in 7 days", "in 3 days" messages helps no one when the truth is "in 1 day".
A `T-0` (due) or overdue reminder is never superseded: it always fires. The
overdue repeat does not replay every missed repetition either: after one fires,
the next is planned at the first repetition instant after now.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from preflight_notifier.domain.durations import format_duration
from preflight_notifier.domain.model import Severity

ALERT_ID_NAMESPACE = uuid.UUID("6f1e0b64-3c1f-5a53-9a52-6d1c0c9b7a10")
MET_THRESHOLD = "met"


class Stage(enum.StrEnum):
    """Where a reminder stands relative to its deadline."""

    ADVANCE = "advance"  # before the deadline (T-7d …)
    DUE = "due"  # at the deadline (T-0)
    OVERDUE = "overdue"  # after it, repeated while unmet
    MET = "met"  # the review was done

    @classmethod
    def of(cls, threshold: str) -> Stage:
        """The stage a threshold name denotes (`T-0`, `T-3d`, `overdue+2d`, `met`)."""
        if threshold == "T-0":
            return cls.DUE
        if threshold.startswith("overdue+"):
            return cls.OVERDUE
        if threshold == MET_THRESHOLD:
            return cls.MET
        return cls.ADVANCE


@dataclass(frozen=True)
class Threshold:
    """Remind `before` the deadline (zero: at the deadline)."""

    before: timedelta
    severity: Severity

    def __post_init__(self) -> None:
        if self.before < timedelta(0):
            raise ValueError("a threshold is at or before its deadline")

    @property
    def name(self) -> str:
        return "T-0" if not self.before else f"T-{format_duration(self.before)}"


@dataclass(frozen=True)
class OverdueRepeat:
    """Remind every `every` after the deadline while it is unmet."""

    every: timedelta
    severity: Severity = Severity.CRITICAL

    def __post_init__(self) -> None:
        if self.every <= timedelta(0):
            raise ValueError("the overdue repeat interval must be positive")


@dataclass(frozen=True)
class DeadlinePolicy:
    """The reminders of one kind of deadline."""

    thresholds: tuple[Threshold, ...]
    overdue: OverdueRepeat | None = None

    def __post_init__(self) -> None:
        names = [t.name for t in self.thresholds]
        if len(set(names)) != len(names):
            raise ValueError(f"thresholds repeat: {', '.join(names)}")


@dataclass(frozen=True)
class PlannedReminder:
    """One reminder to fire at `due_at`."""

    threshold: str
    stage: Stage
    due_at: datetime
    severity: Severity


def plan(policy: DeadlinePolicy, deadline_at: datetime) -> list[PlannedReminder]:
    """Every reminder of a deadline version, earliest first (the first overdue one included)."""
    reminders = [
        PlannedReminder(t.name, Stage.of(t.name), deadline_at - t.before, t.severity)
        for t in policy.thresholds
    ]
    if policy.overdue is not None:
        reminders.append(_overdue(policy.overdue, deadline_at, 1))
    return sorted(reminders, key=lambda r: r.due_at)


def next_overdue(policy: DeadlinePolicy, deadline_at: datetime, now: datetime) -> PlannedReminder | None:
    """The overdue reminder to plan once one fired at `now`: the first repetition strictly after now."""
    if policy.overdue is None:
        return None
    elapsed = (now - deadline_at) / policy.overdue.every
    return _overdue(policy.overdue, deadline_at, max(1, math.floor(elapsed) + 1))


def _overdue(repeat: OverdueRepeat, deadline_at: datetime, index: int) -> PlannedReminder:
    span = repeat.every * index
    return PlannedReminder(
        f"overdue+{format_duration(span)}", Stage.OVERDUE, deadline_at + span, repeat.severity
    )


@dataclass(frozen=True)
class DueReminder:
    """A pending reminder whose instant has come."""

    reminder_id: int
    threshold: str
    due_at: datetime

    @property
    def stage(self) -> Stage:
        return Stage.of(self.threshold)


@dataclass(frozen=True)
class StoredReminder:
    """A pending reminder as stored: its id, its deadline's version, what it plans."""

    reminder_id: int
    version: int
    planned: PlannedReminder

    @property
    def due(self) -> DueReminder:
        return DueReminder(self.reminder_id, self.planned.threshold, self.planned.due_at)


@dataclass(frozen=True)
class Triage:
    fire: tuple[DueReminder, ...]
    superseded: tuple[DueReminder, ...]


def triage(due: Sequence[DueReminder]) -> Triage:
    """Split the due reminders of ONE deadline version per the catch-up rule (module docstring)."""
    if not due:
        return Triage((), ())
    latest = max(r.due_at for r in due)
    fire = tuple(r for r in due if r.stage is not Stage.ADVANCE or r.due_at == latest)
    return Triage(fire, tuple(r for r in due if r not in fire))


def alert_id(deadline_id: str, threshold: str, version: int) -> str:
    """The deterministic id of the alert for (deadline, threshold, version): also its CloudEvents id."""
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, f"{deadline_id}|{threshold}|{version}"))


def is_late(due_at: datetime, fired_at: datetime, tolerance: timedelta) -> bool:
    """Fired more than `tolerance` after its instant (the notifier was down or behind)."""
    return fired_at - due_at > tolerance
