"""SSVC: a reviewer's Stakeholder-Specific Vulnerability Categorization decision for a finding.

The decision points and outcomes are CISA's coordinator decision tree (SSVC decision table
`cisa_coordinator` 2.0.3, published with the SSVC data by CERT/CC): Exploitation (`ssvc` E
1.1.0), Automatable (`ssvc` A 2.0.0), Technical Impact (`ssvc` TI 1.0.0) and Mission and
Well-Being Impact (`ssvc` MWI 1.0.0) decide one of the CISA Levels (`cisa` CISA 1.1.0): Track,
Track*, Attend, Act. A reviewer chooses the four decision points; the outcome is always computed
here from them, never taken from a caller. Each enum value is the decision point value's SSVC key.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Final


class Exploitation(enum.Enum):
    """The present state of exploitation of the vulnerability (`ssvc` E 1.1.0)."""

    NONE = "N"
    PUBLIC_POC = "P"
    ACTIVE = "A"


class Automatable(enum.Enum):
    """Whether an attacker can reliably automate exploitation (`ssvc` A 2.0.0)."""

    NO = "N"
    YES = "Y"


class TechnicalImpact(enum.Enum):
    """The technical impact of exploitation (`ssvc` TI 1.0.0)."""

    PARTIAL = "P"
    TOTAL = "T"


class MissionWellBeing(enum.Enum):
    """Mission and Well-Being Impact (`ssvc` MWI 1.0.0)."""

    LOW = "L"
    MEDIUM = "M"
    HIGH = "H"


class SsvcOutcome(enum.Enum):
    """CISA Levels (`cisa` CISA 1.1.0), least urgent first."""

    TRACK = "T"
    TRACK_STAR = "T*"
    ATTEND = "AT"
    ACT = "AC"


@dataclass(frozen=True)
class DecisionPoint:
    """How SSVC names a decision point: namespace, key and version."""

    namespace: str
    key: str
    version: str
    name: str


EXPLOITATION: Final = DecisionPoint("ssvc", "E", "1.1.0", "Exploitation")
AUTOMATABLE: Final = DecisionPoint("ssvc", "A", "2.0.0", "Automatable")
TECHNICAL_IMPACT: Final = DecisionPoint("ssvc", "TI", "1.0.0", "Technical Impact")
MISSION_WELL_BEING: Final = DecisionPoint("ssvc", "MWI", "1.0.0", "Mission and Well-Being Impact")
CISA_LEVELS: Final = DecisionPoint("cisa", "CISA", "1.1.0", "CISA Levels")

_T, _TS, _AT, _AC = SsvcOutcome.TRACK, SsvcOutcome.TRACK_STAR, SsvcOutcome.ATTEND, SsvcOutcome.ACT
# The tree: exploitation → automatable → technical impact → the outcome for low, medium and high
# mission and well-being impact.
_TREE: Final[
    dict[
        Exploitation,
        dict[Automatable, dict[TechnicalImpact, tuple[SsvcOutcome, SsvcOutcome, SsvcOutcome]]],
    ]
] = {
    Exploitation.NONE: {
        Automatable.NO: {TechnicalImpact.PARTIAL: (_T, _T, _T), TechnicalImpact.TOTAL: (_T, _T, _TS)},
        Automatable.YES: {TechnicalImpact.PARTIAL: (_T, _T, _AT), TechnicalImpact.TOTAL: (_T, _T, _AT)},
    },
    Exploitation.PUBLIC_POC: {
        Automatable.NO: {TechnicalImpact.PARTIAL: (_T, _T, _TS), TechnicalImpact.TOTAL: (_T, _TS, _AT)},
        Automatable.YES: {TechnicalImpact.PARTIAL: (_T, _T, _AT), TechnicalImpact.TOTAL: (_T, _TS, _AT)},
    },
    Exploitation.ACTIVE: {
        Automatable.NO: {TechnicalImpact.PARTIAL: (_T, _T, _AT), TechnicalImpact.TOTAL: (_T, _AT, _AC)},
        Automatable.YES: {TechnicalImpact.PARTIAL: (_AT, _AT, _AC), TechnicalImpact.TOTAL: (_AT, _AC, _AC)},
    },
}
_MWI_INDEX: Final = {MissionWellBeing.LOW: 0, MissionWellBeing.MEDIUM: 1, MissionWellBeing.HIGH: 2}


SsvcPoints = tuple[Exploitation | None, Automatable | None, TechnicalImpact | None, MissionWellBeing | None]
"""An SSVC decision's points as a caller sent them (None: not given), in `SSVC_FIELDS` order."""
SSVC_FIELDS: Final = ("exploitation", "automatable", "technical_impact", "mission_well_being")


def decide(
    exploitation: Exploitation,
    automatable: Automatable,
    technical_impact: TechnicalImpact,
    mission_well_being: MissionWellBeing,
) -> SsvcOutcome:
    """The CISA coordinator tree's outcome for these decision point values."""
    return _TREE[exploitation][automatable][technical_impact][_MWI_INDEX[mission_well_being]]


@dataclass(frozen=True)
class SsvcDecision:
    """A reviewer's SSVC decision: the four decision points, who chose them and when."""

    exploitation: Exploitation
    automatable: Automatable
    technical_impact: TechnicalImpact
    mission_well_being: MissionWellBeing
    decided_by: str
    """The reviewer's principal id (reviewers and admins only: `domain.sharing` drops it)."""
    decided_at: datetime

    @property
    def outcome(self) -> SsvcOutcome:
        """Computed from the decision points (`decide`)."""
        return decide(self.exploitation, self.automatable, self.technical_impact, self.mission_well_being)

    def selections(self) -> tuple[tuple[DecisionPoint, str, str], ...]:
        """Each of the four decision points with its chosen value's key and name (as SSVC names
        them); the outcome is `outcome` (`CISA_LEVELS`, named by `VALUE_NAMES`)."""
        chosen: tuple[tuple[DecisionPoint, enum.Enum], ...] = (
            (EXPLOITATION, self.exploitation),
            (AUTOMATABLE, self.automatable),
            (TECHNICAL_IMPACT, self.technical_impact),
            (MISSION_WELL_BEING, self.mission_well_being),
        )
        return tuple((point, value.value, VALUE_NAMES[value]) for point, value in chosen)


VALUE_NAMES: Final[dict[enum.Enum, str]] = {
    Exploitation.NONE: "None",
    Exploitation.PUBLIC_POC: "Public PoC",
    Exploitation.ACTIVE: "Active",
    Automatable.NO: "No",
    Automatable.YES: "Yes",
    TechnicalImpact.PARTIAL: "Partial",
    TechnicalImpact.TOTAL: "Total",
    MissionWellBeing.LOW: "Low",
    MissionWellBeing.MEDIUM: "Medium",
    MissionWellBeing.HIGH: "High",
    SsvcOutcome.TRACK: "Track",
    SsvcOutcome.TRACK_STAR: "Track*",
    SsvcOutcome.ATTEND: "Attend",
    SsvcOutcome.ACT: "Act",
}
"""Each decision point value's name as the SSVC data names it."""
