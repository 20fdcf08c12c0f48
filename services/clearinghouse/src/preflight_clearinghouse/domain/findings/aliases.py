"""A finding's aliases: the other identifiers of the same vulnerability.

An alias is a CVE id (`CVE-2024-12345`), a GitHub advisory id (`GHSA-xxxx-xxxx-xxxx`, its
lower-case alphabet) or a vendor or database id: an upper-case prefix, a dash and an id
(`RHSA-2024:1234`, `PYSEC-2024-12`, `GO-2024-2687`). CVE and GHSA ids are normalised to their
canonical case; an alias belongs to one finding only (the store's unique key says so too).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from preflight_clearinghouse.domain.errors import Collector

MAX_ALIASES: Final = 20
CVE: Final = re.compile(r"^CVE-\d{4}-\d{4,19}$")
GHSA: Final = re.compile(r"^GHSA(-[23456789cfghjmpqrvwx]{4}){3}$")
VENDOR: Final = re.compile(r"^[A-Z][A-Z0-9]{1,15}-[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$")


def normalise_alias(alias: str) -> str:
    """The canonical spelling: CVE ids in upper case, GHSA ids with a lower-case body."""
    text = alias.strip()
    upper = text.upper()
    if upper.startswith("CVE-"):
        return upper
    if upper.startswith("GHSA-"):
        return "GHSA-" + text[5:].lower()
    return text


def check_aliases(aliases: Sequence[str], errors: Collector) -> tuple[str, ...]:
    """The normalised aliases, de-duplicated and sorted; every malformed one is added to `errors`
    under `aliases`."""
    if len(aliases) > MAX_ALIASES:
        errors.add("aliases", f"at most {MAX_ALIASES}")
        return ()
    checked: list[str] = []
    for alias in aliases:
        normal = normalise_alias(alias)
        if normal.startswith("CVE-"):
            valid = bool(CVE.fullmatch(normal))
        elif normal.startswith("GHSA-"):
            valid = bool(GHSA.fullmatch(normal))
        else:
            valid = bool(VENDOR.fullmatch(normal))
        if not valid:
            errors.add("aliases", f"{alias[:80]!r} is not a CVE, GHSA or PREFIX-ID vendor id")
        elif normal not in checked:
            checked.append(normal)
    return tuple(sorted(checked))


def alias_system(alias: str) -> str:
    """The id system a normalised alias belongs to, named by its prefix: `CVE`, `GHSA`, `RHSA`…"""
    return alias.split("-", 1)[0]


def split_cve(aliases: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    """The first CVE id (the one exports name as *the* CVE) and every other alias, in order."""
    cves = [a for a in aliases if alias_system(a) == "CVE"]
    first = cves[0] if cves else None
    return first, tuple(a for a in aliases if a != first)
