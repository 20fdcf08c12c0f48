"""Durations as written in configuration and in threshold names: `30s`, `15m`, `12h`, `7d`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
}
_PATTERN = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_duration(text: str) -> timedelta:
    """`1d12h`, `30s`, `250ms`, `0` → timedelta; raises ValueError on anything else."""
    raw = text.strip()
    if raw == "0":
        return timedelta(0)
    match = _PATTERN.match(raw)
    if not raw or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 12h, 7d or 1d12h")
    days, hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds, milliseconds=millis)


def format_duration(span: timedelta) -> str:
    """The shortest `parse_duration` spelling of a non-negative whole-second span (`0` for zero)."""
    if span < timedelta(0):
        raise ValueError("durations are not negative")
    total = int(span.total_seconds())
    if total == 0:
        return "0"
    parts = []
    for unit, size in _UNITS.items():
        count, total = divmod(total, int(size.total_seconds()))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def humanize(span: timedelta) -> str:
    """`3 days`, `1 day`, `12 hours`, `45 minutes`, `10 seconds` (the largest whole unit)."""
    seconds = abs(int(span.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"
