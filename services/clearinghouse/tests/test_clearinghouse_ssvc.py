"""SSVC decisions and finding assignment: the outcome against CISA's published decision table, set by
reviewers (outcome computed by the server), audit-logged, shown through the one sharing policy and
exported in CSAF 2.1; assignees set by reviewers and filtered on."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import events_pb2 as ch_events
from preflight_clearinghouse.adapters import tables
from preflight_clearinghouse.bootstrap import Components
from preflight_clearinghouse.domain.checks import MAX_REASON
from preflight_clearinghouse.domain.errors import InvalidInput, PermissionDenied
from preflight_clearinghouse.domain.findings.queries import FindingQuery
from preflight_clearinghouse.domain.findings.ssvc import (
    Automatable,
    Exploitation,
    MissionWellBeing,
    SsvcDecision,
    SsvcOutcome,
    TechnicalImpact,
    decide,
)
from preflight_clearinghouse.domain.findings.workflow import FindingState
from preflight_clearinghouse.domain.sharing import Audience, Tlp, audience_view, export_view, project
from preflight_common.fields import string_violations
from preflight_testkit.clearinghouse import (
    ADMIN,
    LAB_X,
    OP_A,
    OP_B,
    REVIEWER,
    START,
    Api,
    make_finding,
    report_input,
)
from preflight_testkit.rpc import field_violations
from sqlalchemy import select

from .test_clearinghouse_export_standards import REALISTIC, check_every_format, export

# CISA's coordinator decision table as CERT/CC publishes it with the SSVC data
# (data/csv/cisa/cisa_coordinator_2_0_3.csv), verbatim.
CISA_COORDINATOR_2_0_3 = (
    (
        "row,Exploitation v1.1.0,Automatable v2.0.0,Technical Impact v1.0.0,"
        "Mission and Well-Being Impact v1.0.0,CISA Levels v1.1.0 (cisa)\n"
    )
    + """\
0,none,no,partial,low,track
1,none,no,partial,medium,track
2,none,no,partial,high,track
3,none,no,total,low,track
4,none,no,total,medium,track
5,none,no,total,high,track*
6,none,yes,partial,low,track
7,none,yes,partial,medium,track
8,none,yes,partial,high,attend
9,none,yes,total,low,track
10,none,yes,total,medium,track
11,none,yes,total,high,attend
12,public poc,no,partial,low,track
13,public poc,no,partial,medium,track
14,public poc,no,partial,high,track*
15,public poc,no,total,low,track
16,public poc,no,total,medium,track*
17,public poc,no,total,high,attend
18,public poc,yes,partial,low,track
19,public poc,yes,partial,medium,track
20,public poc,yes,partial,high,attend
21,public poc,yes,total,low,track
22,public poc,yes,total,medium,track*
23,public poc,yes,total,high,attend
24,active,no,partial,low,track
25,active,no,partial,medium,track
26,active,no,partial,high,attend
27,active,no,total,low,track
28,active,no,total,medium,attend
29,active,no,total,high,act
30,active,yes,partial,low,attend
31,active,yes,partial,medium,attend
32,active,yes,partial,high,act
33,active,yes,total,low,attend
34,active,yes,total,medium,act
35,active,yes,total,high,act
"""
)

_E = {"none": Exploitation.NONE, "public poc": Exploitation.PUBLIC_POC, "active": Exploitation.ACTIVE}
_A = {"no": Automatable.NO, "yes": Automatable.YES}
_TI = {"partial": TechnicalImpact.PARTIAL, "total": TechnicalImpact.TOTAL}
_MWI = {"low": MissionWellBeing.LOW, "medium": MissionWellBeing.MEDIUM, "high": MissionWellBeing.HIGH}
_OUT = {
    "track": SsvcOutcome.TRACK,
    "track*": SsvcOutcome.TRACK_STAR,
    "attend": SsvcOutcome.ATTEND,
    "act": SsvcOutcome.ACT,
}
DECIDED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = START
TO_OP_A = Audience(frozenset({"op-a"}), frozenset())


def _table() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(CISA_COORDINATOR_2_0_3)))


def test_the_outcome_is_cisas_for_every_row_of_the_published_table() -> None:
    rows = _table()
    assert len(rows) == 3 * 2 * 2 * 3
    for row in rows:
        got = decide(
            _E[row["Exploitation v1.1.0"]],
            _A[row["Automatable v2.0.0"]],
            _TI[row["Technical Impact v1.0.0"]],
            _MWI[row["Mission and Well-Being Impact v1.0.0"]],
        )
        assert got is _OUT[row["CISA Levels v1.1.0 (cisa)"]], row


def test_the_outcome_follows_the_decision_points_whoever_records_them() -> None:
    decision = SsvcDecision(
        Exploitation.ACTIVE,
        Automatable.YES,
        TechnicalImpact.TOTAL,
        MissionWellBeing.HIGH,
        decided_by="rev-1",
        decided_at=DECIDED,
    )
    assert decision.outcome is SsvcOutcome.ACT
    assert [(p.namespace, p.key, p.version, key, name) for p, key, name in decision.selections()] == [
        ("ssvc", "E", "1.1.0", "A", "Active"),
        ("ssvc", "A", "2.0.0", "Y", "Yes"),
        ("ssvc", "TI", "1.0.0", "T", "Total"),
        ("ssvc", "MWI", "1.0.0", "H", "High"),
    ]


def test_assignees_and_who_decided_reach_reviewers_and_admins_only() -> None:
    decision = SsvcDecision(
        Exploitation.NONE, Automatable.NO, TechnicalImpact.PARTIAL, MissionWellBeing.LOW, "rev-1", DECIDED
    )
    finding = make_finding(tlp=Tlp.CLEAR, audience=TO_OP_A, assignee="rev-2", ssvc=decision)
    for privileged in (REVIEWER, ADMIN):
        assert project(privileged, finding, NOW).assignee == "rev-2"
        assert project(privileged, finding, NOW).ssvc == decision
    for viewer in (OP_A, OP_B, LAB_X):
        shown = project(viewer, finding, NOW)
        assert shown.assignee == "" and shown.ssvc == replace(decision, decided_by="")
    for distributed in (audience_view(finding, NOW), export_view(REVIEWER, finding, NOW)):
        assert distributed is not None
        assert distributed.assignee == "" and distributed.ssvc == replace(decision, decided_by="")


def test_the_request_guard_lets_through_every_reason_the_registry_accepts() -> None:
    """A 2,000-character reason (MAX_REASON, as for the other finding changes) reaches the registry."""
    reason = "r" * MAX_REASON
    for request in (
        pb.AssignFindingRequest(finding_id="f", assignee="rev-2", reason=reason),
        pb.SetFindingSsvcRequest(finding_id="f", reason=reason),
    ):
        assert string_violations(request) == [], type(request).__name__


def _actions(components: Components) -> list[str]:
    with components.engine.connect() as conn:
        rows = conn.execute(select(tables.audit_log.c.action).order_by(tables.audit_log.c.seq)).all()
    return [action for (action,) in rows]


def test_assignment_and_ssvc_are_kept_checked_filtered_and_audit_logged(components: Components) -> None:
    registry = components.registry
    finding, _ = registry.report(REVIEWER, report_input())
    other, _ = registry.report(REVIEWER, report_input(title="another one", cwe_ids=["CWE-79"]))
    assigned = registry.assign(REVIEWER, finding.finding_id, " rev-2 ", "yours", finding.revision)
    assert assigned.assignee == "rev-2" and assigned.revision == finding.revision + 1
    points = (Exploitation.PUBLIC_POC, Automatable.NO, TechnicalImpact.TOTAL, MissionWellBeing.MEDIUM)
    decided = registry.decide_ssvc(ADMIN, finding.finding_id, points, "triage", 0)
    assert decided.ssvc is not None and decided.ssvc.outcome is SsvcOutcome.TRACK_STAR
    stored = registry.get(REVIEWER, finding.finding_id)
    assert stored.assignee == "rev-2" and stored.ssvc == decided.ssvc
    assert stored.ssvc is not None and stored.ssvc.decided_by == ADMIN.principal_id
    assert _actions(components)[-2:] == ["finding.assigned", "finding.ssvc_decided"]

    page, _ = registry.list_visible(REVIEWER, FindingQuery(assignee="rev-2"), 0, "")
    assert [f.finding_id for f in page] == [finding.finding_id]
    page, _ = registry.list_visible(REVIEWER, FindingQuery(), 0, "")
    assert {f.finding_id for f in page} == {finding.finding_id, other.finding_id}
    with pytest.raises(PermissionDenied):
        registry.list_visible(OP_A, FindingQuery(assignee="rev-2"), 0, "")
    with pytest.raises(PermissionDenied):
        registry.changes(LAB_X, FindingQuery(assignee="rev-2"), 0)

    for bad in ("has space", "x" * 257, "tab\there"):
        with pytest.raises(InvalidInput) as refused:
            registry.assign(REVIEWER, finding.finding_id, bad, "", 0)
        assert [v.field for v in refused.value.violations] == ["assignee"]
    with pytest.raises(InvalidInput) as refused:
        registry.decide_ssvc(REVIEWER, finding.finding_id, (None, Automatable.NO, None, None), "", 0)
    assert [v.field for v in refused.value.violations] == [
        "exploitation",
        "technical_impact",
        "mission_well_being",
    ]
    for viewer in (OP_A, LAB_X):
        with pytest.raises(PermissionDenied):
            registry.assign(viewer, finding.finding_id, viewer.principal_id, "", 0)
        with pytest.raises(PermissionDenied):
            registry.decide_ssvc(viewer, finding.finding_id, points, "", 0)
    unassigned = registry.assign(REVIEWER, finding.finding_id, "", "back to the pool", 0)
    assert unassigned.assignee == "" and unassigned.ssvc == decided.ssvc
    page, _ = registry.list_visible(REVIEWER, FindingQuery(assignee="rev-2"), 0, "")
    assert page == []


def test_an_operator_sees_the_ssvc_decision_in_the_history_but_not_the_assignment(
    components: Components,
) -> None:
    registry = components.registry
    finding, _ = registry.report(REVIEWER, report_input())
    registry.assign(REVIEWER, finding.finding_id, "rev-2", "", 0)
    points = (Exploitation.ACTIVE, Automatable.YES, TechnicalImpact.PARTIAL, MissionWellBeing.HIGH)
    registry.decide_ssvc(REVIEWER, finding.finding_id, points, "", 0)
    for state in (FindingState.TRIAGED, FindingState.VALIDATED):
        registry.transition(REVIEWER, finding.finding_id, state, None, "", 0)
    shown = registry.get(OP_A, finding.finding_id)
    assert shown.assignee == "" and shown.ssvc is not None and shown.ssvc.decided_by == ""
    assert shown.ssvc.outcome is SsvcOutcome.ACT
    entries, _ = registry.history(OP_A, finding.finding_id, 0, "")
    assert "finding.ssvc_decided" in [e.action for e in entries]
    assert "finding.assigned" not in [e.action for e in entries]
    (decided,) = [e for e in entries if e.action == "finding.ssvc_decided"]
    assert decided.changed == ("ssvc",) and decided.actor_id == ""
    everything, _ = registry.history(REVIEWER, finding.finding_id, 0, "")
    (assigned,) = [e for e in everything if e.action == "finding.assigned"]
    assert assigned.changed == ("assignee",) and assigned.actor_id == REVIEWER.principal_id


@pytest.mark.slow
def test_assignment_and_ssvc_over_grpc_name_bad_fields_and_csaf_2_1_carries_the_decision(api: Api) -> None:
    finding = api.stub.ReportFinding(REALISTIC["npm with CVSS 3.1"], metadata=api.as_(REVIEWER)).finding
    fid = finding.finding_id
    shown = api.stub.AssignFinding(
        pb.AssignFindingRequest(finding_id=fid, assignee="rev-2", reason="yours"), metadata=api.as_(REVIEWER)
    ).finding
    assert shown.assignee == "rev-2"
    request = pb.SetFindingSsvcRequest(
        finding_id=fid,
        exploitation=pb.SSVC_EXPLOITATION_PUBLIC_POC,
        automatable=pb.SSVC_AUTOMATABLE_YES,
        technical_impact=pb.SSVC_TECHNICAL_IMPACT_TOTAL,
        mission_well_being=pb.SSVC_MISSION_WELL_BEING_HIGH,
        reason="triage",
    )
    shown = api.stub.SetFindingSsvc(request, metadata=api.as_(REVIEWER)).finding
    assert shown.ssvc.outcome == pb.SSVC_OUTCOME_ATTEND and shown.ssvc.decided_by == REVIEWER.principal_id
    got = api.stub.GetFinding(pb.GetFindingRequest(finding_id=fid), metadata=api.as_(REVIEWER)).finding
    assert got.ssvc == shown.ssvc and got.assignee == "rev-2"
    listed = api.stub.ListFindings(
        pb.ListFindingsRequest(filter=pb.FindingFilter(assignee="rev-2")), metadata=api.as_(REVIEWER)
    )
    assert [f.finding_id for f in listed.findings] == [fid]

    missing = pb.SetFindingSsvcRequest(finding_id=fid, exploitation=pb.SSVC_EXPLOITATION_NONE)
    unknown = pb.SetFindingSsvcRequest()
    unknown.CopyFrom(request)
    unknown.automatable = 9  # type: ignore[assignment]
    bad: list[tuple[Any, Any, list[str]]] = [
        (api.stub.SetFindingSsvc, missing, ["automatable", "technical_impact", "mission_well_being"]),
        (api.stub.SetFindingSsvc, unknown, ["automatable"]),
        (api.stub.AssignFinding, pb.AssignFindingRequest(finding_id=fid, assignee="two words"), ["assignee"]),
        (api.stub.AssignFinding, pb.AssignFindingRequest(assignee="rev-2"), ["finding_id"]),
    ]
    for call, message, fields in bad:
        with pytest.raises(grpc.RpcError) as caught:
            call(message, metadata=api.as_(REVIEWER))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(caught.value)) == fields
    for state in (ch_events.FINDING_STATE_TRIAGED, ch_events.FINDING_STATE_VALIDATED):
        api.stub.TransitionFinding(
            pb.TransitionFindingRequest(finding_id=fid, state=state, reason="moved"),
            metadata=api.as_(REVIEWER),
        )
    for call, message in (
        (api.stub.AssignFinding, pb.AssignFindingRequest(finding_id=fid, assignee="op-a-user")),
        (api.stub.SetFindingSsvc, request),
        (api.stub.ListFindings, pb.ListFindingsRequest(filter=pb.FindingFilter(assignee="rev-2"))),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(message, metadata=api.as_(OP_A))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    seen = api.stub.GetFinding(pb.GetFindingRequest(finding_id=fid), metadata=api.as_(OP_A)).finding
    assert seen.assignee == "" and seen.ssvc.decided_by == ""
    assert seen.ssvc.outcome == pb.SSVC_OUTCOME_ATTEND

    for viewer in (REVIEWER, OP_A):
        vulnerability = check_every_format(api, viewer, fid)["vulnerabilities"][0]
        (metric,) = [m["content"]["ssvc_v2"] for m in vulnerability["metrics"] if "ssvc_v2" in m["content"]]
        assert [(s["namespace"], s["key"], s["values"]) for s in metric["selections"]] == [
            ("ssvc", "E", [{"key": "P", "name": "Public PoC"}]),
            ("ssvc", "A", [{"key": "Y", "name": "Yes"}]),
            ("ssvc", "TI", [{"key": "T", "name": "Total"}]),
            ("ssvc", "MWI", [{"key": "H", "name": "High"}]),
        ]
        (note,) = [n["text"] for n in vulnerability["notes"] if n["title"] == "SSVC decision"]
        assert note.startswith("CISA Levels: Attend")
        assert REVIEWER.principal_id not in json.dumps(vulnerability)
    csaf_2_0 = json.loads(export(api, OP_A, fid, pb.EXPORT_FORMAT_CSAF_2_0))
    assert any(n["title"] == "SSVC decision" for n in csaf_2_0["vulnerabilities"][0]["notes"])


def test_the_cli_assigns_records_an_ssvc_decision_and_lists_by_assignee(
    api: Api, sqlite_components: Components, tmp_path: Path
) -> None:
    finding, _ = sqlite_components.registry.report(REVIEWER, report_input())
    preflight = api.cli_as(REVIEWER, tmp_path)  # type: ignore[arg-type]

    code, out, err = preflight("finding", "assign", finding.finding_id, "--to", "rev-2", "--reason", "yours")
    assert code == 0, err
    assert "rev-2" in out
    code, out, err = preflight(
        "--json",
        "finding",
        "ssvc",
        finding.finding_id,
        "--exploitation",
        "public-poc",
        "--automatable",
        "no",
        "--technical-impact",
        "total",
        "--mission-well-being",
        "high",
    )
    assert code == 0, err
    assert json.loads(out)["ssvc"]["outcome"] == "SSVC_OUTCOME_ATTEND"
    code, out, _ = preflight("finding", "show", finding.finding_id)
    assert "ATTEND (exploitation PUBLIC_POC, automatable NO, technical impact TOTAL" in out
    code, out, _ = preflight("--json", "finding", "list", "--assignee", "rev-2")
    assert [json.loads(line)["finding_id"] for line in out.splitlines()] == [finding.finding_id]
    code, out, _ = preflight("--json", "finding", "list", "--assignee", "rev-3")
    assert code == 0 and out == ""
    code, _, err = preflight("finding", "assign", finding.finding_id, "--to", "two words")
    assert code == 1 and "assignee" in err
    code, out, err = preflight("--json", "finding", "assign", finding.finding_id, "--unassign")
    assert code == 0, err
    assert "assignee" not in json.loads(out)
