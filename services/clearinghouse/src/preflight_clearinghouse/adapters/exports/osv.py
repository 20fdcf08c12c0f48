"""OSV (OpenSSF) record for one finding, validated against the vendored official schema.

Each purl product becomes an `affected` entry (ecosystem from the purl type).
Its `vers:` range becomes OSV events: every `>=` opens an interval (`introduced`),
`<` closes it (`fixed`) and `<=` closes it (`last_affected`), one range object
per interval; `=` constraints become `versions`. Ranges with other comparators
(`>`, `!=`) cannot be written as OSV events and are kept in
`database_specific.vers`. CPE products, CWE ids, the CVSS 4.0 vector, the TLP
label and the audience go to `database_specific`.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from packageurl import PackageURL

from preflight_clearinghouse.adapters.exports.common import (
    advisory_id,
    dumps,
    rfc3339,
    source_text,
    tlp_text,
    without_version,
)
from preflight_clearinghouse.domain.exports import ExportDocument
from preflight_clearinghouse.domain.findings import AffectedProduct, Finding, parse_version_range

MEDIA_TYPE = "application/json"
SCHEMA_VERSION = "1.6.0"
ECOSYSTEMS = {
    "cargo": "crates.io",
    "composer": "Packagist",
    "cran": "CRAN",
    "deb": "Debian",
    "gem": "RubyGems",
    "github": "GitHub Actions",
    "golang": "Go",
    "hackage": "Hackage",
    "hex": "Hex",
    "maven": "Maven",
    "npm": "npm",
    "nuget": "NuGet",
    "pub": "Pub",
    "pypi": "PyPI",
    "swift": "SwiftURL",
}
EVENT_OF = {"<": "fixed", "<=": "last_affected"}


@cache
def schema_validator() -> Any:
    """A validator for the vendored official OSV schema (jsonschema loads slowly: on first use)."""
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    text = (
        resources.files("preflight_clearinghouse.adapters.exports")
        .joinpath("schemas/osv-schema.json")
        .read_text()
    )
    return Draft202012Validator(json.loads(text), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _package_name(product: AffectedProduct) -> tuple[str, str, str]:
    purl = without_version(product.purl)
    if purl.type == "maven" and purl.namespace:
        name = f"{purl.namespace}:{purl.name}"
    else:
        name = f"{purl.namespace}/{purl.name}" if purl.namespace else purl.name
    return ECOSYSTEMS.get(purl.type, purl.type), name, purl.to_string()


def ranges_of(vers: str) -> tuple[list[dict[str, Any]], list[str]] | None:
    """OSV ranges and exact versions for a `vers:` range, or None when it cannot be expressed."""
    constraints = sorted(parse_version_range(vers).constraints, key=lambda c: c.version)
    if any(c.comparator not in (">=", "<", "<=", "=", "*") for c in constraints):
        return None
    ranges: list[dict[str, Any]] = []
    versions: list[str] = []
    opened: str | None = None
    for constraint in constraints:
        version = str(constraint.version)
        if constraint.comparator == "*":
            opened = "0"
        elif constraint.comparator == "=":
            versions.append(version)
        elif constraint.comparator == ">=":
            opened = version
        else:
            events = [{"introduced": opened or "0"}, {EVENT_OF[constraint.comparator]: version}]
            ranges.append({"type": "ECOSYSTEM", "events": events})
            opened = None
    if opened is not None:
        ranges.append({"type": "ECOSYSTEM", "events": [{"introduced": opened}]})
    return ranges, versions


def _affected(product: AffectedProduct) -> dict[str, Any]:
    ecosystem, name, purl = _package_name(product)
    entry: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name, "purl": purl}}
    if product.version_range:
        converted = ranges_of(product.version_range)
        if converted is None:
            entry["database_specific"] = {"vers": product.version_range}
        else:
            ranges, versions = converted
            if ranges:
                entry["ranges"] = ranges
            if versions:
                entry["versions"] = versions
    elif PackageURL.from_string(product.purl).version:
        entry["versions"] = [PackageURL.from_string(product.purl).version]
    else:
        entry["ranges"] = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
    return entry


def osv_document(finding: Finding) -> dict[str, Any]:
    """The OSV record as a JSON-ready dict."""
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": advisory_id(finding),
        "modified": rfc3339(finding.updated_at),
        "summary": finding.title,
        "details": finding.description,
    }
    if finding.published_at is not None:
        document["published"] = rfc3339(finding.published_at)
    if finding.cvss.v3_vector:
        document["severity"] = [{"type": "CVSS_V3", "score": finding.cvss.v3_vector}]
    affected = [_affected(p) for p in finding.affected if p.purl]
    if affected:
        document["affected"] = affected
    specific: dict[str, Any] = {
        "cwe_ids": list(finding.cwe_ids),
        "tlp": tlp_text(finding.tlp),
        "audience": {
            "organisations": sorted(finding.audience.organisations),
            "sectors": sorted(finding.audience.sectors),
        },
        "state": finding.state.value,
    }
    cpes = [p.cpe for p in finding.affected if p.cpe]
    if cpes:
        specific["cpe"] = cpes
    if finding.cvss.v4_vector:
        specific["cvss_v4"] = finding.cvss.v4_vector
    if finding.embargo_end is not None:
        specific["embargo_end"] = rfc3339(finding.embargo_end)
    origin = source_text(finding)
    if origin:
        specific["source"] = origin
    document["database_specific"] = specific
    return document


def export_osv(finding: Finding, now: datetime) -> ExportDocument:
    """Render and validate; a record the official schema rejects is a bug and raises."""
    document = osv_document(finding)
    errors = sorted(schema_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        raise ValueError(f"OSV export does not validate: {errors[0].message}")
    return ExportDocument(MEDIA_TYPE, f"{advisory_id(finding).lower()}.osv.json", dumps(document))
