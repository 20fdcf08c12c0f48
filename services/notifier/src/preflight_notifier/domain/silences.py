"""Silences: suppress the deliveries of matching alerts for a while.

A reviewer's silence applies to every recipient; a lab's or an operator's
applies only to deliveries made to its own organisation, so nobody can
silence somebody else's alerts. Alerts are still recorded and published.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from preflight_notifier.domain.alerts import Labels
from preflight_notifier.domain.audience import Viewer, ViewerRole
from preflight_notifier.domain.matchers import Matcher, match_all


class SilenceState(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Silence:
    silence_id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    organisation: str
    comment: str
    created_at: datetime

    def state(self, now: datetime) -> SilenceState:
        if now >= self.ends_at:
            return SilenceState.EXPIRED
        return SilenceState.PENDING if now < self.starts_at else SilenceState.ACTIVE

    def silences(self, labels: Labels, recipient_organisation: str, now: datetime) -> bool:
        """Whether this silence suppresses a delivery of an alert with `labels` to that organisation."""
        if self.state(now) is not SilenceState.ACTIVE:
            return False
        if self.organisation and self.organisation != recipient_organisation:
            return False
        return match_all(self.matchers, labels)


def silence_scope(viewer: Viewer) -> str | None:
    """The organisation a viewer's silences are bound to ("" = everyone); None: may not silence."""
    if viewer.role is ViewerRole.REVIEWER:
        return ""
    if viewer.role in (ViewerRole.LAB, ViewerRole.OPERATOR) and viewer.organisation:
        return viewer.organisation
    return None


def may_manage(viewer: Viewer, silence: Silence) -> bool:
    """Reviewers manage every silence; labs and operators only their organisation's."""
    scope = silence_scope(viewer)
    return scope == "" or (scope is not None and scope == silence.organisation)


def silenced(silences: Sequence[Silence], labels: Labels, recipient_organisation: str, now: datetime) -> bool:
    return any(s.silences(labels, recipient_organisation, now) for s in silences)
