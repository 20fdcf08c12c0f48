"""The gRPC API on loopback, authenticated through a real IdentityService: errors, scope, reports, streams."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import events_pb2 as ch_events
from preflight.clearinghouse.v1.clearinghouse_pb2_grpc import ClearinghouseServiceStub
from preflight.common.v1 import common_pb2
from preflight.sdk.reports import verify_signature
from preflight_clearinghouse.adapters.signing import ReportSigner
from preflight_clearinghouse.domain.findings.cwe import _catalog
from preflight_common.auth import Principal, Role
from preflight_testkit.clearinghouse import (
    START,
    V31,
    V40,
    Api,
    LoopbackServer,
    ManualClock,
    issue_report,
    make_components,
    start_api,
    ts,
)
from preflight_testkit.rpc import field_violations

REVIEWER = Principal("rev-1", Role.REVIEWER, "agency")
ADMIN = Principal("adm-1", Role.ADMIN, "platform")
SERVICE = Principal("svc-1", Role.SERVICE, "platform")
LAB_X = Principal("lab-x-user", Role.LAB, "lab-xq7")
LAB_Y = Principal("lab-y-user", Role.LAB, "lab-yz3")
OP_A = Principal("op-a-user", Role.OPERATOR, "op-a", frozenset({"energy"}))
OP_B = Principal("op-b-user", Role.OPERATOR, "op-b", frozenset({"finance"}))
OP_C = Principal("op-c-user", Role.OPERATOR, "op-c")
PROBE = Principal("helm-test", Role.PROBE, "platform")


def valid_request() -> pb.ReportFindingRequest:
    return pb.ReportFindingRequest(
        title="Heap overflow in libfoo's header parser",
        description="A crafted Content-Length header overflows a heap buffer.",
        cwe_ids=["CWE-787"],
        affected_products=[
            pb.AffectedProduct(purl="pkg:pypi/libfoo", version_range="vers:pypi/>=1.0.0|<1.4.2")
        ],
        location=pb.CodeLocation(file="src/parse.py", function="parse_header", line=120),
        cvss_v3_vector=V31,
        cvss_v4_vector=V40,
        tlp=common_pb2.TLP_AMBER,
        audience=common_pb2.Audience(organisations=["op-a"], sectors=["finance"]),
        evidence="poc",
    )


def _unusable_cwe(kind: str) -> str:
    for number, entry in _catalog().items():
        if (kind == "prohibited" and entry.get("usage") == "Prohibited") or (
            kind == "deprecated" and entry.get("status") == "Deprecated"
        ):
            return f"CWE-{number}"
    raise AssertionError(kind)


def product(**fields: str) -> pb.AffectedProduct:
    return pb.AffectedProduct(**fields)


Mutation = Callable[[pb.ReportFindingRequest], None]
Metadata = tuple[tuple[str, str], ...]


def setter(field: str, value: object) -> Mutation:
    def mutate(request: pb.ReportFindingRequest) -> None:
        target = request
        *path, last = field.split(".")
        for part in path:
            target = getattr(target, part)
        current = getattr(target, last)
        if isinstance(value, list):
            del current[:]
            current.extend(value)
        else:
            setattr(target, last, value)

    return mutate


def products(*items: pb.AffectedProduct) -> Mutation:
    return setter("affected_products", list(items))


def past_remediation(request: pb.ReportFindingRequest) -> None:
    request.remediation_due.CopyFrom(ts(START - timedelta(days=1)))  # the servers run on the test clock


MALFORMED: list[tuple[str, Mutation, str]] = [
    ("empty title", setter("title", ""), "title"),
    ("blank title", setter("title", "   "), "title"),
    ("long title", setter("title", "x" * 301), "title"),
    ("NUL in title", setter("title", "a\x00b"), "title"),
    ("empty description", setter("description", ""), "description"),
    ("long description", setter("description", "x" * 20_001), "description"),
    ("no CWE", setter("cwe_ids", []), "cwe_ids"),
    ("bare number CWE", setter("cwe_ids", ["79"]), "cwe_ids[0]"),
    ("non-numeric CWE", setter("cwe_ids", ["CWE-abc"]), "cwe_ids[0]"),
    ("unknown CWE", setter("cwe_ids", ["CWE-999999"]), "cwe_ids[0]"),
    ("prohibited CWE", setter("cwe_ids", [_unusable_cwe("prohibited")]), "cwe_ids[0]"),
    ("deprecated CWE", setter("cwe_ids", [_unusable_cwe("deprecated")]), "cwe_ids[0]"),
    ("duplicate CWE", setter("cwe_ids", ["CWE-787", "cwe-787"]), "cwe_ids[1]"),
    ("too many CWEs", setter("cwe_ids", ["CWE-787"] * 21), "cwe_ids"),
    ("no product", products(), "affected_products"),
    ("empty product", products(product()), "affected_products[0]"),
    (
        "purl and cpe",
        products(product(purl="pkg:pypi/a", cpe="cpe:2.3:a:x:y:1:*:*:*:*:*:*:*")),
        "affected_products[0]",
    ),
    ("not a purl", products(product(purl="django")), "affected_products[0].purl"),
    ("purl without name", products(product(purl="pkg:pypi/")), "affected_products[0].purl"),
    (
        "bad comparator",
        products(product(purl="pkg:pypi/a", version_range="vers:pypi/>>1")),
        "affected_products[0].version_range",
    ),
    (
        "range without vers",
        products(product(purl="pkg:pypi/a", version_range="1.0-2.0")),
        "affected_products[0].version_range",
    ),
    (
        "range of another ecosystem",
        products(product(purl="pkg:pypi/a", version_range="vers:npm/<1.0.0")),
        "affected_products[0].version_range",
    ),
    ("CPE 2.2 URI", products(product(cpe="cpe:/a:acme:router:1.0")), "affected_products[0].cpe"),
    (
        "CPE without vendor",
        products(product(cpe="cpe:2.3:a:*:router:1:*:*:*:*:*:*:*")),
        "affected_products[0].cpe",
    ),
    (
        "range with a CPE",
        products(product(cpe="cpe:2.3:a:acme:r:1:*:*:*:*:*:*:*", version_range="vers:generic/<2")),
        "affected_products[0].version_range",
    ),
    (
        "duplicate product",
        products(product(purl="pkg:pypi/a"), product(purl="pkg:PYPI/a")),
        "affected_products[1]",
    ),
    (
        "too many products",
        products(*[product(purl=f"pkg:pypi/p{i}") for i in range(51)]),
        "affected_products",
    ),
    ("negative line", setter("location.line", -1), "location.line"),
    ("file outside the tree", setter("location.file", "../../etc/passwd"), "location.file"),
    ("long function", setter("location.function", "f" * 301), "location.function"),
    ("CVSS 3.0 vector", setter("cvss_v3_vector", V31.replace("3.1", "3.0")), "cvss_v3_vector"),
    ("incomplete CVSS 3.1", setter("cvss_v3_vector", "CVSS:3.1/AV:N"), "cvss_v3_vector"),
    ("bad CVSS 4.0 value", setter("cvss_v4_vector", V40.replace("AV:N", "AV:X")), "cvss_v4_vector"),
    ("3.1 vector as 4.0", setter("cvss_v4_vector", V31), "cvss_v4_vector"),
    ("no TLP", setter("tlp", common_pb2.TLP_UNSPECIFIED), "tlp"),
    ("unknown TLP number", setter("tlp", 42), "tlp"),
    ("empty organisation", setter("audience.organisations", [""]), "audience.organisations[0]"),
    (
        "duplicate organisation",
        setter("audience.organisations", ["op-a", "op-a"]),
        "audience.organisations[1]",
    ),
    ("unknown sector", setter("audience.sectors", ["space"]), "audience.sectors[0]"),
    ("remediation in the past", past_remediation, "remediation_due"),
    ("huge evidence", setter("evidence", "x" * 100_001), "evidence"),
    ("long request id", setter("request_id", "r" * 201), "request_id"),
]


def test_there_are_at_least_30_malformed_cases() -> None:
    assert len(MALFORMED) >= 30


@pytest.mark.parametrize(("case", "mutate", "field"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_report_gets_invalid_argument_naming_the_field(
    api: Api, case: str, mutate: Mutation, field: str
) -> None:
    request = valid_request()
    mutate(request)
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.ReportFinding(request, metadata=api.as_(OP_A))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
    assert field in list(field_violations(caught.value)), (case, caught.value.details())
    listed = api.stub.ListFindings(pb.ListFindingsRequest(), metadata=api.as_(REVIEWER))
    assert list(listed.findings) == []  # nothing half-written


def test_the_valid_request_is_accepted(api: Api) -> None:
    response = api.stub.ReportFinding(valid_request(), metadata=api.as_(OP_A))
    assert response.finding.severity == pb.SEVERITY_CRITICAL
    assert response.finding.cvss_v4_score == 9.3 and response.finding.reporter_organisation == "op-a"


def test_every_call_needs_valid_credentials(api: Api) -> None:
    for metadata in ((), (("authorization", "Bearer pft_not-a-token"),)):
        with pytest.raises(grpc.RpcError) as caught:
            api.stub.ListFindings(pb.ListFindingsRequest(), metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_roles_are_enforced_and_what_is_hidden_is_not_found(api: Api) -> None:
    finding = api.stub.ReportFinding(valid_request(), metadata=api.as_(REVIEWER)).finding
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.ReportFinding(valid_request(), metadata=api.as_(SERVICE))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    transition = pb.TransitionFindingRequest(
        finding_id=finding.finding_id, state=ch_events.FINDING_STATE_TRIAGED
    )
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.TransitionFinding(transition, metadata=api.as_(LAB_X))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for call, request in (
        (api.stub.GetFinding, pb.GetFindingRequest(finding_id=finding.finding_id)),
        (
            api.stub.ExportFinding,
            pb.ExportFindingRequest(finding_id=finding.finding_id, format=pb.EXPORT_FORMAT_CSAF),
        ),
        (
            api.stub.SetPatchStatus,
            pb.SetPatchStatusRequest(finding_id=finding.finding_id, status=pb.PATCH_STATUS_PATCHED),
        ),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=api.as_(OP_A))  # not published yet
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.TransitionFinding(
            pb.TransitionFindingRequest(finding_id=finding.finding_id, state=ch_events.FINDING_STATE_CLOSED),
            metadata=api.as_(REVIEWER),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.TransitionFinding(
            pb.TransitionFindingRequest(finding_id=finding.finding_id), metadata=api.as_(ADMIN)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def publish(api: Api, finding_id: str) -> pb.Finding:
    for state in (ch_events.FINDING_STATE_TRIAGED, ch_events.FINDING_STATE_VALIDATED):
        finding = api.stub.TransitionFinding(
            pb.TransitionFindingRequest(finding_id=finding_id, state=state), metadata=api.as_(REVIEWER)
        ).finding
    return finding


def test_exports_pass_the_sharing_check_and_name_their_format(api: Api) -> None:
    finding = api.stub.ReportFinding(valid_request(), metadata=api.as_(REVIEWER)).finding
    publish(api, finding.finding_id)
    for export_format, media_type in (
        (pb.EXPORT_FORMAT_CSAF, "application/csaf+json"),
        (pb.EXPORT_FORMAT_OSV, "application/json"),
        (pb.EXPORT_FORMAT_STIX, "application/stix+json;version=2.1"),
    ):
        request = pb.ExportFindingRequest(finding_id=finding.finding_id, format=export_format)
        exported = api.stub.ExportFinding(request, metadata=api.as_(OP_B))
        assert exported.media_type == media_type and json.loads(exported.document)
        with pytest.raises(grpc.RpcError) as caught:
            api.stub.ExportFinding(request, metadata=api.as_(OP_C))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.ExportFinding(pb.ExportFindingRequest(finding_id=finding.finding_id), metadata=api.as_(OP_B))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_lab_verifies_its_signed_report_with_the_published_key(api: Api) -> None:
    issue_report(api.components, "sub-1", "lab-xq7")
    report = api.stub.GetReport(pb.GetReportRequest(submission_id="sub-1"), metadata=api.as_(LAB_X)).report
    assert report.tier == "TIER_4" and report.organisation == "lab-xq7"
    key = api.stub.GetSigningKey(
        pb.GetSigningKeyRequest(key_id=report.signing_key_id), metadata=api.as_(LAB_X)
    )
    assert key.algorithm == "Ed25519" and key.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert verify_signature(key.public_key, report.body, report.signature)
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.GetReport(pb.GetReportRequest(report_id=report.report_id), metadata=api.as_(LAB_Y))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    signed = api.stub.SignOffReport(
        pb.SignOffReportRequest(report_id=report.report_id, comment="ok"), metadata=api.as_(REVIEWER)
    )
    assert signed.sign_off.reviewer_id == "rev-1"
    listed = api.stub.ListReports(pb.ListReportsRequest(), metadata=api.as_(LAB_X)).reports
    assert [r.report_id for r in listed] == [report.report_id] and listed[0].sign_offs[0].comment == "ok"
    assert api.stub.ListReports(pb.ListReportsRequest(), metadata=api.as_(OP_A)).reports == []
    verdict = api.stub.VerifyAuditLog(pb.VerifyAuditLogRequest(), metadata=api.as_(ADMIN))
    assert verdict.ok and verdict.entries > 0


def _collect(stub: ClearinghouseServiceStub, metadata: Metadata, into: queue.Queue[str]) -> None:
    # include_existing: whether a stream takes its place in the change feed before or after the
    # findings below are stored, it sends them (possibly twice).
    stream = stub.StreamFindings(pb.StreamFindingsRequest(include_existing=True), metadata=metadata)

    def pump() -> None:
        try:
            for message in stream:
                into.put(message.finding.title)
        except grpc.RpcError:
            pass

    threading.Thread(target=pump, daemon=True).start()


def test_a_probe_lists_no_report_and_may_call_nothing_else(api: Api) -> None:
    issue_report(api.components, "sub-probed", "lab-xq7")
    listed = api.stub.ListReports(pb.ListReportsRequest(page_size=1), metadata=api.as_(PROBE))
    assert list(listed.reports) == [] and listed.next_page_token == ""
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.ListFindings(pb.ListFindingsRequest(), metadata=api.as_(PROBE))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_stream_sends_each_caller_only_what_it_may_see(api: Api) -> None:
    seen: dict[str, queue.Queue[str]] = {"op-a": queue.Queue(), "op-c": queue.Queue(), "rev": queue.Queue()}
    # The streams get their own channel: closing it ends them (whatever wraps the calls).
    stream_channel = grpc.insecure_channel(api.target)
    stream_stub = ClearinghouseServiceStub(stream_channel)
    for name, principal in (("op-a", OP_A), ("op-c", OP_C), ("rev", REVIEWER)):
        _collect(stream_stub, api.as_(principal), seen[name])
    secret = valid_request()
    secret.title = "for op-a only"
    secret_id = api.stub.ReportFinding(secret, metadata=api.as_(REVIEWER)).finding.finding_id
    publish(api, secret_id)
    everyone = valid_request()
    everyone.title = "for everyone"
    everyone.tlp = common_pb2.TLP_CLEAR
    everyone.cwe_ids[:] = ["CWE-79"]
    everyone_id = api.stub.ReportFinding(everyone, metadata=api.as_(REVIEWER)).finding.finding_id
    publish(api, everyone_id)

    def until(name: str, title: str) -> list[str]:
        got = []
        while title not in got:
            got.append(seen[name].get(timeout=20))
        return got

    assert set(until("op-a", "for everyone")) == {"for op-a only", "for everyone"}
    assert until("op-c", "for everyone") == ["for everyone"]
    assert "for op-a only" in until("rev", "for everyone")
    stream_channel.close()


def test_query_findings_answers_which_findings_affect_a_package_version_in_the_callers_view(api: Api) -> None:
    finding = api.stub.ReportFinding(valid_request(), metadata=api.as_(REVIEWER)).finding
    publish(api, finding.finding_id)
    query = pb.QueryFindingsRequest(purl="pkg:pypi/libfoo@1.4.1")
    assert [f.finding_id for f in api.stub.QueryFindings(query, metadata=api.as_(OP_B)).findings] == [
        finding.finding_id
    ]
    assert not api.stub.QueryFindings(query, metadata=api.as_(OP_C)).findings  # outside the audience
    fixed = pb.QueryFindingsRequest(purl="pkg:pypi/libfoo", version="1.4.2")
    assert not api.stub.QueryFindings(fixed, metadata=api.as_(REVIEWER)).findings
    for bad, field in (
        (pb.QueryFindingsRequest(purl="libfoo@1.0"), "purl"),
        (pb.QueryFindingsRequest(purl="pkg:pypi/libfoo"), "version"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            api.stub.QueryFindings(bad, metadata=api.as_(OP_B))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(caught.value)) == [field]


def test_set_finding_aliases_names_the_field_and_shows_the_aliases(api: Api) -> None:
    finding = api.stub.ReportFinding(valid_request(), metadata=api.as_(REVIEWER)).finding
    request = pb.SetFindingAliasesRequest(finding_id=finding.finding_id, aliases=["cve-2023-4863"])
    assert list(api.stub.SetFindingAliases(request, metadata=api.as_(REVIEWER)).finding.aliases) == [
        "CVE-2023-4863"
    ]
    shown = api.stub.GetFinding(
        pb.GetFindingRequest(finding_id=finding.finding_id), metadata=api.as_(REVIEWER)
    )
    assert list(shown.finding.aliases) == ["CVE-2023-4863"]
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.SetFindingAliases(
            pb.SetFindingAliasesRequest(finding_id=finding.finding_id, aliases=["CVE-1"]),
            metadata=api.as_(REVIEWER),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(caught.value)) == ["aliases"]
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.SetFindingAliases(request, metadata=api.as_(OP_B))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


PARTICIPANTS_YAML = """\
organisations:
  - {name: st-mary-hospital, sectors: [healthcare]}
  - {name: valley-water, sectors: [water]}
  - {name: city-grid, sectors: [energy, water]}
"""


@pytest.fixture
def registered_api(
    loopback: LoopbackServer,
    tmp_path: Path,
    signer: ReportSigner,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Api]:
    """The API of a clearinghouse started with a participants registry."""
    registry = tmp_path / "participants.yaml"
    registry.write_text(PARTICIPANTS_YAML)
    monkeypatch.setenv("PREFLIGHT_PARTICIPANTS_FILE", str(registry))
    components = make_components(f"sqlite:///{tmp_path / 'ch.db'}", tmp_path, signer, clock)
    started = start_api(loopback, tmp_path, components)
    yield started
    started.channel.close()
    components.engine.dispose()


def test_preview_sharing_names_exactly_the_registered_organisations_the_policy_reaches(
    registered_api: Api,
) -> None:
    api = registered_api
    finding = api.stub.ReportFinding(valid_request(), metadata=api.as_(REVIEWER)).finding

    def preview(tlp: common_pb2.Tlp.ValueType, orgs: list[str], sectors: list[str]) -> list[str]:
        request = pb.PreviewSharingRequest(
            finding_id=finding.finding_id,
            tlp=tlp,
            audience=common_pb2.Audience(organisations=orgs, sectors=sectors),
        )
        return list(api.stub.PreviewSharing(request, metadata=api.as_(REVIEWER)).organisations)

    assert preview(common_pb2.TLP_AMBER, [], ["healthcare"]) == ["st-mary-hospital"]
    assert preview(common_pb2.TLP_GREEN, [], ["Water"]) == ["city-grid", "valley-water"]
    # Sectors do not count for AMBER+STRICT and RED: named organisations only.
    assert preview(common_pb2.TLP_RED, [], ["healthcare"]) == []
    assert preview(common_pb2.TLP_AMBER_STRICT, ["valley-water"], ["energy"]) == ["valley-water"]
    # CLEAR reaches everyone once published, but an empty audience reaches nobody.
    assert preview(common_pb2.TLP_CLEAR, [], ["energy"]) == ["city-grid", "st-mary-hospital", "valley-water"]
    assert preview(common_pb2.TLP_CLEAR, [], []) == []
    # Nothing changed.
    shown = api.stub.GetFinding(
        pb.GetFindingRequest(finding_id=finding.finding_id), metadata=api.as_(REVIEWER)
    )
    assert shown.finding.revision == finding.revision and shown.finding.tlp == common_pb2.TLP_AMBER


def test_preview_sharing_is_for_reviewers_and_names_a_bad_field(registered_api: Api) -> None:
    api = registered_api
    finding = api.stub.ReportFinding(valid_request(), metadata=api.as_(REVIEWER)).finding
    request = pb.PreviewSharingRequest(
        finding_id=finding.finding_id,
        tlp=common_pb2.TLP_AMBER,
        audience=common_pb2.Audience(sectors=["water"]),
    )
    for principal in (LAB_X, OP_A, SERVICE):
        with pytest.raises(grpc.RpcError) as caught:
            api.stub.PreviewSharing(request, metadata=api.as_(principal))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert list(api.stub.PreviewSharing(request, metadata=api.as_(ADMIN)).organisations) == [
        "city-grid",
        "valley-water",
    ]
    bad = [
        (pb.PreviewSharingRequest(finding_id=finding.finding_id), "tlp"),
        (
            pb.PreviewSharingRequest(
                finding_id=finding.finding_id,
                tlp=common_pb2.TLP_AMBER,
                audience=common_pb2.Audience(organisations=["Not A Name"]),
            ),
            "audience.organisations[0]",
        ),
        (pb.PreviewSharingRequest(tlp=common_pb2.TLP_AMBER), "finding_id"),
    ]
    for wrong, field in bad:
        with pytest.raises(grpc.RpcError) as caught:
            api.stub.PreviewSharing(wrong, metadata=api.as_(REVIEWER))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(caught.value)
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.PreviewSharing(
            pb.PreviewSharingRequest(finding_id="no-such-finding", tlp=common_pb2.TLP_AMBER),
            metadata=api.as_(REVIEWER),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_get_finding_names_the_next_states_for_reviewers_only(api: Api) -> None:
    finding = api.stub.ReportFinding(valid_request(), metadata=api.as_(REVIEWER)).finding
    request = pb.GetFindingRequest(finding_id=finding.finding_id)
    assert list(api.stub.GetFinding(request, metadata=api.as_(REVIEWER)).next_states) == [
        ch_events.FINDING_STATE_INVALID,
        ch_events.FINDING_STATE_TRIAGED,
    ]
    publish(api, finding.finding_id)
    assert list(api.stub.GetFinding(request, metadata=api.as_(OP_A)).next_states) == []
