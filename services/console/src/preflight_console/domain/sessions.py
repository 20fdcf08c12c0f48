"""Signed-in sessions, kept on the server: the browser holds only a signed random id.

A session holds the user's Preflight token and who it belongs to; the token never leaves the
server. The cookie value is `<id>.<HMAC-SHA256(key, id)>`, so a cookie the console did not issue is
refused without a lookup; every form of a session carries its CSRF token,
`HMAC-SHA256(key, "csrf:" + id)`, which a cross-site page cannot read. Sessions end at sign-out,
after `ttl` seconds, or when an API no longer accepts the token; kept in a SQLite file, they
outlive a restart of the console. A session an OpenID sign-in started also knows the id of the
token intake issued for it (`issued_token_id`), which sign-out revokes; a token the user brought
to the sign-in form is theirs, and outlives the session.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from preflight.identity.v1 import identity_pb2
from preflight_common.auth import Principal, Role

CONSOLE_ROLES = (Role.LAB, Role.REVIEWER, Role.OPERATOR)
"""The roles that may sign in to the console."""


@dataclass
class Session:
    """One signed-in user, as the identity service said (`viewer`). `time_zone` is the IANA zone
    times are shown in; `issued_token_id` names `token` when the console's sign-in had it issued
    (empty when the user brought it)."""

    session_id: str
    token: str
    viewer: Principal
    csrf: str
    expires_at: float
    time_zone: str = "UTC"
    issued_token_id: str = ""


class Signer:
    """HMAC-SHA256 under the console's session key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the session key must be at least 32 bytes")
        self._key = key

    def sign(self, purpose: str, value: str) -> str:
        """The MAC of `value` for `purpose` (URL-safe hex)."""
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def verify(self, purpose: str, value: str, mac: str) -> bool:
        """Whether `mac` is `sign(purpose, value)` (constant time)."""
        return hmac.compare_digest(self.sign(purpose, value), mac)


class SessionStore:
    """Sessions in a SQLite file (`path`), so a restart of the console signs no one out; with no
    path, in memory. Bounded by `ttl`: an expired session is deleted when next read and when a
    session is created. The file (mode 0600) holds each token sealed with AES-256-GCM under a key
    derived from the session key, bound to its session id: the file alone does not give a token
    away, and a row copied under another id does not open."""

    def __init__(
        self, signer: Signer, ttl: float, path: Path | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._signer = signer
        self._ttl = ttl
        self._clock = clock
        self._sealer = AESGCM(bytes.fromhex(signer.sign("key", "session-tokens")))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        # One connection, used under the lock by whichever thread serves the request.
        self._db = sqlite3.connect(
            str(path) if path is not None else ":memory:", check_same_thread=False, isolation_level=None
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, sealed_token BLOB NOT NULL, "
            "viewer BLOB NOT NULL, expires_at REAL NOT NULL, time_zone TEXT NOT NULL, "
            "issued_token_id TEXT NOT NULL)"
        )
        self._lock = threading.Lock()

    def create(self, token: str, viewer: Principal, issued_token_id: str = "") -> tuple[str, Session]:
        """A new session for `viewer` holding `token` (whose id is `issued_token_id` when the
        console's sign-in had it issued); returns the cookie value and the session."""
        session_id = secrets.token_urlsafe(32)
        session = Session(
            session_id=session_id,
            token=token,
            viewer=viewer,
            csrf=self._signer.sign("csrf", session_id),
            expires_at=self._clock() + self._ttl,
            issued_token_id=issued_token_id,
        )
        nonce = secrets.token_bytes(12)
        sealed = nonce + self._sealer.encrypt(nonce, token.encode(), session_id.encode())
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE expires_at <= ?", (self._clock(),))
            self._db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    sealed,
                    viewer.to_proto().SerializeToString(),
                    session.expires_at,
                    session.time_zone,
                    issued_token_id,
                ),
            )
        return f"{session_id}.{self._signer.sign('session', session_id)}", session

    def get(self, cookie: str | None) -> Session | None:
        """The live session `cookie` names, or None (unsigned, unknown, ended or expired)."""
        session_id = self._session_id(cookie)
        if session_id is None:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT sealed_token, viewer, expires_at, time_zone, issued_token_id FROM sessions "
                "WHERE session_id = ?",
                (session_id,),
            ).fetchone()
            if row is None:
                return None
            sealed, viewer, expires_at, time_zone, issued_token_id = row
            if expires_at <= self._clock():
                self._db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
                return None
        try:
            token = self._sealer.decrypt(sealed[:12], sealed[12:], session_id.encode()).decode()
        except InvalidTag:  # sealed under another session key, or not for this session
            return None
        return Session(
            session_id=session_id,
            token=token,
            viewer=Principal.from_proto(identity_pb2.Principal.FromString(viewer)),
            csrf=self._signer.sign("csrf", session_id),
            expires_at=expires_at,
            time_zone=time_zone,
            issued_token_id=issued_token_id,
        )

    def set_time_zone(self, session: Session, zone: str) -> None:
        """Show `session`'s times in `zone` from now on."""
        session.time_zone = zone
        with self._lock:
            self._db.execute(
                "UPDATE sessions SET time_zone = ? WHERE session_id = ?", (zone, session.session_id)
            )

    def end(self, cookie: str | None) -> None:
        """End the session `cookie` names, if any: its row is deleted."""
        session_id = self._session_id(cookie)
        if session_id is not None:
            with self._lock:
                self._db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM sessions").fetchone()
        return int(count)

    def _session_id(self, cookie: str | None) -> str | None:
        session_id, _, mac = (cookie or "").partition(".")
        if not session_id or not mac or not self._signer.verify("session", session_id, mac):
            return None
        return session_id
