"""Verifying the clearinghouse's signed review reports (Ed25519), for every service that trusts one.

A report's signature covers its body: the canonical JSON the clearinghouse signs, which names the
report, its submission, its version and the signing key. `verify_report` holds a report event to
all of it, so neither a bogus signature nor a genuine body announced as another report or
submission is taken for the real thing.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def verify_signature(public_key: bytes, body: bytes, signature: bytes) -> bool:
    """True when `signature` is `public_key`'s Ed25519 signature of `body`."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, body)
    except (InvalidSignature, ValueError):
        return False
    return True


def report_refusal(public_key: bytes, body: bytes, signature: bytes, *, claims: dict[str, Any]) -> str | None:
    """Why a signed report is not what it `claims` to be (body fields such as ``report_id``,
    ``submission_id``, ``version``, ``signing_key_id``), or None when its signature verifies
    with `public_key` and its signed body says exactly that."""
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
