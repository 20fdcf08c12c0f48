"""Exports of realistic findings pass their official validators (offline)."""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import replace
from datetime import timedelta
from importlib import resources

import pytest
import stix2
from csaf.csaf.v20 import validate as validate_csaf
from jsonschema import Draft202012Validator
from preflight_clearinghouse.adapters.exports import osv
from preflight_clearinghouse.adapters.exports.csaf import CsafExporter
from preflight_clearinghouse.adapters.exports.osv import export_osv, ranges_of
from preflight_clearinghouse.adapters.exports.stix import TLP_MARKING_IDS, export_stix
from preflight_clearinghouse.bootstrap import Components
from preflight_clearinghouse.domain.errors import FieldViolation, InvalidInput
from preflight_clearinghouse.domain.findings.finding import (
    AffectedProduct,
    CodeLocation,
    Cvss,
    Finding,
    FindingInput,
    ProductInput,
    check_report,
)
from preflight_clearinghouse.domain.findings.workflow import EmbargoState, FindingState
from preflight_clearinghouse.domain.sharing import Audience, Tlp, audience_view
from preflight_testkit.clearinghouse import REVIEWER, START, V31, V40, make_finding, report_input, source
from stix2validator import ValidationOptions, validate_string

NOW = START + timedelta(days=2)
CSAF = CsafExporter("Preflight clearinghouse", "https://clearinghouse.preflight.example", "0.1.0")
CSAF_2_0 = CsafExporter(
    "Preflight clearinghouse", "https://clearinghouse.preflight.example", "0.1.0", csaf_version="2.0"
)


def realistic(**overrides: object) -> Finding:
    """A validated heap overflow in a Python package and a router firmware, scored, under embargo."""
    draft = check_report(
        FindingInput(
            title="Heap overflow in libfoo's header parser",
            description="A crafted Content-Length header overflows a heap buffer in parse_header().",
            cwe_ids=["CWE-787", "CWE-20"],
            affected_products=[
                ProductInput(
                    purl="pkg:pypi/libfoo", version_range="vers:pypi/>=1.0.0|<1.4.2|>=2.0.0|<=2.1.0"
                ),
                ProductInput(purl="pkg:maven/org.example/libfoo-java@3.2.1"),
                ProductInput(cpe="cpe:2.3:o:acme:router_firmware:2.1:*:*:*:*:*:*:*"),
            ],
            location=CodeLocation("src/libfoo/parse.c", "parse_header", 120),
            cvss_v3_vector=V31,
            cvss_v4_vector=V40,
            tlp=Tlp.AMBER,
            audience_organisations=["op-a"],
            audience_sectors=["finance", "energy"],
        ),
        START,
    )
    finding = make_finding(
        title=draft.title,
        description=draft.description,
        cwe_ids=draft.cwe_ids,
        affected=draft.affected,
        location=draft.location,
        cvss=draft.cvss,
        tlp=draft.tlp,
        audience=draft.audience,
        fingerprint=draft.fingerprint,
        embargo_state=EmbargoState.ACTIVE,
        embargo_end=START + timedelta(days=30),
        remediation_due=START + timedelta(days=21),
        source=source("lab-xq7", consent=True),
        revision=4,
        updated_at=START + timedelta(days=1),
    )
    return audience_view(replace(finding, **overrides), NOW)  # type: ignore[arg-type]


VARIANTS = {
    "validated under embargo": realistic(),
    "benchmark candidate, unscored draft": realistic(
        state=FindingState.RECEIVED,
        published_at=None,
        cvss=Cvss(),
        cwe_ids=(),
        tlp=Tlp.RED,
        audience=Audience(),
    ),
    "disclosed, TLP:CLEAR": realistic(
        state=FindingState.DISCLOSED, tlp=Tlp.CLEAR, embargo_state=EmbargoState.EXITED, revision=9
    ),
    "patched, AMBER+STRICT, firmware only": realistic(
        state=FindingState.PATCH_AVAILABLE,
        tlp=Tlp.AMBER_STRICT,
        affected=(AffectedProduct(cpe="cpe:2.3:h:acme:plc\\:x:1.0:*:*:*:*:*:*:*"),),
    ),
    "RED, one purl without range": realistic(
        tlp=Tlp.RED, affected=(AffectedProduct(purl="pkg:npm/%40scope/pkg"),)
    ),
}


@pytest.mark.parametrize("finding", VARIANTS.values(), ids=VARIANTS.keys())
def test_csaf_2_0_exports_pass_the_csaf_2_0_validator(finding: Finding) -> None:
    document = json.loads(CSAF_2_0(finding, NOW).document)
    # Mandatory tests always; the recommended ones too once the finding is scored (an unscored
    # candidate cannot meet "6.2.3 missing score").
    for preset in ("basic", "extended") if finding.cvss.v3_vector else ("basic",):
        report = validate_csaf(document, preset=preset)
        failures = [(r.id, r.errors) for r in report.results if not r.passed and not r.skipped]
        assert report.overall_valid, (preset, failures)
    assert document["document"]["distribution"]["text"].startswith(f"TLP:{finding.tlp.value}.")


@pytest.mark.parametrize("finding", VARIANTS.values(), ids=VARIANTS.keys())
def test_osv_exports_pass_the_current_official_osv_schema(finding: Finding) -> None:
    raw = (
        resources.files("preflight_clearinghouse.adapters.exports")
        .joinpath("schemas/osv-schema.json")
        .read_bytes()
    )
    assert hashlib.sha256(raw).hexdigest() == osv.SCHEMA_SHA256
    schema = json.loads(raw)
    # The current schema, not the 2023 one: it knows CVSS_V4 and every ecosystem of today.
    assert "CVSS_V4" in json.dumps(schema["$defs"]["severity"])
    assert "Kubernetes" in schema["$defs"]["ecosystemName"]["enum"]
    document = json.loads(export_osv(finding, NOW).document)
    assert list(osv.schema_validator().iter_errors(document)) == []
    # Only the id rule is taken from the specification beyond the file: everything else as released.
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert [e.path for e in validator.iter_errors(document)] == [deque(["id"])]
    assert document["id"] == f"x_PREFLIGHT-{finding.finding_id}"


def test_the_osv_validator_refuses_an_unregistered_id_prefix() -> None:
    document = json.loads(export_osv(realistic(), NOW).document)
    document["id"] = document["id"].removeprefix("x_")
    assert [e.path for e in osv.schema_validator().iter_errors(document)] == [deque(["id"])]


def test_osv_ranges_follow_the_vers_constraints() -> None:
    ranges, versions, widened = ranges_of("vers:pypi/>=1.0.0|<1.4.2|>=2.0.0|<=2.1.0|3.0.0")
    assert ranges == [
        {"type": "ECOSYSTEM", "events": [{"introduced": "1.0.0"}, {"fixed": "1.4.2"}]},
        {"type": "ECOSYSTEM", "events": [{"introduced": "2.0.0"}, {"last_affected": "2.1.0"}]},
    ]
    assert versions == ["3.0.0"]
    assert not widened


@pytest.mark.parametrize(
    ("vers", "events"),
    [
        ("vers:pypi/>1.0|<1.4.2", [{"introduced": "1.0"}, {"fixed": "1.4.2"}]),
        ("vers:pypi/!=1.2.0|<2.0", [{"introduced": "0"}, {"fixed": "2.0"}]),
        ("vers:pypi/>1.0", [{"introduced": "1.0"}]),
        ("vers:pypi/!=1.2.0", [{"introduced": "0"}]),
    ],
)
def test_osv_ranges_with_exclusive_bounds_are_widened_never_emptied(vers: str, events: list[object]) -> None:
    finding = realistic(affected=(AffectedProduct(purl="pkg:pypi/libfoo", version_range=vers),))
    (entry,) = json.loads(export_osv(finding, NOW).document)["affected"]
    assert entry["ranges"] == [{"type": "ECOSYSTEM", "events": events}]
    assert entry["database_specific"] == {"vers": vers}


@pytest.mark.parametrize(
    ("purl", "ecosystem", "name"),
    [
        ("pkg:deb/debian/expat@2.5.0-1?distro=debian-12", "Debian:12", "expat"),
        ("pkg:deb/debian/expat@2.5.0-1", "Debian", "expat"),
        ("pkg:deb/ubuntu/openssl@3.0.2", "Ubuntu", "openssl"),
        ("pkg:apk/alpine/busybox@1.36.1", "Alpine", "busybox"),
        ("pkg:rpm/redhat/openssl@3.0.7", "Red Hat", "openssl"),
        ("pkg:github/acme/widget@v1.2.0", "GIT", "https://github.com/acme/widget"),
        (
            "pkg:generic/zlib@1.2.13?vcs_url=git%2Bhttps://github.com/madler/zlib",
            "GIT",
            "https://github.com/madler/zlib",
        ),
        ("pkg:maven/org.example/libfoo-java@3.2.1", "Maven", "org.example:libfoo-java"),
        ("pkg:npm/%40scope/pkg@1.0.0", "npm", "@scope/pkg"),
        ("pkg:cargo/serde@1.0.0", "crates.io", "serde"),
        ("pkg:conan/openssl@3.1.0", "ConanCenter", "openssl"),
    ],
)
def test_osv_ecosystems_come_from_one_table_of_real_ecosystems(purl: str, ecosystem: str, name: str) -> None:
    finding = realistic(affected=(AffectedProduct(purl=purl),))
    document = json.loads(export_osv(finding, NOW).document)
    (entry,) = document["affected"]
    assert entry["package"]["ecosystem"] == ecosystem
    assert entry["package"]["name"] == name
    assert entry.get("versions") or entry.get("ranges")


def test_products_without_an_osv_ecosystem_are_listed_not_invented() -> None:
    finding = realistic(affected=(AffectedProduct(purl="pkg:generic/libbar@1.0"),))
    document = json.loads(export_osv(finding, NOW).document)
    assert "affected" not in document
    assert document["database_specific"]["unmapped_products"] == ["pkg:generic/libbar@1.0"]


def test_osv_severity_carries_cvss_4_as_a_severity_type() -> None:
    document = json.loads(export_osv(realistic(), NOW).document)
    assert {"type": "CVSS_V4", "score": V40} in document["severity"]
    assert {"type": "CVSS_V3", "score": V31} in document["severity"]
    assert "cvss_v4" not in document["database_specific"]


@pytest.mark.parametrize("finding", VARIANTS.values(), ids=VARIANTS.keys())
def test_stix_bundles_pass_the_stix_validator_with_tlp_2_markings(finding: Finding) -> None:
    text = export_stix(finding, NOW).document.decode()
    result = validate_string(text, ValidationOptions(strict=True))
    assert result.is_valid, [str(e) for e in result.errors]
    bundle = json.loads(text)
    marking_ids = {ref for o in bundle["objects"] for ref in o.get("object_marking_refs", [])}
    assert marking_ids == {TLP_MARKING_IDS[finding.tlp]}
    tlp1_ids = {stix2.TLP_WHITE.id, stix2.TLP_GREEN.id, stix2.TLP_AMBER.id, stix2.TLP_RED.id}
    assert not marking_ids & tlp1_ids
    (marking,) = [o for o in bundle["objects"] if o["type"] == "marking-definition"]
    extension = marking["extensions"]["extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"]
    assert extension["tlp_2_0"] == finding.tlp.value.lower()


def test_exports_name_the_lab_only_with_its_consent() -> None:
    for consent in (True, False):
        finding = realistic(source=source("lab-secretive", consent=consent))
        for document in (
            CSAF(finding, NOW).document,
            export_osv(finding, NOW).document,
            export_stix(finding, NOW).document,
        ):
            assert (b"lab-secretive" in document) is consent
            assert (b"model-of-lab-secretive" in document) is consent


def test_an_export_without_a_format_names_every_format_the_registry_exports(components: Components) -> None:
    finding, _ = components.registry.report(REVIEWER, report_input())
    with pytest.raises(InvalidInput) as refused:
        components.registry.export(REVIEWER, finding.finding_id, None)
    assert refused.value.violations == (FieldViolation("format", "choose one of CSAF, CSAF_2_0, OSV, STIX"),)


@pytest.mark.parametrize("exporter", [CSAF, CSAF_2_0], ids=["2.1", "2.0"])
def test_a_csaf_document_is_the_same_bytes_whenever_it_is_exported(exporter: CsafExporter) -> None:
    """A provider serves a document's hash and signature beside it: exported again a minute later,
    the same view of the same finding must be the same bytes."""
    finding = VARIANTS["RED, one purl without range"]
    assert exporter(finding, NOW).document == exporter(finding, NOW + timedelta(minutes=1)).document
