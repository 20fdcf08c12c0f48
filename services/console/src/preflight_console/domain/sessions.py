"""Signed-in sessions, kept on the server: the browser holds only a signed random id.

A session holds the user's Preflight token and who it belongs to; the token never
leaves the server. The cookie value is `<id>.<HMAC-SHA256(key, id)>`, so a cookie
the console did not issue is refused without a lookup; every form of a session
carries its CSRF token, `HMAC-SHA256(key, "csrf:" + id)`, which a cross-site page
cannot read. Sessions end at sign-out, after `ttl` seconds, or when an API no
longer accepts the token. A session an OpenID sign-in started also knows the id of the token
intake issued for it (`issued_token_id`), which sign-out revokes; a token the user brought to the
sign-in form is theirs, and outlives the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
    flash: list[str] = field(default_factory=list)


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
    """Sessions in memory (a restart signs everyone out), bounded by `ttl`."""

    def __init__(self, signer: Signer, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self._signer = signer
        self._ttl = ttl
        self._clock = clock
        self._sessions: dict[str, Session] = {}
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
        with self._lock:
            self._expire()
            self._sessions[session_id] = session
        return f"{session_id}.{self._signer.sign('session', session_id)}", session

    def get(self, cookie: str | None) -> Session | None:
        """The live session `cookie` names, or None (unsigned, unknown, ended or expired)."""
        session_id = self._session_id(cookie)
        if session_id is None:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at <= self._clock():
                del self._sessions[session_id]
                return None
            return session

    def end(self, cookie: str | None) -> None:
        """End the session `cookie` names, if any."""
        session_id = self._session_id(cookie)
        if session_id is not None:
            with self._lock:
                self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _session_id(self, cookie: str | None) -> str | None:
        session_id, _, mac = (cookie or "").partition(".")
        if not session_id or not mac or not self._signer.verify("session", session_id, mac):
            return None
        return session_id

    def _expire(self) -> None:
        now = self._clock()
        for session_id in [s for s, v in self._sessions.items() if v.expires_at <= now]:
            del self._sessions[session_id]
