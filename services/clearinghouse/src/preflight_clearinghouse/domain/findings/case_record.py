"""A finding's case record beyond its assessment: references (typed URLs) and credits.

Reference and credit types are OSV's (OSV calls a patch reference `FIX`). Credits name who
found, reported or fixed the vulnerability; on a finding a lab's submission produced they follow
the lab's consent exactly as the finding's source does (`domain.sharing` shows or drops both
together).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

from preflight_clearinghouse.domain.errors import Collector

MAX_REFERENCES: Final = 50
MAX_URL: Final = 2000
MAX_CREDITS: Final = 20
MAX_CREDIT_NAME: Final = 200


class ReferenceType(enum.Enum):
    """What a reference's URL is (OSV reference types)."""

    ADVISORY = "ADVISORY"
    PATCH = "PATCH"
    REPORT = "REPORT"
    WEB = "WEB"


class CreditType(enum.Enum):
    """The part a credited person or organisation played (OSV credit types)."""

    FINDER = "FINDER"
    REPORTER = "REPORTER"
    ANALYST = "ANALYST"
    COORDINATOR = "COORDINATOR"
    REMEDIATION_DEVELOPER = "REMEDIATION_DEVELOPER"
    OTHER = "OTHER"


@dataclass(frozen=True)
class Reference:
    """A URL about the vulnerability."""

    type: ReferenceType
    url: str


@dataclass(frozen=True)
class Credit:
    """Who is credited, and for what."""

    name: str
    type: CreditType


def _url_parts(url: str) -> SplitResult | None:
    """`url` split, or None when it is too long, holds a space or control character, or does not
    parse (urlsplit raises ValueError for a malformed IPv6 host such as `http://[host`)."""
    if len(url) > MAX_URL or not url.isprintable() or " " in url:
        return None
    try:
        return urlsplit(url)
    except ValueError:
        return None


def check_references(
    references: Sequence[tuple[ReferenceType | None, str]], errors: Collector
) -> tuple[Reference, ...]:
    """The references in the order given; each bad one is added to `errors` as
    `references[i].type` or `references[i].url` (an http(s) URL with a host, no URL twice)."""
    if len(references) > MAX_REFERENCES:
        errors.add("references", f"at most {MAX_REFERENCES}")
        return ()
    checked: list[Reference] = []
    seen: set[str] = set()
    for i, (kind, url) in enumerate(references):
        if kind is None:
            errors.add(f"references[{i}].type", "required")
        parts = _url_parts(url)
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            errors.add(f"references[{i}].url", f"an http or https URL of at most {MAX_URL} characters")
        elif url in seen:
            errors.add(f"references[{i}].url", "listed twice")
        elif kind is not None:
            seen.add(url)
            checked.append(Reference(kind, url))
    return tuple(checked)


def check_credits(credits: Sequence[tuple[str, CreditType | None]], errors: Collector) -> tuple[Credit, ...]:
    """The credits in the order given; each bad one is added to `errors` as `credits[i].name`
    (1 to 200 printable characters) or `credits[i].type`."""
    if len(credits) > MAX_CREDITS:
        errors.add("credits", f"at most {MAX_CREDITS}")
        return ()
    checked: list[Credit] = []
    for i, (name, kind) in enumerate(credits):
        text = name.strip()
        if not text or len(text) > MAX_CREDIT_NAME or not text.isprintable():
            errors.add(f"credits[{i}].name", f"1 to {MAX_CREDIT_NAME} printable characters")
        if kind is None:
            errors.add(f"credits[{i}].type", "required")
        elif text and len(text) <= MAX_CREDIT_NAME and text.isprintable():
            checked.append(Credit(text, kind))
    return tuple(checked)
