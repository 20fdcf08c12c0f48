"""Findings: the entity, the checks on what reporters send, severity scoring and the dedup fingerprint.

Severity comes from the `cvss` package (CVSS 3.1 and 4.0; never computed by
hand) and follows the base score: the CVSS-B score of a 4.0 vector (its base
metrics only, whatever threat or environmental metrics it also carries), else
the 3.1 base score. Every score a vector yields is named by its nomenclature
(`CvssScore`: base / temporal / environmental for 3.1, CVSS-B / -BT / -BE /
-BTE for 4.0). CWE ids are checked against MITRE's catalog; affected products are
purls (packageurl-python) with an optional `vers:` range (univers), or CPE 2.3
formatted strings.

The fingerprint of a finding is the SHA-256 of its normalised product
identities (purl type/namespace/name/subpath, or CPE part:vendor:product —
versions excluded, since the same flaw spans versions), its normalised code
location (file path and function; the line is excluded because it moves
between versions) and its sorted CWE set.
"""

from __future__ import annotations

import enum
import hashlib
import json
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Final

from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError
from packageurl import PackageURL
from preflight.sdk.naming import NAME_RULE, is_valid_name
from preflight_common.bus import KNOWN_SECTORS
from univers.version_range import RANGE_CLASS_BY_SCHEMES, VersionRange

from preflight_clearinghouse.domain.checks import check_text
from preflight_clearinghouse.domain.errors import Collector
from preflight_clearinghouse.domain.findings.case_record import Credit, Reference
from preflight_clearinghouse.domain.findings.cwe import cwe_problem, normalise_cwe_id
from preflight_clearinghouse.domain.findings.ssvc import SsvcDecision
from preflight_clearinghouse.domain.findings.workflow import EmbargoState, FindingState
from preflight_clearinghouse.domain.sharing import Audience, Tlp

MAX_TITLE = 300
MAX_DESCRIPTION = 20_000
MAX_EVIDENCE = 100_000
MAX_CWES = 20
MAX_PRODUCTS = 50
MAX_AUDIENCE_ENTRIES = 200
MAX_FILE = 1_000
MAX_FUNCTION = 300
MAX_LINE = 10_000_000
MAX_REQUEST_ID = 200
MAX_NOTE = 2_000

# CPE 2.3 formatted string binding (NISTIR 7695, as in the NVD CPE dictionary schema).
_CPE_VALUE = (
    r"(((\?*|\*?)([a-zA-Z0-9\-\._]|(\\[\\\*\?!\"#$%&'\(\)\+,/:;<=>@\[\]\^`\{\|}~]))+(\?*|\*?))|[\*\-])"
)
_CPE_LANGUAGE = r"(([a-zA-Z]{2,3}(-([a-zA-Z]{2}|[0-9]{3}))?)|[\*\-])"
CPE23 = re.compile(rf"^cpe:2\.3:[aho\*\-](:{_CPE_VALUE}){{5}}(:{_CPE_LANGUAGE})(:{_CPE_VALUE}){{4}}$")
_CPE_SPLIT = re.compile(r"(?<!\\):")


def parse_version_range(text: str) -> Any:
    """A univers VersionRange from a `vers:` string; raises ValueError (or univers' errors) when malformed."""
    return VersionRange.from_string(text)  # type: ignore[no-untyped-call]


def cpe_fields(cpe: str) -> list[str]:
    """The colon-separated fields of a CPE 2.3 formatted string (escaped colons stay inside a field)."""
    return _CPE_SPLIT.split(cpe)


class Severity(enum.Enum):
    """Qualitative CVSS rating, lowest first."""

    NONE = "NONE"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class Origin(enum.Enum):
    """Where a finding came from."""

    BENCHMARK = "BENCHMARK"
    REVIEWER = "REVIEWER"
    LAB = "LAB"
    OPERATOR = "OPERATOR"


class PatchState(enum.Enum):
    """An operator organisation's exposure to a finding: its statement, one of VEX's four statuses
    (known_affected, known_not_affected, fixed, under_investigation)."""

    AFFECTED = "AFFECTED"
    NOT_AFFECTED = "NOT_AFFECTED"
    PATCHED = "PATCHED"
    UNKNOWN = "UNKNOWN"


class VexJustification(enum.Enum):
    """Why a statement says not affected: the labels of CSAF's VEX flags (`flags[].label`)."""

    COMPONENT_NOT_PRESENT = "component_not_present"
    VULNERABLE_CODE_NOT_PRESENT = "vulnerable_code_not_present"
    VULNERABLE_CODE_CANNOT_BE_CONTROLLED_BY_ADVERSARY = "vulnerable_code_cannot_be_controlled_by_adversary"
    VULNERABLE_CODE_NOT_IN_EXECUTE_PATH = "vulnerable_code_not_in_execute_path"
    INLINE_MITIGATIONS_ALREADY_EXIST = "inline_mitigations_already_exist"


def check_justification(
    status: PatchState, justification: VexJustification | None, errors: Collector
) -> None:
    """A not-affected statement names its justification (as VEX requires), no other one does; a
    violation is added to `errors` as `justification`."""
    if status is PatchState.NOT_AFFECTED and justification is None:
        errors.add("justification", "a not-affected statement names why (one of CSAF's VEX flag labels)")
    elif status is not PatchState.NOT_AFFECTED and justification is not None:
        errors.add("justification", "only a not-affected statement has a justification")


class LinkKind(enum.Enum):
    """How a finding relates to another."""

    DUPLICATE_OF = "DUPLICATE_OF"
    SUBSUMED_BY = "SUBSUMED_BY"
    MERGED_INTO = "MERGED_INTO"


@dataclass(frozen=True)
class AffectedProduct:
    """A normalised purl (with an optional `vers:` range) or a CPE 2.3 name."""

    purl: str = ""
    version_range: str = ""
    cpe: str = ""

    def identity(self) -> str:
        """The product without its version: what the fingerprint is made of."""
        if self.purl:
            p = PackageURL.from_string(self.purl)
            return PackageURL(type=p.type, namespace=p.namespace, name=p.name, subpath=p.subpath).to_string()
        return ":".join(cpe_fields(self.cpe)[2:5])


@dataclass(frozen=True)
class CodeLocation:
    """Where in the product the weakness is."""

    file: str = ""
    function: str = ""
    line: int = 0


CVSS4_BASE_METRICS: Final = ("AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA")
CVSS4_THREAT_METRICS: Final = frozenset({"E"})
CVSS4_ENVIRONMENTAL_METRICS: Final = frozenset(
    {"CR", "IR", "AR", "MAV", "MAC", "MAT", "MPR", "MUI", "MVC", "MVI", "MVA", "MSC", "MSI", "MSA"}
)
CVSS3_TEMPORAL_METRICS: Final = frozenset({"E", "RL", "RC"})
CVSS3_ENVIRONMENTAL_METRICS: Final = frozenset(
    {"CR", "IR", "AR", "MAV", "MAC", "MPR", "MUI", "MS", "MC", "MI", "MA"}
)


@dataclass(frozen=True)
class CvssScore:
    """One score of a vector, named by its CVSS nomenclature."""

    version: str
    """`3.1` or `4.0`."""
    vector: str
    """The vector scored: for CVSS-B, the base metrics of the given vector alone."""
    nomenclature: str
    """`base`, `temporal`, `environmental` (3.1); `CVSS-B`, `CVSS-BT`, `CVSS-BE`, `CVSS-BTE` (4.0)."""
    score: float
    rating: Severity


def _given(metrics: dict[str, str], names: frozenset[str]) -> bool:
    return any(metrics.get(name, "X") != "X" for name in names)


@cache
def cvss_scores(vector: str) -> tuple[CvssScore, ...]:
    """Every score a valid, clean 3.1 or 4.0 vector yields, base score first (`cvss` package).

    3.1: the base score, then the temporal and environmental scores when the vector sets such
    metrics. 4.0: the CVSS-B score (the vector's base metrics alone), then, when the vector sets
    threat or environmental metrics, the score of the whole vector named CVSS-BT, -BE or -BTE.
    """
    if vector.startswith("CVSS:3.1/"):
        c3 = CVSS3(vector)
        given = c3.original_metrics
        named = [("base", 0)]
        if _given(given, CVSS3_TEMPORAL_METRICS):
            named.append(("temporal", 1))
        if _given(given, CVSS3_ENVIRONMENTAL_METRICS):
            named.append(("environmental", 2))
        scores, ratings = c3.scores(), c3.severities()
        return tuple(
            CvssScore("3.1", vector, name, float(scores[i]), _rating(ratings[i])) for name, i in named
        )
    c4 = CVSS4(vector)
    given = c4.original_metrics
    base = CVSS4("CVSS:4.0/" + "/".join(f"{m}:{given[m]}" for m in CVSS4_BASE_METRICS))
    b = CvssScore("4.0", base.clean_vector(), "CVSS-B", float(base.base_score), _rating(base.severity))
    result = [b]
    suffix = ("T" if _given(given, CVSS4_THREAT_METRICS) else "") + (
        "E" if _given(given, CVSS4_ENVIRONMENTAL_METRICS) else ""
    )
    if suffix:
        result.append(CvssScore("4.0", vector, f"CVSS-B{suffix}", float(c4.base_score), _rating(c4.severity)))
    return tuple(result)


@dataclass(frozen=True)
class Cvss:
    """Scored CVSS vectors (a vector is empty when not given): the 3.1 base score and the 4.0
    CVSS-B score with their ratings; `scores` names every score the vectors yield."""

    v3_vector: str = ""
    v3_score: float = 0.0
    v3_rating: Severity | None = None
    v4_vector: str = ""
    v4_score: float = 0.0
    v4_rating: Severity | None = None

    @property
    def severity(self) -> Severity | None:
        """The rating of the CVSS 4.0 CVSS-B score when given, else of the 3.1 base score; None when
        unscored."""
        return self.v4_rating or self.v3_rating

    @property
    def score(self) -> float:
        """The score matching `severity`."""
        return self.v4_score if self.v4_vector else self.v3_score

    @property
    def scores(self) -> tuple[CvssScore, ...]:
        """Every named score of the 3.1 vector, then of the 4.0 vector."""
        return tuple(s for vector in (self.v3_vector, self.v4_vector) if vector for s in cvss_scores(vector))


@dataclass(frozen=True)
class FindingSource:
    """The submission and model behind a benchmark finding (confidential).

    `organisation`, the model and `share_identity` stay unknown (empty / None)
    until the submission's SubmissionReceived event has been applied.
    """

    submission_id: str
    organisation: str = ""
    model_name: str = ""
    model_version: str = ""
    share_identity: bool | None = None


@dataclass(frozen=True)
class FindingLink:
    """A link to another finding."""

    kind: LinkKind
    target_finding_id: str


@dataclass(frozen=True)
class PatchStatusEntry:
    """One operator organisation's patch status."""

    organisation: str
    status: PatchState
    note: str
    updated_at: datetime
    justification: VexJustification | None = None
    """Why it is not affected (NOT_AFFECTED only)."""


@dataclass(frozen=True)
class Finding:
    """A vulnerability in the registry."""

    finding_id: str
    title: str
    description: str
    state: FindingState
    embargo_state: EmbargoState
    embargo_end: datetime | None
    remediation_due: datetime | None
    cwe_ids: tuple[str, ...]
    affected: tuple[AffectedProduct, ...]
    location: CodeLocation
    cvss: Cvss
    tlp: Tlp
    audience: Audience
    source: FindingSource | None
    origin: Origin
    reporter_id: str
    reporter_organisation: str
    evidence: str
    fingerprint: str
    link: FindingLink | None
    patch_statuses: tuple[PatchStatusEntry, ...]
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    revision: int
    seq: int = 0
    # Other identifiers of the vulnerability (`domain.aliases`).
    aliases: tuple[str, ...] = ()
    # Typed URLs and credits (`domain.case_record`).
    references: tuple[Reference, ...] = ()
    credits: tuple[Credit, ...] = ()
    # The reviewer principal the finding is assigned to ("" when unassigned; reviewers and admins only).
    assignee: str = ""
    # A reviewer's SSVC decision (`domain.ssvc`), None until one is made.
    ssvc: SsvcDecision | None = None

    def embargo_in_force(self, now: datetime) -> bool:
        """True while an embargo is proposed or active and its end is still ahead."""
        if self.embargo_state not in (EmbargoState.PROPOSED, EmbargoState.ACTIVE):
            return False
        return self.embargo_end is None or now < self.embargo_end

    def is_invalid(self) -> bool:
        return self.state is FindingState.INVALID

    def source_organisation(self) -> str:
        """The submitting lab's organisation ("" when unknown or not a benchmark finding)."""
        return self.source.organisation if self.source else ""

    def source_consents(self) -> bool:
        """True only when the submission's consent lets operators learn its identity."""
        return bool(self.source and self.source.share_identity)


@dataclass(frozen=True)
class ProductInput:
    """An affected product as a reporter sent it."""

    purl: str = ""
    version_range: str = ""
    cpe: str = ""


@dataclass(frozen=True)
class FindingInput:
    """A direct finding report as received (before any check)."""

    title: str
    description: str
    cwe_ids: Sequence[str]
    affected_products: Sequence[ProductInput]
    location: CodeLocation = field(default_factory=CodeLocation)
    cvss_v3_vector: str = ""
    cvss_v4_vector: str = ""
    tlp: Tlp | None = None
    audience_organisations: Sequence[str] = ()
    audience_sectors: Sequence[str] = ()
    remediation_due: datetime | None = None
    evidence: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class FindingDraft:
    """A checked, normalised finding report, ready to be stored."""

    title: str
    description: str
    cwe_ids: tuple[str, ...]
    affected: tuple[AffectedProduct, ...]
    location: CodeLocation
    cvss: Cvss
    tlp: Tlp
    audience: Audience
    remediation_due: datetime | None
    evidence: str
    request_id: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.affected, self.location, self.cwe_ids)

    def received(
        self,
        *,
        finding_id: str,
        origin: Origin,
        reporter_id: str,
        reporter_organisation: str,
        source: FindingSource | None,
        link: FindingLink | None,
        now: datetime,
    ) -> Finding:
        """The new finding this draft becomes when stored: RECEIVED, no embargo, revision 1."""
        return Finding(
            finding_id=finding_id,
            title=self.title,
            description=self.description,
            state=FindingState.RECEIVED,
            embargo_state=EmbargoState.NONE,
            embargo_end=None,
            remediation_due=self.remediation_due,
            cwe_ids=self.cwe_ids,
            affected=self.affected,
            location=self.location,
            cvss=self.cvss,
            tlp=self.tlp,
            audience=self.audience,
            source=source,
            origin=origin,
            reporter_id=reporter_id,
            reporter_organisation=reporter_organisation,
            evidence=self.evidence,
            fingerprint=self.fingerprint,
            link=link,
            patch_statuses=(),
            created_at=now,
            updated_at=now,
            published_at=None,
            revision=1,
        )


def fingerprint(affected: Sequence[AffectedProduct], location: CodeLocation, cwe_ids: Sequence[str]) -> str:
    """SHA-256 (hex) of the normalised product identities, location and CWE set (see module doc)."""
    canonical = json.dumps(
        {
            "products": sorted({p.identity() for p in affected}),
            "file": location.file,
            "function": location.function,
            "cwes": sorted(set(cwe_ids)),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def sharing_key(tlp: Tlp, audience: Audience) -> str:
    """Equal for findings with the same TLP label and audience (dedup never links across keys)."""
    return hashlib.sha256(f"{tlp.value}|{audience.key()}".encode()).hexdigest()


def _rating(text: str) -> Severity:
    return Severity(text.upper())


def score_cvss(v3_vector: str, v4_vector: str, errors: Collector, *, prefix: str = "") -> Cvss:
    """Parse and score the vectors with the `cvss` package; bad vectors are reported to `errors`."""
    result = Cvss()
    v3 = v3_vector.strip()
    if v3:
        if not v3.startswith("CVSS:3.1/"):
            errors.add(f"{prefix}cvss_v3_vector", "must be a CVSS 3.1 vector starting with CVSS:3.1/")
        else:
            try:
                clean = CVSS3(v3).clean_vector()
                base = cvss_scores(clean)[0]
                result = Cvss(v3_vector=clean, v3_score=base.score, v3_rating=base.rating)
            except CVSSError as exc:
                errors.add(f"{prefix}cvss_v3_vector", f"is not a valid CVSS 3.1 vector: {exc}")
    v4 = v4_vector.strip()
    if v4:
        if not v4.startswith("CVSS:4.0/"):
            errors.add(f"{prefix}cvss_v4_vector", "must be a CVSS 4.0 vector starting with CVSS:4.0/")
        else:
            try:
                clean = CVSS4(v4).clean_vector()
                base = cvss_scores(clean)[0]
                result = Cvss(
                    v3_vector=result.v3_vector,
                    v3_score=result.v3_score,
                    v3_rating=result.v3_rating,
                    v4_vector=clean,
                    v4_score=base.score,
                    v4_rating=base.rating,
                )
            except CVSSError as exc:
                errors.add(f"{prefix}cvss_v4_vector", f"is not a valid CVSS 4.0 vector: {exc}")
    return result


def check_cwe_ids(raw: Sequence[str], errors: Collector, *, field_name: str = "cwe_ids") -> tuple[str, ...]:
    """Normalised CWE ids (order kept, one each); bad ones are reported to `errors`."""
    if not raw:
        errors.add(field_name, "at least one CWE id is required")
    if len(raw) > MAX_CWES:
        errors.add(field_name, f"at most {MAX_CWES} CWE ids")
    seen: list[str] = []
    for i, value in enumerate(raw):
        cwe_id = normalise_cwe_id(value)
        problem = cwe_problem(cwe_id)
        if problem:
            errors.add(f"{field_name}[{i}]", f"{value!r} {problem}")
        elif cwe_id in seen:
            errors.add(f"{field_name}[{i}]", f"{cwe_id} is listed twice")
        else:
            seen.append(cwe_id)
    return tuple(seen)


def _check_purl(product: ProductInput, path: str, errors: Collector) -> AffectedProduct | None:
    try:
        purl = PackageURL.from_string(product.purl.strip())
    except ValueError as exc:
        errors.add(f"{path}.purl", f"is not a valid package URL: {exc}")
        return None
    version_range = product.version_range.strip()
    if version_range:
        try:
            parsed = parse_version_range(version_range)
        except Exception as exc:  # univers raises ValueError, TypeError or its own errors
            errors.add(f"{path}.version_range", f"is not a valid vers: range: {exc}")
            return None
        scheme = version_range.removeprefix("vers:").split("/", 1)[0].lower()
        if scheme not in (purl.type, "generic") and scheme in RANGE_CLASS_BY_SCHEMES:
            errors.add(
                f"{path}.version_range", f"scheme {scheme!r} does not match the purl type {purl.type!r}"
            )
            return None
        version_range = str(parsed)
    return AffectedProduct(purl=purl.to_string(), version_range=version_range)


def _check_cpe(product: ProductInput, path: str, errors: Collector) -> AffectedProduct | None:
    cpe = product.cpe.strip()
    if product.version_range.strip():
        errors.add(f"{path}.version_range", "is only for purls; put the version in the CPE name")
        return None
    if not CPE23.fullmatch(cpe):
        errors.add(f"{path}.cpe", "is not a CPE 2.3 formatted string (cpe:2.3:part:vendor:product:…)")
        return None
    parts = cpe_fields(cpe)
    if parts[2] not in ("a", "o", "h"):
        errors.add(f"{path}.cpe", "part must be a, o or h")
        return None
    if parts[3] in ("*", "-") or parts[4] in ("*", "-"):
        errors.add(f"{path}.cpe", "vendor and product must be named")
        return None
    return AffectedProduct(cpe=cpe.lower())


def check_products(
    raw: Sequence[ProductInput], errors: Collector, *, field_name: str = "affected_products"
) -> tuple[AffectedProduct, ...]:
    """Normalised affected products; bad ones are reported to `errors`."""
    if not raw:
        errors.add(field_name, "at least one affected product is required")
    if len(raw) > MAX_PRODUCTS:
        errors.add(field_name, f"at most {MAX_PRODUCTS} affected products")
    products: list[AffectedProduct] = []
    for i, product in enumerate(raw):
        path = f"{field_name}[{i}]"
        has_purl, has_cpe = bool(product.purl.strip()), bool(product.cpe.strip())
        if has_purl == has_cpe:
            errors.add(path, "give exactly one of purl and cpe")
            continue
        checked = _check_purl(product, path, errors) if has_purl else _check_cpe(product, path, errors)
        if checked is None:
            continue
        if checked in products:
            errors.add(path, "is listed twice")
            continue
        products.append(checked)
    return tuple(products)


def normalise_location(
    location: CodeLocation, errors: Collector, *, field_name: str = "location"
) -> CodeLocation:
    """Path with forward slashes, no leading `./` or `/`, collapsed; bad values are reported."""
    file = location.file.strip().replace("\\", "/")
    function = location.function.strip()
    if len(file) > MAX_FILE:
        errors.add(f"{field_name}.file", f"at most {MAX_FILE} characters")
    if len(function) > MAX_FUNCTION:
        errors.add(f"{field_name}.function", f"at most {MAX_FUNCTION} characters")
    if not 0 <= location.line <= MAX_LINE:
        errors.add(f"{field_name}.line", f"must be between 0 and {MAX_LINE}")
    if file:
        file = posixpath.normpath(file).lstrip("/")
        if file.startswith("../") or file == "..":
            errors.add(f"{field_name}.file", "must stay inside the product's source tree")
    return CodeLocation(file=file, function=function, line=location.line)


def check_audience(
    organisations: Sequence[str], sectors: Sequence[str], errors: Collector, *, field_name: str = "audience"
) -> Audience:
    """The audience, checked: organisation names by the shared grammar (`preflight.sdk.naming`)
    and unique, sectors known."""
    if len(organisations) > MAX_AUDIENCE_ENTRIES:
        errors.add(f"{field_name}.organisations", f"at most {MAX_AUDIENCE_ENTRIES} organisations")
    orgs: set[str] = set()
    for i, org in enumerate(organisations):
        value = org.strip()
        if not value:
            errors.add(f"{field_name}.organisations[{i}]", "must not be empty")
        elif not is_valid_name(value):
            errors.add(f"{field_name}.organisations[{i}]", NAME_RULE)
        elif value in orgs:
            errors.add(f"{field_name}.organisations[{i}]", f"{value!r} is listed twice")
        else:
            orgs.add(value)
    secs: set[str] = set()
    for i, sector in enumerate(sectors):
        value = sector.strip().lower()
        if value not in KNOWN_SECTORS:
            errors.add(
                f"{field_name}.sectors[{i}]",
                f"unknown sector {sector!r}; known: {', '.join(sorted(KNOWN_SECTORS))}",
            )
        elif value in secs:
            errors.add(f"{field_name}.sectors[{i}]", f"{value!r} is listed twice")
        else:
            secs.add(value)
    return Audience(frozenset(orgs), frozenset(secs))


def check_future(moment: datetime | None, field_name: str, now: datetime, errors: Collector) -> None:
    """Report `moment` unless it is absent or after `now`."""
    if moment is not None and moment <= now:
        errors.add(field_name, "must be in the future")


def check_report(report: FindingInput, now: datetime) -> FindingDraft:
    """Check a direct finding report; raises InvalidInput naming every bad field."""
    errors = Collector()
    title = check_text(report.title, "title", MAX_TITLE, errors, required=True)
    description = check_text(report.description, "description", MAX_DESCRIPTION, errors, required=True)
    evidence = check_text(report.evidence, "evidence", MAX_EVIDENCE, errors, required=False)
    request_id = check_text(report.request_id, "request_id", MAX_REQUEST_ID, errors, required=False)
    cwe_ids = check_cwe_ids(report.cwe_ids, errors)
    affected = check_products(report.affected_products, errors)
    location = normalise_location(report.location, errors)
    cvss = score_cvss(report.cvss_v3_vector, report.cvss_v4_vector, errors)
    if report.tlp is None:
        errors.add("tlp", "a TLP label is required (CLEAR, GREEN, AMBER, AMBER_STRICT or RED)")
    audience = check_audience(report.audience_organisations, report.audience_sectors, errors)
    check_future(report.remediation_due, "remediation_due", now, errors)
    errors.raise_if_any()
    assert report.tlp is not None
    return FindingDraft(
        title=title,
        description=description,
        cwe_ids=cwe_ids,
        affected=affected,
        location=location,
        cvss=cvss,
        tlp=report.tlp,
        audience=audience,
        remediation_due=report.remediation_due,
        evidence=evidence,
        request_id=request_id,
    )


@dataclass(frozen=True)
class CandidateInput:
    """A candidate finding from a benchmark result, as the model produced it (unvalidated)."""

    title: str
    description: str
    evidence: str
    cwe_ids: Sequence[str]
    affected_product: str
    location: CodeLocation


def _product_from_text(text: str) -> ProductInput:
    return ProductInput(cpe=text) if text.lower().startswith("cpe:") else ProductInput(purl=text)


def check_candidate(candidate: CandidateInput) -> tuple[FindingDraft, tuple[str, ...]]:
    """A draft from a model's candidate finding, keeping what is valid.

    A model's output may be malformed; unlike a direct report it is not
    rejected (the benchmark result must still count): bad CWE ids, a bad
    product or location are dropped and described in the returned notes.
    Candidates are stored TLP:RED with an empty audience — they reach no one
    but reviewers and the submitting lab until a reviewer shares them.
    """
    errors = Collector()
    title = candidate.title.strip()[:MAX_TITLE] or "Candidate vulnerability from a benchmark run"
    description = candidate.description.strip()[:MAX_DESCRIPTION] or title
    evidence = candidate.evidence.strip()[:MAX_EVIDENCE]
    kept_cwes: tuple[str, ...] = ()
    if candidate.cwe_ids:
        cwe_errors = Collector()
        kept_cwes = check_cwe_ids(candidate.cwe_ids, cwe_errors)
        for violation in cwe_errors.violations:
            errors.add(violation.field, f"dropped: {violation.description}")
    products: tuple[AffectedProduct, ...] = ()
    if candidate.affected_product.strip():
        product_errors = Collector()
        products = check_products([_product_from_text(candidate.affected_product)], product_errors)
        if product_errors.violations:
            errors.add("affected_product", f"dropped {candidate.affected_product!r}")
    location_errors = Collector()
    location = normalise_location(candidate.location, location_errors)
    if location_errors.violations:
        errors.add("location", "dropped")
        location = CodeLocation()
    notes = tuple(f"{v.field}: {v.description}" for v in errors.violations)
    draft = FindingDraft(
        title=title,
        description=description,
        cwe_ids=kept_cwes,
        affected=products,
        location=location,
        cvss=Cvss(),
        tlp=Tlp.RED,
        audience=Audience(),
        remediation_due=None,
        evidence=evidence,
    )
    return draft, notes
