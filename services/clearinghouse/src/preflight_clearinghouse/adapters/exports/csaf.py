"""CSAF security advisory (OASIS) for one finding: CSAF 2.1, and CSAF 2.0 for older consumers.

CSAF 2.1 carries the finding as it is: the TLP 2.0 label (CLEAR, GREEN, AMBER,
AMBER+STRICT, RED), every CWE (`cwes`, with the CWE list version), and every
CVSS vector (`metrics`). CSAF 2.0 knows TLP 1.0 labels, one CWE and no CVSS 4.0:
CLEAR is written WHITE, and AMBER+STRICT — which TLP 1.0 cannot say — RED, the
TLP 1.0 label that is never less restrictive; `distribution.text` carries the
exact TLP 2.0 label and the audience; the first CWE is `cwe` and the others are
named in a note; the CVSS 4.0 vector and its scores are named in a note only.

CVSS scores are named by their nomenclature. A CSAF `cvss_v4` object has a
single `baseScore`, the score of its whole vector, so a 4.0 vector with threat
or environmental metrics yields two metrics: its base metrics alone (CVSS-B)
and the whole vector (CVSS-BT, -BE or -BTE); a 3.1 vector with temporal or
environmental metrics carries those scores beside its base score. A note names
every score.

Products form a branch tree: purl namespace (vendor) or CPE vendor, product
name, then the version (`product_version`, the purl with its version and
qualifiers) or the `vers` range (`product_version_range`). Every listed product
is `known_affected`; once a fix is available (PATCH_AVAILABLE and later), each
version a range excludes with `<` is a product of its own, `first_fixed`.

A reviewer's SSVC decision is a CSAF 2.1 `ssvc_v2` metric (its four decision points) and, in
both versions, a note naming the decision points and the outcome (CISA Levels).

The finding's first CVE alias is the vulnerability's `cve`; its Preflight id and its GHSA and
vendor aliases are `ids`, each named by its id system. CSAF keeps CVE ids out of `ids` (test
6.2.17: one vulnerability per CVE), so further CVE aliases of the same finding are named in a
note. References are the vulnerability's `external` references and credits its
`acknowledgments`, one per credit type.

Document status follows the finding: draft before validation, interim while
validated or patched, final once disclosed or closed. The revision history
lists the releases the registry dates: the initial one (publication, or the
report for a draft) and, when the finding changed since, the current one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from packageurl import PackageURL

from preflight_clearinghouse.adapters.exports.common import (
    GENERATOR,
    advisory_id,
    audience_text,
    dumps,
    rfc3339,
    source_text,
)
from preflight_clearinghouse.domain.findings.aliases import alias_system, split_cve
from preflight_clearinghouse.domain.findings.case_record import CreditType
from preflight_clearinghouse.domain.findings.cwe import cwe_catalog_version, cwe_name
from preflight_clearinghouse.domain.findings.exports import ExportDocument
from preflight_clearinghouse.domain.findings.finding import (
    AffectedProduct,
    CvssScore,
    Finding,
    cpe_fields,
    parse_version_range,
)
from preflight_clearinghouse.domain.findings.ssvc import CISA_LEVELS, VALUE_NAMES, SsvcDecision
from preflight_clearinghouse.domain.findings.workflow import FindingState
from preflight_clearinghouse.domain.sharing import Tlp

MEDIA_TYPE = "application/csaf+json"
CSAF_2_1_SCHEMA: Final = "https://docs.oasis-open.org/csaf/csaf/v2.1/schema/csaf.json"
TLP_URL: Final = "https://www.first.org/tlp/"
TLP_V1: Final = {
    Tlp.CLEAR: "WHITE",
    Tlp.GREEN: "GREEN",
    Tlp.AMBER: "AMBER",
    Tlp.AMBER_STRICT: "RED",
    Tlp.RED: "RED",
}
"""CSAF 2.0's TLP 1.0 label per TLP 2.0 label: the same restriction or a stricter one, never looser."""
CREDIT_SUMMARY: Final = {
    CreditType.FINDER: "Found the vulnerability.",
    CreditType.REPORTER: "Reported the vulnerability.",
    CreditType.ANALYST: "Analysed the vulnerability.",
    CreditType.COORDINATOR: "Coordinated the disclosure.",
    CreditType.REMEDIATION_DEVELOPER: "Developed the fix.",
    CreditType.OTHER: "Contributed.",
}
"""The acknowledgment summary per credit type (one acknowledgment per type, naming its people)."""
DRAFT = frozenset({FindingState.RECEIVED, FindingState.TRIAGED, FindingState.INVALID})
FINAL = frozenset({FindingState.DISCLOSED, FindingState.CLOSED})
FIXED = frozenset({FindingState.PATCH_AVAILABLE, FindingState.DISCLOSED, FindingState.CLOSED})
"""States in which a fix is available."""


def filename(finding: Finding) -> str:
    """The file name CSAF prescribes: the tracking id, lower case, `.json`."""
    return f"{advisory_id(finding).lower()}.json"


class CsafExporter:
    """Renders findings as CSAF documents (`csaf_version` 2.1 or 2.0) published by the coordinator."""

    def __init__(
        self,
        publisher_name: str,
        publisher_namespace: str,
        generator_version: str,
        *,
        csaf_version: str = "2.1",
        license_expression: str = "CC-BY-4.0",
    ) -> None:
        if csaf_version not in ("2.0", "2.1"):
            raise ValueError(f"unsupported CSAF version {csaf_version!r}")
        self._publisher = {
            "category": "coordinator",
            "name": publisher_name,
            "namespace": publisher_namespace,
        }
        self._generator_version = generator_version
        self._v21 = csaf_version == "2.1"
        self._license = license_expression
        self.csaf_version = csaf_version

    def __call__(self, finding: Finding, now: datetime) -> ExportDocument:
        """The document of `finding` as the caller sees it; its bytes depend on that view alone, not on
        `now`, so that hashes and signatures of a document stay valid until the finding changes."""
        return ExportDocument(MEDIA_TYPE, filename(finding), dumps(self.document(finding), sort_keys=True))

    def document(self, finding: Finding) -> dict[str, Any]:
        """The CSAF document as a JSON-ready dict."""
        status = "draft" if finding.state in DRAFT else "final" if finding.state in FINAL else "interim"
        released = finding.published_at or finding.created_at
        current = max(finding.updated_at, released)
        history = _revision_history(finding, status, released, current)
        notes = [{"category": "summary", "title": "Summary", "text": finding.description}]
        origin = source_text(finding)
        if origin:
            notes.append({"category": "general", "title": "Source", "text": origin})
        tree = _ProductTree(self._v21)
        affected = [tree.add(product, _label(product)) for product in finding.affected]
        first_fixed = [
            tree.add(fixed, _label(fixed)) for fixed in _fixed_versions(finding) if finding.state in FIXED
        ]
        tlp = finding.tlp.value if self._v21 else TLP_V1[finding.tlp]
        document: dict[str, Any] = {
            "document": {
                "category": "csaf_security_advisory",
                "csaf_version": self.csaf_version,
                "distribution": {
                    "text": audience_text(finding),
                    "tlp": {"label": tlp, "url": TLP_URL},
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
                        # Generated from the finding as it was at its last change.
                        "date": rfc3339(current),
                        "engine": {"name": GENERATOR, "version": self._generator_version},
                    },
                    "id": advisory_id(finding),
                    "initial_release_date": rfc3339(released),
                    "revision_history": history,
                    "status": status,
                    "version": history[-1]["number"],
                },
            },
            "product_tree": {"branches": tree.branches},
            "vulnerabilities": [self._vulnerability(finding, affected, first_fixed)],
        }
        if self._v21:
            document["document"]["license_expression"] = self._license
            document = {"$schema": CSAF_2_1_SCHEMA, **document}
        return document

    def _vulnerability(self, finding: Finding, affected: list[str], first_fixed: list[str]) -> dict[str, Any]:
        notes = [{"category": "description", "title": "Description", "text": finding.description}]
        if len(finding.cwe_ids) > 1 and not self._v21:
            others = ", ".join(f"{c} ({cwe_name(c)})" for c in finding.cwe_ids[1:])
            notes.append({"category": "other", "title": "Further weaknesses", "text": others})
        scores = finding.cvss.scores
        if scores:
            notes.append({"category": "other", "title": "CVSS scores", "text": _scores_text(scores)})
        if finding.ssvc is not None:
            notes.append({"category": "other", "title": "SSVC decision", "text": _ssvc_text(finding.ssvc)})
        if finding.location.file:
            where = finding.location.file + (
                f", {finding.location.function}" if finding.location.function else ""
            )
            where += f", line {finding.location.line}" if finding.location.line else ""
            notes.append({"category": "details", "title": "Location", "text": where})
        product_status: dict[str, list[str]] = {"known_affected": affected}
        if first_fixed:
            product_status["first_fixed"] = first_fixed
        cve, other_aliases = split_cve(finding.aliases)
        further_cves = [a for a in other_aliases if alias_system(a) == "CVE"]
        if further_cves:
            notes.append({"category": "other", "title": "Further CVE ids", "text": ", ".join(further_cves)})
        ids = [{"system_name": "Preflight clearinghouse", "text": finding.finding_id}]
        ids += [{"system_name": alias_system(a), "text": a} for a in other_aliases if a not in further_cves]
        vulnerability: dict[str, Any] = {
            "title": finding.title,
            "ids": ids,
            "notes": notes,
            "product_status": product_status,
            "remediations": [_remediation(finding, affected, first_fixed)],
        }
        if cve:
            vulnerability["cve"] = cve
        if finding.references:
            vulnerability["references"] = [
                {"category": "external", "summary": f"{r.type.value.title()} reference", "url": r.url}
                for r in finding.references
            ]
        acknowledgments: dict[CreditType, list[str]] = {}
        for credit in finding.credits:
            acknowledgments.setdefault(credit.type, []).append(credit.name)
        if acknowledgments:
            vulnerability["acknowledgments"] = [
                {"names": names, "summary": CREDIT_SUMMARY[kind]} for kind, names in acknowledgments.items()
            ]
        if finding.cwe_ids and self._v21:
            version = cwe_catalog_version()
            vulnerability["cwes"] = [
                {"id": c, "name": cwe_name(c), "version": version} for c in finding.cwe_ids
            ]
        elif finding.cwe_ids:
            vulnerability["cwe"] = {"id": finding.cwe_ids[0], "name": cwe_name(finding.cwe_ids[0])}
        content = _cvss_content(scores, v21=self._v21)
        if finding.ssvc is not None and self._v21:
            vulnerability["metrics"] = [{"content": {"ssvc_v2": _ssvc(finding.ssvc)}, "products": affected}]
        if content and self._v21:
            vulnerability["metrics"] = [
                *vulnerability.get("metrics", ()),
                {"content": content, "products": affected},
            ]
            threats = [
                s for s in scores if s.version == "4.0" and "T" in s.nomenclature.removeprefix("CVSS-")
            ]
            if threats:
                vulnerability["threats"] = [
                    {"category": "exploit_status", "details": _scores_text(threats), "product_ids": affected}
                ]
        elif content:
            vulnerability["scores"] = [{"products": affected, **content}]
        return vulnerability


def _ssvc_text(decision: SsvcDecision) -> str:
    points = ", ".join(f"{point.name}: {name}" for point, _key, name in decision.selections())
    return f"{CISA_LEVELS.name}: {VALUE_NAMES[decision.outcome]} (CISA's SSVC decision tree; {points})."


def _ssvc(decision: SsvcDecision) -> dict[str, Any]:
    """An SSVC v2 selection list (`ssvc_v2`): each decision point as SSVC names it, with the chosen
    value, timestamped when the reviewer decided. The outcome is not a selection (the `cisa`
    namespace has no decision points validators support): a note names it."""
    return {
        "schemaVersion": "2.0.0",
        "timestamp": rfc3339(decision.decided_at),
        "selections": [
            {
                "namespace": point.namespace,
                "key": point.key,
                "version": point.version,
                "name": point.name,
                "values": [{"key": key, "name": name}],
            }
            for point, key, name in decision.selections()
        ],
    }


def _revision_history(
    finding: Finding, status: str, released: datetime, current: datetime
) -> list[dict[str, str]]:
    """Gap-free, ascending numbers at distinct, ascending dates (CSAF tests 6.1.14, 6.1.21, 6.1.22)."""
    major = 0 if status == "draft" else 1
    history = [{"date": rfc3339(released), "number": f"{major}.{1 - major}.0", "summary": "Initial version."}]
    if current > released:
        summary = f"Revision {finding.revision} of the finding ({finding.state.value.lower()})."
        history.append({"date": rfc3339(current), "number": f"{major}.{2 - major}.0", "summary": summary})
    return history


def _label(product: AffectedProduct) -> tuple[str, str, str, str, str]:
    """(vendor, product name, branch category, version or range, identification) of a product."""
    if product.cpe:
        fields = cpe_fields(product.cpe)
        vendor, name, version = (f.replace("\\", "") for f in fields[3:6])
        if version in ("*", "-"):
            return vendor, name, "", "", product.cpe
        return vendor, name, "product_version", version, product.cpe
    purl = PackageURL.from_string(product.purl)
    vendor = purl.namespace or ""
    if product.version_range:
        return vendor, purl.name, "product_version_range", product.version_range, product.purl
    if purl.version:
        return vendor, purl.name, "product_version", purl.version, product.purl
    return vendor, purl.name, "product_version_range", f"vers:{purl.type}/*", product.purl


def _fixed_versions(finding: Finding) -> Iterator[AffectedProduct]:
    """One versioned purl per version an affected range excludes with `<` (the version with the fix)."""
    seen: set[str] = set()
    for product in finding.affected:
        if not product.version_range:
            continue
        purl = PackageURL.from_string(product.purl)
        for constraint in parse_version_range(product.version_range).constraints:
            if constraint.comparator != "<":
                continue
            fixed = PackageURL(
                type=purl.type,
                namespace=purl.namespace,
                name=purl.name,
                version=str(constraint.version),
                qualifiers=purl.qualifiers,
                subpath=purl.subpath,
            ).to_string()
            if fixed not in seen:
                seen.add(fixed)
                yield AffectedProduct(purl=fixed)


class _ProductTree:
    """Branches vendor → product name → version or range → product, one product id per leaf."""

    def __init__(self, v21: bool) -> None:
        self._v21 = v21
        self.branches: list[dict[str, Any]] = []
        self._count = 0

    def add(self, product: AffectedProduct, label: tuple[str, str, str, str, str]) -> str:
        vendor, name, category, version, identification = label
        self._count += 1
        product_id = f"CSAFPID-{self._count:04d}"
        helper: dict[str, Any]
        if product.cpe:
            helper = {"cpe": identification}
        else:
            helper = {"purls": [identification]} if self._v21 else {"purl": identification}
        full_name = " ".join(part for part in (vendor, name, version) if part)
        leaf = {"name": full_name, "product_id": product_id, "product_identification_helper": helper}
        path = [("vendor", vendor)] if vendor else []
        path += [("product_name", name), (category, version)] if category else [("product_name", name)]
        level = self.branches
        for branch_category, branch_name in path[:-1]:
            level = _child(level, branch_category, branch_name)
        level.append({"category": path[-1][0], "name": path[-1][1], "product": leaf})
        return product_id


def _child(level: list[dict[str, Any]], category: str, name: str) -> list[dict[str, Any]]:
    for branch in level:
        if branch.get("category") == category and branch.get("name") == name and "branches" in branch:
            existing: list[dict[str, Any]] = branch["branches"]
            return existing
    children: list[dict[str, Any]] = []
    level.append({"category": category, "name": name, "branches": children})
    return children


def _scores_text(scores: Sequence[CvssScore]) -> str:
    return "; ".join(
        f"CVSS {s.version} {s.nomenclature} score {s.score} ({s.rating.value}), vector {s.vector}"
        for s in scores
    )


def _cvss_content(scores: tuple[CvssScore, ...], *, v21: bool) -> dict[str, Any]:
    """Metric content: the 3.1 vector with its named scores, and (2.1) the 4.0 CVSS-B vector and score.

    CSAF allows one CVSS 4.0 object per product, whose `baseScore` is the score of its whole
    vector: the base metrics alone make it the CVSS-B score, the one severity follows.
    """
    content: dict[str, Any] = {}
    v3 = [s for s in scores if s.version == "3.1"]
    if v3:
        cvss_v3: dict[str, Any] = {"version": "3.1", "vectorString": v3[0].vector}
        for s in v3:
            cvss_v3[f"{s.nomenclature}Score"] = s.score
            cvss_v3[f"{s.nomenclature}Severity"] = s.rating.value
        content["cvss_v3"] = cvss_v3
    base = [s for s in scores if s.nomenclature == "CVSS-B"]
    if base and v21:
        content["cvss_v4"] = {
            "version": "4.0",
            "vectorString": base[0].vector,
            "baseScore": base[0].score,
            "baseSeverity": base[0].rating.value,
        }
    return content


def _remediation(finding: Finding, affected: list[str], first_fixed: list[str]) -> dict[str, Any]:
    patched = finding.state in FIXED
    details = (
        "Apply the vendor's fix."
        if patched
        else "No fix is available yet; coordinate through the clearinghouse."
    )
    if first_fixed:
        details += " Fixed versions are listed as first fixed."
    if finding.remediation_due is not None:
        details += f" Remediate by {rfc3339(finding.remediation_due)}."
    return {
        "category": "vendor_fix" if patched else "none_available",
        "details": details,
        "product_ids": affected,
    }
