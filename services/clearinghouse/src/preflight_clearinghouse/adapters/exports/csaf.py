"""CSAF 2.0 security advisory (OASIS) for one finding.

CSAF 2.0 knows TLP 1.0 labels only: CLEAR is written WHITE, AMBER+STRICT is
written AMBER, and `distribution.text` carries the exact TLP 2.0 label and the
audience. CVSS 4.0 has no place in CSAF 2.0; the 3.1 vector is exported.
Document status follows the finding: draft before validation, interim while
validated or patched, final once disclosed or closed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from preflight_clearinghouse.adapters.exports.common import (
    GENERATOR,
    advisory_id,
    audience_text,
    dumps,
    rfc3339,
    source_text,
)
from preflight_clearinghouse.domain.cwe import cwe_name
from preflight_clearinghouse.domain.exports import ExportDocument
from preflight_clearinghouse.domain.findings import Finding
from preflight_clearinghouse.domain.sharing import Tlp
from preflight_clearinghouse.domain.workflow import FindingState

MEDIA_TYPE = "application/csaf+json"
TLP_V1 = {
    Tlp.CLEAR: "WHITE",
    Tlp.GREEN: "GREEN",
    Tlp.AMBER: "AMBER",
    Tlp.AMBER_STRICT: "AMBER",
    Tlp.RED: "RED",
}
DRAFT = frozenset({FindingState.RECEIVED, FindingState.TRIAGED, FindingState.INVALID})
FINAL = frozenset({FindingState.DISCLOSED, FindingState.CLOSED})


def filename(finding: Finding) -> str:
    """The file name CSAF prescribes: the tracking id, lower case, `.json`."""
    return f"{advisory_id(finding).lower()}.json"


class CsafExporter:
    """Renders findings as CSAF 2.0 documents published by the configured coordinator."""

    def __init__(self, publisher_name: str, publisher_namespace: str, generator_version: str) -> None:
        self._publisher = {
            "category": "coordinator",
            "name": publisher_name,
            "namespace": publisher_namespace,
        }
        self._generator_version = generator_version

    def __call__(self, finding: Finding, now: datetime) -> ExportDocument:
        return ExportDocument(
            MEDIA_TYPE, filename(finding), dumps(self.document(finding, now), sort_keys=True)
        )

    def document(self, finding: Finding, now: datetime) -> dict[str, Any]:
        """The CSAF document as a JSON-ready dict."""
        status = "draft" if finding.state in DRAFT else "final" if finding.state in FINAL else "interim"
        major = 0 if status == "draft" else 1
        version = f"{major}.{finding.revision - 1}.0"
        released = finding.published_at or finding.created_at
        current = max(finding.updated_at, released)
        history = [{"date": rfc3339(released), "number": f"{major}.0.0", "summary": "Initial version."}]
        if finding.revision > 1:
            summary = f"Revision {finding.revision} ({finding.state.value.lower()})."
            history.append({"date": rfc3339(current), "number": version, "summary": summary})
        notes = [{"category": "summary", "title": "Summary", "text": finding.description}]
        origin = source_text(finding)
        if origin:
            notes.append({"category": "general", "title": "Source", "text": origin})
        products = [
            _product(f"CSAFPID-{i:04d}", p.purl, p.version_range, p.cpe)
            for i, p in enumerate(finding.affected, 1)
        ]
        product_ids = [p["product_id"] for p in products]
        return {
            "document": {
                "category": "csaf_security_advisory",
                "csaf_version": "2.0",
                "distribution": {
                    "text": audience_text(finding),
                    "tlp": {"label": TLP_V1[finding.tlp], "url": "https://www.first.org/tlp/"},
                },
                "lang": "en",
                "notes": notes,
                "publisher": self._publisher,
                "references": [
                    {
                        "category": "self",
                        "summary": "Canonical URL",
                        "url": f"{self._publisher['namespace'].rstrip('/')}/advisories/{filename(finding)}",
                    }
                ],
                "title": finding.title,
                "tracking": {
                    "current_release_date": rfc3339(current),
                    "generator": {
                        "date": rfc3339(now),
                        "engine": {"name": GENERATOR, "version": self._generator_version},
                    },
                    "id": advisory_id(finding),
                    "initial_release_date": rfc3339(released),
                    "revision_history": history,
                    "status": status,
                    "version": version,
                },
            },
            "product_tree": {"full_product_names": products},
            "vulnerabilities": [_vulnerability(finding, product_ids)],
        }


def _product(product_id: str, purl: str, version_range: str, cpe: str) -> dict[str, Any]:
    if purl:
        name = f"{purl} {version_range}".strip()
        return {"name": name, "product_id": product_id, "product_identification_helper": {"purl": purl}}
    return {"name": cpe, "product_id": product_id, "product_identification_helper": {"cpe": cpe}}


def _vulnerability(finding: Finding, product_ids: list[str]) -> dict[str, Any]:
    notes = [{"category": "description", "title": "Description", "text": finding.description}]
    if len(finding.cwe_ids) > 1:
        others = ", ".join(f"{c} ({cwe_name(c)})" for c in finding.cwe_ids[1:])
        notes.append({"category": "other", "title": "Further weaknesses", "text": others})
    if finding.location.file:
        where = finding.location.file + (
            f", {finding.location.function}" if finding.location.function else ""
        )
        where += f", line {finding.location.line}" if finding.location.line else ""
        notes.append({"category": "details", "title": "Location", "text": where})
    vulnerability: dict[str, Any] = {
        "title": finding.title,
        "ids": [{"system_name": "Preflight clearinghouse", "text": finding.finding_id}],
        "notes": notes,
        "product_status": {"known_affected": product_ids},
        "remediations": [_remediation(finding, product_ids)],
    }
    if finding.cwe_ids:
        vulnerability["cwe"] = {"id": finding.cwe_ids[0], "name": cwe_name(finding.cwe_ids[0])}
    if finding.cvss.v3_vector and finding.cvss.v3_rating is not None:
        vulnerability["scores"] = [
            {
                "products": product_ids,
                "cvss_v3": {
                    "version": "3.1",
                    "vectorString": finding.cvss.v3_vector,
                    "baseScore": finding.cvss.v3_score,
                    "baseSeverity": finding.cvss.v3_rating.value,
                },
            }
        ]
    return vulnerability


def _remediation(finding: Finding, product_ids: list[str]) -> dict[str, Any]:
    patched = finding.state in (FindingState.PATCH_AVAILABLE, FindingState.DISCLOSED, FindingState.CLOSED)
    details = (
        "Apply the vendor's fix."
        if patched
        else "No fix is available yet; coordinate through the clearinghouse."
    )
    if finding.remediation_due is not None:
        details += f" Remediate by {rfc3339(finding.remediation_due)}."
    return {
        "category": "vendor_fix" if patched else "none_available",
        "details": details,
        "product_ids": product_ids,
    }
