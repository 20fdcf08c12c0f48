"""Encryption at rest of endpoint credentials: AES-256-GCM with rotating keys.

Keys come from configuration as `keyid:base64key,keyid:base64key,…`; the first
is the active key (new secrets are sealed with it), the others only decrypt
older secrets. Each sealed secret stores the id of its key beside the
ciphertext, and the submission id is the associated data, so a ciphertext
copied onto another submission does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from preflight_intake.domain.ports import Sealed

# The keys are a secret: read from the file KEYS_VARIABLE names, never from the environment.
KEYS_SECRET = "PREFLIGHT_INTAKE_ENCRYPTION_KEYS"  # noqa: S105 - a variable name, not a secret
KEYS_VARIABLE = f"{KEYS_SECRET}_FILE"
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class KeyConfigError(ValueError):
    """The key configuration is malformed; the message names the variable, never a key."""


class DecryptionError(Exception):
    """A sealed secret could not be opened (unknown key id, or tampered ciphertext)."""


class Keyring:
    """The configured AES-256-GCM keys; seals with the active one, opens with any."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyConfigError(f"{KEYS_VARIABLE} must hold at least one key")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}
        self.active_key_id = keys[0][0]

    @classmethod
    def parse(cls, value: str) -> Keyring:
        """Parse `keyid:base64key,…` (each key 32 bytes once decoded)."""
        keys: list[tuple[str, bytes]] = []
        for position, item in enumerate(part.strip() for part in value.split(",")):
            key_id, sep, encoded = item.partition(":")
            where = f"{KEYS_VARIABLE} entry {position + 1}"
            if not sep or not _KEY_ID.fullmatch(key_id):
                raise KeyConfigError(
                    f"{where} must be keyid:base64key with a key id of [A-Za-z0-9_.-]{{1,32}}"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise KeyConfigError(f"{where} ({key_id}): the key is not valid base64") from None
            if len(key) != 32:
                raise KeyConfigError(
                    f"{where} ({key_id}): the key must be 32 bytes (AES-256), got {len(key)}"
                )
            if any(key_id == known for known, _ in keys):
                raise KeyConfigError(f"{where}: key id {key_id!r} appears twice")
            keys.append((key_id, key))
        return cls(keys)

    def seal(self, plaintext: str, associated_data: str) -> Sealed:
        """Encrypt with the active key, bound to `associated_data` (the submission id)."""
        nonce = os.urandom(12)
        ciphertext = self._keys[self.active_key_id].encrypt(
            nonce, plaintext.encode(), associated_data.encode()
        )
        return Sealed(self.active_key_id, nonce, ciphertext)

    def open(self, sealed: Sealed, associated_data: str) -> str:
        """Decrypt; raises DecryptionError if the key is unknown or anything was altered."""
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise DecryptionError(f"no configured key has id {sealed.key_id!r}")
        try:
            return aead.decrypt(sealed.nonce, sealed.ciphertext, associated_data.encode()).decode()
        except InvalidTag:
            raise DecryptionError("ciphertext or associated data do not authenticate") from None


def new_key_entry(key_id: str) -> str:
    """A fresh `keyid:base64key` entry for the configuration."""
    if not _KEY_ID.fullmatch(key_id):
        raise KeyConfigError("key id must match [A-Za-z0-9_.-]{1,32}")
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"
