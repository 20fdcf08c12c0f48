"""Verifying a signed review report, for a lab, an auditor, or a service that trusts one.

The clearinghouse signs a report's `body`: the canonical JSON (sorted keys, no blanks, UTF-8) of
everything the report says, which names the report, its submission, the submitting lab's
organisation, its version, the version it supersedes, the signing key and the audit log's chain
head at issue. The signature (Ed25519) covers exactly those bytes. `verify_report` checks the signature over
them, the digest, and that every field the report message shows beside the body says what the
signed body says, so neither a forged body nor a genuine one dressed up as another report, or with
other scores, passes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.json_format import MessageToDict
from preflight.clearinghouse.v1 import clearinghouse_pb2


class ReportVerificationError(Exception):
    """A report is not what the clearinghouse signed; the message says what does not hold."""


def verify_signature(public_key: bytes, body: bytes, signature: bytes) -> bool:
    """True when `signature` is the Ed25519 signature of `body` by the raw 32-byte `public_key`."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, body)
    except (InvalidSignature, ValueError):
        return False
    return True


def report_refusal(public_key: bytes, body: bytes, signature: bytes, *, claims: dict[str, Any]) -> str | None:
    """Why a signed report body is not what it `claims` to be (top-level body fields such as
    ``report_id``, ``submission_id``, ``version``, ``organisation``, ``signing_key_id``), or None
    when `signature` verifies over `body` with `public_key` and the signed body says exactly that."""
    if not verify_signature(public_key, body, signature):
        return "the report's signature does not verify with the clearinghouse's key"
    try:
        signed = json.loads(body)
    except ValueError:
        return "the signed report body is not JSON"
    if not isinstance(signed, dict):
        return "the signed report body is not a JSON object"
    for name, claimed in claims.items():
        if signed.get(name) != claimed:
            return f"the signed report has {name} {signed.get(name)!r}, not {claimed!r}"
    return None


def _shown(items: Any) -> list[dict[str, Any]]:
    return [
        MessageToDict(item, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        for item in items
    ]


def _projected(signed: Any, shown: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The signed entries reduced to the fields the message shows, in the message's JSON form."""
    if not isinstance(signed, list):
        return []
    return [
        {name: value for name, value in entry.items() if name in template}
        for entry, template in zip(signed, shown, strict=False)
        if isinstance(entry, dict)
    ]


def report_claims(report: clearinghouse_pb2.ReviewReport) -> dict[str, Any]:
    """What `report` shows beside its body, as the signed body spells each field."""
    return {
        "report_id": report.report_id,
        "submission_id": report.submission_id,
        "version": report.version,
        "organisation": report.organisation,
        "signing_key_id": report.signing_key_id,
        "issued_at": report.issued_at.ToDatetime(UTC).isoformat(timespec="microseconds"),
        "tier": report.tier,
        "policy_id": report.policy_id,
        "policy_version": report.policy_version,
        "unassessed_capabilities": list(report.unassessed_capabilities),
    }


def verify_report(
    report: clearinghouse_pb2.ReviewReport, key: clearinghouse_pb2.GetSigningKeyResponse | bytes
) -> None:
    """Return when `report` is exactly what the clearinghouse signed with `key`; raise
    `ReportVerificationError` saying what does not hold otherwise.

    `key` is the `GetSigningKey` answer for the report's `signing_key_id` (its id must match) or a
    raw 32-byte Ed25519 public key obtained some other trusted way.
    """
    if isinstance(key, clearinghouse_pb2.GetSigningKeyResponse):
        if key.key_id != report.signing_key_id:
            raise ReportVerificationError(
                f"the report was signed with key {report.signing_key_id!r}, not with {key.key_id!r}"
            )
        public_key = key.public_key
    else:
        public_key = key
    if hashlib.sha256(report.body).hexdigest() != report.digest:
        raise ReportVerificationError("the report's digest is not the SHA-256 of its signed body")
    refusal = report_refusal(public_key, report.body, report.signature, claims=report_claims(report))
    if refusal is not None:
        raise ReportVerificationError(refusal)
    signed = json.loads(report.body)
    for name, items in (("scores", report.scores), ("failed_suites", report.failed_suites)):
        shown = _shown(items)
        if len(shown) != len(signed.get(name) or ()) or _projected(signed.get(name), shown) != shown:
            raise ReportVerificationError(f"the report's {name} are not the signed ones")
