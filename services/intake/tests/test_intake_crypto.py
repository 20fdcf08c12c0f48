"""Credential encryption at rest: AES-256-GCM, key ids for rotation, submission id as associated data."""

from __future__ import annotations

import base64
import os

import pytest
from preflight_intake.adapters.crypto import DecryptionError, KeyConfigError, Keyring, new_key_entry
from preflight_intake.domain.ports import Sealed


def test_sealed_secret_opens_only_with_its_submission_id() -> None:
    keyring = Keyring.parse(new_key_entry("k1"))
    sealed = keyring.seal("sk-secret", "submission-1")
    assert b"sk-secret" not in sealed.ciphertext
    assert sealed.key_id == "k1"
    assert keyring.open(sealed, "submission-1") == "sk-secret"
    with pytest.raises(DecryptionError):
        keyring.open(sealed, "submission-2")


def test_tampered_ciphertext_does_not_decrypt() -> None:
    keyring = Keyring.parse(new_key_entry("k1"))
    sealed = keyring.seal("sk-secret", "s")
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(DecryptionError):
        keyring.open(Sealed(sealed.key_id, sealed.nonce, flipped), "s")


def test_rotation_seals_with_the_first_key_and_still_opens_old_secrets() -> None:
    old_entry, new_entry = new_key_entry("old"), new_key_entry("new")
    old_secret = Keyring.parse(old_entry).seal("sk-old", "s")
    rotated = Keyring.parse(f"{new_entry},{old_entry}")
    assert rotated.open(old_secret, "s") == "sk-old"
    assert rotated.seal("sk-new", "s").key_id == "new"
    with pytest.raises(DecryptionError, match="no configured key"):
        Keyring.parse(new_entry).open(old_secret, "s")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "keyid:base64key"),
        ("nokey", "keyid:base64key"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{base64.b64encode(os.urandom(16)).decode()}", "32 bytes"),
        (
            f"k1:{base64.b64encode(os.urandom(32)).decode()},k1:{base64.b64encode(os.urandom(32)).decode()}",
            "twice",
        ),
    ],
    # Stable ids (the values hold random keys): every collector sees the same tests.
    ids=["empty", "no key id", "not base64", "16 bytes", "key id twice"],
)
def test_bad_key_configuration_names_the_variable_and_never_the_key(value: str, message: str) -> None:
    with pytest.raises(KeyConfigError, match=message) as error:
        Keyring.parse(value)
    assert "PREFLIGHT_INTAKE_ENCRYPTION_KEYS" in str(error.value)
    secret_part = value.partition(":")[2]
    if secret_part:
        assert secret_part not in str(error.value)
