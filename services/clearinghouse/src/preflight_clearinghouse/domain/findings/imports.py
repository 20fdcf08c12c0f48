"""Imported documents: what a CSAF or OSV document says about one vulnerability, ready to be
checked like a report (the parsers and validators are adapters)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from preflight_common.fields import IMPORTED_DOCUMENT_LIMIT

from preflight_clearinghouse.domain.findings.case_record import CreditType, ReferenceType
from preflight_clearinghouse.domain.findings.finding import FindingInput

MAX_IMPORT_BYTES: Final = IMPORTED_DOCUMENT_LIMIT
"""The largest document ImportFinding reads (bytes of UTF-8 JSON; the gRPC guard's bound too)."""


@dataclass(frozen=True)
class ImportedDocument:
    """A validated document mapped to a report (TLP included: the document's, else RED) and the
    case record it names. Credits are the names the document itself publishes."""

    report: FindingInput
    aliases: tuple[str, ...]
    references: tuple[tuple[ReferenceType | None, str], ...]
    credits: tuple[tuple[str, CreditType | None], ...]


Importer = Callable[[bytes], ImportedDocument]
"""Validates a document of one format and maps it; raises InvalidInput naming JSON paths."""
