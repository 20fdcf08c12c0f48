"""Importers: a CSAF 2.1, CSAF 2.0 or OSV document, validated first, mapped to one finding.

Each document is validated by the validator the exports are held to — the `csaf` package's
schema and mandatory tests for CSAF 2.1 and 2.0, the vendored official OSV schema for OSV — and
a document failing it is refused whole: InvalidInput naming the JSON paths of its first errors
(`document.vulnerabilities[0].cwes`, `document` for the root). Then it is mapped:

* CSAF: one vulnerability per document; its title (else the document's), its description note
  (else the document's summary); its CWEs (2.1 `cwes`, 2.0 `cwe`); the CVSS 3.1 and 4.0 vectors of
  its metrics (2.0 `scores`); the known, first and last affected products that a purl or CPE
  identifies, with the `vers:` range of a `product_version_range` branch; `cve` and the `ids`
  that are CVE, GHSA or vendor ids as aliases; its external references (typed by the summary the
  exports write, else WEB); its acknowledgments' names (typed by the summary the exports write,
  else OTHER); the TLP label of `distribution.tlp` (2.0's WHITE is CLEAR).
* OSV: `summary` and `details`; `id` (when it is a CVE, GHSA or vendor id) and `aliases`; the
  CVSS_V3 (3.1) and CVSS_V4 vectors; `database_specific.cwe_ids` (as GitHub's and Preflight's
  records carry them); each `affected` package's purl with its versions and ECOSYSTEM or SEMVER
  ranges as one `vers:` range (`database_specific.vers` when the record carries it), and the CPEs
  of `database_specific.cpe`; `references` (FIX is PATCH; types the registry does not know are
  WEB) and `credits` (types it does not know are OTHER); the TLP of `database_specific.tlp`.

A document without a TLP label is RED, the most restrictive. Scores are never read: the registry
scores the vectors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any, Final

from preflight_clearinghouse.adapters.exports.csaf import CREDIT_SUMMARY
from preflight_clearinghouse.adapters.exports.osv import schema_validator
from preflight_clearinghouse.domain.errors import Collector, FieldViolation, InvalidInput
from preflight_clearinghouse.domain.findings.aliases import check_aliases
from preflight_clearinghouse.domain.findings.case_record import CreditType, ReferenceType
from preflight_clearinghouse.domain.findings.exports import ExportFormat
from preflight_clearinghouse.domain.findings.finding import FindingInput, ProductInput
from preflight_clearinghouse.domain.findings.imports import MAX_IMPORT_BYTES, ImportedDocument, Importer
from preflight_clearinghouse.domain.sharing import Tlp

MAX_REPORTED_ERRORS: Final = 5
"""Validation errors named in a refusal (the first ones, in document order)."""
MAX_MESSAGE: Final = 200
"""A validator's message is cut to this many characters (it may quote the document)."""
FIELD: Final = "document"
AFFECTED_STATUSES: Final = ("known_affected", "first_affected", "last_affected")
TLP_V1_TO_V2: Final = {"WHITE": Tlp.CLEAR}
CREDIT_OF_SUMMARY: Final = {summary: kind for kind, summary in CREDIT_SUMMARY.items()}
OSV_EVENT_COMPARATOR: Final = {"fixed": "<", "last_affected": "<="}
_POINTER_INDEX = re.compile(r"^\d+$")


def json_path(segments: Iterable[str | int]) -> str:
    """The request field naming a place in the document: `document.a[0].b` (`document` for the root)."""
    path = FIELD
    for segment in segments:
        path += f"[{segment}]" if isinstance(segment, int) else f".{segment}"
    return path


def _pointer_segments(pointer: str) -> Iterator[str | int]:
    for raw in pointer.split("/")[1:]:
        if not raw:
            continue
        text = raw.replace("~1", "/").replace("~0", "~")
        yield int(text) if _POINTER_INDEX.match(text) else text


def _refuse(errors: Sequence[tuple[str, str]]) -> InvalidInput:
    return InvalidInput([FieldViolation(path, message[:MAX_MESSAGE]) for path, message in errors])


def parse(document: bytes) -> dict[str, Any]:
    """The document's JSON object; InvalidInput naming `document` when it is not one or is too big."""
    if len(document) > MAX_IMPORT_BYTES:
        raise InvalidInput([FieldViolation(FIELD, f"at most {MAX_IMPORT_BYTES} bytes")])
    try:
        value = json.loads(document.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput([FieldViolation(FIELD, "is not UTF-8 JSON")]) from None
    if not isinstance(value, dict):
        raise InvalidInput([FieldViolation(FIELD, "is not a JSON object")])
    return value


@cache
def csaf_validators() -> Mapping[str, Any]:
    """The `csaf` package's validators by CSAF version (imported once: the package takes seconds)."""
    from csaf import validate as validate_2_1
    from csaf.csaf.v20 import validate as validate_2_0

    return {"2.1": validate_2_1, "2.0": validate_2_0}


def check_csaf(document: dict[str, Any], version: str) -> None:
    """Refuse a document failing CSAF `version`'s schema or mandatory tests, naming the first paths."""
    declared = (
        document.get("document", {}).get("csaf_version")
        if isinstance(document.get("document"), dict)
        else None
    )
    if declared != version:
        raise _refuse([(json_path(["document", "csaf_version"]), f"must be {version!r} for this format")])
    report = csaf_validators()[version](document, preset="basic")
    errors = [
        (json_path(_pointer_segments(error.instance_path)), f"{result.id}: {error.message}")
        for result in report.results
        if result.group in ("schema", "mandatory") and not result.passed and not result.skipped
        for error in result.errors
    ]
    if errors:
        raise _refuse(errors[:MAX_REPORTED_ERRORS])


def check_osv(document: dict[str, Any]) -> None:
    """Refuse a record failing the vendored OSV schema, naming the first paths."""
    errors = sorted(schema_validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise _refuse([(json_path(e.absolute_path), e.message) for e in errors[:MAX_REPORTED_ERRORS]])


def _valid_aliases(candidates: Iterable[str]) -> tuple[str, ...]:
    """The candidates that are CVE, GHSA or vendor ids (a document's other ids are not aliases)."""
    kept: list[str] = []
    for candidate in candidates:
        errors = Collector()
        kept += check_aliases([candidate], errors)
    return tuple(dict.fromkeys(kept))


def _tlp(label: object) -> Tlp:
    text = str(label or "").upper().removeprefix("TLP:")
    if text in TLP_V1_TO_V2:
        return TLP_V1_TO_V2[text]
    try:
        return Tlp(text)
    except ValueError:
        return Tlp.RED


def _reference_type(name: str) -> ReferenceType:
    word = name.split(" ", 1)[0].upper()
    if word == "FIX":
        return ReferenceType.PATCH
    return ReferenceType.__members__.get(word, ReferenceType.WEB)


def _csaf_products(tree: dict[str, Any]) -> dict[str, ProductInput]:
    """Product id → purl (with its `vers:` range) or CPE, for every identified product of the tree."""
    products: dict[str, ProductInput] = {}

    def add(product: dict[str, Any], version_range: str) -> None:
        helper = product.get("product_identification_helper", {})
        purls = helper.get("purls") or ([helper["purl"]] if "purl" in helper else [])
        if purls:
            products[product["product_id"]] = ProductInput(purl=purls[0], version_range=version_range)
        elif "cpe" in helper:
            products[product["product_id"]] = ProductInput(cpe=helper["cpe"])

    def walk(branches: list[dict[str, Any]]) -> None:
        for branch in branches:
            name = str(branch.get("name", ""))
            in_range = branch.get("category") == "product_version_range" and name.startswith("vers:")
            if "product" in branch:
                add(branch["product"], name if in_range else "")
            walk(branch.get("branches", []))

    walk(tree.get("branches", []))
    for product in tree.get("full_product_names", []):
        add(product, "")
    return products


def _csaf_importer(version: str) -> Importer:
    def load(raw: bytes) -> ImportedDocument:
        document = parse(raw)
        check_csaf(document, version)
        vulnerabilities = document.get("vulnerabilities", [])
        if len(vulnerabilities) != 1:
            raise _refuse(
                [(json_path(["vulnerabilities"]), "an imported document has exactly one vulnerability")]
            )
        return _map_csaf(document, vulnerabilities[0])

    return load


def _map_csaf(document: dict[str, Any], vulnerability: dict[str, Any]) -> ImportedDocument:
    meta = document["document"]
    notes = {n["category"]: n["text"] for n in reversed(vulnerability.get("notes", []))}
    summaries = [n["text"] for n in meta.get("notes", []) if n["category"] == "summary"]
    title = vulnerability.get("title") or meta["title"]
    description = notes.get("description") or notes.get("summary") or (summaries or [title])[0]
    cwes = [c["id"] for c in vulnerability.get("cwes", [])]
    if "cwe" in vulnerability:
        cwes.append(vulnerability["cwe"]["id"])
    metrics = [m["content"] for m in vulnerability.get("metrics", [])] + vulnerability.get("scores", [])
    v3 = [m["cvss_v3"]["vectorString"] for m in metrics if "cvss_v3" in m]
    v4 = [m["cvss_v4"]["vectorString"] for m in metrics if "cvss_v4" in m]
    products = _csaf_products(document.get("product_tree", {}))
    status = vulnerability.get("product_status", {})
    affected = [
        products[product_id]
        for key in AFFECTED_STATUSES
        for product_id in status.get(key, [])
        if product_id in products
    ]
    references = tuple(
        (_reference_type(r.get("summary", "")), r["url"])
        for r in vulnerability.get("references", [])
        if r.get("category", "external") == "external"
    )
    credits = tuple(
        (name, CREDIT_OF_SUMMARY.get(ack.get("summary", ""), CreditType.OTHER))
        for ack in vulnerability.get("acknowledgments", [])
        for name in ack.get("names") or ([ack["organization"]] if "organization" in ack else [])
    )
    aliases = _valid_aliases(
        ([vulnerability["cve"]] if "cve" in vulnerability else [])
        + [i["text"] for i in vulnerability.get("ids", [])]
    )
    report = FindingInput(
        title=title,
        description=description,
        cwe_ids=list(dict.fromkeys(cwes)),
        affected_products=list(dict.fromkeys(affected)),
        cvss_v3_vector=next((v for v in v3 if v.startswith("CVSS:3.1/")), ""),
        cvss_v4_vector=v4[0] if v4 else "",
        tlp=_tlp(meta.get("distribution", {}).get("tlp", {}).get("label")),
    )
    return ImportedDocument(report, aliases, references, credits)


def _osv_range(purl_type: str, entry: dict[str, Any]) -> str:
    """The `vers:` range of an OSV `affected` entry: its versions and ECOSYSTEM/SEMVER events."""
    specific = entry.get("database_specific") or {}
    if isinstance(specific.get("vers"), str):
        return str(specific["vers"])
    constraints = [f"={v}" for v in entry.get("versions", [])]
    for version_range in entry.get("ranges", []):
        if version_range["type"] == "GIT":
            continue
        for event in version_range["events"]:
            if event.get("introduced") not in (None, "0"):
                constraints.append(f">={event['introduced']}")
            for key, comparator in OSV_EVENT_COMPARATOR.items():
                if key in event:
                    constraints.append(f"{comparator}{event[key]}")
    return f"vers:{purl_type}/{'|'.join(constraints)}" if constraints else ""


def _osv_importer(raw: bytes) -> ImportedDocument:
    document = parse(raw)
    check_osv(document)
    affected: list[ProductInput] = []
    for entry in document.get("affected", []):
        purl = (entry.get("package") or {}).get("purl", "")
        if purl:
            purl_type = purl.removeprefix("pkg:").split("/", 1)[0]
            affected.append(ProductInput(purl=purl, version_range=_osv_range(purl_type, entry)))
    specific = document.get("database_specific") or {}
    affected += [ProductInput(cpe=cpe) for cpe in specific.get("cpe", []) if isinstance(cpe, str)]
    severity = {s["type"]: s["score"] for s in reversed(document.get("severity", []))}
    title = document.get("summary") or document["id"]
    report = FindingInput(
        title=title,
        description=document.get("details") or title,
        cwe_ids=[c for c in specific.get("cwe_ids", []) if isinstance(c, str)],
        affected_products=affected,
        cvss_v3_vector=severity.get("CVSS_V3", "")
        if severity.get("CVSS_V3", "").startswith("CVSS:3.1/")
        else "",
        cvss_v4_vector=severity.get("CVSS_V4", ""),
        tlp=_tlp(specific.get("tlp")),
    )
    references = tuple((_reference_type(r["type"]), r["url"]) for r in document.get("references", []))
    credits = tuple(
        (c["name"], CreditType.__members__.get(c.get("type", ""), CreditType.OTHER))
        for c in document.get("credits", [])
    )
    aliases = _valid_aliases([document["id"], *document.get("aliases", [])])
    return ImportedDocument(report, aliases, references, credits)


IMPORTERS: Final[Mapping[ExportFormat, Importer]] = {
    ExportFormat.CSAF: _csaf_importer("2.1"),
    ExportFormat.CSAF_2_0: _csaf_importer("2.0"),
    ExportFormat.OSV: _osv_importer,
}
"""The formats ImportFinding reads."""
