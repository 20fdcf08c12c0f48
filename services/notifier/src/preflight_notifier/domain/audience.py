"""Who may see an alert. One rule for every path out: alert topics, webhook, e-mail, gRPC.

It follows the clearinghouse's sharing policy, and is never wider:

* Reviewers see every alert.
* A lab sees the review alerts of its own organisation's submissions, and no
  finding alert (the notice does not say which lab found what).
* An operator sees a finding alert when its organisation is named in the
  audience, or when one of its sectors is and the TLP allows sharing beyond
  named organisations (CLEAR, GREEN, AMBER). AMBER+STRICT and RED (and an
  unspecified TLP, treated as RED) reach named organisations only.
* Anyone else (admin, service, unknown roles) sees nothing. An empty audience
  reaches nobody but reviewers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from preflight_notifier.domain.model import AlertKind, Audience, Tlp

_SECTOR_WIDE = frozenset({Tlp.CLEAR, Tlp.GREEN, Tlp.AMBER})


class ViewerRole(enum.StrEnum):
    LAB = "lab"
    REVIEWER = "reviewer"
    OPERATOR = "operator"
    OTHER = "other"


@dataclass(frozen=True)
class Viewer:
    """Someone alerts may reach: a caller of the API or the party a receiver stands for."""

    role: ViewerRole
    organisation: str = ""
    sectors: frozenset[str] = frozenset()


def may_see(viewer: Viewer, kind: AlertKind, audience: Audience, tlp: Tlp) -> bool:
    """Whether `viewer` may receive an alert of `kind` with this audience and TLP (module rules)."""
    if viewer.role is ViewerRole.REVIEWER:
        return audience.reviewers or not kind.is_review
    if not viewer.organisation:
        return False
    if kind.is_review:
        return viewer.role is ViewerRole.LAB and viewer.organisation == audience.lab_organisation
    if viewer.role is not ViewerRole.OPERATOR:
        return False
    if viewer.organisation in audience.organisations:
        return True
    return not viewer.sectors.isdisjoint(sector_audience(audience, tlp))


def sector_audience(audience: Audience, tlp: Tlp) -> frozenset[str]:
    """The sectors a finding alert may reach as sectors: its audience's, only when the TLP allows
    sharing beyond named organisations (CLEAR, GREEN, AMBER); none for AMBER+STRICT, RED, unspecified."""
    return audience.sectors if tlp in _SECTOR_WIDE else frozenset()


def audience_seen_by(viewer: Viewer, audience: Audience, tlp: Tlp) -> Audience:
    """What `viewer` may learn of an alert's audience (call only when it may see the alert).

    An operator learns only how the alert reaches it — its own organisation if named, those of
    its sectors the alert reaches — never the other recipients, the lab or its contacts.
    Reviewers and the lab of a review alert learn all of it.
    """
    if viewer.role is not ViewerRole.OPERATOR:
        return audience
    return Audience(
        organisations=audience.organisations & {viewer.organisation},
        sectors=sector_audience(audience, tlp) & viewer.sectors,
        reviewers=False,
    )


def audience_tokens(kind: AlertKind, audience: Audience, tlp: Tlp) -> tuple[str, ...]:
    """The audience as filter tokens, already narrowed by the TLP.

    `org:<id>` and `sector:<name>` (finding alerts; sectors only when the TLP
    allows), `lab:<organisation>` (review alerts), `reviewers`. A subscriber
    whose `org:`/`sector:`/`lab:` token is absent must drop the alert.
    """
    tokens: list[str] = []
    if kind.is_review:
        if audience.lab_organisation:
            tokens.append(f"lab:{audience.lab_organisation}")
    else:
        tokens += [f"org:{o}" for o in sorted(audience.organisations)]
        tokens += [f"sector:{s}" for s in sorted(sector_audience(audience, tlp))]
    if audience.reviewers or not kind.is_review:
        tokens.append("reviewers")
    return tuple(tokens)
