"""The current time, injected: every rule that depends on "now" takes a `Clock`.

A clock is a function returning a timezone-aware UTC instant. Tests pass their own; the notifier
passes the database's (every replica sharing one PostgreSQL agrees on "now").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """This machine's clock."""
    return datetime.now(UTC)
