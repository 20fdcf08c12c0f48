"""STIX 2.1 bundle for one finding, marked with the official TLP 2.0 marking definitions.

The TLP 2.0 markings are the OASIS objects of the TLP 2.0 extension
(extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d in
oasis-open/cti-stix-common-objects), not the `stix2` package's TLP 1.0
constants. The bundle holds the marking definition, the clearinghouse's
identity, the vulnerability, one `software` object per affected product and a
`related-to` relationship from each product to the vulnerability; every
object but the marking carries the finding's TLP marking.

A `software` object names its product as STIX 2.1 can: a CPE product by its
`cpe` (and `vendor`, `name`, `version`); a purl product by `name`, `vendor`
(the purl namespace) and `version` (when the purl has one), and — STIX having
no purl property — by the purl itself and the affected `vers` range in the
package-URL property extension (`PURL_EXTENSION`, defined in the bundle by an
`extension-definition` object, the STIX 2.1 mechanism for new properties).
Each alias is an external reference named by its id system in lower case (`cve`, `ghsa`,
`rhsa`…), and each reference one named by its type (`advisory`, `patch`, `report`, `web`)
whose description is the URL;
credits are named in the description, beside the source. CVSS vectors are external references
naming each score by its nomenclature (base / temporal for 3.1, CVSS-B / CVSS-BT … for 4.0).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from packageurl import PackageURL

from preflight_clearinghouse.adapters.exports.common import (
    advisory_id,
    audience_text,
    dumps,
    source_text,
)
from preflight_clearinghouse.domain.findings.aliases import alias_system
from preflight_clearinghouse.domain.findings.exports import ExportDocument
from preflight_clearinghouse.domain.findings.finding import AffectedProduct, Finding, cpe_fields
from preflight_clearinghouse.domain.sharing import Tlp

MEDIA_TYPE = "application/stix+json;version=2.1"
TLP_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP_MARKING_IDS = {
    Tlp.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
STIX_SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
PURL_SCHEMA = "https://github.com/package-url/purl-spec"


def stable_id(kind: str, name: str) -> str:
    """`kind--<uuid>`: a UUIDv4-formatted id derived from `name`, so re-exports keep their ids."""
    digest = hashlib.sha256(f"preflight/{kind}/{name}".encode()).digest()
    return f"{kind}--{uuid.UUID(bytes=digest[:16], version=4)}"


IDENTITY_ID = stable_id("identity", "preflight-clearinghouse")
IDENTITY_CREATED = "2026-06-01T00:00:00.000Z"
PURL_EXTENSION = stable_id("extension-definition", "software-purl/1.0")


def purl_extension_definition() -> dict[str, Any]:
    """The extension-definition of the package-URL property extension of `software` objects.

    Its properties: `purl` (the package URL, qualifiers kept) and `affected_versions` (the
    `vers` range of the affected versions, when one was reported).
    """
    return {
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": PURL_EXTENSION,
        "created_by_ref": IDENTITY_ID,
        "created": IDENTITY_CREATED,
        "modified": IDENTITY_CREATED,
        "name": "Package URL of software",
        "description": "purl: the package URL (purl-spec) of the software; affected_versions: the "
        "affected versions as a vers range (purl-spec VERSION-RANGE-SPEC).",
        "schema": PURL_SCHEMA,
        "version": "1.0.0",
        "extension_types": ["property-extension"],
    }


def tlp_marking(tlp: Tlp) -> dict[str, Any]:
    """The official TLP 2.0 marking-definition object for `tlp`."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP_MARKING_IDS[tlp],
        "created": "2022-10-01T00:00:00.000Z",
        "name": f"TLP:{tlp.value}",
        "extensions": {TLP_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": tlp.value.lower()}},
    }


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _software(product: AffectedProduct, marking: str) -> dict[str, Any]:
    """A software SCO with the deterministic id STIX 2.1 prescribes (UUIDv5 of its id properties)."""
    extensions: dict[str, Any] = {}
    if product.purl:
        purl = PackageURL.from_string(product.purl)
        contributing = {"name": purl.name}
        if purl.namespace:
            contributing["vendor"] = purl.namespace
        if purl.version:
            contributing["version"] = purl.version
        properties = {"extension_type": "property-extension", "purl": product.purl}
        if product.version_range:
            properties["affected_versions"] = product.version_range
        extensions[PURL_EXTENSION] = properties
    else:
        parts = cpe_fields(product.cpe)
        contributing = {"name": parts[4], "vendor": parts[3], "cpe": product.cpe}
        if parts[5] not in ("*", "-"):
            contributing["version"] = parts[5]
    canonical = json.dumps(contributing, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    software: dict[str, Any] = {
        "type": "software",
        "spec_version": "2.1",
        "id": f"software--{uuid.uuid5(STIX_SCO_NAMESPACE, canonical)}",
        **contributing,
        "object_marking_refs": [marking],
    }
    if extensions:
        software["extensions"] = extensions
    return software


def stix_bundle(finding: Finding) -> dict[str, Any]:
    """The bundle as a JSON-ready dict."""
    marking = TLP_MARKING_IDS[finding.tlp]
    created, modified = _timestamp(finding.created_at), _timestamp(finding.updated_at)
    references: list[dict[str, str]] = [
        {
            "source_name": "preflight",
            "external_id": advisory_id(finding),
            "description": audience_text(finding),
        }
    ]
    references += [{"source_name": alias_system(a).lower(), "external_id": a} for a in finding.aliases]
    references += [{"source_name": "cwe", "external_id": cwe} for cwe in finding.cwe_ids]
    # A `url` wants the `hashes` of what it points at (STIX best practice, checked strictly), which
    # the registry does not keep: the URL is the reference's description.
    references += [{"source_name": r.type.value.lower(), "description": r.url} for r in finding.references]
    for version, vector in (("3.1", finding.cvss.v3_vector), ("4.0", finding.cvss.v4_vector)):
        if vector:
            scores = [s for s in finding.cvss.scores if s.version == version]
            references.append(
                {
                    "source_name": f"cvss-v{version}",
                    "external_id": vector,
                    "description": "; ".join(
                        f"{s.nomenclature} score {s.score} ({s.rating.value})" for s in scores
                    ),
                }
            )
    description = finding.description
    origin = source_text(finding)
    if origin:
        description += "\n\n" + origin
    if finding.credits:
        description += "\n\nCredits: " + "; ".join(
            f"{c.name} ({c.type.value.lower()})" for c in finding.credits
        )
    vulnerability = {
        "type": "vulnerability",
        "spec_version": "2.1",
        "id": stable_id("vulnerability", finding.finding_id),
        "created_by_ref": IDENTITY_ID,
        "created": created,
        "modified": modified,
        "name": finding.title,
        "description": description,
        "external_references": references,
        "object_marking_refs": [marking],
    }
    identity = {
        "type": "identity",
        "spec_version": "2.1",
        "id": IDENTITY_ID,
        "created": IDENTITY_CREATED,
        "modified": IDENTITY_CREATED,
        "name": "Preflight clearinghouse",
        "identity_class": "organization",
        "object_marking_refs": [marking],
    }
    software = [_software(p, marking) for p in finding.affected]
    relationships = [
        {
            "type": "relationship",
            "spec_version": "2.1",
            "id": stable_id("relationship", f"{finding.finding_id}/{sw['id']}"),
            "created_by_ref": IDENTITY_ID,
            "created": created,
            "modified": modified,
            "relationship_type": "related-to",
            "description": "The software is affected by the vulnerability.",
            "source_ref": sw["id"],
            "target_ref": vulnerability["id"],
            "object_marking_refs": [marking],
        }
        for sw in software
    ]
    return {
        "type": "bundle",
        "id": stable_id("bundle", f"{finding.finding_id}/{finding.revision}"),
        "objects": [
            tlp_marking(finding.tlp),
            identity,
            *([purl_extension_definition()] if any(p.purl for p in finding.affected) else []),
            vulnerability,
            *software,
            *relationships,
        ],
    }


def export_stix(finding: Finding, now: datetime) -> ExportDocument:
    """Render the bundle."""
    return ExportDocument(
        MEDIA_TYPE, f"{advisory_id(finding).lower()}.stix.json", dumps(stix_bundle(finding))
    )
