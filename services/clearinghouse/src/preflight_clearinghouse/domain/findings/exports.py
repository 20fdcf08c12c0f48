"""Export documents: formats and the rendered result (the renderers are adapters)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from preflight_clearinghouse.domain.findings.finding import Finding


class ExportFormat(enum.Enum):
    """Export document formats."""

    CSAF = "csaf"
    """CSAF 2.1, the current version."""
    CSAF_2_0 = "csaf-2.0"
    """CSAF 2.0, for consumers that do not read 2.1 yet."""
    OSV = "osv"
    STIX = "stix"


@dataclass(frozen=True)
class ExportDocument:
    """A rendered export."""

    media_type: str
    filename: str
    document: bytes


Exporter = Callable[[Finding, datetime], ExportDocument]
"""Renders the audience view of a finding at an instant."""
