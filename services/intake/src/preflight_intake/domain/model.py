"""A submission and its status machine.

RECEIVED → BENCHMARKING → UNDER_REVIEW → REPORT_READY → CLOSED, and WITHDRAWN
from any state that is not terminal. CLOSED and WITHDRAWN are terminal. A
direct transition that is not one of these steps raises IllegalTransition;
progress learnt from other services' events (which may arrive late, early or
twice) goes through `advance_to`, which walks the legal steps up to a target
and does nothing when the submission is already there, further on, or done.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

SHORT_ACCESS_WINDOW = "SHORT_ACCESS_WINDOW"


class Status(enum.Enum):
    """Where a submission is in the review."""

    RECEIVED = "RECEIVED"
    BENCHMARKING = "BENCHMARKING"
    UNDER_REVIEW = "UNDER_REVIEW"
    REPORT_READY = "REPORT_READY"
    CLOSED = "CLOSED"
    WITHDRAWN = "WITHDRAWN"

    @property
    def terminal(self) -> bool:
        return self in (Status.CLOSED, Status.WITHDRAWN)


_FORWARD = (Status.RECEIVED, Status.BENCHMARKING, Status.UNDER_REVIEW, Status.REPORT_READY, Status.CLOSED)


class IllegalTransition(Exception):
    """The requested status change is not a step of the status machine."""

    def __init__(self, current: Status, target: Status) -> None:
        super().__init__(f"cannot go from {current.value} to {target.value}")
        self.current = current
        self.target = target


def is_legal(current: Status, target: Status) -> bool:
    """True when `target` is one step on from `current`."""
    if current.terminal:
        return False
    if target is Status.WITHDRAWN:
        return True
    return _FORWARD.index(target) == _FORWARD.index(current) + 1


@dataclass(frozen=True)
class ModelIdentity:
    """The model version under review."""

    developer: str
    name: str
    version: str


@dataclass(frozen=True)
class AccessWindow:
    """When reviewers may reach the model (UTC, start < end)."""

    start: datetime
    end: datetime

    @property
    def length_days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400


@dataclass(frozen=True)
class EndpointAccess:
    """An OpenAI-compatible endpoint; the credential itself lives only encrypted, behind its reference."""

    base_url: str
    model_name: str
    credential_ref: str


@dataclass(frozen=True)
class WeightsAccess:
    """Weights reviewers serve themselves."""

    artifact_uri: str
    sha256: str
    format: str


ModelAccess = EndpointAccess | WeightsAccess


@dataclass(frozen=True)
class Contact:
    """A person to reach about the submission."""

    name: str
    email: str
    role: str


@dataclass(frozen=True)
class StatusChange:
    """One entry of a submission's status history (sequence 1 is RECEIVED, with no previous status)."""

    submission_id: str
    sequence: int
    status: Status
    previous: Status | None
    changed_at: datetime
    cause: str


@dataclass(frozen=True)
class Submission:
    """A model version submitted for review, as stored (never with the credential in clear)."""

    submission_id: str
    organisation: str
    submitted_by: str
    model: ModelIdentity
    planned_release: datetime
    access: ModelAccess
    access_window: AccessWindow
    contacts: tuple[Contact, ...]
    declared_capabilities: tuple[str, ...]
    intended_use: str
    share_identity_with_operators: bool
    flags: tuple[str, ...]
    status: Status
    deadline_version: int
    received_at: datetime
    updated_at: datetime
    # Optimistic-concurrency counter: every stored change increments it.
    row_version: int = 1

    @property
    def review_deadline(self) -> datetime:
        """The review is due at the planned public release."""
        return self.planned_release

    def transition(self, target: Status, at: datetime) -> Submission:
        """This submission moved one legal step to `target`; raises IllegalTransition otherwise."""
        if not is_legal(self.status, target):
            raise IllegalTransition(self.status, target)
        return replace(self, status=target, updated_at=at)

    def steps_to(self, target: Status) -> list[Status]:
        """The legal forward steps that lead from the current status to `target` (empty if none do)."""
        if self.status.terminal or target is Status.WITHDRAWN:
            return []
        here, there = _FORWARD.index(self.status), _FORWARD.index(target)
        return list(_FORWARD[here + 1 : there + 1])

    def change_release_plan(
        self, planned_release: datetime, window: AccessWindow, policy: WindowPolicy, at: datetime
    ) -> Submission:
        """The submission with a new planned release and window; the deadline version grows by one.

        Raises IllegalTransition (to the same status) when the submission is terminal.
        """
        if self.status.terminal:
            raise IllegalTransition(self.status, self.status)
        return replace(
            self,
            planned_release=planned_release,
            access_window=window,
            flags=policy.flags_for(window),
            deadline_version=self.deadline_version + 1,
            updated_at=at,
        )


@dataclass(frozen=True)
class WindowPolicy:
    """Access-window limits, in days: longer than `max_days` is refused, shorter than `min_days` flagged."""

    max_days: float = 30
    min_days: float = 7

    def flags_for(self, window: AccessWindow) -> tuple[str, ...]:
        """The warnings a window earns (it is accepted regardless)."""
        return (SHORT_ACCESS_WINDOW,) if window.length_days < self.min_days else ()
