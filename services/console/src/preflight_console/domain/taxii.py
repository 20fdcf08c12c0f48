"""TAXII 2.1 collection contents: the STIX objects of a principal's view, each with the time it was
added, filtered and paged as the TAXII 2.1 specification's Objects, Manifest and Versions
endpoints require.

An object's `date_added` is the last change of the findings whose exports carry it (an object that
several findings carry, such as a TLP marking definition, takes the latest), so a finding newly
shared with a principal, or changed, is seen by a client polling with `added_after`. Its version is
its `modified`, else its `created`, else its `date_added` (STIX cyber-observables carry neither).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class BadFilter(ValueError):
    """A query parameter that cannot be one: `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Entry:
    """One version of one STIX object in a collection, ordered by when it was added."""

    date_added: datetime
    object_id: str
    version: datetime
    body: Mapping[str, Any]

    @property
    def object_type(self) -> str:
        return self.object_id.split("--", 1)[0]

    @property
    def key(self) -> tuple[datetime, str, datetime]:
        """Its place in the collection: date added, then id and version."""
        return (self.date_added, self.object_id, self.version)


@dataclass(frozen=True)
class Query:
    """The Objects/Manifest/Versions filters (`added_after`, `match[...]`) and paging (`limit`, `next`)."""

    added_after: datetime | None = None
    ids: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    versions: tuple[str, ...] = ("last",)
    spec_versions: frozenset[str] = frozenset()
    limit: int = DEFAULT_LIMIT
    after: tuple[datetime, str, datetime] | None = None


def stix_time(moment: datetime) -> str:
    """A STIX/TAXII timestamp: UTC with millisecond precision and a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str, field: str) -> datetime:
    """An RFC 3339 timestamp in UTC, as TAXII gives them."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadFilter(field, "not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise BadFilter(field, "a timestamp needs its zone (Z)")
    return moment.astimezone(UTC)


def _split(params: Mapping[str, str], name: str) -> list[str]:
    return [part.strip() for part in params.get(name, "").split(",") if part.strip()]


def encode_next(entry: Entry) -> str:
    """The opaque `next` after `entry`: where the following page starts."""
    raw = json.dumps([entry.date_added.isoformat(), entry.object_id, entry.version.isoformat()])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_next(token: str) -> tuple[datetime, str, datetime]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        added, object_id, version = json.loads(raw)
        return parse_time(str(added), "next"), str(object_id), parse_time(str(version), "next")
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise BadFilter("next", "not a page token of this server") from None


def parse_query(params: Mapping[str, str]) -> Query:
    """The query string of an Objects, Manifest or Versions request; `BadFilter` naming the field."""
    added_after = parse_time(params["added_after"], "added_after") if "added_after" in params else None
    limit = DEFAULT_LIMIT
    if "limit" in params:
        try:
            limit = int(params["limit"])
        except ValueError:
            raise BadFilter("limit", "not a whole number") from None
        if limit < 1:
            raise BadFilter("limit", "must be at least 1")
    versions = tuple(_split(params, "match[version]")) or ("last",)
    for version in versions:
        if version not in ("first", "last", "all"):
            parse_time(version, "match[version]")
    return Query(
        added_after=added_after,
        ids=frozenset(_split(params, "match[id]")),
        types=frozenset(_split(params, "match[type]")),
        versions=versions,
        spec_versions=frozenset(_split(params, "match[spec_version]")),
        limit=min(limit, MAX_LIMIT),
        after=_decode_next(params["next"]) if "next" in params else None,
    )


def entries(exports: Iterable[tuple[datetime, Sequence[Mapping[str, Any]]]]) -> list[Entry]:
    """The collection's entries from each finding's last change and its STIX bundle's objects, one per
    object version (the latest change of the findings carrying it), ordered by date added."""
    latest: dict[tuple[str, str], tuple[datetime, Mapping[str, Any]]] = {}
    for changed, objects in exports:
        for body in objects:
            stamp = body.get("modified") or body.get("created")
            key = (str(body["id"]), str(stamp or ""))
            if key not in latest or latest[key][0] < changed:
                latest[key] = (changed, body)
    found = [
        Entry(changed, object_id, parse_time(stamp, "version") if stamp else changed, body)
        for (object_id, stamp), (changed, body) in latest.items()
    ]
    return sorted(found, key=lambda e: e.key)


def _versions_kept(versions: Sequence[Entry], wanted: tuple[str, ...]) -> list[Entry]:
    if "all" in wanted:
        return list(versions)
    ordered = sorted(versions, key=lambda e: e.version)
    kept: list[Entry] = []
    for want in wanted:
        if want == "first":
            kept.append(ordered[0])
        elif want == "last":
            kept.append(ordered[-1])
        else:
            moment = parse_time(want, "match[version]")
            kept += [e for e in ordered if e.version == moment]
    return list({e.key: e for e in kept}.values())


def select(
    found: Sequence[Entry], query: Query, *, object_id: str = "", every_version: bool = False
) -> list[Entry]:
    """The entries the filters match, in date-added order (before paging). `object_id` restricts to
    one object; `every_version` ignores `match[version]` (the Versions endpoint)."""
    chosen = [
        e
        for e in found
        if (not object_id or e.object_id == object_id)
        and (not query.ids or e.object_id in query.ids)
        and (not query.types or e.object_type in query.types)
        and (not query.spec_versions or str(e.body.get("spec_version", "2.1")) in query.spec_versions)
        and (query.added_after is None or e.date_added > query.added_after)
    ]
    if every_version:
        return chosen
    by_id: dict[str, list[Entry]] = {}
    for entry in chosen:
        by_id.setdefault(entry.object_id, []).append(entry)
    kept = {e.key for versions in by_id.values() for e in _versions_kept(versions, query.versions)}
    return [e for e in chosen if e.key in kept]


def page(chosen: Sequence[Entry], query: Query) -> tuple[list[Entry], bool]:
    """One page of `chosen` (after the `next` token's entry, at most `limit`) and whether more follow."""
    start = [e for e in chosen if query.after is None or e.key > query.after]
    return start[: query.limit], len(start) > query.limit
