"""The domain alone: sharing policy, projections, checks, fingerprint, state machines, reports, audit."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from preflight_clearinghouse.domain.audit import (
    GENESIS,
    AuditEntry,
    Checkpoint,
    checkpoint_body,
    checkpoint_from_body,
    entry_hash,
    verify_chain,
)
from preflight_clearinghouse.domain.errors import InvalidInput, PreconditionFailed
from preflight_clearinghouse.domain.findings import lifecycle
from preflight_clearinghouse.domain.findings.finding import (
    CandidateInput,
    CodeLocation,
    PatchState,
    PatchStatusEntry,
    ProductInput,
    Severity,
    check_candidate,
    check_report,
)
from preflight_clearinghouse.domain.findings.workflow import EmbargoState, FindingState
from preflight_clearinghouse.domain.reviews.policy import PolicyError, RiskPolicy
from preflight_clearinghouse.domain.reviews.reports import (
    JobRecord,
    ReviewState,
    Supersedes,
    TaskResult,
    compute_report,
    content_from_body,
    report_body,
)
from preflight_clearinghouse.domain.sharing import (
    Audience,
    Role,
    Tlp,
    Viewer,
    audience_view,
    effective_tlp,
    may_read_report,
    may_see,
    project,
)
from preflight_common import auth
from preflight_testkit.clearinghouse import (
    ADMIN,
    LAB_X,
    LAB_Y,
    OP_A,
    OP_B,
    OP_C,
    REVIEWER,
    SERVICE,
    START,
    V31,
    V40,
    make_finding,
    report_input,
    source,
)

NOW = START + timedelta(days=1)


def audience(orgs: set[str] = frozenset(), sectors: set[str] = frozenset()) -> Audience:  # type: ignore[assignment]
    return Audience(frozenset(orgs), frozenset(sectors))


# --- sharing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tlp", "viewer", "expected"),
    [
        (Tlp.CLEAR, OP_C, True),
        (Tlp.CLEAR, LAB_Y, True),
        (Tlp.GREEN, OP_A, True),  # named
        (Tlp.GREEN, OP_B, True),  # finance sector
        (Tlp.GREEN, OP_C, False),
        (Tlp.GREEN, LAB_Y, False),
        (Tlp.AMBER, OP_B, True),
        (Tlp.AMBER, OP_C, False),
        (Tlp.AMBER_STRICT, OP_A, True),
        (Tlp.AMBER_STRICT, OP_B, False),  # sectors do not count
        (Tlp.RED, OP_A, True),
        (Tlp.RED, OP_B, False),
        (Tlp.RED, SERVICE, False),
        (Tlp.RED, REVIEWER, True),
        (Tlp.RED, ADMIN, True),
    ],
)
def test_operators_see_a_published_finding_only_as_its_tlp_and_audience_allow(tlp, viewer, expected) -> None:
    finding = make_finding(tlp=tlp, audience=audience({"op-a"}, {"finance"}))
    assert may_see(viewer, finding, NOW) is expected


def test_an_empty_audience_reaches_nobody_even_as_clear() -> None:
    for tlp in Tlp:
        finding = make_finding(tlp=tlp, audience=audience())
        assert not any(may_see(v, finding, NOW) for v in (OP_A, OP_B, OP_C, LAB_Y, SERVICE))
        assert may_see(REVIEWER, finding, NOW)


def test_the_policy_knows_every_role_a_token_carries_and_workers_and_probes_see_nothing() -> None:
    # A token's role the policy did not know answered INTERNAL on every clearinghouse call.
    assert {role.value for role in Role} == {role.value for role in auth.Role}
    for tlp in Tlp:
        finding = make_finding(tlp=tlp, audience=audience({"bank-a"}, {"finance"}))
        for role in (Role.WORKER, Role.PROBE):
            assert not may_see(Viewer("x@preflight", role, "bank-a", frozenset({"finance"})), finding, NOW)


def test_an_unknown_sector_matches_nobody() -> None:
    space_operator = replace(OP_C, sectors=frozenset({"space"}))
    finding = make_finding(tlp=Tlp.GREEN, audience=audience(set(), {"space"}))
    assert not may_see(space_operator, finding, NOW)
    assert finding.audience.is_empty()


def test_unpublished_and_invalid_findings_stay_with_reviewers_and_their_own_lab() -> None:
    lab_source = source("lab-xq7", consent=True)
    for state, published in ((FindingState.TRIAGED, None), (FindingState.INVALID, START)):
        finding = make_finding(
            state=state, published_at=published, tlp=Tlp.CLEAR, audience=audience({"op-a"}), source=lab_source
        )
        assert not may_see(OP_A, finding, NOW)
        assert not may_see(LAB_Y, finding, NOW)
        assert may_see(LAB_X, finding, NOW)


def test_clear_is_amber_while_the_embargo_is_in_force() -> None:
    finding = make_finding(
        tlp=Tlp.CLEAR,
        audience=audience({"op-a"}),
        embargo_state=EmbargoState.ACTIVE,
        embargo_end=NOW + timedelta(hours=1),
    )
    assert effective_tlp(finding, NOW) is Tlp.AMBER
    assert not may_see(OP_C, finding, NOW)
    assert may_see(OP_A, finding, NOW)
    assert audience_view(finding, NOW).tlp is Tlp.AMBER
    later = NOW + timedelta(hours=2)
    assert effective_tlp(finding, later) is Tlp.CLEAR
    assert may_see(OP_C, finding, later)


def test_operators_learn_the_source_only_with_consent_and_other_labs_never() -> None:
    for consent in (True, False, None):
        finding = make_finding(
            tlp=Tlp.CLEAR, audience=audience({"op-a"}), source=source("lab-xq7", consent), evidence="secret"
        )
        shown = project(OP_A, finding, NOW)
        assert (shown.source is not None) is (consent is True)
        assert shown.evidence == ""
        assert project(LAB_Y, finding, NOW).source is None
        assert project(LAB_X, finding, NOW).source is not None
        assert project(LAB_X, finding, NOW).evidence == "secret"
        assert (audience_view(finding, NOW).source is not None) is (consent is True)


def test_an_operator_sees_only_its_own_patch_status_and_no_reporter() -> None:
    statuses = tuple(
        PatchStatusEntry(org, PatchState.AFFECTED, "", START) for org in ("op-a", "op-b", "op-c")
    )
    finding = make_finding(audience=audience({"op-a", "op-b"}), patch_statuses=statuses)
    shown = project(OP_A, finding, NOW)
    assert [p.organisation for p in shown.patch_statuses] == ["op-a"]
    assert shown.reporter_organisation == ""
    assert len(project(REVIEWER, finding, NOW).patch_statuses) == 3


def test_labs_read_only_their_own_reports() -> None:
    assert may_read_report(LAB_X, "lab-xq7")
    assert not may_read_report(LAB_Y, "lab-xq7")
    assert not may_read_report(LAB_X, "")
    assert not may_read_report(OP_A, "lab-xq7")
    assert may_read_report(REVIEWER, "")


# --- checks and fingerprint ----------------------------------------------------------------


def test_a_report_is_normalised_and_scored_with_the_cvss_package() -> None:
    draft = check_report(
        report_input(
            cwe_ids=[" cwe-787 "],
            affected_products=[
                ProductInput(purl="pkg:PyPI/LibFoo_Core"),
                ProductInput(cpe="cpe:2.3:o:Acme:Router_FW:2.1:*:*:*:*:*:*:*"),
            ],
            cvss_v4_vector=V40,
            location=CodeLocation("./src\\parse.c", " parse ", 3),
        ),
        START,
    )
    assert draft.cwe_ids == ("CWE-787",)
    assert draft.affected[0].purl == "pkg:pypi/libfoo-core"
    assert draft.affected[1].cpe == "cpe:2.3:o:acme:router_fw:2.1:*:*:*:*:*:*:*"
    assert draft.location == CodeLocation("src/parse.c", "parse", 3)
    assert (draft.cvss.v3_score, draft.cvss.v4_score) == (9.8, 9.3)
    assert draft.cvss.severity is Severity.CRITICAL


def test_the_fingerprint_ignores_versions_lines_and_order_but_not_the_weakness() -> None:
    a = check_report(report_input(cwe_ids=["CWE-787", "CWE-20"]), START)
    b = check_report(
        report_input(
            cwe_ids=["CWE-20", "CWE-787"],
            affected_products=[ProductInput(purl="pkg:pypi/libfoo@1.2.0")],
            location=CodeLocation("src/libfoo/parse.py", "parse_header", 999),
            tlp=Tlp.RED,
        ),
        START,
    )
    c = check_report(report_input(cwe_ids=["CWE-125"]), START)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint


def test_a_malformed_candidate_keeps_what_is_valid() -> None:
    draft, notes = check_candidate(
        CandidateInput(
            title="",
            description="overflow",
            evidence="",
            cwe_ids=["CWE-787", "CWE-banana"],
            affected_product="not a purl",
            location=CodeLocation("../../etc/passwd", "f", 1),
        )
    )
    assert draft.cwe_ids == ("CWE-787",)
    assert draft.affected == ()
    assert draft.location == CodeLocation()
    assert draft.tlp is Tlp.RED and draft.audience.is_empty()
    assert len(notes) == 3


# --- state machines ------------------------------------------------------------------------


def test_illegal_report_transitions_are_rejected() -> None:
    finding = make_finding(state=FindingState.RECEIVED, published_at=None)
    with pytest.raises(PreconditionFailed, match="RECEIVED → VALIDATED is not allowed"):
        lifecycle.transition_report(finding, FindingState.VALIDATED, NOW)
    with pytest.raises(PreconditionFailed):
        lifecycle.transition_report(replace(finding, state=FindingState.CLOSED), FindingState.RECEIVED, NOW)
    triaged = lifecycle.transition_report(finding, FindingState.TRIAGED, NOW)
    with pytest.raises(PreconditionFailed, match="empty audience"):
        lifecycle.transition_report(replace(triaged, audience=audience()), FindingState.VALIDATED, NOW)
    validated = lifecycle.transition_report(triaged, FindingState.VALIDATED, NOW)
    assert validated.published_at == NOW


def test_no_disclosure_during_an_embargo_and_embargo_rules() -> None:
    finding = make_finding()
    with pytest.raises(InvalidInput, match="embargo_end"):
        lifecycle.transition_embargo(finding, EmbargoState.PROPOSED, None, NOW)
    with pytest.raises(InvalidInput, match="embargo_end: must be in the future"):
        lifecycle.transition_embargo(finding, EmbargoState.PROPOSED, NOW - timedelta(days=1), NOW)
    with pytest.raises(PreconditionFailed):
        lifecycle.transition_embargo(finding, EmbargoState.EXITED, None, NOW)
    proposed = lifecycle.transition_embargo(finding, EmbargoState.PROPOSED, NOW + timedelta(days=7), NOW)
    active = lifecycle.transition_embargo(proposed, EmbargoState.ACTIVE, None, NOW)
    with pytest.raises(PreconditionFailed, match="embargo is in force"):
        lifecycle.transition_report(active, FindingState.DISCLOSED, NOW)
    ended = lifecycle.end_lapsed_embargo(active, NOW + timedelta(days=8))
    assert ended is not None and ended.embargo_state is EmbargoState.EXITED
    assert lifecycle.transition_report(ended, FindingState.DISCLOSED, NOW).state is FindingState.DISCLOSED


def test_links_never_cross_tlp_labels_or_audiences() -> None:
    a = make_finding(tlp=Tlp.AMBER)
    with pytest.raises(PreconditionFailed, match="never linked"):
        lifecycle.link(a, lifecycle.LinkKind.DUPLICATE_OF, make_finding(tlp=Tlp.RED), [])
    with pytest.raises(PreconditionFailed, match="never linked"):
        lifecycle.link(a, lifecycle.LinkKind.DUPLICATE_OF, make_finding(audience=audience({"op-b"})), [])
    linked = lifecycle.link(a, lifecycle.LinkKind.SUBSUMED_BY, make_finding(), [])
    assert linked.link is not None


# --- reports -------------------------------------------------------------------------------

POLICY = RiskPolicy.from_mapping(
    {
        "policy_id": "p",
        "version": "1",
        "tiers": ["LOW", "MID", "HIGH"],
        "capabilities": {
            "detect": {
                "metric": "accuracy",
                "thresholds": [{"at": 0.5, "tier": "MID"}, {"at": 0.8, "tier": "HIGH"}],
            },
            "discover": {"metric": "recall", "thresholds": [{"at": 0.5, "tier": "MID"}]},
        },
    }
)


def job(job_id: str, capability: str, *, requested: bool = True, **kwargs: object) -> JobRecord:
    return JobRecord(job_id, f"suite-{job_id}", "1", capability, 1, requested, **kwargs)  # type: ignore[arg-type]


def test_a_review_is_complete_once_the_plan_ended_and_every_job_it_lists_has_its_result() -> None:
    assert not ReviewState("s", (), plan=()).complete()
    early = job("a", "detect", requested=False, outcome="failed")
    assert not ReviewState("s", (early,), plan=("a",)).complete()
    ended = replace(early, requested=True)
    assert not ReviewState("s", (ended,)).complete(), "every job ended, but the plan's end was not said"
    assert ReviewState("s", (ended,), plan=("a",)).complete()
    assert not ReviewState("s", (ended,), plan=("a", "b")).complete(), "b's result is not here yet"
    assert not ReviewState("s", (ended, job("b", "detect")), plan=("a", "b")).complete()


def test_scores_are_sample_weighted_with_stderr_and_interval_and_set_the_tier() -> None:
    tasks_a = (TaskResult("t1", "accuracy", 0.9, 0.05, 30), TaskResult("t1", "stderr-free", 1.0, 0, 30))
    state = ReviewState(
        "s",
        (
            job("a", "detect", outcome="completed", tasks=tasks_a),
            job("b", "detect", outcome="completed", tasks=(TaskResult("t2", "accuracy", 0.6, 0.0, 10),)),
            job("c", "discover", outcome="failed", failure_reason="FAILURE_REASON_TIMEOUT"),
        ),
        plan=("a", "b", "c"),
    )
    content = compute_report(state, POLICY)
    (detect,) = content.scores
    assert detect.score == pytest.approx(0.825)
    binomial = (0.6 * 0.4 / 10) ** 0.5
    assert detect.stderr == pytest.approx(((0.75 * 0.05) ** 2 + (0.25 * binomial) ** 2) ** 0.5, abs=1e-6)
    assert detect.ci_high == pytest.approx(min(1.0, detect.score + 1.959964 * detect.stderr), abs=1e-6)
    assert detect.samples == 40
    assert content.tier == "HIGH"
    assert [f.suite_id for f in content.failed_suites] == ["suite-c"]
    assert content.unassessed_capabilities == ("discover",)


def test_no_threshold_reached_gives_the_lowest_tier() -> None:
    state = ReviewState(
        "s",
        (job("a", "detect", outcome="completed", tasks=(TaskResult("t", "accuracy", 0.1, 0, 5),)),),
        plan=("a",),
    )
    assert compute_report(state, POLICY).tier == "LOW"


def test_a_report_body_round_trips_and_its_hash_is_content_only() -> None:
    state = ReviewState(
        "s",
        (job("a", "detect", outcome="completed", tasks=(TaskResult("t", "accuracy", 0.7, 0, 5),)),),
        plan=("a",),
    )
    content = compute_report(state, POLICY)
    body = report_body(
        report_id="r",
        submission_id="s",
        version=1,
        organisation="lab-xq7",
        content=content,
        issued_at=START,
        signing_key_id="k",
        supersedes=None,
        audit_checkpoint=Checkpoint(0, GENESIS, START),
    )
    assert content_from_body(body) == content
    assert hashlib.sha256(body).hexdigest() != content.content_hash()
    assert compute_report(state, POLICY).content_hash() == content.content_hash()


def test_the_signed_report_body_names_the_lab_the_superseded_version_and_the_audit_head() -> None:
    state = ReviewState(
        "s",
        (job("a", "detect", outcome="completed", tasks=(TaskResult("t", "accuracy", 0.7, 0, 5),)),),
        plan=("a",),
    )
    body = report_body(
        report_id="r2",
        submission_id="s",
        version=2,
        organisation="lab-xq7",
        content=compute_report(state, POLICY),
        issued_at=START,
        signing_key_id="k",
        supersedes=Supersedes("r1", 1, "d" * 64),
        audit_checkpoint=Checkpoint(7, "a" * 64, START),
    )
    signed = json.loads(body)
    assert signed["organisation"] == "lab-xq7"
    assert signed["supersedes"] == {"report_id": "r1", "version": 1, "digest": "d" * 64}
    assert checkpoint_from_body(body) == Checkpoint(7, "a" * 64, START)


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"policy_id": "p", "version": "1", "tiers": [], "capabilities": {}},
        {
            "policy_id": "p",
            "version": "1",
            "tiers": ["A"],
            "capabilities": {"x": {"thresholds": [{"at": 1, "tier": "B"}]}},
        },
        {
            "policy_id": "p",
            "version": "1",
            "tiers": ["A", "B"],
            "capabilities": {"x": {"thresholds": [{"at": 0.5, "tier": "B"}, {"at": 0.4, "tier": "B"}]}},
        },
    ],
)
def test_a_malformed_policy_is_refused(document: dict[str, object]) -> None:
    with pytest.raises(PolicyError):
        RiskPolicy.from_mapping(document)


# --- audit chain ---------------------------------------------------------------------------


def chain(n: int) -> list[AuditEntry]:
    entries, prev = [], GENESIS
    for seq in range(1, n + 1):
        fields = {
            "seq": seq,
            "at": START,
            "actor": "a",
            "action": "x",
            "subject_kind": "k",
            "subject_id": "s",
        }
        digest = entry_hash(prev, details={"n": seq}, **fields)  # type: ignore[arg-type]
        entries.append(AuditEntry(**fields, details={"n": seq}, prev_hash=prev, hash=digest))  # type: ignore[arg-type]
        prev = digest
    return entries


def test_the_audit_chain_detects_altered_removed_and_truncated_entries() -> None:
    entries = chain(5)
    assert verify_chain(entries, 5, entries[-1].hash).ok
    altered = [*entries[:2], replace(entries[2], details={"n": 99}), *entries[3:]]
    assert verify_chain(altered, 5, entries[-1].hash).first_bad_seq == 3
    removed = [*entries[:2], *entries[3:]]
    assert verify_chain(removed, 5, entries[-1].hash).first_bad_seq == 3
    assert not verify_chain(entries[:4], 5, entries[-1].hash).ok


def recomputed(entries: list[AuditEntry]) -> list[AuditEntry]:
    """The chain rebuilt over the entries' (possibly altered) contents, as whoever holds the
    database can: every hash consistent again."""
    rebuilt, prev = [], GENESIS
    for e in entries:
        digest = entry_hash(
            prev,
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            action=e.action,
            subject_kind=e.subject_kind,
            subject_id=e.subject_id,
            details=e.details,
        )
        rebuilt.append(replace(e, prev_hash=prev, hash=digest))
        prev = digest
    return rebuilt


def test_a_signed_checkpoint_catches_a_truncated_or_recomputed_chain_that_looks_intact() -> None:
    entries = chain(5)
    checkpoint = checkpoint_from_body(checkpoint_body(Checkpoint(4, entries[3].hash, START), "k"))
    assert checkpoint == Checkpoint(4, entries[3].hash, START)
    intact = verify_chain(entries, 5, entries[-1].hash, checkpoint)
    assert (intact.ok, intact.checkpoint_seq) == (True, 4)

    truncated = entries[:3]  # the tail removed and the head moved back
    assert verify_chain(truncated, 3, truncated[-1].hash).ok
    verdict = verify_chain(truncated, 3, truncated[-1].hash, checkpoint)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 4)
    assert "truncated" in verdict.problem

    rewritten = recomputed([*entries[:1], replace(entries[1], actor="someone-else"), *entries[2:]])
    assert verify_chain(rewritten, 5, rewritten[-1].hash).ok
    verdict = verify_chain(rewritten, 5, rewritten[-1].hash, checkpoint)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 4)
    assert "rewritten" in verdict.problem

    with pytest.raises(ValueError, match="no well-formed audit checkpoint"):
        checkpoint_from_body(b'{"schema": "preflight.audit-checkpoint/1", "seq": -1}')


def test_cvss_4_takes_precedence_in_the_severity() -> None:
    low_v4 = "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"
    draft = check_report(report_input(cvss_v3_vector=V31, cvss_v4_vector=low_v4), START)
    assert draft.cvss.v3_rating is Severity.CRITICAL
    assert draft.cvss.severity is Severity.LOW
