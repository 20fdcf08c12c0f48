"""Exporters of findings: CSAF 2.1 and 2.0, OSV, STIX 2.1."""

from __future__ import annotations

from preflight_clearinghouse.adapters.exports.osv import schema_validator
from preflight_clearinghouse.domain.findings.cwe import cwe_catalog_version


def load_export_resources() -> None:
    """Load what the exporters read (the OSV schema and its validator, the CWE catalog) now.

    Called once at startup, so that no export request pays for it: building the OSV validator
    imports jsonschema and its format checkers and compiles the schema's patterns, seconds on a
    loaded machine.
    """
    schema_validator()
    cwe_catalog_version()
