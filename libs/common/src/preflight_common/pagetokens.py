"""Page tokens: opaque, tamper-evident cursors for every List RPC.

A token is the cursor (a short JSON list of strings and integers) encrypted and
authenticated with AES-256-GCM, bound to the RPC it came from (its `scope`): a client can
neither read nor edit it, nor use one RPC's token with another. A token that does not
authenticate raises `InvalidArgument` naming `page_token`.

The key comes from the file `PREFLIGHT_PAGE_TOKEN_KEY_FILE` names (any secret of at least
32 characters; the key is derived from it), so tokens stay valid across restarts and between replicas that
share it. Without it each process draws a random key: a token is then valid only on the
process that issued it, until it restarts (a client starts its listing again).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from preflight_common.config import ConfigError, secret
from preflight_common.fields import InvalidArgument

PAGE_TOKEN_KEY_ENV: Final = "PREFLIGHT_PAGE_TOKEN_KEY"  # noqa: S105 - a variable name, not a secret
MIN_SECRET_LENGTH: Final = 32
_NONCE = 12

Cursor = list[str | int]


class PageTokens:
    """Encodes and decodes page tokens under one 32-byte key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_secret(cls, secret: str) -> PageTokens:
        return cls(hashlib.sha256(b"preflight page tokens\0" + secret.encode()).digest())

    @classmethod
    def from_env(cls) -> PageTokens:
        """Keyed from the file `PREFLIGHT_PAGE_TOKEN_KEY_FILE` names, at random when it is unset;
        ConfigError if the key is too short or is set as `PREFLIGHT_PAGE_TOKEN_KEY` (`config.secret`)."""
        key = secret(PAGE_TOKEN_KEY_ENV, "")
        if not key:
            return cls(os.urandom(32))
        if len(key) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"{PAGE_TOKEN_KEY_ENV}_FILE: the key must be at least {MIN_SECRET_LENGTH} characters"
            )
        return cls.from_secret(key)

    def encode(self, scope: str, cursor: Sequence[str | int] | None) -> str:
        """The token resuming `scope` at `cursor`; "" for None (no further page)."""
        if cursor is None:
            return ""
        nonce = os.urandom(_NONCE)
        plain = json.dumps(list(cursor), separators=(",", ":")).encode()
        sealed = self._aead.encrypt(nonce, plain, scope.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def decode(self, scope: str, token: str) -> Cursor | None:
        """The cursor in a token `encode(scope, …)` made; None for ""; InvalidArgument otherwise."""
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], scope.encode())
        except (ValueError, binascii.Error, InvalidTag):
            raise InvalidArgument([("page_token", "is not a token from a previous response")]) from None
        cursor: Cursor = json.loads(plain)
        return cursor


@functools.cache
def page_tokens() -> PageTokens:
    """The process's page-token codec (from the environment, read once)."""
    return PageTokens.from_env()
