"""The append-only audit log's hash chain.

Entry n stores `hash_n = SHA-256(hash_{n-1} ‖ canonical JSON of entry n)`,
with `hash_0` = 64 zeros, and sequence numbers 1, 2, 3, … without gaps. The
store also keeps the head (last sequence and hash) apart from the entries.
Verification recomputes the chain: an altered entry breaks its own hash, a
removed entry leaves a gap (or breaks the next entry's link), a removed tail
disagrees with the head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from preflight_clearinghouse.domain.canonical import canonical_json

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    """One audited action."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject_kind: str
    subject_id: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


def entry_hash(
    prev_hash: str,
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject_kind: str,
    subject_id: str,
    details: dict[str, Any],
) -> str:
    """The chained hash of an entry."""
    body = canonical_json(
        {
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "subject_kind": subject_kind,
            "subject_id": subject_id,
            "details": details,
        }
    )
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


@dataclass(frozen=True)
class ChainVerdict:
    """Result of checking the chain."""

    ok: bool
    entries: int
    first_bad_seq: int = 0
    problem: str = ""


def verify_chain(entries: Iterable[AuditEntry], head_seq: int, head_hash: str) -> ChainVerdict:
    """Check `entries` (in sequence order) against each other and against the stored head."""
    prev, expected_seq, count = GENESIS, 1, 0
    for entry in entries:
        count += 1
        if entry.seq != expected_seq:
            return ChainVerdict(False, count, expected_seq, f"entry {expected_seq} is missing")
        if entry.prev_hash != prev:
            return ChainVerdict(False, count, entry.seq, "link to the previous entry is broken")
        recomputed = entry_hash(
            prev,
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            subject_kind=entry.subject_kind,
            subject_id=entry.subject_id,
            details=entry.details,
        )
        if recomputed != entry.hash:
            return ChainVerdict(False, count, entry.seq, "entry content does not match its hash")
        prev, expected_seq = entry.hash, expected_seq + 1
    last_seq = expected_seq - 1
    if last_seq != head_seq or prev != (head_hash if head_seq else GENESIS):
        return ChainVerdict(
            False, count, last_seq + 1, f"log ends at entry {last_seq} but its head says {head_seq}"
        )
    return ChainVerdict(True, count)
