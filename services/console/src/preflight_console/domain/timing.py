"""Times as people read them: in a named time zone, and how long is left before a deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

# Time left below which a deadline is shown in the band's colour, most urgent first.
BANDS: tuple[tuple[timedelta, str], ...] = (
    (timedelta(days=1), "under-1-day"),
    (timedelta(days=3), "under-3-days"),
    (timedelta(days=7), "under-7-days"),
)


def band(deadline: datetime, now: datetime) -> str:
    """The urgency band of `deadline` at `now`: overdue, under-1-day, under-3-days,
    under-7-days, or "on-track"."""
    left = deadline - now
    if left <= timedelta(0):
        return "overdue"
    for limit, name in BANDS:
        if left < limit:
            return name
    return "on-track"


def time_left(deadline: datetime, now: datetime) -> str:
    """`deadline - now` in days and hours ("2 d 5 h left"), or how long ago it passed."""
    left = deadline - now
    overdue = left < timedelta(0)
    left = abs(left)
    days, hours = left.days, left.seconds // 3600
    minutes = (left.seconds % 3600) // 60
    text = f"{days} d {hours} h" if days else f"{hours} h {minutes} min"
    return f"overdue by {text}" if overdue else f"{text} left"


@cache
def _known_zones() -> frozenset[str]:
    # Listing the zones walks the tz database on disk (milliseconds): once per process, not per
    # time shown.
    return frozenset(available_timezones())


REGIONS = (
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
)
"""The regions of the IANA zones people pick; the database's other names (`EST5EDT`, `Etc/GMT+3`,
`US/Pacific`) are legacy aliases of clocks these already list."""


@cache
def zone_groups() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Every zone of `REGIONS` by region (`("Europe", ("Europe/Amsterdam", …))`), regions and zones
    in alphabetical order, after `("", ("UTC",))`."""
    by_region: dict[str, list[str]] = {}
    for name in _known_zones():
        region = name.partition("/")[0]
        if region in REGIONS and "/" in name:
            by_region.setdefault(region, []).append(name)
    return (("", ("UTC",)), *((region, tuple(sorted(by_region[region]))) for region in sorted(by_region)))


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError when there is none by that name."""
    if name not in _known_zones():
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:  # listed but unreadable: no tzdata for it
        raise ValueError(f"unknown time zone {name!r}") from exc


def show(moment: datetime | None, zone_name: str) -> str:
    """`moment` in the zone, with the zone's name ("2026-12-07 14:05 CET"); "—" when unset."""
    if moment is None:
        return "—"
    local = moment.astimezone(zone(zone_name))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or zone_name}"


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)
