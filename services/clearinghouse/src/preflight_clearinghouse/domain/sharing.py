"""Who may see a finding, and what of it: the one sharing policy of the clearinghouse.

Every path out of the clearinghouse (gRPC gets, lists, streams, each export,
and the FindingPublished/FindingUpdated payloads) goes through `may_see` and
then one of the projections below: `visible` for reads, `export_view` (the
same view, for distribution) for exports, `audience_view` for the events,
`history_view` for each entry of a finding's history, and `comment_view` and
`attachment_view` for each of its comments and attachments. Nothing else decides.

TLP 2.0 semantics (deny by default; a finding with an empty audience reaches
nobody but reviewers, admins, its own lab and its reporter):

| effective TLP | operator may see it when …                                   | other labs |
|---------------|---------------------------------------------------------------|------------|
| CLEAR         | always (the embargo is over; the audience is non-empty)       | yes        |
| GREEN         | its organisation or one of its sectors is in the audience     | no         |
| AMBER         | its organisation or one of its sectors is in the audience     | no         |
| AMBER+STRICT  | its organisation is in the audience (sectors do not count)    | no         |
| RED           | its organisation is in the audience (sectors do not count)    | no         |

Operators and other labs see a finding only once it is published (validated)
and never when it is INVALID. The effective TLP of a CLEAR finding is AMBER
while its embargo is in force, so nothing leaves as CLEAR before the embargo
ends. Sectors outside `KNOWN_SECTORS` match nobody. Reviewers and admins see
everything; a lab sees the findings from its own submissions and those it
reported; `service` principals see none.

Participant confidentiality: the source (submission, lab, model) reaches
reviewers, admins and the submitting lab; an operator learns it only when the
submission's consent allows it; another lab never does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from preflight_common.bus import KNOWN_SECTORS

if TYPE_CHECKING:
    from preflight_clearinghouse.domain.audit import AuditEntry
    from preflight_clearinghouse.domain.findings.attachments import Attachment
    from preflight_clearinghouse.domain.findings.comments import Comment
    from preflight_clearinghouse.domain.findings.finding import Finding


class Tlp(enum.Enum):
    """Traffic Light Protocol 2.0 labels, least to most restrictive."""

    CLEAR = "CLEAR"
    GREEN = "GREEN"
    AMBER = "AMBER"
    AMBER_STRICT = "AMBER+STRICT"
    RED = "RED"


class Role(enum.Enum):
    """Roles as the sharing policy knows them (the values of `preflight_common.auth.Role`)."""

    LAB = "lab"
    REVIEWER = "reviewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    SERVICE = "service"
    # One benchmark job's token: the clearinghouse serves workers nothing; they see nothing.
    WORKER = "worker"
    # A monitoring probe: its one read, ListReports, lists nothing (it is no lab); it sees nothing.
    PROBE = "probe"


PRIVILEGED: frozenset[Role] = frozenset({Role.REVIEWER, Role.ADMIN})


@dataclass(frozen=True)
class Viewer:
    """The principal a read is for."""

    principal_id: str
    role: Role
    organisation: str
    sectors: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Audience:
    """Who may receive a finding: organisations and sectors."""

    organisations: frozenset[str] = field(default_factory=frozenset)
    sectors: frozenset[str] = field(default_factory=frozenset)

    def is_empty(self) -> bool:
        """True when the audience names no organisation and no known sector."""
        return not self.organisations and not (self.sectors & KNOWN_SECTORS)

    def key(self) -> str:
        """A canonical text form (equal audiences, equal keys)."""
        return "orgs=" + ",".join(sorted(self.organisations)) + ";sectors=" + ",".join(sorted(self.sectors))


def effective_tlp(finding: Finding, now: datetime) -> Tlp:
    """The label a finding leaves with now: CLEAR becomes AMBER while its embargo is in force."""
    if finding.tlp is Tlp.CLEAR and finding.embargo_in_force(now):
        return Tlp.AMBER
    return finding.tlp


def is_own(viewer: Viewer, finding: Finding) -> bool:
    """True when the viewer's organisation submitted the model that found it, or reported it."""
    if viewer.role not in (Role.LAB, Role.OPERATOR, Role.REVIEWER, Role.ADMIN) or not viewer.organisation:
        return False
    return viewer.organisation in (finding.source_organisation(), finding.reporter_organisation)


def _published_for_audience(finding: Finding) -> bool:
    return finding.published_at is not None and not finding.is_invalid()


def may_see(viewer: Viewer, finding: Finding, now: datetime) -> bool:
    """Whether `viewer` may receive `finding` at `now` (see the module table)."""
    if viewer.role in PRIVILEGED:
        return True
    if viewer.role not in (Role.LAB, Role.OPERATOR):
        return False
    if is_own(viewer, finding):
        return True
    if not _published_for_audience(finding) or finding.audience.is_empty():
        return False
    tlp = effective_tlp(finding, now)
    if tlp is Tlp.CLEAR:
        return True
    if viewer.role is not Role.OPERATOR:
        return False
    return reaches(tlp, finding.audience, viewer.organisation, viewer.sectors)


def reaches(tlp: Tlp, audience: Audience, organisation: str, sectors: frozenset[str]) -> bool:
    """Whether a published finding leaving with label `tlp` for `audience` reaches the operator
    of `organisation` in `sectors` (the module table; what the console previews before sharing)."""
    if audience.is_empty():
        return False
    if tlp is Tlp.CLEAR:
        return True
    named = bool(organisation) and organisation in audience.organisations
    if tlp in (Tlp.AMBER_STRICT, Tlp.RED):
        return named
    return named or bool(sectors & audience.sectors & KNOWN_SECTORS)


def may_learn_source(viewer: Viewer, finding: Finding) -> bool:
    """Whether `viewer` may learn the submission, lab and model behind a finding it may see."""
    if viewer.role in PRIVILEGED:
        return True
    if viewer.role is Role.LAB:
        return bool(viewer.organisation) and viewer.organisation == finding.source_organisation()
    return viewer.role is Role.OPERATOR and finding.source_consents()


def _with_source(finding: Finding, shown: bool) -> Finding:
    """`finding` with its source when `shown`, else without it; the credits of a lab's finding name
    its people, so they go exactly where its source goes (a finding with no lab source keeps them)."""
    if shown or finding.source is None:
        return finding
    return replace(finding, source=None, credits=())


def _without_reviewers(finding: Finding) -> Finding:
    """`finding` without the reviewer principals on its case record (its assignee and who made its
    SSVC decision): principal ids reach reviewers and admins only; the decision itself stays."""
    decision = finding.ssvc and replace(finding.ssvc, decided_by="")
    return replace(finding, assignee="", ssvc=decision)


def _for_distribution(view: Finding, now: datetime) -> Finding:
    """`view` for onward distribution: the effective TLP; no evidence, reporter, patch statuses or
    reviewer principals."""
    return replace(
        _without_reviewers(view),
        tlp=effective_tlp(view, now),
        evidence="",
        reporter_id="",
        reporter_organisation="",
        patch_statuses=(),
    )


def audience_view(finding: Finding, now: datetime) -> Finding:
    """What any member of the audience may receive: the payload of the findings events.

    The effective TLP, the source (and a lab finding's credits) only with consent (the audience is
    operators), and no evidence, reporter or patch statuses.
    """
    return _for_distribution(_with_source(finding, finding.source_consents()), now)


def project(viewer: Viewer, finding: Finding, now: datetime) -> Finding:
    """The part of `finding` that `viewer` receives. Call only when `may_see` is True."""
    if viewer.role in PRIVILEGED:
        return finding
    own = is_own(viewer, finding)
    return replace(
        _without_reviewers(_with_source(finding, may_learn_source(viewer, finding))),
        tlp=effective_tlp(finding, now),
        evidence=finding.evidence if own else "",
        reporter_id="",
        reporter_organisation=(
            finding.reporter_organisation if finding.reporter_organisation == viewer.organisation else ""
        ),
        patch_statuses=tuple(
            p
            for p in finding.patch_statuses
            if viewer.role is Role.OPERATOR and p.organisation == viewer.organisation
        ),
    )


def visible(viewer: Viewer, finding: Finding, now: datetime) -> Finding | None:
    """`project(viewer, finding)` when `may_see`, else None: the one gate every read path calls."""
    return project(viewer, finding, now) if may_see(viewer, finding, now) else None


def export_view(viewer: Viewer, finding: Finding, now: datetime) -> Finding | None:
    """What an export for `viewer` carries, or None when `viewer` may not see the finding.

    `visible`'s view for the viewer (so the source exactly when `may_learn_source`:
    never for another lab) as a document for onward distribution: the effective TLP,
    no evidence, reporter or patch statuses, whoever asks.
    """
    shown = visible(viewer, finding, now)
    return None if shown is None else _for_distribution(shown, now)


HISTORY_ACTIONS: frozenset[str] = frozenset(
    {
        "finding.transitioned",
        "finding.embargo_transitioned",
        "finding.embargo_ended",
        "finding.sharing_changed",
        "finding.assessed",
        "finding.aliases_set",
        "finding.references_set",
        "finding.patch_status",
        "finding.ssvc_decided",
    }
)
"""The audited actions a viewer who is not a reviewer or admin may see in a finding's history:
changes to what its view shows (state, embargo, label and audience, assessment and SSVC decision,
aliases and references, and its own organisation's patch status). Anything else (reports, links,
credits, assignment, the source being identified, other organisations' patch statuses) is
withheld."""

_FIELD_OF_DETAIL = {"to": "state", "embargo_to": "embargo_state", "status": "patch_status"}
_NOT_FIELDS = frozenset({"reason", "organisation", "submission_id", "job_id", "dropped"})


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of a finding's history as a viewer sees it (`actor_id` empty unless privileged)."""

    at: datetime
    action: str
    actor_role: str
    actor_id: str
    changed: tuple[str, ...]


def _actor_role(entry: AuditEntry) -> str:
    """The role behind an entry, from what only that role may do (the log keeps principal ids):
    the system's own actions, an operator's patch status, a reporter's origin, and otherwise the
    changes only reviewers and admins make ("reviewer")."""
    if entry.actor.startswith("system:"):
        return "system"
    if entry.action == "finding.patch_status":
        return Role.OPERATOR.value
    if entry.action == "finding.reported":
        origin = str(entry.details.get("origin", "")).lower()
        return "system" if origin == "benchmark" else origin
    return Role.REVIEWER.value


def history_view(viewer: Viewer, entry: AuditEntry) -> HistoryEntry | None:
    """What `viewer` sees of one audit entry about a finding it may see (`may_see`), or None.

    Reviewers and admins see every entry with the actor's principal id. Anyone else sees only the
    actions in `HISTORY_ACTIONS`, an operator's patch status only for its own organisation, and
    the actor as a role alone (no principal id, no organisation).
    """
    changed = tuple(
        sorted(
            {_FIELD_OF_DETAIL.get(key, key) for key in entry.details if key not in _NOT_FIELDS}
            | ({"source"} if entry.action == "finding.source_identified" else set())
        )
    )
    shown = HistoryEntry(entry.at, entry.action, _actor_role(entry), entry.actor, changed)
    if viewer.role in PRIVILEGED:
        return shown
    if entry.action not in HISTORY_ACTIONS:
        return None
    if entry.action == "finding.patch_status" and not (
        viewer.role is Role.OPERATOR
        and bool(viewer.organisation)
        and entry.details.get("organisation") == viewer.organisation
    ):
        return None
    return replace(shown, actor_id="")


def _authored_view(
    viewer: Viewer, finding: Finding, item: Comment | Attachment, now: datetime
) -> tuple[str, str] | None:
    """The author's principal id and organisation `viewer` sees on a comment or attachment of
    `finding`, or None when it may not read it (the rule `comment_view` states)."""
    if not may_see(viewer, finding, now):
        return None
    if viewer.role in PRIVILEGED:
        return item.author_id, item.author_organisation
    own = bool(viewer.principal_id) and item.author_id == viewer.principal_id
    if item.internal and not own:
        return None
    same_organisation = bool(viewer.organisation) and item.author_organisation == viewer.organisation
    return (item.author_id if own else "", item.author_organisation if same_organisation else "")


def comment_view(viewer: Viewer, finding: Finding, comment: Comment, now: datetime) -> Comment | None:
    """What `viewer` sees of a comment on `finding`, or None (deny by default).

    Nobody who may not see the finding (`may_see`) reads any of its comments. Reviewers and admins
    read every comment as it is. Anyone else reads the comments shared with the finding's audience
    and its own internal ones, with the author's principal id only on its own comments and the
    author's organisation only when it is the viewer's own: the role alone says who wrote it.
    """
    author = _authored_view(viewer, finding, comment, now)
    if author is None:
        return None
    return replace(comment, author_id=author[0], author_organisation=author[1])


def attachment_view(
    viewer: Viewer, finding: Finding, attachment: Attachment, now: datetime
) -> Attachment | None:
    """What `viewer` sees of an attachment of `finding` (its metadata; who may see it may fetch its
    bytes), or None: exactly the rule of `comment_view`, an attachment's visibility for a comment's.
    """
    author = _authored_view(viewer, finding, attachment, now)
    if author is None:
        return None
    return replace(attachment, author_id=author[0], author_organisation=author[1])


def may_read_report(viewer: Viewer, submission_organisation: str) -> bool:
    """Reviewers and admins read every report; a lab reads the reports of its own submissions."""
    if viewer.role in PRIVILEGED:
        return True
    return (
        viewer.role is Role.LAB
        and bool(viewer.organisation)
        and viewer.organisation == submission_organisation
    )
