"""The append-only audit log's hash chain.

Entry n stores `hash_n = SHA-256(hash_{n-1} ‖ canonical JSON of entry n)`,
with `hash_0` = 64 zeros, and sequence numbers 1, 2, 3, … without gaps. The
store also keeps the head (last sequence and hash) apart from the entries.
Verification recomputes the chain: an altered entry breaks its own hash, a
removed entry leaves a gap (or breaks the next entry's link), a removed tail
disagrees with the head.

Whoever holds the database can still remove the tail and move the head back,
or alter an entry and recompute every later hash and the head: the chain has no
key. Signed checkpoints close that gap: the clearinghouse signs the chain head
(`Checkpoint`: sequence, hash, time) with its Ed25519 key and publishes it
outside the database (the audit checkpoints topic, and every signed report
body). Checked against a checkpoint, a log that no longer reaches the
checkpoint's entry was truncated, and one whose entry there has another hash was
rewritten. Changes after the last published checkpoint are covered only by the
next one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from preflight.sdk.reports import verify_signature

from preflight_clearinghouse.domain.canonical import canonical_json
from preflight_clearinghouse.domain.errors import FieldViolation, InvalidInput

GENESIS = "0" * 64
CHECKPOINT_SCHEMA = "preflight.audit-checkpoint/1"


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


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Checkpoint:
    """The chain head at one moment: entry `seq` had chain hash `head_hash` (GENESIS for none)."""

    seq: int
    head_hash: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "head_hash": self.head_hash, "at": _instant(self.at)}


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with the signed body that carries it."""

    checkpoint: Checkpoint
    body: bytes
    signature: bytes
    signing_key_id: str


def checkpoint_body(checkpoint: Checkpoint, signing_key_id: str) -> bytes:
    """The canonical JSON a published checkpoint's signature covers."""
    return canonical_json(
        {"schema": CHECKPOINT_SCHEMA, "signing_key_id": signing_key_id, **checkpoint.as_dict()}
    )


def checkpoint_from_body(body: bytes) -> Checkpoint:
    """The checkpoint a signed body carries: a checkpoint's own body, or a report body's
    `audit_checkpoint`. ValueError when it carries none (`verified_checkpoint` checks the signature)."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("schema") != CHECKPOINT_SCHEMA:
            data = data.get("audit_checkpoint")
        if not isinstance(data, dict):
            raise ValueError("the signed body carries no audit checkpoint")
        seq, head_hash, at = data["seq"], data["head_hash"], datetime.fromisoformat(data["at"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError("the signed body carries no well-formed audit checkpoint") from exc
    if not isinstance(seq, int) or seq < 0 or not isinstance(head_hash, str) or at.tzinfo is None:
        raise ValueError("the signed body carries no well-formed audit checkpoint")
    return Checkpoint(seq, head_hash, at)


def verified_checkpoint(public_key: bytes, body: bytes, signature: bytes) -> Checkpoint:
    """The checkpoint `body` carries, once its signature verifies with `public_key` (the
    clearinghouse's own key, never one its database lists: whoever holds the database could add
    one); InvalidInput naming `checkpoint_signature` or `checkpoint_body` (the fields of
    VerifyAuditLogRequest)."""
    if not verify_signature(public_key, body, signature):
        raise InvalidInput(
            [FieldViolation("checkpoint_signature", "does not verify with the clearinghouse's signing key")]
        )
    try:
        return checkpoint_from_body(body)
    except ValueError as exc:
        raise InvalidInput([FieldViolation("checkpoint_body", str(exc))]) from None


@dataclass(frozen=True)
class ChainVerdict:
    """Result of checking the chain (`checkpoint_seq`: the entry a checkpoint vouched for, if any)."""

    ok: bool
    entries: int
    first_bad_seq: int = 0
    problem: str = ""
    checkpoint_seq: int = 0


def verify_chain(
    entries: Iterable[AuditEntry], head_seq: int, head_hash: str, checkpoint: Checkpoint | None = None
) -> ChainVerdict:
    """Check `entries` (in sequence order) against each other, against the stored head and, when
    given, against a signed `checkpoint` (whose signature the caller has verified): the log must
    still reach the checkpoint's entry with the checkpoint's hash."""
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
        if checkpoint is not None and entry.seq == checkpoint.seq and entry.hash != checkpoint.head_hash:
            return ChainVerdict(
                False,
                count,
                entry.seq,
                f"entry {entry.seq} differs from the signed checkpoint of {_instant(checkpoint.at)}: "
                "the log was rewritten",
            )
        prev, expected_seq = entry.hash, expected_seq + 1
    last_seq = expected_seq - 1
    if last_seq != head_seq or prev != (head_hash if head_seq else GENESIS):
        return ChainVerdict(
            False, count, last_seq + 1, f"log ends at entry {last_seq} but its head says {head_seq}"
        )
    if checkpoint is not None and last_seq < checkpoint.seq:
        return ChainVerdict(
            False,
            count,
            last_seq + 1,
            f"log ends at entry {last_seq} but the signed checkpoint of {_instant(checkpoint.at)} "
            f"saw entry {checkpoint.seq}: the log was truncated",
        )
    return ChainVerdict(True, count, checkpoint_seq=checkpoint.seq if checkpoint else 0)
