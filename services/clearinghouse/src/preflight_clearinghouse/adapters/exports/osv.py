"""OSV (OpenSSF) record for one finding, validated against the vendored official schema.

The id is `x_PREFLIGHT-<finding id>`: Preflight is a local database that OSV.dev does not
aggregate, for which the OSV specification reserves the `x_` id prefix (added to the
specification after release 1.7.5: the validator admits it on top of the vendored 1.7.5
schema, and nothing else is changed). Each purl product whose
type names an OSV ecosystem (`ecosystem_of`, one table covering every ecosystem a purl can
name) becomes an `affected` entry; a product with no OSV ecosystem (`pkg:generic` without a
`vcs_url`, CPE-only firmware) is listed in `database_specific.unmapped_products` instead of
under an invented ecosystem. Repositories (`pkg:github`, `pkg:bitbucket`, a `vcs_url`) are
the `GIT` ecosystem named by their URL.

The finding's aliases (CVE, GHSA, vendor ids) are the record's `aliases`, its references and
credits its `references` (a patch is OSV's `FIX`) and `credits`.

A `vers:` range becomes OSV events: `>=` opens an interval (`introduced`), `<` closes it
(`fixed`), `<=` closes it (`last_affected`), `=` lists a version. OSV has no exclusive lower
bound and no excluded version, so `>v` is widened to `introduced: v` and `!=v` is ignored:
a range is only ever widened, never narrowed, and never left empty (a scanner reads an entry
with no ranges and no versions as "nothing affected"); the exact `vers` is kept in the
entry's `database_specific.vers` whenever it was widened. CVSS 3.x and 4.0 vectors are
severities (`CVSS_V3`, `CVSS_V4`); every score they yield, named by its nomenclature (CVSS-B,
CVSS-BT, …; base, temporal, …), CWE ids, CPE products, the TLP label and the audience go to
`database_specific`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Final

from packageurl import PackageURL

from preflight_clearinghouse.adapters.exports.common import (
    advisory_id,
    dumps,
    rfc3339,
    source_text,
    tlp_text,
    without_version,
)
from preflight_clearinghouse.domain.findings.case_record import ReferenceType
from preflight_clearinghouse.domain.findings.exports import ExportDocument
from preflight_clearinghouse.domain.findings.finding import AffectedProduct, Finding, parse_version_range

MEDIA_TYPE = "application/json"
SCHEMA_VERSION = "1.7.5"
SCHEMA_SHA256: Final = "cd2fc34779f60388921829a31f1e860b77b334ee586bffe500887c0c2725dbd9"
"""Digest of the vendored `schemas/osv-schema.json` (see schemas/README.md): checked on load."""
LOCAL_ID_PREFIX: Final = "x_"

ECOSYSTEMS: Final[dict[str, str]] = {
    "bitnami": "Bitnami",
    "cargo": "crates.io",
    "composer": "Packagist",
    "conan": "ConanCenter",
    "cran": "CRAN",
    "gem": "RubyGems",
    "golang": "Go",
    "hackage": "Hackage",
    "hex": "Hex",
    "julia": "Julia",
    "maven": "Maven",
    "npm": "npm",
    "nuget": "NuGet",
    "opam": "opam",
    "pub": "Pub",
    "pypi": "PyPI",
    "swift": "SwiftURL",
    "vscode-extension": "VSCode",
}
"""Language and registry purl types whose OSV ecosystem does not depend on a namespace."""

DISTRIBUTIONS: Final[dict[tuple[str, str], str]] = {
    ("apk", "alpine"): "Alpine",
    ("apk", "chainguard"): "Chainguard",
    ("apk", "minimos"): "MinimOS",
    ("apk", "wolfi"): "Wolfi",
    ("apk", "alpaquita"): "Alpaquita",
    ("deb", "debian"): "Debian",
    ("deb", "ubuntu"): "Ubuntu",
    ("rpm", "almalinux"): "AlmaLinux",
    ("rpm", "azurelinux"): "Azure Linux",
    ("rpm", "mageia"): "Mageia",
    ("rpm", "openeuler"): "openEuler",
    ("rpm", "opensuse"): "openSUSE",
    ("rpm", "photon"): "Photon OS",
    ("rpm", "redhat"): "Red Hat",
    ("rpm", "rocky-linux"): "Rocky Linux",
    ("rpm", "suse"): "SUSE",
}
"""Operating-system purl types: the namespace names the distribution (its OSV ecosystem)."""

REPOSITORY_HOSTS: Final[dict[str, str]] = {"github": "github.com", "bitbucket": "bitbucket.org"}
"""Purl types that name a source repository: the `GIT` ecosystem, named by the repository URL."""

SAMPLE_RECORD: Final[dict[str, Any]] = {
    "schema_version": SCHEMA_VERSION,
    "id": f"{LOCAL_ID_PREFIX}PREFLIGHT-sample",
    "modified": "2026-01-01T00:00:00Z",
    "published": "2026-01-01T00:00:00Z",
    "severity": [
        {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
        {"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"},
    ],
    "affected": [
        {
            "package": {"ecosystem": "Debian:12", "name": "sample", "purl": "pkg:deb/debian/sample"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0"}]}],
            "versions": ["0.9"],
        }
    ],
}
"""A record meeting every pattern of the schema an export meets (see `schema_validator`)."""
EVENT_OF = {"<": "fixed", "<=": "last_affected"}
_DEBIAN_RELEASE = re.compile(r"^debian-(\d+)$")


@cache
def schema_validator() -> Any:
    """A validator for the vendored official OSV schema (its digest checked; built once, on first use).

    Built with a sample record validated, so that the schema's patterns (the CVSS ones take a
    second to compile) are compiled here rather than by the first export.
    """
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    raw = (
        resources.files("preflight_clearinghouse.adapters.exports")
        .joinpath("schemas/osv-schema.json")
        .read_bytes()
    )
    if hashlib.sha256(raw).hexdigest() != SCHEMA_SHA256:
        raise RuntimeError("the vendored OSV schema does not match its pinned digest")
    schema = json.loads(raw)
    prefix = schema["$defs"]["prefix"]
    prefix["pattern"] = f"^({re.escape(LOCAL_ID_PREFIX)}|{prefix['pattern'].removeprefix('^')})"
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    validator.validate(SAMPLE_RECORD)
    return validator


def osv_id(finding: Finding) -> str:
    """The record's id: Preflight's advisory id under OSV's prefix for local databases."""
    return f"{LOCAL_ID_PREFIX}{advisory_id(finding)}"


def ecosystem_of(purl: PackageURL) -> tuple[str, str] | None:
    """(OSV ecosystem, package name) for a purl, or None when no OSV ecosystem can name it."""
    namespace = (purl.namespace or "").lower()
    if purl.type in REPOSITORY_HOSTS and namespace:
        return "GIT", f"https://{REPOSITORY_HOSTS[purl.type]}/{purl.namespace}/{purl.name}"
    qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
    if purl.type == "generic":
        vcs_url = str(qualifiers.get("vcs_url") or "")
        return ("GIT", vcs_url.removeprefix("git+")) if vcs_url else None
    if (purl.type, namespace) in DISTRIBUTIONS:
        distribution = DISTRIBUTIONS[(purl.type, namespace)]
        release = _DEBIAN_RELEASE.match(str(qualifiers.get("distro") or ""))
        if distribution == "Debian" and release:
            distribution = f"Debian:{release.group(1)}"
        # OS ecosystems name the source package: the purl's name, never namespace/name.
        return distribution, purl.name
    ecosystem = ECOSYSTEMS.get(purl.type)
    if ecosystem is None:
        return None
    if purl.type == "maven" and purl.namespace:
        return ecosystem, f"{purl.namespace}:{purl.name}"
    return ecosystem, f"{purl.namespace}/{purl.name}" if purl.namespace else purl.name


def ranges_of(vers: str) -> tuple[list[dict[str, Any]], list[str], bool]:
    """OSV ranges and exact versions for a `vers:` range, and whether they had to be widened.

    Never empty: a range that constrains nothing OSV can say affects every version.
    """
    constraints = sorted(parse_version_range(vers).constraints, key=lambda c: c.version)
    ranges: list[dict[str, Any]] = []
    versions: list[str] = []
    widened = False
    opened: str | None = None
    for constraint in constraints:
        version = str(constraint.version)
        comparator = constraint.comparator
        if comparator == "*":
            opened = "0"
        elif comparator == "=":
            versions.append(version)
        elif comparator == "!=":
            widened = True
        elif comparator in (">=", ">"):
            widened = widened or comparator == ">"
            opened = version
        else:
            events = [{"introduced": opened or "0"}, {EVENT_OF[comparator]: version}]
            ranges.append({"type": "ECOSYSTEM", "events": events})
            opened = None
    if opened is not None:
        ranges.append({"type": "ECOSYSTEM", "events": [{"introduced": opened}]})
    if not ranges and not versions:
        ranges.append({"type": "ECOSYSTEM", "events": [{"introduced": "0"}]})
        widened = True
    return ranges, versions, widened


def _affected(product: AffectedProduct, ecosystem: str, name: str) -> dict[str, Any]:
    purl = PackageURL.from_string(product.purl)
    package = {"ecosystem": ecosystem, "name": name, "purl": without_version(product.purl).to_string()}
    entry: dict[str, Any] = {"package": package}
    if product.version_range:
        ranges, versions, widened = ranges_of(product.version_range)
        if ranges:
            entry["ranges"] = ranges
        if versions:
            entry["versions"] = versions
        if widened:
            entry["database_specific"] = {"vers": product.version_range}
    elif purl.version:
        entry["versions"] = [purl.version]
    else:
        entry["ranges"] = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
    return entry


def osv_document(finding: Finding) -> dict[str, Any]:
    """The OSV record as a JSON-ready dict."""
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": osv_id(finding),
        "modified": rfc3339(finding.updated_at),
        "summary": finding.title,
        "details": finding.description,
    }
    if finding.aliases:
        document["aliases"] = list(finding.aliases)
    if finding.references:
        document["references"] = [
            {"type": "FIX" if r.type is ReferenceType.PATCH else r.type.value, "url": r.url}
            for r in finding.references
        ]
    if finding.credits:
        document["credits"] = [{"name": c.name, "type": c.type.value} for c in finding.credits]
    if finding.published_at is not None:
        document["published"] = rfc3339(finding.published_at)
    severity = []
    if finding.cvss.v3_vector:
        severity.append({"type": "CVSS_V3", "score": finding.cvss.v3_vector})
    if finding.cvss.v4_vector:
        severity.append({"type": "CVSS_V4", "score": finding.cvss.v4_vector})
    if severity:
        document["severity"] = severity
    affected: list[dict[str, Any]] = []
    unmapped: list[str] = []
    for product in finding.affected:
        if not product.purl:
            continue
        named = ecosystem_of(PackageURL.from_string(product.purl))
        if named is None:
            unmapped.append(product.purl)
        else:
            affected.append(_affected(product, *named))
    if affected:
        document["affected"] = affected
    specific: dict[str, Any] = {
        "cwe_ids": list(finding.cwe_ids),
        "cvss_scores": [
            {
                "version": s.version,
                "nomenclature": s.nomenclature,
                "score": s.score,
                "severity": s.rating.value,
                "vector": s.vector,
            }
            for s in finding.cvss.scores
        ],
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
    if unmapped:
        specific["unmapped_products"] = unmapped
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
