"""What the export formats share: identifiers, timestamps, TLP text and purl helpers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from packageurl import PackageURL

from preflight_clearinghouse.domain.findings.finding import Finding
from preflight_clearinghouse.domain.sharing import Tlp

ADVISORY_PREFIX = "PREFLIGHT"
GENERATOR = "preflight-clearinghouse"


def advisory_id(finding: Finding) -> str:
    """The finding's id in exported documents, e.g. `PREFLIGHT-6f1c…`."""
    return f"{ADVISORY_PREFIX}-{finding.finding_id}"


def rfc3339(moment: datetime) -> str:
    """UTC with a `Z` suffix."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def tlp_text(tlp: Tlp) -> str:
    """The TLP 2.0 label as written in documents, e.g. `TLP:AMBER+STRICT`."""
    return f"TLP:{tlp.value}"


def audience_text(finding: Finding) -> str:
    """A sentence naming the audience (exports carry it, like the findings events)."""
    orgs = ", ".join(sorted(finding.audience.organisations)) or "none"
    sectors = ", ".join(sorted(finding.audience.sectors)) or "none"
    return f"{tlp_text(finding.tlp)}. Audience — organisations: {orgs}; sectors: {sectors}."


def source_text(finding: Finding) -> str | None:
    """Who found it, when the export view carries the source (the caller may learn it)."""
    if finding.source is None or not finding.source.organisation:
        return None
    model = " ".join(p for p in (finding.source.model_name, finding.source.model_version) if p)
    return f"Found by {model or 'a model'} of {finding.source.organisation} during a Preflight review."


def without_version(purl: str) -> PackageURL:
    p = PackageURL.from_string(purl)
    return PackageURL(type=p.type, namespace=p.namespace, name=p.name, subpath=p.subpath)


def dumps(document: dict[str, Any], *, sort_keys: bool = False) -> bytes:
    """Indented UTF-8 JSON."""
    return json.dumps(document, indent=2, sort_keys=sort_keys, ensure_ascii=False).encode()
