"""A finding's references and credits: set by reviewers, shown through the one sharing policy
(credits of a lab's finding exactly where its source goes), audit-logged, and exported in every
format (validated)."""

from __future__ import annotations

import json

import grpc
import pytest
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import events_pb2 as ch_events
from preflight_clearinghouse.adapters import tables
from preflight_clearinghouse.bootstrap import Components
from preflight_clearinghouse.domain.checks import MAX_REASON
from preflight_clearinghouse.domain.errors import InvalidInput, PermissionDenied
from preflight_clearinghouse.domain.findings.case_record import (
    MAX_URL,
    Credit,
    CreditType,
    Reference,
    ReferenceType,
)
from preflight_clearinghouse.domain.sharing import Audience, Tlp, audience_view, export_view, project
from preflight_common.fields import string_violations
from preflight_testkit.clearinghouse import (
    LAB_X,
    LAB_Y,
    OP_A,
    OP_B,
    REVIEWER,
    START,
    Api,
    make_finding,
    report_input,
    source,
)
from preflight_testkit.rpc import field_violations
from sqlalchemy import select

from .test_clearinghouse_export_standards import REALISTIC, check_every_format, export

ADVISORY = pb.FindingReference(type=pb.REFERENCE_TYPE_ADVISORY, url="https://example.org/advisories/1")
PATCH = pb.FindingReference(type=pb.REFERENCE_TYPE_PATCH, url="https://github.com/acme/x/commit/abc123")
FINDER = pb.FindingCredit(name="Ada Researcher", type=pb.CREDIT_TYPE_FINDER)
FIXER = pb.FindingCredit(name="Acme PSIRT", type=pb.CREDIT_TYPE_REMEDIATION_DEVELOPER)
NOW = START
TO_OP_A = Audience(frozenset({"op-a"}), frozenset())


def test_credits_of_a_lab_finding_go_exactly_where_its_source_goes() -> None:
    credits = (Credit("Ada Researcher", CreditType.FINDER),)
    for consent in (True, False, None):
        finding = make_finding(
            tlp=Tlp.CLEAR, audience=TO_OP_A, source=source("lab-xq7", consent), credits=credits
        )
        assert (project(OP_A, finding, NOW).credits == credits) is (consent is True)
        assert (audience_view(finding, NOW).credits == credits) is (consent is True)
        shown = export_view(OP_A, finding, NOW)
        assert shown is not None and (shown.credits == credits) is (consent is True)
        assert project(LAB_Y, finding, NOW).credits == ()
        assert project(LAB_X, finding, NOW).credits == credits
        assert project(REVIEWER, finding, NOW).credits == credits
    # A finding no lab's submission produced has no consent to honour: its credits go with it.
    reported = make_finding(tlp=Tlp.CLEAR, audience=TO_OP_A, credits=credits)
    assert project(OP_B, reported, NOW).credits == credits


def test_references_and_credits_are_kept_checked_and_audit_logged(components: Components) -> None:
    finding, _ = components.registry.report(REVIEWER, report_input())
    references = [
        (ReferenceType.ADVISORY, "https://example.org/a"),
        (ReferenceType.WEB, "http://example.org/b"),
    ]
    changed = components.registry.set_references(REVIEWER, finding.finding_id, references, "published", 0)
    assert changed.references == tuple(Reference(t, u) for t, u in references)
    credited = components.registry.set_credits(
        REVIEWER, finding.finding_id, [(" Ada Researcher ", CreditType.FINDER)], "thanks", 0
    )
    assert credited.credits == (Credit("Ada Researcher", CreditType.FINDER),)
    stored = components.registry.get(REVIEWER, finding.finding_id)
    assert stored.references == changed.references and stored.credits == credited.credits
    bad_references = [
        ([(None, "https://example.org/a")], "references[0].type"),
        ([(ReferenceType.WEB, "ftp://example.org/a")], "references[0].url"),
        ([(ReferenceType.WEB, "https://")], "references[0].url"),
        ([(ReferenceType.WEB, "https://[example.org/a")], "references[0].url"),
        ([(ReferenceType.WEB, "https://example.org/" + "a" * 2000)], "references[0].url"),
        (
            [(ReferenceType.WEB, "https://e.org/a"), (ReferenceType.PATCH, "https://e.org/a")],
            "references[1].url",
        ),
        ([(ReferenceType.WEB, f"https://e.org/{n}") for n in range(51)], "references"),
    ]
    for bad, field in bad_references:
        with pytest.raises(InvalidInput) as refused:
            components.registry.set_references(REVIEWER, finding.finding_id, bad, "", 0)
        assert [v.field for v in refused.value.violations] == [field]
    bad_credits = [
        ([("", CreditType.FINDER)], "credits[0].name"),
        ([("x" * 201, CreditType.FINDER)], "credits[0].name"),
        ([("Ada\n", None)], "credits[0].type"),
        ([("Ada", CreditType.FINDER)] * 21, "credits"),
    ]
    for bad_credit, field in bad_credits:
        with pytest.raises(InvalidInput) as refused:
            components.registry.set_credits(REVIEWER, finding.finding_id, bad_credit, "", 0)
        assert [v.field for v in refused.value.violations] == [field]
    for viewer in (OP_A, LAB_X):
        with pytest.raises(PermissionDenied):
            components.registry.set_references(viewer, finding.finding_id, references, "", 0)
        with pytest.raises(PermissionDenied):
            components.registry.set_credits(viewer, finding.finding_id, [("Eve", CreditType.FINDER)], "", 0)
    assert components.registry.get(REVIEWER, finding.finding_id).credits == credited.credits
    with components.engine.connect() as conn:
        actions = conn.execute(
            select(tables.audit_log.c.action).where(
                tables.audit_log.c.action.in_(["finding.references_set", "finding.credits_set"])
            )
        ).all()
    assert sorted(a for (a,) in actions) == ["finding.credits_set", "finding.references_set"]


def test_the_request_guard_lets_through_every_reason_and_url_the_case_record_accepts() -> None:
    """The gRPC guard's string limits are no tighter than the registry's: a 2,000-character reason
    (MAX_REASON, as for SetFindingSharing) and reference URL (MAX_URL) reach the registry."""
    reason, url = "r" * MAX_REASON, "https://example.org/" + "a" * (MAX_URL - len("https://example.org/"))
    requests = [
        pb.SetFindingAliasesRequest(finding_id="f", aliases=["CVE-2024-12345"], reason=reason),
        pb.SetFindingReferencesRequest(
            finding_id="f",
            references=[pb.FindingReference(type=pb.REFERENCE_TYPE_WEB, url=url)],
            reason=reason,
        ),
        pb.SetFindingCreditsRequest(finding_id="f", credits=[FINDER], reason=reason),
    ]
    for request in requests:
        assert string_violations(request) == [], type(request).__name__


@pytest.mark.slow
def test_references_and_credits_over_grpc_name_bad_fields_and_reach_only_the_audience(api: Api) -> None:
    finding = api.stub.ReportFinding(REALISTIC["npm with CVSS 3.1"], metadata=api.as_(REVIEWER)).finding
    shown = api.stub.SetFindingReferences(
        pb.SetFindingReferencesRequest(finding_id=finding.finding_id, references=[ADVISORY, PATCH]),
        metadata=api.as_(REVIEWER),
    ).finding
    assert list(shown.references) == [ADVISORY, PATCH]
    shown = api.stub.SetFindingCredits(
        pb.SetFindingCreditsRequest(finding_id=finding.finding_id, credits=[FINDER, FIXER], reason="thanks"),
        metadata=api.as_(REVIEWER),
    ).finding
    assert list(shown.credits) == [FINDER, FIXER] and list(shown.references) == [ADVISORY, PATCH]
    bad = [
        (
            pb.SetFindingReferencesRequest(
                finding_id=finding.finding_id, references=[pb.FindingReference(url="https://e.org")]
            ),
            "references[0].type",
        ),
        (
            pb.SetFindingReferencesRequest(
                finding_id=finding.finding_id,
                references=[pb.FindingReference(type=pb.REFERENCE_TYPE_WEB, url="javascript:alert(1)")],
            ),
            "references[0].url",
        ),
        (
            pb.SetFindingReferencesRequest(
                finding_id=finding.finding_id, references=[pb.FindingReference(type=99, url="https://e.org")]
            ),
            "references[0].type",
        ),
        (
            pb.SetFindingCreditsRequest(
                finding_id=finding.finding_id, credits=[pb.FindingCredit(type=pb.CREDIT_TYPE_FINDER)]
            ),
            "credits[0].name",
        ),
        (pb.SetFindingCreditsRequest(finding_id="", credits=[FINDER]), "finding_id"),
    ]
    for request, field in bad:
        call = (
            api.stub.SetFindingReferences
            if isinstance(request, pb.SetFindingReferencesRequest)
            else api.stub.SetFindingCredits
        )
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=api.as_(REVIEWER))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(caught.value)) == [field]
    for viewer in (OP_A, LAB_X):
        with pytest.raises(grpc.RpcError) as caught:
            api.stub.SetFindingCredits(
                pb.SetFindingCreditsRequest(finding_id=finding.finding_id, credits=[FINDER]),
                metadata=api.as_(viewer),
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Unpublished, the finding (with its references and credits) is nobody's but the reviewers'.
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.GetFinding(pb.GetFindingRequest(finding_id=finding.finding_id), metadata=api.as_(OP_A))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    for state in (ch_events.FINDING_STATE_TRIAGED, ch_events.FINDING_STATE_VALIDATED):
        api.stub.TransitionFinding(
            pb.TransitionFindingRequest(finding_id=finding.finding_id, state=state, reason="moved"),
            metadata=api.as_(REVIEWER),
        )
    # Published to op-a (TLP:CLEAR): its operators see them — a reviewer's report has no lab source,
    # so no consent holds the credits back; exports as op-a validate too.
    seen = api.stub.GetFinding(pb.GetFindingRequest(finding_id=finding.finding_id), metadata=api.as_(OP_A))
    assert list(seen.finding.references) == [ADVISORY, PATCH] and list(seen.finding.credits) == [
        FINDER,
        FIXER,
    ]
    check_every_format(api, OP_A, finding.finding_id)

    csaf = check_every_format(api, REVIEWER, finding.finding_id)["vulnerabilities"][0]
    assert [r["url"] for r in csaf["references"]] == [ADVISORY.url, PATCH.url]
    assert {a["names"][0] for a in csaf["acknowledgments"]} == {FINDER.name, FIXER.name}
    record = json.loads(export(api, REVIEWER, finding.finding_id, pb.EXPORT_FORMAT_OSV))
    assert record["references"] == [
        {"type": "ADVISORY", "url": ADVISORY.url},
        {"type": "FIX", "url": PATCH.url},
    ]
    assert record["credits"] == [
        {"name": FINDER.name, "type": "FINDER"},
        {"name": FIXER.name, "type": "REMEDIATION_DEVELOPER"},
    ]
    bundle = json.loads(export(api, REVIEWER, finding.finding_id, pb.EXPORT_FORMAT_STIX))
    (vulnerability,) = [o for o in bundle["objects"] if o["type"] == "vulnerability"]
    assert {"source_name": "patch", "description": PATCH.url} in vulnerability["external_references"]
    assert FINDER.name in vulnerability["description"]
