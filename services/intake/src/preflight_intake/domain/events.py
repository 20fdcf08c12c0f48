"""What intake tells the rest of Preflight (mapped to `preflight.intake.v1` events by the adapters)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from preflight_intake.domain.model import Submission


@dataclass(frozen=True)
class SubmissionReceived:
    """A submission was accepted and stored."""

    submission: Submission


@dataclass(frozen=True)
class ReleasePlanChanged:
    """The planned release (and so the review deadline) moved."""

    submission: Submission
    previous_planned_release: datetime
    reason: str


@dataclass(frozen=True)
class SubmissionWithdrawn:
    """The lab withdrew the submission."""

    submission: Submission
    reason: str


Event = SubmissionReceived | ReleasePlanChanged | SubmissionWithdrawn
