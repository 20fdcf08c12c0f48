"""Signing in through an OpenID provider: the authorization code flow with PKCE (S256), state and
nonce, then the verified ID token exchanged at intake for a short-lived Preflight token.

`start` makes a fresh `state` (binding the answer to this browser: the web layer keeps it in a
cookie), `nonce` (binding the ID token to this sign-in) and PKCE verifier (binding the code to
this console), keeps them for `PENDING_TTL` seconds and returns the provider's authorization URL.
`finish` takes the provider's answer: the state must be one this console started and not yet
used (each is used once), the code is redeemed at the token endpoint with the verifier (and the
client secret, if any), the ID token is verified here (`preflight_common.oidc`: signature by the
provider's JWKS, iss, aud = this client, exp, nonce) and then again by intake, which alone
decides who the user is (`SignInService.ExchangeIdToken`, called without credentials: the console
holds no token of its own) and issues a token lasting the session's lifetime at most, which the
session's sign-out revokes (`views.end_sign_in`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

from preflight.intake.v1 import sign_in_pb2
from preflight.sdk.errors import PermissionDenied, PreflightError, Unauthenticated
from preflight_common.auth import Principal
from preflight_common.oidc import InvalidIdToken, Issuer, IssuerUnavailable, ProviderRefused, fetch_json

from preflight_console.config import OidcSettings
from preflight_console.domain.ports import ServiceApis
from preflight_console.domain.sessions import CONSOLE_ROLES

PENDING_TTL = 600.0
"""Seconds a started sign-in may take at the provider."""

MAX_PENDING = 10_000
"""Started sign-ins kept at most: a flood of starts forgets the oldest, it does not grow memory."""


class SignInFailed(Exception):
    """The sign-in did not complete; `status` is the HTTP status to answer, the text may be shown."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SignedIn:
    """A completed sign-in: the token intake issued (`token_id` names it), for `principal`."""

    token: str
    token_id: str
    principal: Principal


@dataclass(frozen=True)
class _Pending:
    nonce: str
    verifier: str
    redirect_uri: str
    started: float


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class OpenIdSignIn:
    """Sign-ins through `settings`' provider, ending in a session token for `lifetime` seconds."""

    def __init__(self, settings: OidcSettings, apis: ServiceApis, lifetime: float) -> None:
        self.settings = settings
        self._issuer = Issuer(settings.issuer)
        self._apis = apis
        self._lifetime = lifetime
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    async def start(self, redirect_uri: str) -> tuple[str, str]:
        """(the provider's authorization URL, the state to keep in the browser's cookie), the
        provider to send the browser back to the configured redirect URL, else `redirect_uri`."""
        redirect_uri = self.settings.redirect_url or redirect_uri
        try:
            endpoints = await asyncio.to_thread(self._issuer.endpoints)
        except IssuerUnavailable:
            raise SignInFailed(502, "the sign-in provider did not answer; try again") from None
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        now = time.monotonic()
        with self._lock:
            self._pending = {s: p for s, p in self._pending.items() if now - p.started < PENDING_TTL}
            while len(self._pending) >= MAX_PENDING:
                del self._pending[next(iter(self._pending))]
            self._pending[state] = _Pending(nonce, verifier, redirect_uri, now)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.settings.scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": _challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in endpoints.authorization_endpoint else "?"
        return f"{endpoints.authorization_endpoint}{separator}{query}", state

    def abandon(self, state: str) -> None:
        """Forget the sign-in `state` names (the provider answered with an error)."""
        with self._lock:
            self._pending.pop(state, None)

    async def finish(self, state: str, code: str) -> SignedIn:
        """The Preflight token and principal for the sign-in `state` names, whose code is `code`."""
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or time.monotonic() - pending.started >= PENDING_TTL:
            raise SignInFailed(400, "this sign-in expired or did not start here; sign in again")
        if not code:
            raise SignInFailed(400, "code: the provider sent no authorization code; sign in again")
        try:
            id_token = await asyncio.to_thread(self._redeem, code, pending)
            await asyncio.to_thread(
                self._issuer.verify,
                id_token,
                audiences=(self.settings.client_id,),
                nonce=pending.nonce,
                max_age=PENDING_TTL,
            )
        except IssuerUnavailable:
            raise SignInFailed(502, "the sign-in provider did not answer; try again") from None
        except InvalidIdToken as exc:
            raise SignInFailed(401, f"the provider's ID token is refused ({exc})") from None
        return await self._exchange(id_token, pending.nonce)

    def _redeem(self, code: str, pending: _Pending) -> str:
        """The ID token the token endpoint gives for `code` (blocking)."""
        fields = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.verifier,
            "client_id": self.settings.client_id,
        }
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        if self.settings.client_secret:
            basic = f"{_form(self.settings.client_id)}:{_form(self.settings.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
        request = urllib.request.Request(  # noqa: S310 - the discovered endpoint, checked by oidc
            self._issuer.endpoints().token_endpoint, data=urlencode(fields).encode(), headers=headers
        )
        try:
            answer = fetch_json(request, "token")
        except ProviderRefused:  # the code was used, has expired or is not this client's
            raise SignInFailed(401, "the provider refused the sign-in's code; sign in again") from None
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise SignInFailed(502, "the provider's answer has no ID token")
        return id_token

    async def _exchange(self, id_token: str, nonce: str) -> SignedIn:
        request = sign_in_pb2.ExchangeIdTokenRequest(
            id_token=id_token, nonce=nonce, lifetime_seconds=int(self._lifetime)
        )
        try:
            answer = await self._apis.exchange_id_token(request)
        except PermissionDenied:
            raise SignInFailed(403, "your account has no access to Preflight") from None
        except Unauthenticated as exc:
            raise SignInFailed(401, f"Preflight refused the sign-in: {exc.message}") from None
        except PreflightError:
            raise SignInFailed(502, "the identity service did not answer; try again") from None
        principal = Principal.from_proto(answer.principal)
        if principal.role not in CONSOLE_ROLES:
            raise SignInFailed(403, "the console serves labs, reviewers and operators")
        return SignedIn(answer.token, answer.token_id, principal)


def _form(value: str) -> str:
    """`value` form-encoded, as RFC 6749 §2.3.1 asks of a client id and secret in HTTP Basic."""
    return urlencode({"": value})[1:]
