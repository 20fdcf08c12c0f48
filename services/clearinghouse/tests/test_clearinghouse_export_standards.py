"""Realistic findings, moved through the whole workflow over gRPC, exported in every format at every
stage and checked by independent validators: CSAF 2.1 (every test group of the `csaf` package),
CSAF 2.0, the vendored official OSV schema, and STIX 2.1 strict validation."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import stix2
from csaf import validate as validate_csaf_2_1
from csaf.csaf.v20 import validate as validate_csaf_2_0
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import events_pb2 as ch_events
from preflight.common.v1 import common_pb2
from preflight_clearinghouse.adapters.exports import osv
from preflight_clearinghouse.adapters.exports.stix import PURL_EXTENSION
from preflight_clearinghouse.domain.findings.finding import CandidateInput, CodeLocation
from preflight_testkit.clearinghouse import OP_A, REVIEWER, Api, ManualClock, ts
from stix2validator import ValidationOptions, validate_string

CVSS4_WITH_THREAT = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:P"
"""CVSS-B 9.3 (CRITICAL); with the threat metric E:P, CVSS-BT 8.9 (HIGH)."""
CVSS31_WITH_TEMPORAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C"
"""Base 9.8 (CRITICAL), temporal 8.8 (HIGH)."""
CVSS31 = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"
CVSS40 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:L/VA:N/SC:N/SI:N/SA:N"


def request(
    title: str,
    cwe_ids: list[str],
    products: list[pb.AffectedProduct],
    *,
    v3: str = "",
    v4: str = "",
    tlp: common_pb2.Tlp.ValueType = common_pb2.TLP_AMBER,
) -> pb.ReportFindingRequest:
    return pb.ReportFindingRequest(
        title=title,
        description=f"{title}: reported with a proof of concept.",
        cwe_ids=cwe_ids,
        affected_products=products,
        location=pb.CodeLocation(file="src/parser.c", function="parse", line=42),
        cvss_v3_vector=v3,
        cvss_v4_vector=v4,
        tlp=tlp,
        audience=common_pb2.Audience(organisations=["op-a"], sectors=["energy"]),
        evidence="proof of concept",
    )


REALISTIC = {
    "C library by purl": request(
        "Heap overflow in expat's XML_GetBuffer",
        ["CWE-122"],
        [
            pb.AffectedProduct(
                purl="pkg:deb/debian/expat?distro=debian-12",
                version_range="vers:deb/>=2.2.0|<2.5.0-1+deb12u1",
            ),
            pb.AffectedProduct(purl="pkg:deb/debian/expat@2.4.7-1?distro=debian-11"),
            pb.AffectedProduct(
                purl="pkg:generic/expat@2.5.0?vcs_url=git%2Bhttps://github.com/libexpat/libexpat"
            ),
        ],
        v3=CVSS31,
        v4=CVSS40,
        tlp=common_pb2.TLP_AMBER_STRICT,
    ),
    "PyPI with CVSS 4.0 only": request(
        "Stored XSS in flask-admin's list view",
        ["CWE-79"],
        [pb.AffectedProduct(purl="pkg:pypi/flask-admin", version_range="vers:pypi/>1.0|<1.6.1")],
        v4=CVSS4_WITH_THREAT,
    ),
    "firmware by CPE": request(
        "Missing authentication on the PLC's maintenance port",
        ["CWE-306"],
        [pb.AffectedProduct(cpe="cpe:2.3:o:acme:plc_firmware:4.2.1:*:*:*:*:*:*:*")],
        v3=CVSS31,
        tlp=common_pb2.TLP_RED,
    ),
    "npm with CVSS 3.1": request(
        "Prototype pollution in @acme/config-merge",
        ["CWE-1321"],
        [pb.AffectedProduct(purl="pkg:npm/%40acme/config-merge", version_range="vers:npm/>=2.0.0|<2.4.1")],
        v3=CVSS31_WITH_TEMPORAL,
        tlp=common_pb2.TLP_CLEAR,
    ),
    "Maven with three CWEs": request(
        "Deserialisation and expression injection in acme-core",
        ["CWE-502", "CWE-917", "CWE-611"],
        [
            pb.AffectedProduct(
                purl="pkg:maven/org.acme/acme-core", version_range="vers:maven/>=3.0.0|<3.1.4|>=4.0.0|<4.0.2"
            )
        ],
        v3=CVSS31,
        v4=CVSS4_WITH_THREAT,
        tlp=common_pb2.TLP_GREEN,
    ),
}


@dataclass
class Stage:
    """One step of the workflow: a report-machine or embargo-machine target."""

    name: str
    state: ch_events.FindingState.ValueType = ch_events.FINDING_STATE_UNSPECIFIED
    embargo: ch_events.EmbargoState.ValueType = ch_events.EMBARGO_STATE_UNSPECIFIED


WORKFLOW = (
    Stage("triaged", state=ch_events.FINDING_STATE_TRIAGED),
    Stage("validated", state=ch_events.FINDING_STATE_VALIDATED),
    Stage("embargo proposed", embargo=ch_events.EMBARGO_STATE_PROPOSED),
    Stage("embargo active", embargo=ch_events.EMBARGO_STATE_ACTIVE),
    Stage("patch available", state=ch_events.FINDING_STATE_PATCH_AVAILABLE),
    Stage("embargo exited", embargo=ch_events.EMBARGO_STATE_EXITED),
    Stage("disclosed", state=ch_events.FINDING_STATE_DISCLOSED),
    Stage("closed", state=ch_events.FINDING_STATE_CLOSED),
)

CSAF_2_1_NOT_APPLICABLE = {
    "6.2.3": "the package's rule reads CSAF 2.0's `scores`, which 2.1 renamed `metrics` (checked below)",
    "6.3.20": "Preflight's own finding ids (and GHSA, vendor ids) are not id systems registered in RVISC",
}
"""CSAF 2.1 tests no export can pass, and why."""


def csaf_2_1_exceptions(document: dict[str, Any]) -> dict[str, str]:
    """The tests a given export cannot pass, each with the reason the finding gives."""
    exceptions = dict(CSAF_2_1_NOT_APPLICABLE)
    vulnerability = document["vulnerabilities"][0]
    leaves = list(_leaf_branches(document["product_tree"]["branches"], ()))
    if any(category == "product_version_range" for category, _ in leaves):
        exceptions["6.3.10"] = "affected versions are reported as a vers range, exported as the range"
    if any("product_version" not in path or "vendor" not in path for _, path in leaves):
        exceptions["6.3.9"] = "a range, or a package without a namespace, has no vendor or version branch"
    metrics = vulnerability.get("metrics", [])
    if not any("cvss_v4" in m["content"] for m in metrics):
        exceptions["6.3.12"] = "the finding has no CVSS 4.0 vector"
    if not vulnerability["product_status"].get("first_fixed") and any(
        r["category"] == "vendor_fix" for r in vulnerability["remediations"]
    ):
        exceptions["6.2.39.1"] = "the registry knows a fix exists, not which version carries it"
    if any("%" in purl.split("@", 1)[-1].split("?")[0] for purl in _purls(document)):
        exceptions["6.2.42"] = (
            "the package's rule compares the purl's version undecoded: a canonical purl encodes `+` as %2B"
        )
    if "cve" not in vulnerability:
        exceptions["6.3.3"] = "no CVE alias is set on the finding"
    if "cwes" not in vulnerability:
        exceptions["6.3.4"] = "a benchmark candidate has no CWE until a reviewer assesses it"
    return exceptions


def _purls(document: dict[str, Any]) -> Iterator[str]:
    pending = list(document["product_tree"]["branches"])
    while pending:
        branch = pending.pop()
        pending += branch.get("branches", [])
        if "product" in branch:
            yield from branch["product"]["product_identification_helper"].get("purls", [])


def _leaf_branches(
    branches: list[dict[str, Any]], path: tuple[str, ...]
) -> Iterator[tuple[str, tuple[str, ...]]]:
    for branch in branches:
        here = (*path, branch["category"])
        if "product" in branch:
            yield branch["category"], here
        yield from _leaf_branches(branch.get("branches", []), here)


def check_csaf_2_1(document: dict[str, Any]) -> None:
    assert document["document"]["csaf_version"] == "2.1"
    report = validate_csaf_2_1(document, preset="full")
    failed = {r.id: r for r in report.results if not r.passed and not r.skipped}
    assert not [i for i, r in failed.items() if r.group in ("schema", "mandatory")], failed
    unexpected = set(failed) - set(csaf_2_1_exceptions(document))
    assert not unexpected, {i: failed[i].errors for i in unexpected}
    # 6.2.3 as CSAF 2.1 states it: every affected product of a scored finding has a metric.
    vulnerability = document["vulnerabilities"][0]
    if "metrics" in vulnerability:
        covered = {p for m in vulnerability["metrics"] for p in m["products"]}
        assert set(vulnerability["product_status"]["known_affected"]) <= covered


def check_csaf_2_0(document: dict[str, Any]) -> None:
    assert document["document"]["csaf_version"] == "2.0"
    # Recommended tests too once the finding has a score CSAF 2.0 can carry (it has no CVSS 4.0).
    preset = "extended" if document["vulnerabilities"][0].get("scores") else "basic"
    report = validate_csaf_2_0(document, preset=preset)
    failures = [(r.id, r.errors) for r in report.results if not r.passed and not r.skipped]
    assert report.overall_valid, failures


def check_osv(document: dict[str, Any]) -> None:
    assert list(osv.schema_validator().iter_errors(document)) == []


def check_stix(text: str) -> None:
    result = validate_string(text, ValidationOptions(strict=True))
    assert result.is_valid, [str(e) for e in result.errors]
    stix2.parse(text, allow_custom=False)


def export(api: Api, viewer: Any, finding_id: str, export_format: pb.ExportFormat.ValueType) -> str:
    response = api.stub.ExportFinding(
        pb.ExportFindingRequest(finding_id=finding_id, format=export_format), metadata=api.as_(viewer)
    )
    assert response.format == export_format
    return response.document.decode()


def check_every_format(api: Api, viewer: Any, finding_id: str) -> dict[str, Any]:
    """Export in every format as `viewer`, validate each; returns the CSAF 2.1 document."""
    csaf_2_1 = json.loads(export(api, viewer, finding_id, pb.EXPORT_FORMAT_CSAF))
    check_csaf_2_1(csaf_2_1)
    check_csaf_2_0(json.loads(export(api, viewer, finding_id, pb.EXPORT_FORMAT_CSAF_2_0)))
    check_osv(json.loads(export(api, viewer, finding_id, pb.EXPORT_FORMAT_OSV)))
    check_stix(export(api, viewer, finding_id, pb.EXPORT_FORMAT_STIX))
    return csaf_2_1


def walk_the_workflow(api: Api, clock: ManualClock, finding_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Move a finding through every stage (an hour apart), checking every export at each one."""
    documents = [("received", check_every_format(api, REVIEWER, finding_id))]
    for stage in WORKFLOW:
        clock.advance(timedelta(hours=1))
        transition = pb.TransitionFindingRequest(finding_id=finding_id, reason=stage.name)
        if stage.state:
            transition.state = stage.state
        else:
            transition.embargo_state = stage.embargo
            if stage.embargo != ch_events.EMBARGO_STATE_EXITED:
                transition.embargo_end.CopyFrom(ts(clock.now + timedelta(days=30)))
        finding = api.stub.TransitionFinding(transition, metadata=api.as_(REVIEWER)).finding
        documents.append((stage.name, check_every_format(api, REVIEWER, finding_id)))
        if finding.HasField("published_at"):
            # The audience's own view (effective TLP, no evidence) passes too.
            check_every_format(api, OP_A, finding_id)
    return documents


@pytest.mark.slow
@pytest.mark.parametrize("name", REALISTIC)
def test_realistic_findings_pass_every_validator_at_every_workflow_stage(
    api: Api, clock: ManualClock, name: str
) -> None:
    finding = api.stub.ReportFinding(REALISTIC[name], metadata=api.as_(REVIEWER)).finding
    documents = walk_the_workflow(api, clock, finding.finding_id)
    versions = [d["document"]["tracking"]["version"] for _, d in documents]
    assert versions[0] == "0.1.0" and versions[-1] == "1.1.0"


@pytest.mark.slow
def test_a_benchmark_finding_passes_every_validator_at_every_workflow_stage(
    api: Api, clock: ManualClock
) -> None:
    candidate = CandidateInput(
        title="Use after free in the session cache",
        description="Freed session entries are read again after eviction.",
        evidence="trace",
        cwe_ids=["CWE-416"],
        affected_product="pkg:github/acme/session-cache@1.8.0",
        location=CodeLocation("src/cache.c", "evict", 88),
    )
    with api.components.findings_store.write() as uow:
        (finding,) = api.components.registry.ingest_candidates(uow, "sub-1", "job-1", [candidate], clock.now)
    check_every_format(api, REVIEWER, finding.finding_id)
    api.stub.UpdateFindingAssessment(
        pb.UpdateFindingAssessmentRequest(
            finding_id=finding.finding_id, cvss_v4_vector=CVSS40, cwe_ids=["CWE-416"], reason="scored"
        ),
        metadata=api.as_(REVIEWER),
    )
    api.stub.SetFindingSharing(
        pb.SetFindingSharingRequest(
            finding_id=finding.finding_id,
            tlp=common_pb2.TLP_AMBER,
            audience=common_pb2.Audience(organisations=["op-a"]),
            reason="shared",
        ),
        metadata=api.as_(REVIEWER),
    )
    walk_the_workflow(api, clock, finding.finding_id)


def csaf_of(
    api: Api, finding_id: str, export_format: pb.ExportFormat.ValueType = pb.EXPORT_FORMAT_CSAF
) -> Any:
    return json.loads(export(api, REVIEWER, finding_id, export_format))


def test_csaf_2_1_keeps_tlp_2_labels_and_csaf_2_0_never_loosens_them(api: Api) -> None:
    findings = {
        tlp: api.stub.ReportFinding(
            request("x", ["CWE-79"], [pb.AffectedProduct(purl="pkg:npm/x@1.0.0")], v3=CVSS31, tlp=tlp),
            metadata=api.as_(REVIEWER),
        ).finding.finding_id
        for tlp in (common_pb2.TLP_AMBER_STRICT, common_pb2.TLP_CLEAR)
    }

    def labels(export_format: pb.ExportFormat.ValueType) -> list[str]:
        return [
            csaf_of(api, finding_id, export_format)["document"]["distribution"]["tlp"]["label"]
            for finding_id in findings.values()
        ]

    assert labels(pb.EXPORT_FORMAT_CSAF) == ["AMBER+STRICT", "CLEAR"]
    assert labels(pb.EXPORT_FORMAT_CSAF_2_0) == ["RED", "WHITE"]


def test_csaf_2_1_carries_cvss_4_every_cwe_and_the_cvss_b_severity(api: Api) -> None:
    finding = api.stub.ReportFinding(REALISTIC["Maven with three CWEs"], metadata=api.as_(REVIEWER)).finding
    vulnerability = csaf_of(api, finding.finding_id)["vulnerabilities"][0]
    assert [c["id"] for c in vulnerability["cwes"]] == ["CWE-502", "CWE-917", "CWE-611"]
    (metric,) = vulnerability["metrics"]
    assert metric["content"]["cvss_v4"]["baseScore"] == 9.3
    assert metric["content"]["cvss_v4"]["baseSeverity"] == "CRITICAL"
    (threat,) = vulnerability["threats"]
    assert "CVSS-BT score 8.9 (HIGH)" in threat["details"] and CVSS4_WITH_THREAT in threat["details"]


def test_a_cvss_4_vector_with_threat_metrics_is_stored_with_its_cvss_b_score_and_named_scores(
    api: Api,
) -> None:
    finding = api.stub.ReportFinding(REALISTIC["Maven with three CWEs"], metadata=api.as_(REVIEWER)).finding
    assert finding.cvss_v4_vector == CVSS4_WITH_THREAT
    assert finding.cvss_v4_score == 9.3
    assert finding.severity == pb.SEVERITY_CRITICAL
    named = {(s.version, s.nomenclature): (s.score, s.severity) for s in finding.cvss_scores}
    assert named[("4.0", "CVSS-B")] == (9.3, pb.SEVERITY_CRITICAL)
    assert named[("4.0", "CVSS-BT")] == (8.9, pb.SEVERITY_HIGH)
    listed = api.stub.GetFinding(
        pb.GetFindingRequest(finding_id=finding.finding_id), metadata=api.as_(REVIEWER)
    )
    assert listed.finding.cvss_v4_score == 9.3


def test_a_cvss_3_1_vector_with_temporal_metrics_carries_its_temporal_score(api: Api) -> None:
    finding = api.stub.ReportFinding(REALISTIC["npm with CVSS 3.1"], metadata=api.as_(REVIEWER)).finding
    named = {(s.version, s.nomenclature): s.score for s in finding.cvss_scores}
    assert named == {("3.1", "base"): 9.8, ("3.1", "temporal"): 8.8}
    cvss_v3 = csaf_of(api, finding.finding_id)["vulnerabilities"][0]["metrics"][0]["content"]["cvss_v3"]
    assert (cvss_v3["baseScore"], cvss_v3["temporalScore"], cvss_v3["temporalSeverity"]) == (9.8, 8.8, "HIGH")


def test_csaf_products_carry_version_ranges_and_full_purls(api: Api) -> None:
    finding = api.stub.ReportFinding(REALISTIC["C library by purl"], metadata=api.as_(REVIEWER)).finding
    document = csaf_of(api, finding.finding_id)
    leaves = {}
    pending = list(document["product_tree"]["branches"])
    while pending:
        branch = pending.pop()
        pending += branch.get("branches", [])
        if "product" in branch:
            leaves[branch["category"], branch["name"]] = branch["product"]["product_identification_helper"]
    assert leaves[("product_version_range", "vers:deb/>=2.2.0|<2.5.0-1+deb12u1")] == {
        "purls": ["pkg:deb/debian/expat?distro=debian-12"]
    }
    assert leaves[("product_version", "2.4.7-1")] == {
        "purls": ["pkg:deb/debian/expat@2.4.7-1?distro=debian-11"]
    }


def test_a_patched_finding_lists_the_versions_with_the_fix_as_first_fixed(api: Api) -> None:
    finding = api.stub.ReportFinding(REALISTIC["Maven with three CWEs"], metadata=api.as_(REVIEWER)).finding
    for state in (
        ch_events.FINDING_STATE_TRIAGED,
        ch_events.FINDING_STATE_VALIDATED,
        ch_events.FINDING_STATE_PATCH_AVAILABLE,
    ):
        api.stub.TransitionFinding(
            pb.TransitionFindingRequest(finding_id=finding.finding_id, state=state),
            metadata=api.as_(REVIEWER),
        )
    document = csaf_of(api, finding.finding_id)
    names = {}
    pending = list(document["product_tree"]["branches"])
    while pending:
        branch = pending.pop()
        pending += branch.get("branches", [])
        if "product" in branch:
            names[branch["product"]["product_id"]] = branch["product"]["product_identification_helper"][
                "purls"
            ]
    status = document["vulnerabilities"][0]["product_status"]
    assert sorted(names[p][0] for p in status["first_fixed"]) == [
        "pkg:maven/org.acme/acme-core@3.1.4",
        "pkg:maven/org.acme/acme-core@4.0.2",
    ]
    assert not set(status["first_fixed"]) & set(status["known_affected"])


def test_the_csaf_revision_history_has_no_gaps_and_distinct_dates(api: Api, clock: ManualClock) -> None:
    finding = api.stub.ReportFinding(REALISTIC["npm with CVSS 3.1"], metadata=api.as_(REVIEWER)).finding
    for state in (
        ch_events.FINDING_STATE_TRIAGED,
        ch_events.FINDING_STATE_VALIDATED,
        ch_events.FINDING_STATE_PATCH_AVAILABLE,
        ch_events.FINDING_STATE_DISCLOSED,
    ):
        clock.advance(timedelta(hours=1))
        api.stub.TransitionFinding(
            pb.TransitionFindingRequest(finding_id=finding.finding_id, state=state),
            metadata=api.as_(REVIEWER),
        )
    document = csaf_of(api, finding.finding_id)
    history = document["document"]["tracking"]["revision_history"]
    assert [h["number"] for h in history] == ["1.0.0", "1.1.0"]
    assert len({h["date"] for h in history}) == len(history)
    report = validate_csaf_2_1(document, preset="full", only_rules=frozenset({"6.1.14", "6.1.21", "6.1.22"}))
    assert report.overall_valid, [(r.id, r.errors) for r in report.results if not r.passed]


@pytest.mark.slow
def test_aliases_are_the_cve_and_ids_in_csaf_aliases_in_osv_and_external_references_in_stix(
    api: Api,
) -> None:
    finding = api.stub.ReportFinding(REALISTIC["npm with CVSS 3.1"], metadata=api.as_(REVIEWER)).finding
    aliases = ["CVE-2026-20001", "GHSA-2xqm-7rf3-h4cv", "cve-2026-20002", "RHSA-2026:0101"]
    api.stub.SetFindingAliases(
        pb.SetFindingAliasesRequest(finding_id=finding.finding_id, aliases=aliases, reason="assigned"),
        metadata=api.as_(REVIEWER),
    )
    vulnerability = check_every_format(api, REVIEWER, finding.finding_id)["vulnerabilities"][0]
    assert vulnerability["cve"] == "CVE-2026-20001"
    assert [(i["system_name"], i["text"]) for i in vulnerability["ids"][1:]] == [
        ("GHSA", "GHSA-2xqm-7rf3-h4cv"),
        ("RHSA", "RHSA-2026:0101"),
    ]
    assert {"category": "other", "title": "Further CVE ids", "text": "CVE-2026-20002"} in vulnerability[
        "notes"
    ]
    csaf_2_0 = csaf_of(api, finding.finding_id, pb.EXPORT_FORMAT_CSAF_2_0)["vulnerabilities"][0]
    assert csaf_2_0["cve"] == "CVE-2026-20001" and csaf_2_0["ids"][1:] == vulnerability["ids"][1:]
    record = json.loads(export(api, REVIEWER, finding.finding_id, pb.EXPORT_FORMAT_OSV))
    assert record["aliases"] == ["CVE-2026-20001", "CVE-2026-20002", "GHSA-2xqm-7rf3-h4cv", "RHSA-2026:0101"]
    bundle = json.loads(export(api, REVIEWER, finding.finding_id, pb.EXPORT_FORMAT_STIX))
    (stix_vulnerability,) = [o for o in bundle["objects"] if o["type"] == "vulnerability"]
    named = {(r["source_name"], r["external_id"]) for r in stix_vulnerability["external_references"]}
    assert {("cve", "CVE-2026-20001"), ("cve", "CVE-2026-20002"), ("ghsa", "GHSA-2xqm-7rf3-h4cv")} <= named


def test_osv_names_every_cvss_score(api: Api) -> None:
    finding = api.stub.ReportFinding(REALISTIC["PyPI with CVSS 4.0 only"], metadata=api.as_(REVIEWER)).finding
    record = json.loads(export(api, REVIEWER, finding.finding_id, pb.EXPORT_FORMAT_OSV))
    assert record["severity"] == [{"type": "CVSS_V4", "score": CVSS4_WITH_THREAT}]
    scores = record["database_specific"]["cvss_scores"]
    named = {s["nomenclature"]: (s["score"], s["severity"]) for s in scores}
    assert named == {"CVSS-B": (9.3, "CRITICAL"), "CVSS-BT": (8.9, "HIGH")}


def test_stix_software_carries_the_purl_cpe_and_affected_versions(api: Api) -> None:
    for name in ("npm with CVSS 3.1", "firmware by CPE"):
        finding = api.stub.ReportFinding(REALISTIC[name], metadata=api.as_(REVIEWER)).finding
        bundle = json.loads(export(api, REVIEWER, finding.finding_id, pb.EXPORT_FORMAT_STIX))
        (software,) = [o for o in bundle["objects"] if o["type"] == "software"]
        if name == "firmware by CPE":
            assert software["cpe"] == "cpe:2.3:o:acme:plc_firmware:4.2.1:*:*:*:*:*:*:*"
            assert software["version"] == "4.2.1"
        else:
            assert software["extensions"][PURL_EXTENSION] == {
                "extension_type": "property-extension",
                "purl": "pkg:npm/%40acme/config-merge",
                "affected_versions": "vers:npm/>=2.0.0|<2.4.1",
            }
            assert any(o["id"] == PURL_EXTENSION for o in bundle["objects"])


FIRST_EXPORTS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from preflight_testkit.clearinghouse import REVIEWER, ManualClock, make_components, report_input
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from preflight_clearinghouse.adapters.exports.osv import schema_validator
    from preflight_clearinghouse.adapters.signing import ReportSigner
    from preflight_clearinghouse.domain.findings import cwe
    from preflight_clearinghouse.domain.findings.exports import ExportFormat

    def loaded():
        return {
            "osv_schema": schema_validator.cache_info().currsize,
            "cwe_catalog": cwe._catalog_file.cache_info().currsize,
        }

    tmp = Path(sys.argv[1])
    components = make_components(
        f"sqlite:///{tmp / 'ch.db'}", tmp, ReportSigner(Ed25519PrivateKey.generate()), ManualClock()
    )
    at_start = loaded()
    finding, _ = components.registry.report(REVIEWER, report_input())
    exported = [
        export_format.name
        for export_format in ExportFormat
        if components.registry.export(REVIEWER, finding.finding_id, export_format).document
    ]
    print(json.dumps({"at_start": at_start, "exported": exported}))
    """
)


@pytest.mark.slow
def test_start_up_loads_what_exports_read_so_no_export_request_pays_for_it(tmp_path: Path) -> None:
    """In a fresh process, building the service loads the OSV schema validator (its patterns
    compiled) and the CWE catalog; the first export of each format then finds them loaded. How long
    that first export takes is measured by bench/clearinghouse_first_export.py."""
    done = subprocess.run(
        [sys.executable, "-c", FIRST_EXPORTS, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["at_start"] == {"osv_schema": 1, "cwe_catalog": 1}
    assert outcome["exported"] == ["CSAF", "CSAF_2_0", "OSV", "STIX"]
