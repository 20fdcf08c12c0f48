"""The SDK's clearinghouse client against the real API on loopback: every method as the role it is
for, the typed errors of the wrong role, and report verification of a real signed report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import events_pb2 as ch_events
from preflight.common.v1 import common_pb2
from preflight.sdk import (
    Aborted,
    Assessment,
    AsyncPreflight,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Preflight,
    ReportVerificationError,
    Transition,
    verify_report,
)
from preflight.sdk.client import ClearinghouseClient
from preflight_common.auth import Principal
from preflight_testkit.clearinghouse import Api, issue_report

from .test_clearinghouse_grpc import ADMIN, LAB_X, LAB_Y, OP_A, OP_B, OP_C, REVIEWER, valid_request

Connect = Callable[[Principal], ClearinghouseClient]


@pytest.fixture
def connect(api: Api) -> Iterator[Connect]:
    """`connect(principal)`: the clearinghouse client of a deployment, as `principal`."""
    opened: list[Preflight] = []

    def as_(principal: Principal) -> ClearinghouseClient:
        deployment = Preflight(targets={"clearinghouse": api.target}, token=api.identity.token(principal))
        opened.append(deployment)
        return deployment.clearinghouse

    yield as_
    for deployment in opened:
        deployment.close()


def test_reports_their_notes_sign_offs_reissues_and_the_audit_log(api: Api, connect: Connect) -> None:
    issue_report(api.components, "sub-1", "lab-xq7")
    lab, reviewer, admin = connect(LAB_X), connect(REVIEWER), connect(ADMIN)
    report = lab.get_report(submission_id="sub-1")
    assert report.organisation == "lab-xq7" and report.version == 1
    assert lab.get_report(report.report_id) == report
    assert [r.report_id for r in lab.iter_reports()] == [report.report_id]
    assert lab.verify_report(report) is report

    note = reviewer.add_report_note(report.report_id, "scores look plausible")
    sign_off = reviewer.sign_off_report(report.report_id, comment="agreed")
    assert note.author_id == REVIEWER.principal_id and sign_off.reviewer_id == REVIEWER.principal_id
    reissued = admin.reissue_report("sub-1", reason="policy update")
    assert reissued.version == 2
    page = reviewer.list_reports(all_versions=True, page_size=1)
    assert len(page.reports) == 1 and page.next_page_token
    assert sorted(r.version for r in reviewer.iter_reports(all_versions=True, page_size=1)) == [1, 2]
    assert admin.verify_audit_log().ok

    with pytest.raises(PermissionDenied):
        lab.add_report_note(report.report_id, "a lab may not annotate")
    with pytest.raises(PermissionDenied):
        lab.sign_off_report(report.report_id)
    with pytest.raises(PermissionDenied):
        lab.verify_audit_log()
    with pytest.raises(NotFound):
        connect(LAB_Y).get_report(report.report_id)
    assert len(reviewer.get_report(report.report_id).notes) == 1


def test_verify_report_accepts_the_signed_report_and_rejects_every_tampering(
    api: Api, connect: Connect
) -> None:
    issue_report(api.components, "sub-1", "lab-xq7")
    lab = connect(LAB_X)
    report = lab.get_report(submission_id="sub-1")
    key = lab.get_signing_key(report.signing_key_id)
    verify_report(report, key)
    verify_report(report, key.public_key)

    def tampered(change: str) -> pb.ReviewReport:
        copy = pb.ReviewReport()
        copy.CopyFrom(report)
        if change == "body":
            body = json.loads(report.body)
            body["tier"] = "TIER_1"
            copy.body = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        elif change == "signature":
            copy.signature = bytes([report.signature[0] ^ 1]) + report.signature[1:]
        elif change == "tier":
            copy.tier = "TIER_1"
        elif change == "score":
            copy.scores[0].score = 0.01
        elif change == "submission":
            copy.submission_id = "sub-2"
        elif change == "digest":
            copy.digest = "0" * 64
        return copy

    for change in ("body", "signature", "tier", "score", "submission", "digest"):
        with pytest.raises(ReportVerificationError):
            verify_report(tampered(change), key)
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    with pytest.raises(ReportVerificationError):
        verify_report(report, other)
    with pytest.raises(ReportVerificationError, match="signed with key"):
        verify_report(report, pb.GetSigningKeyResponse(key_id="ed25519-other", public_key=key.public_key))
    assert lab.get_signing_key().key_id == report.signing_key_id


def test_findings_from_report_to_operator_export(api: Api, connect: Connect) -> None:
    reviewer, operator = connect(REVIEWER), connect(OP_A)
    reported = reviewer.report_finding(valid_request())
    finding = reported.finding
    assert not reported.duplicate
    assert reviewer.get_finding(finding.finding_id).title == finding.title

    shared = reviewer.set_finding_sharing(
        finding.finding_id,
        common_pb2.TLP_AMBER,
        common_pb2.Audience(organisations=["op-a"]),
        reason="op-a only",
    )
    assessed = reviewer.update_finding_assessment(
        finding.finding_id,
        Assessment(cwe_ids=["CWE-121"]),
        reason="stack, not heap",
        expected_revision=shared.revision,
    )
    assert list(assessed.cwe_ids) == ["CWE-121"]
    with pytest.raises(NotFound):
        operator.get_finding(finding.finding_id)  # not published yet
    for state in (ch_events.FINDING_STATE_TRIAGED, ch_events.FINDING_STATE_VALIDATED):
        published = reviewer.transition_finding(finding.finding_id, Transition(state=state), reason="review")
    assert published.state == ch_events.FINDING_STATE_VALIDATED
    with pytest.raises(Aborted):
        reviewer.transition_finding(
            finding.finding_id, Transition(state=ch_events.FINDING_STATE_CLOSED), expected_revision=1
        )
    with pytest.raises(FailedPrecondition):
        reviewer.transition_finding(finding.finding_id, Transition(state=ch_events.FINDING_STATE_RECEIVED))

    twin_request = valid_request()
    twin_request.title = "The same overflow, reported again"
    twin = reviewer.report_finding(twin_request).finding
    reviewer.set_finding_sharing(
        twin.finding_id, common_pb2.TLP_AMBER, common_pb2.Audience(organisations=["op-a"])
    )
    linked = reviewer.link_finding(
        twin.finding_id, pb.LINK_KIND_DUPLICATE_OF, finding.finding_id, reason="same bug"
    )
    assert linked.link.target_finding_id == finding.finding_id
    aliased = reviewer.set_finding_aliases(finding.finding_id, ["CVE-2026-12345"], reason="assigned")
    assert list(aliased.aliases) == ["CVE-2026-12345"]
    with pytest.raises(InvalidArgument):
        reviewer.set_finding_aliases(twin.finding_id, ["CVE-2026-12345"])
    with pytest.raises(PermissionDenied):
        operator.set_finding_aliases(finding.finding_id, [])
    advisory = pb.FindingReference(type=pb.REFERENCE_TYPE_ADVISORY, url="https://example.org/advisory")
    referenced = reviewer.set_finding_references(finding.finding_id, [advisory], reason="published")
    assert list(referenced.references) == [advisory]
    finder = pb.FindingCredit(name="Ada Researcher", type=pb.CREDIT_TYPE_FINDER)
    assert list(reviewer.set_finding_credits(finding.finding_id, [finder]).credits) == [finder]
    with pytest.raises(InvalidArgument):
        reviewer.set_finding_references(finding.finding_id, [pb.FindingReference(url="https://e.org")])
    with pytest.raises(PermissionDenied):
        operator.set_finding_credits(finding.finding_id, [])
    assert reviewer.assign_finding(finding.finding_id, "rev-2", reason="yours").assignee == "rev-2"
    assert [f.finding_id for f in reviewer.iter_findings(pb.FindingFilter(assignee="rev-2"))] == [
        finding.finding_id
    ]
    with pytest.raises(PermissionDenied):
        operator.list_findings(pb.FindingFilter(assignee="rev-2"))
    decided = reviewer.set_finding_ssvc(
        finding.finding_id,
        exploitation=pb.SSVC_EXPLOITATION_ACTIVE,
        automatable=pb.SSVC_AUTOMATABLE_NO,
        technical_impact=pb.SSVC_TECHNICAL_IMPACT_TOTAL,
        mission_well_being=pb.SSVC_MISSION_WELL_BEING_HIGH,
    )
    assert decided.ssvc.outcome == pb.SSVC_OUTCOME_ACT
    with pytest.raises(InvalidArgument):
        reviewer.set_finding_ssvc(
            finding.finding_id,
            exploitation=pb.SSVC_EXPLOITATION_ACTIVE,
            automatable=pb.SSVC_AUTOMATABLE_UNSPECIFIED,
            technical_impact=pb.SSVC_TECHNICAL_IMPACT_TOTAL,
            mission_well_being=pb.SSVC_MISSION_WELL_BEING_HIGH,
        )
    seen = operator.get_finding(finding.finding_id)
    assert seen.assignee == "" and seen.ssvc.outcome == pb.SSVC_OUTCOME_ACT and not seen.ssvc.decided_by

    assert [f.finding_id for f in operator.iter_findings(page_size=1)] == [finding.finding_id]
    assert operator.list_findings().findings[0].finding_id == finding.finding_id
    patched = operator.set_patch_status(finding.finding_id, pb.PATCH_STATUS_PATCHED, note="rolled out")
    assert [(p.organisation, p.status) for p in patched.patch_statuses] == [("op-a", pb.PATCH_STATUS_PATCHED)]
    affected = operator.query_findings("pkg:pypi/libfoo@1.2.0")
    assert [f.finding_id for f in affected] == [finding.finding_id]
    assert operator.query_findings("pkg:pypi/libfoo", version="1.4.2") == []
    exported = operator.export_finding(finding.finding_id, pb.EXPORT_FORMAT_CSAF)
    assert exported.media_type == "application/csaf+json" and json.loads(exported.document)

    with pytest.raises(PermissionDenied):
        connect(LAB_X).transition_finding(
            finding.finding_id, Transition(state=ch_events.FINDING_STATE_CLOSED)
        )
    with pytest.raises(PermissionDenied):
        operator.set_finding_sharing(finding.finding_id, common_pb2.TLP_CLEAR, common_pb2.Audience())
    for outsider in (connect(OP_B), connect(OP_C)):
        with pytest.raises(NotFound):
            outsider.get_finding(finding.finding_id)
        with pytest.raises(NotFound):
            outsider.export_finding(finding.finding_id, pb.EXPORT_FORMAT_OSV)
        assert list(outsider.iter_findings()) == []
        assert outsider.query_findings("pkg:pypi/libfoo@1.2.0") == []


def test_the_asyncio_clients_read_reports_and_follow_findings(api: Api) -> None:
    issue_report(api.components, "sub-1", "lab-xq7")
    reviewer_token, lab_token = api.identity.token(REVIEWER), api.identity.token(LAB_X)

    async def scenario() -> tuple[int, str, str]:
        async with (
            AsyncPreflight(targets={"clearinghouse": api.target}, token=lab_token) as lab,
            AsyncPreflight(targets={"clearinghouse": api.target}, token=reviewer_token) as reviewer,
        ):
            report = await lab.clearinghouse.verify_report(
                await lab.clearinghouse.get_report(submission_id="sub-1")
            )
            finding = (await reviewer.clearinghouse.report_finding(valid_request())).finding
            stream = reviewer.clearinghouse.stream_findings(include_existing=True)
            first = await anext(stream)
            await stream.aclose()
            listed = [f.finding_id async for f in reviewer.clearinghouse.iter_findings()]
            await reviewer.clearinghouse.assign_finding(finding.finding_id, "rev-2")
            decided = await reviewer.clearinghouse.set_finding_ssvc(
                finding.finding_id,
                exploitation=pb.SSVC_EXPLOITATION_NONE,
                automatable=pb.SSVC_AUTOMATABLE_YES,
                technical_impact=pb.SSVC_TECHNICAL_IMPACT_PARTIAL,
                mission_well_being=pb.SSVC_MISSION_WELL_BEING_HIGH,
            )
            assert decided.assignee == "rev-2" and decided.ssvc.outcome == pb.SSVC_OUTCOME_ATTEND
            with pytest.raises(NotFound):
                await lab.clearinghouse.get_finding(finding.finding_id + "0")
        assert listed == [finding.finding_id]
        return report.version, first.finding_id, finding.finding_id

    version, streamed, reported = asyncio.run(scenario())
    assert version == 1 and streamed == reported
