"""Ed25519 report signing (the `cryptography` package).

The private key is in the file PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE names: the base64
of the raw 32-byte private key, or a PEM (PKCS#8) key. Its id is
PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_ID, or by default `ed25519-` followed by
the first 16 hex digits of the SHA-256 of the raw public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from preflight_common.config import ConfigError

ALGORITHM = "Ed25519"


def default_key_id(public_key: bytes) -> str:
    """`ed25519-<16 hex>` from the raw public key."""
    return "ed25519-" + hashlib.sha256(public_key).hexdigest()[:16]


class ReportSigner:
    """Signs report bodies with one Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey, key_id: str = "") -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id or default_key_id(self.public_key)

    def sign(self, body: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `body`."""
        return self._private_key.sign(body)

    @classmethod
    def from_key_text(cls, value: str, key_id: str = "") -> ReportSigner:
        """Load from the base64 of a raw 32-byte private key, or else from a PEM (PKCS#8) key; raises
        ConfigError naming PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE, never quoting the value."""
        text = value.strip()
        try:
            raw = base64.b64decode(text, validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) == 32:
            return cls(Ed25519PrivateKey.from_private_bytes(raw), key_id)
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ConfigError(
                "PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE: holds neither the base64 of a 32-byte Ed25519 "
                "private key nor an unencrypted PEM private key"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE: the PEM key is not an Ed25519 key")
        return cls(key, key_id)

    @classmethod
    def from_file_or_new(cls, path: Path, key_id: str = "") -> ReportSigner:
        """The key in `path` (PEM), created there (mode 0600) when absent: the embedded default."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
        return cls.from_key_text(path.read_text(encoding="utf-8"), key_id)


def generate_key() -> str:
    """A new private key: base64 of its raw 32 bytes (what PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_FILE holds)."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()


def public_key_pem(public_key: bytes) -> str:
    """A raw Ed25519 public key as PEM SubjectPublicKeyInfo."""
    return (
        Ed25519PublicKey.from_public_bytes(public_key)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
