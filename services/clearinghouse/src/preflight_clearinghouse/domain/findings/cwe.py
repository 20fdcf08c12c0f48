"""The MITRE CWE catalog: which CWE ids name a weakness a finding may map to, and their names.

The catalog is the one the `csaf` package ships (MITRE's CWE list with every
name a weakness has had), so the names we export are the ones the CSAF
validator checks against.
"""

from __future__ import annotations

import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

CWE_ID = re.compile(r"^CWE-([1-9][0-9]{0,5})$")


@cache
def _catalog_file() -> dict[str, Any]:
    # Located, not imported: importing the `csaf` package pulls in its whole toolkit (seconds).
    spec = importlib.util.find_spec("csaf")
    if spec is None or spec.origin is None:
        raise RuntimeError("the csaf package (which ships the CWE catalog) is not installed")
    path = Path(spec.origin).parent / "csaf" / "v21" / "cwe" / "catalog.json"
    catalog: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return catalog


def _catalog() -> dict[str, dict[str, object]]:
    weaknesses: dict[str, dict[str, object]] = _catalog_file()["weaknesses"]
    return weaknesses


def cwe_catalog_version() -> str:
    """The CWE list version whose names `cwe_name` gives, e.g. `4.20`."""
    return str(_catalog_file()["latest_version"])


def normalise_cwe_id(raw: str) -> str:
    """`cwe-79` → `CWE-79` (surrounding blanks removed)."""
    return raw.strip().upper()


def cwe_problem(cwe_id: str) -> str | None:
    """Why `cwe_id` (normalised) may not be used, or None when it names a mappable weakness."""
    match = CWE_ID.fullmatch(cwe_id)
    if match is None:
        return "must look like CWE-<number>"
    entry = _catalog().get(match.group(1))
    if entry is None:
        return "is not a weakness in the CWE catalog"
    if entry.get("status") == "Deprecated":
        return "is deprecated in the CWE catalog"
    if entry.get("usage") == "Prohibited":
        return "is prohibited for vulnerability mapping"
    return None


def cwe_name(cwe_id: str) -> str:
    """The current catalog name of a valid CWE id."""
    history = _catalog()[cwe_id.removeprefix("CWE-")]["history"]
    assert isinstance(history, list)
    return str(history[-1][1])
