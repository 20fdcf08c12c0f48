"""The one grammar of organisation and sector names.

An organisation or sector name appears in tokens, certificates, sharing audiences, routing
files and Kafka topic names (``preflight.alerts.v1.org.<organisation>``), so it is held to
the strictest of those: 1 to 63 characters of lowercase ASCII letters, digits and ``-``,
starting and ending with a letter or digit (a DNS label). Nothing is normalised: a name
that does not match is refused, never rewritten.
"""

from __future__ import annotations

import re
from typing import Final

NAME_MAX_LENGTH: Final = 63
NAME_PATTERN: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
NAME_RULE: Final = "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"


def is_valid_name(name: str) -> bool:
    """True if `name` is a legal organisation or sector name."""
    return bool(NAME_PATTERN.fullmatch(name))


def check_name(name: str, what: str) -> str:
    """Return `name` if legal; raise ValueError saying which `what` (e.g. "organisation") is not."""
    if not is_valid_name(name):
        raise ValueError(f"{what} {NAME_RULE}")
    return name
