"""The two coordinated-disclosure state machines of a finding (after CERT/CC's VINCE and Vultron).

Report machine::

    RECEIVED → TRIAGED → VALIDATED → PATCH_AVAILABLE → DISCLOSED → CLOSED
        │          │          └──────────────────────────↗
        └──────────┴→ INVALID → CLOSED

Embargo machine::

    NONE → PROPOSED → ACTIVE → EXITED
              └→ NONE (proposal rejected)     ACTIVE → ACTIVE (end revised)

An embargo is *in force* while PROPOSED or ACTIVE and its end instant is in
the future. A finding cannot be DISCLOSED while an embargo is in force, and
cannot be VALIDATED (published) with an empty audience.
"""

from __future__ import annotations

import enum


class FindingState(enum.Enum):
    """Disclosure state (values match `preflight.clearinghouse.v1.FindingState` names)."""

    RECEIVED = "RECEIVED"
    TRIAGED = "TRIAGED"
    VALIDATED = "VALIDATED"
    INVALID = "INVALID"
    PATCH_AVAILABLE = "PATCH_AVAILABLE"
    DISCLOSED = "DISCLOSED"
    CLOSED = "CLOSED"


class EmbargoState(enum.Enum):
    """Embargo state (values match `preflight.clearinghouse.v1.EmbargoState` names)."""

    NONE = "NONE"
    PROPOSED = "PROPOSED"
    ACTIVE = "ACTIVE"
    EXITED = "EXITED"


REPORT_TRANSITIONS: dict[FindingState, frozenset[FindingState]] = {
    FindingState.RECEIVED: frozenset({FindingState.TRIAGED, FindingState.INVALID}),
    FindingState.TRIAGED: frozenset({FindingState.VALIDATED, FindingState.INVALID}),
    FindingState.VALIDATED: frozenset({FindingState.PATCH_AVAILABLE, FindingState.DISCLOSED}),
    FindingState.PATCH_AVAILABLE: frozenset({FindingState.DISCLOSED}),
    FindingState.DISCLOSED: frozenset({FindingState.CLOSED}),
    FindingState.INVALID: frozenset({FindingState.CLOSED}),
    FindingState.CLOSED: frozenset(),
}

EMBARGO_TRANSITIONS: dict[EmbargoState, frozenset[EmbargoState]] = {
    EmbargoState.NONE: frozenset({EmbargoState.PROPOSED}),
    EmbargoState.PROPOSED: frozenset({EmbargoState.ACTIVE, EmbargoState.NONE}),
    EmbargoState.ACTIVE: frozenset({EmbargoState.ACTIVE, EmbargoState.EXITED}),
    EmbargoState.EXITED: frozenset(),
}


def report_transition_allowed(current: FindingState, target: FindingState) -> bool:
    """Whether the report machine allows `current → target`."""
    return target in REPORT_TRANSITIONS[current]


def embargo_transition_allowed(current: EmbargoState, target: EmbargoState) -> bool:
    """Whether the embargo machine allows `current → target`."""
    return target in EMBARGO_TRANSITIONS[current]
