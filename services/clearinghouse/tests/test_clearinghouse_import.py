"""ImportFinding: a CSAF 2.1, CSAF 2.0 or OSV document becomes a finding, validated first (a bad
document is INVALID_ARGUMENT naming JSON paths), mapped, deduplicated as the registry dedups,
idempotent by digest, audit-logged; what a realistic finding exports, imported elsewhere and
exported again, validates and carries the same mapped fields."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import events_pb2 as ch_events
from preflight.common.v1 import common_pb2
from preflight.sdk import AsyncPreflight, InvalidArgument, Preflight
from preflight_clearinghouse.adapters import codec, tables
from preflight_clearinghouse.adapters.signing import ReportSigner
from preflight_clearinghouse.bootstrap import Components
from preflight_clearinghouse.domain.findings.case_record import CreditType, ReferenceType
from preflight_clearinghouse.domain.findings.exports import ExportFormat
from preflight_clearinghouse.domain.findings.finding import AffectedProduct, CvssScore, Finding
from preflight_clearinghouse.domain.findings.imports import MAX_IMPORT_BYTES
from preflight_clearinghouse.domain.findings.queries import FindingQuery
from preflight_clearinghouse.domain.findings.workflow import FindingState
from preflight_clearinghouse.domain.sharing import Tlp
from preflight_testkit.clearinghouse import LAB_X, OP_A, REVIEWER, Api, ManualClock, make_components
from preflight_testkit.rpc import field_violations
from sqlalchemy import select

from .test_clearinghouse_export_standards import REALISTIC, check_csaf_2_0, check_csaf_2_1, check_osv

CVE = "CVE-2026-31001"
GHSA = "GHSA-4c2x-p9vq-7r3m"
ADVISORY_URL = "https://example.org/advisories/2026-31001"
FIX_URL = "https://github.com/acme/project/commit/4f1e2d3c"
CREDITS = (("Ada Researcher", CreditType.FINDER), ("Acme PSIRT", CreditType.REMEDIATION_DEVELOPER))
FORMATS = {
    ExportFormat.CSAF: pb.EXPORT_FORMAT_CSAF,
    ExportFormat.CSAF_2_0: pb.EXPORT_FORMAT_CSAF_2_0,
    ExportFormat.OSV: pb.EXPORT_FORMAT_OSV,
}
CHECKS = {
    ExportFormat.CSAF: check_csaf_2_1,
    ExportFormat.CSAF_2_0: check_csaf_2_0,
    ExportFormat.OSV: check_osv,
}
TLP_2_0 = {Tlp.CLEAR: Tlp.CLEAR, Tlp.AMBER_STRICT: Tlp.RED}
"""The TLP a CSAF 2.0 export carries (TLP 1.0 has no AMBER+STRICT; CLEAR is WHITE)."""


def osv_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema_version": "1.7.5",
        "id": "GHSA-7f3q-m4xh-9v2w",
        "modified": "2026-06-01T10:00:00Z",
        "published": "2026-05-30T08:00:00Z",
        "aliases": ["CVE-2026-32002"],
        "summary": "Path traversal in acme-unpack",
        "details": "Archive members named with ../ are written outside the target directory.",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:H/A:N"}],
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "acme-unpack", "purl": "pkg:pypi/acme-unpack"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.2.0"}, {"fixed": "1.2.7"}]}],
            }
        ],
        "references": [{"type": "FIX", "url": "https://github.com/acme/unpack/commit/9a8b7c"}],
        "credits": [{"name": "Grace Finder", "type": "FINDER"}],
        "database_specific": {"cwe_ids": ["CWE-22"]},
    }
    record.update(overrides)
    return record


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def import_request(document: bytes, export_format: pb.ExportFormat.ValueType) -> pb.ImportFindingRequest:
    return pb.ImportFindingRequest(document=document, format=export_format)


def audit_of(components: Components, finding_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(action, details) of a finding's audit entries, in order."""
    log = tables.audit_log.c
    with components.engine.connect() as conn:
        rows = conn.execute(
            select(log.action, log.details).where(log.subject_id == finding_id).order_by(log.seq)
        ).all()
    return [(action, json.loads(details)) for action, details in rows]


def refused(api: Api, request: pb.ImportFindingRequest, viewer: Any = REVIEWER) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.ImportFinding(request, metadata=api.as_(viewer))
    return caught.value


# --- the round trip -----------------------------------------------------------------------------


@pytest.fixture
def elsewhere(tmp_path: Path) -> Any:
    """A second clearinghouse (its own database and key): where a published document is imported."""
    built = make_components(
        f"sqlite:///{tmp_path / 'elsewhere.db'}",
        tmp_path / "elsewhere",
        ReportSigner(Ed25519PrivateKey.generate()),
        ManualClock(),
    )
    yield built
    built.engine.dispose()


def published(components: Components, name: str) -> Finding:
    """A realistic finding with a CVE and a GHSA alias, typed references and credits."""
    registry = components.registry
    finding, _ = registry.report(REVIEWER, codec.finding_input(REALISTIC[name]))
    registry.set_aliases(REVIEWER, finding.finding_id, [CVE, GHSA], "", 0)
    registry.set_references(
        REVIEWER,
        finding.finding_id,
        [(ReferenceType.ADVISORY, ADVISORY_URL), (ReferenceType.PATCH, FIX_URL)],
        "",
        0,
    )
    return registry.set_credits(REVIEWER, finding.finding_id, CREDITS, "", 0)


def mapped(finding: Finding, export_format: ExportFormat) -> dict[str, Any]:
    """The fields an import maps, as the format carries them."""
    fields: dict[str, Any] = {
        "title": finding.title,
        "description": finding.description,
        "cwe_ids": finding.cwe_ids,
        "cvss": (finding.cvss.v3_vector, finding.cvss.v4_vector),
        "tlp": finding.tlp,
        "aliases": finding.aliases,
        "references": finding.references,
        "credits": finding.credits,
        "products": finding.affected,
    }
    if export_format is ExportFormat.CSAF:
        # A CSAF cvss_v4 metric is the CVSS-B vector (the threat metrics are named in a note).
        fields["cvss"] = (finding.cvss.v3_vector, _cvss_b(finding).vector if _cvss_b(finding) else "")
    if export_format is ExportFormat.CSAF_2_0:
        # CSAF 2.0 has one machine-readable CWE, no CVSS 4.0 and TLP 1.0.
        fields.update(
            cwe_ids=finding.cwe_ids[:1],
            cvss=(finding.cvss.v3_vector, ""),
            tlp=TLP_2_0.get(finding.tlp, finding.tlp),
        )
    if export_format is ExportFormat.OSV:
        # OSV names a package without its version or qualifiers: compare what is affected by name.
        fields["products"] = sorted({p.identity() for p in finding.affected if p.cpe or _osv_named(p)})
    return fields


def _cvss_b(finding: Finding) -> CvssScore | None:
    return next((s for s in finding.cvss.scores if s.nomenclature == "CVSS-B"), None)


def _scores(finding: Finding, export_format: ExportFormat) -> tuple[CvssScore, ...]:
    """The scores an import of the format yields: CSAF carries no 4.0 threat metrics, 2.0 no 4.0."""
    if export_format is ExportFormat.OSV:
        return finding.cvss.scores
    v4 = (_cvss_b(finding),) if export_format is ExportFormat.CSAF else ()
    return tuple(s for s in finding.cvss.scores if s.version == "3.1" or s in v4)


def _osv_named(product: AffectedProduct) -> bool:
    return not product.purl.startswith("pkg:generic/") or "vcs_url" in product.purl


@pytest.mark.slow
@pytest.mark.parametrize("export_format", list(FORMATS), ids=lambda f: f.name)
@pytest.mark.parametrize("name", REALISTIC)
def test_a_realistic_finding_exported_imports_elsewhere_and_exports_again_with_its_mapped_fields(
    sqlite_components: Components, elsewhere: Components, name: str, export_format: ExportFormat
) -> None:
    original = published(sqlite_components, name)
    document = sqlite_components.registry.export(REVIEWER, original.finding_id, export_format).document

    imported, duplicate = elsewhere.registry.import_document(REVIEWER, document, export_format)

    assert not duplicate
    assert imported.state is FindingState.RECEIVED
    assert imported.audience.organisations == frozenset() and imported.audience.sectors == frozenset()
    expected = mapped(original, export_format)
    got = mapped(imported, export_format)
    if export_format is ExportFormat.OSV:
        got["products"] = sorted({p.identity() for p in imported.affected})
    assert got == expected
    assert imported.cvss.scores == _scores(original, export_format)
    again = elsewhere.registry.export(REVIEWER, imported.finding_id, export_format).document
    CHECKS[export_format](json.loads(again))


def test_csaf_and_osv_version_ranges_come_back_as_the_ranges_exported(
    sqlite_components: Components, elsewhere: Components
) -> None:
    original = published(sqlite_components, "Maven with three CWEs")
    document = sqlite_components.registry.export(REVIEWER, original.finding_id, ExportFormat.OSV).document
    imported, _ = elsewhere.registry.import_document(REVIEWER, document, ExportFormat.OSV)
    assert [(p.purl, p.version_range) for p in imported.affected] == [
        ("pkg:maven/org.acme/acme-core", "vers:maven/>=3.0.0|<3.1.4|>=4.0.0|<4.0.2")
    ]


# --- over gRPC ----------------------------------------------------------------------------------


def test_an_osv_record_becomes_a_received_finding_with_its_fields_and_an_audit_entry(api: Api) -> None:
    response = api.stub.ImportFinding(
        import_request(encode(osv_record()), pb.EXPORT_FORMAT_OSV), metadata=api.as_(REVIEWER)
    )
    finding = response.finding
    assert not response.duplicate
    assert finding.state == ch_events.FINDING_STATE_RECEIVED
    assert finding.title == "Path traversal in acme-unpack"
    assert list(finding.aliases) == ["CVE-2026-32002", "GHSA-7f3q-m4xh-9v2w"]
    assert list(finding.cwe_ids) == ["CWE-22"]
    assert [(p.purl, p.version_range) for p in finding.affected_products] == [
        ("pkg:pypi/acme-unpack", "vers:pypi/>=1.2.0|<1.2.7")
    ]
    assert finding.cvss_v3_score == 6.5
    assert [(r.type, r.url) for r in finding.references] == [
        (pb.REFERENCE_TYPE_PATCH, "https://github.com/acme/unpack/commit/9a8b7c")
    ]
    assert [(c.name, c.type) for c in finding.credits] == [("Grace Finder", pb.CREDIT_TYPE_FINDER)]
    # No TLP in the record: the most restrictive label; no audience until a reviewer shares it.
    assert finding.tlp == common_pb2.TLP_RED
    assert not finding.audience.organisations and not finding.audience.sectors
    ((action, details),) = audit_of(api.components, finding.finding_id)
    assert action == "finding.imported"
    assert details["format"] == "osv" and len(details["sha256"]) == 64


def test_importing_the_same_document_again_returns_the_same_finding(api: Api) -> None:
    request = import_request(encode(osv_record()), pb.EXPORT_FORMAT_OSV)
    first = api.stub.ImportFinding(request, metadata=api.as_(REVIEWER)).finding
    again = api.stub.ImportFinding(request, metadata=api.as_(REVIEWER)).finding
    assert again.finding_id == first.finding_id and again.revision == first.revision
    listed = api.stub.ListFindings(pb.ListFindingsRequest(), metadata=api.as_(REVIEWER)).findings
    assert [f.finding_id for f in listed] == [first.finding_id]
    assert [action for action, _ in audit_of(api.components, first.finding_id)] == ["finding.imported"]


def test_another_document_of_the_same_vulnerability_is_linked_as_a_duplicate_or_refused_on_aliases(
    api: Api,
) -> None:
    first = api.stub.ImportFinding(
        import_request(encode(osv_record()), pb.EXPORT_FORMAT_OSV), metadata=api.as_(REVIEWER)
    ).finding
    # Same product, CWE and label, other ids: the registry's fingerprint links it.
    variant = osv_record(id="PYSEC-2026-77", aliases=[], summary="acme-unpack writes outside its target")
    second = api.stub.ImportFinding(
        import_request(encode(variant), pb.EXPORT_FORMAT_OSV), metadata=api.as_(REVIEWER)
    )
    assert second.duplicate and second.finding.link.target_finding_id == first.finding_id
    # An alias belongs to one finding: a document naming a held one is refused, naming `aliases`.
    holder = osv_record(id="PYSEC-2026-78", summary="the same CVE again")
    error = refused(api, import_request(encode(holder), pb.EXPORT_FORMAT_OSV))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(error)) == ["aliases"]


def test_a_csaf_document_with_its_tlp_keeps_it(api: Api, sqlite_components: Components) -> None:
    original = published(sqlite_components, "npm with CVSS 3.1")
    document = json.loads(
        sqlite_components.registry.export(REVIEWER, original.finding_id, ExportFormat.CSAF).document
    )
    document["document"]["distribution"]["tlp"]["label"] = "GREEN"
    document["vulnerabilities"][0].pop("cve")
    document["vulnerabilities"][0]["ids"] = document["vulnerabilities"][0]["ids"][:1]
    finding = api.stub.ImportFinding(
        import_request(encode(document), pb.EXPORT_FORMAT_CSAF), metadata=api.as_(REVIEWER)
    ).finding
    assert finding.tlp == common_pb2.TLP_GREEN and finding.finding_id != original.finding_id


def test_a_document_failing_validation_is_refused_naming_its_json_paths(
    api: Api, sqlite_components: Components
) -> None:
    bad_osv = osv_record(severity=[{"type": "CVSS_V9", "score": "x"}])
    del bad_osv["modified"]
    error = refused(api, import_request(encode(bad_osv), pb.EXPORT_FORMAT_OSV))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(error)
    assert "document.severity[0].type" in violations and "document" in violations, violations

    original = published(sqlite_components, "firmware by CPE")
    csaf = json.loads(
        sqlite_components.registry.export(REVIEWER, original.finding_id, ExportFormat.CSAF).document
    )
    del csaf["document"]["title"]
    csaf["vulnerabilities"][0]["product_status"]["known_affected"] = ["CSAFPID-9999"]
    error = refused(api, import_request(encode(csaf), pb.EXPORT_FORMAT_CSAF))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(error)
    assert set(violations) <= {
        "document.document",
        "document.vulnerabilities[0].product_status.known_affected[0]",
    }
    assert violations and all("Traceback" not in text and len(text) <= 200 for text in violations.values())
    # A CSAF 2.1 document is not a CSAF 2.0 one.
    error = refused(api, import_request(encode(csaf), pb.EXPORT_FORMAT_CSAF_2_0))
    assert list(field_violations(error)) == ["document.document.csaf_version"]
    listed = api.stub.ListFindings(pb.ListFindingsRequest(), metadata=api.as_(REVIEWER)).findings
    assert [f.finding_id for f in listed] == [original.finding_id]


def test_a_document_mapping_to_a_bad_finding_is_refused_naming_the_finding_field(api: Api) -> None:
    record = osv_record(database_specific={"cwe_ids": ["CWE-99999"]})
    error = refused(api, import_request(encode(record), pb.EXPORT_FORMAT_OSV))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(error)) == ["cwe_ids[0]"]


@pytest.mark.parametrize(
    ("document", "export_format", "field"),
    [
        (b"{not json", pb.EXPORT_FORMAT_OSV, "document"),
        (b"\xff\xfe", pb.EXPORT_FORMAT_CSAF, "document"),
        (b"[]", pb.EXPORT_FORMAT_OSV, "document"),
        (b" " * (MAX_IMPORT_BYTES + 1), pb.EXPORT_FORMAT_OSV, "document"),
        (b"{}", pb.EXPORT_FORMAT_STIX, "format"),
        (b"{}", pb.EXPORT_FORMAT_UNSPECIFIED, "format"),
        (b"{}", 99, "format"),
    ],
    ids=["not-json", "not-utf8", "not-an-object", "oversize", "stix", "no-format", "unknown-format"],
)
def test_a_malformed_oversized_or_unimportable_request_is_invalid_argument(
    api: Api, document: bytes, export_format: int, field: str
) -> None:
    error = refused(api, import_request(document, export_format))  # type: ignore[arg-type]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(error)) == [field]


def test_only_reviewers_and_admins_import(api: Api) -> None:
    request = import_request(encode(osv_record()), pb.EXPORT_FORMAT_OSV)
    for viewer in (OP_A, LAB_X):
        assert refused(api, request, viewer).code() == grpc.StatusCode.PERMISSION_DENIED
    assert api.stub.ListFindings(pb.ListFindingsRequest(), metadata=api.as_(REVIEWER)).findings == []


def test_a_finding_imported_through_the_registry_is_not_visible_to_its_would_be_audience(
    sqlite_components: Components,
) -> None:
    finding, _ = sqlite_components.registry.import_document(
        REVIEWER,
        encode(osv_record(database_specific={"cwe_ids": ["CWE-22"], "tlp": "TLP:CLEAR"})),
        ExportFormat.OSV,
    )
    assert finding.tlp is Tlp.CLEAR
    listed, _ = sqlite_components.registry.list_visible(OP_A, FindingQuery(), 100, "")
    assert listed == []


# --- SDK and CLI --------------------------------------------------------------------------------


def test_the_sync_and_async_clients_import_and_a_retry_returns_the_same_finding(api: Api) -> None:
    document = encode(osv_record())
    token = api.identity.token(REVIEWER)
    with Preflight(targets={"clearinghouse": api.target}, token=token) as reviewer:
        first = reviewer.clearinghouse.import_finding(document, pb.EXPORT_FORMAT_OSV).finding
        with pytest.raises(InvalidArgument):
            reviewer.clearinghouse.import_finding(b"{}", pb.EXPORT_FORMAT_OSV)

    async def again() -> str:
        async with AsyncPreflight(targets={"clearinghouse": api.target}, token=token) as client:
            return (
                await client.clearinghouse.import_finding(document, pb.EXPORT_FORMAT_OSV)
            ).finding.finding_id

    assert asyncio.run(again()) == first.finding_id


def test_the_cli_imports_a_file(api: Api, tmp_path: Path) -> None:
    preflight = api.cli_as(REVIEWER, tmp_path)  # type: ignore[arg-type]
    advisory = tmp_path / "advisory.osv.json"
    advisory.write_bytes(encode(osv_record()))

    code, out, err = preflight("--json", "finding", "import", str(advisory), "--format", "osv")
    assert code == 0, err
    assert json.loads(out)["finding"]["title"] == "Path traversal in acme-unpack"
    # STIX bundles are exported, never imported: the CLI does not offer it.
    with pytest.raises(SystemExit):
        preflight("finding", "import", str(advisory), "--format", "stix")
