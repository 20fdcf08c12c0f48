"""Changes to a finding: transitions, assessment, sharing and links, with their rules.

Each function returns the changed finding (identity, revision and update time
are the caller's) or raises PreconditionFailed / InvalidInput. None of them
touches storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from preflight_clearinghouse.domain.errors import Collector, FieldViolation, InvalidInput, PreconditionFailed
from preflight_clearinghouse.domain.findings.finding import (
    Cvss,
    Finding,
    FindingLink,
    LinkKind,
    check_audience,
    check_cwe_ids,
    check_future,
    fingerprint,
    score_cvss,
)
from preflight_clearinghouse.domain.findings.workflow import (
    EMBARGO_TRANSITIONS,
    REPORT_TRANSITIONS,
    EmbargoState,
    FindingState,
    embargo_transition_allowed,
    report_transition_allowed,
)
from preflight_clearinghouse.domain.sharing import Tlp

NO_EMBARGO_AFTER: frozenset[FindingState] = frozenset(
    {FindingState.INVALID, FindingState.DISCLOSED, FindingState.CLOSED}
)


def _allowed(options: frozenset[FindingState] | frozenset[EmbargoState]) -> str:
    return ", ".join(sorted(o.value for o in options)) or "none (final state)"


def transition_report(finding: Finding, target: FindingState, now: datetime) -> Finding:
    """Move the report machine; VALIDATED publishes the finding to its audience."""
    if not report_transition_allowed(finding.state, target):
        raise PreconditionFailed(
            f"{finding.state.value} → {target.value} is not allowed; "
            f"from {finding.state.value}: {_allowed(REPORT_TRANSITIONS[finding.state])}"
        )
    if target is FindingState.VALIDATED and finding.audience.is_empty():
        raise PreconditionFailed("set an audience before validating: an empty audience reaches nobody")
    if target is FindingState.DISCLOSED and finding.embargo_in_force(now):
        raise PreconditionFailed("cannot disclose while the embargo is in force")
    published_at = finding.published_at or (now if target is FindingState.VALIDATED else None)
    return replace(finding, state=target, published_at=published_at)


def transition_embargo(
    finding: Finding, target: EmbargoState, embargo_end: datetime | None, now: datetime
) -> Finding:
    """Move the embargo machine. Proposing or revising takes an end instant in the future."""
    current = finding.embargo_state
    if not embargo_transition_allowed(current, target):
        raise PreconditionFailed(
            f"embargo {current.value} → {target.value} is not allowed; "
            f"from {current.value}: {_allowed(EMBARGO_TRANSITIONS[current])}"
        )
    if target is EmbargoState.PROPOSED and finding.state in NO_EMBARGO_AFTER:
        raise PreconditionFailed(f"no embargo for a {finding.state.value} finding")
    end = finding.embargo_end
    if target is EmbargoState.PROPOSED or (target is EmbargoState.ACTIVE and current is EmbargoState.ACTIVE):
        if embargo_end is None:
            raise InvalidInput([FieldViolation("embargo_end", "required to propose or revise an embargo")])
        end = embargo_end
    elif embargo_end is not None and target is EmbargoState.ACTIVE:
        end = embargo_end
    if target in (EmbargoState.PROPOSED, EmbargoState.ACTIVE):
        errors = Collector()
        check_future(end, "embargo_end", now, errors)
        errors.raise_if_any()
    if target is EmbargoState.NONE:
        end = None
    return replace(finding, embargo_state=target, embargo_end=end)


def end_lapsed_embargo(finding: Finding, now: datetime) -> Finding | None:
    """An embargo whose end has passed: ACTIVE → EXITED, a lapsed proposal → NONE; None if nothing lapsed."""
    if finding.embargo_end is None or finding.embargo_end > now:
        return None
    if finding.embargo_state is EmbargoState.ACTIVE:
        return replace(finding, embargo_state=EmbargoState.EXITED)
    if finding.embargo_state is EmbargoState.PROPOSED:
        return replace(finding, embargo_state=EmbargoState.NONE, embargo_end=None)
    return None


def assess(
    finding: Finding,
    *,
    cvss_v3_vector: str,
    cvss_v4_vector: str,
    cwe_ids: Sequence[str],
    remediation_due: datetime | None,
    now: datetime,
) -> Finding:
    """Replace the given parts of the assessment (empty arguments keep the current value)."""
    errors = Collector()
    scored = score_cvss(cvss_v3_vector, cvss_v4_vector, errors)
    cwes = check_cwe_ids(cwe_ids, errors) if cwe_ids else finding.cwe_ids
    check_future(remediation_due, "remediation_due", now, errors)
    if not (cvss_v3_vector.strip() or cvss_v4_vector.strip() or cwe_ids or remediation_due):
        errors.add("finding_id", "nothing to change: give a CVSS vector, CWE ids or a remediation date")
    errors.raise_if_any()
    cvss = Cvss(
        v3_vector=scored.v3_vector or finding.cvss.v3_vector,
        v3_score=scored.v3_score if scored.v3_vector else finding.cvss.v3_score,
        v3_rating=scored.v3_rating if scored.v3_vector else finding.cvss.v3_rating,
        v4_vector=scored.v4_vector or finding.cvss.v4_vector,
        v4_score=scored.v4_score if scored.v4_vector else finding.cvss.v4_score,
        v4_rating=scored.v4_rating if scored.v4_vector else finding.cvss.v4_rating,
    )
    return replace(
        finding,
        cvss=cvss,
        cwe_ids=cwes,
        fingerprint=fingerprint(finding.affected, finding.location, cwes),
        remediation_due=remediation_due or finding.remediation_due,
    )


def reshare(
    finding: Finding, tlp: Tlp | None, organisations: Sequence[str], sectors: Sequence[str]
) -> Finding:
    """A new TLP label and audience. A published finding must keep a non-empty audience."""
    errors = Collector()
    if tlp is None:
        errors.add("tlp", "a TLP label is required (CLEAR, GREEN, AMBER, AMBER_STRICT or RED)")
    audience = check_audience(organisations, sectors, errors)
    errors.raise_if_any()
    assert tlp is not None
    if finding.published_at is not None and audience.is_empty():
        raise PreconditionFailed("a published finding must keep a non-empty audience")
    return replace(finding, tlp=tlp, audience=audience)


def same_sharing(a: Finding, b: Finding) -> bool:
    """True when two findings have the same TLP label and audience (the only ones that may be linked)."""
    return a.tlp is b.tlp and a.audience == b.audience


def link(finding: Finding, kind: LinkKind, target: Finding, linked_to_finding: Sequence[str]) -> Finding:
    """Link `finding` to `target`. Links are one level deep and never cross TLP labels or audiences."""
    if target.finding_id == finding.finding_id:
        raise InvalidInput([FieldViolation("target_finding_id", "a finding cannot be linked to itself")])
    if target.link is not None:
        raise PreconditionFailed(
            f"the target is itself linked to {target.link.target_finding_id}; link to that finding instead"
        )
    if linked_to_finding:
        raise PreconditionFailed("other findings are linked to this one; link them to the target first")
    if not same_sharing(finding, target):
        raise PreconditionFailed("findings with different TLP labels or audiences are never linked")
    return replace(finding, link=FindingLink(kind, target.finding_id))
