"""OpenID Connect ID tokens, verified the same way by every Preflight process that accepts them.

An `Issuer` is an OpenID provider known by its issuer URL: its discovery document
(`<issuer>/.well-known/openid-configuration`, whose `issuer` must be that same URL) names its
endpoints and its JWKS. Keys are fetched from the JWKS and cached; a token naming a key not
seen before fetches the JWKS again (the provider rotated its keys).

`Issuer.verify` accepts an ID token only when it is signed with an asymmetric algorithm
(`ALGORITHMS`: never `none`, never a shared secret) by one of the issuer's published keys, its
`iss` is the issuer, its `aud` holds the expected audience (and, when it holds several, `azp`
is that audience), it has a subject, it has not expired (`exp`, with `LEEWAY` for clock skew),
it was issued no more than `max_age` seconds ago (`iat`) and its `nonce` is the one the sign-in
asked for. Every refusal is an `InvalidIdToken` whose text may be shown (it never quotes the
token); an issuer that cannot be reached is `IssuerUnavailable`.

Issuers are `https://` URLs, or `http://` on a loopback host (a provider on the same machine).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import jwt

ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""The signature algorithms an ID token may use: public-key ones only."""

LEEWAY: Final = 30.0
"""Seconds of clock skew allowed on `exp` and `iat`."""

HTTP_TIMEOUT: Final = 10.0
MAX_DOCUMENT_BYTES: Final = 1024 * 1024
"""The largest discovery document, JWKS or token answer read from a provider."""


class InvalidIdToken(Exception):
    """The ID token is refused; the text says why and may be shown to its holder."""


class IssuerUnavailable(Exception):
    """The provider's discovery document or keys could not be fetched (retry later)."""


class ProviderRefused(IssuerUnavailable):
    """The provider answered a request with a client error (HTTP 4xx): e.g. a code used twice."""


def issuer_url_problem(url: str) -> str | None:
    """Why `url` cannot be an issuer (None when it can): https, or http on a loopback host;
    no query, fragment or credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an https:// URL"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "must have no query, fragment or credentials"
    if parts.scheme == "http" and not _loopback(parts.hostname):
        return "must be https:// (http:// only on a loopback host)"
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch_json(request: urllib.request.Request | str, what: str) -> dict[str, Any]:
    """The JSON object a provider answers `request` with; IssuerUnavailable (naming `what`) when
    it cannot be reached or answers an error (`ProviderRefused` for HTTP 4xx), a non-object or more
    than `MAX_DOCUMENT_BYTES`."""
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as answer:  # noqa: S310 - URLs checked by issuer_url_problem
            body = answer.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        failure = ProviderRefused if 400 <= exc.code < 500 else IssuerUnavailable
        raise failure(f"{what}: the provider answered HTTP {exc.code}") from None
    except (OSError, ValueError):
        raise IssuerUnavailable(f"{what}: the provider did not answer") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise IssuerUnavailable(f"{what}: the provider's answer is too large")
    try:
        document = json.loads(body)
    except ValueError:
        raise IssuerUnavailable(f"{what}: the provider's answer is not JSON") from None
    if not isinstance(document, dict):
        raise IssuerUnavailable(f"{what}: the provider's answer is not a JSON object")
    return document


@dataclass(frozen=True)
class Endpoints:
    """What the discovery document names."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def unverified_issuer(id_token: str) -> str:
    """The `iss` an ID token claims, read without verifying anything (to choose the issuer that
    then verifies it); InvalidIdToken when the token is not a JWT naming one."""
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise InvalidIdToken("not a signed JWT") from None
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise InvalidIdToken("names no issuer (iss)")
    return issuer


class Issuer:
    """One OpenID provider: its endpoints (discovered once) and its keys (cached, refreshed on an
    unknown key id). Thread-safe; its calls block (run them in a thread from async code)."""

    def __init__(self, url: str) -> None:
        problem = issuer_url_problem(url)
        if problem:
            raise ValueError(f"issuer {url!r}: {problem}")
        self.url = url
        self._endpoints: Endpoints | None = None
        self._keys: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def endpoints(self) -> Endpoints:
        """The provider's endpoints from its discovery document (fetched once)."""
        with self._lock:
            if self._endpoints is None:
                self._endpoints = self._discover()
            return self._endpoints

    def _discover(self) -> Endpoints:
        document = fetch_json(f"{self.url.rstrip('/')}/.well-known/openid-configuration", "discovery")
        if document.get("issuer") != self.url:
            raise IssuerUnavailable("discovery: the document names another issuer")
        found = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(name)
            if not isinstance(value, str) or issuer_url_problem(value.split("?")[0]):
                raise IssuerUnavailable(f"discovery: {name} is missing or not an https:// URL")
            found[name] = value
        return Endpoints(**found)

    def _key_client(self) -> jwt.PyJWKClient:
        jwks_uri = self.endpoints().jwks_uri
        with self._lock:
            if self._keys is None:
                self._keys = jwt.PyJWKClient(jwks_uri, cache_keys=True, lifespan=300, timeout=HTTP_TIMEOUT)
            return self._keys

    def verify(
        self, id_token: str, *, audiences: tuple[str, ...], nonce: str, max_age: float | None = None
    ) -> Mapping[str, Any]:
        """The claims of `id_token` once it passes every check of this module's contract, for one of
        `audiences`; InvalidIdToken saying which check failed, IssuerUnavailable."""
        try:
            algorithm = jwt.get_unverified_header(id_token).get("alg")
        except jwt.PyJWTError:
            raise InvalidIdToken("not a signed JWT") from None
        if algorithm not in ALGORITHMS:
            raise InvalidIdToken("not signed with a public-key algorithm")
        try:
            key = self._key_client().get_signing_key_from_jwt(id_token)
        except jwt.PyJWKClientConnectionError:
            raise IssuerUnavailable("keys: the provider did not answer") from None
        except jwt.PyJWTError:
            raise InvalidIdToken("signed with a key the issuer does not publish") from None
        claims = self._decode(id_token, key.key, str(algorithm), audiences, max_age)
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audience) > 1 and claims.get("azp") not in audiences:
            raise InvalidIdToken("has several audiences but is not authorised for this one (azp)")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidIdToken("names no subject (sub)")
        claimed_nonce = claims.get("nonce")
        if not nonce or not isinstance(claimed_nonce, str) or not hmac.compare_digest(claimed_nonce, nonce):
            raise InvalidIdToken("was not issued for this sign-in (nonce)")
        return claims

    def _decode(
        self, id_token: str, key: Any, algorithm: str, audiences: tuple[str, ...], max_age: float | None
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=[algorithm],
                audience=list(audiences),
                issuer=self.url,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidIdToken("has expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidIdToken("is not for this audience (aud)") from None
        except jwt.InvalidIssuerError:
            raise InvalidIdToken("is not from this issuer (iss)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidIdToken(f"has no {exc.claim} claim") from None
        except (jwt.ImmatureSignatureError, jwt.InvalidIssuedAtError):
            raise InvalidIdToken("is issued in the future (iat)") from None
        except jwt.InvalidSignatureError:
            raise InvalidIdToken("signature does not verify") from None
        except jwt.PyJWTError:
            raise InvalidIdToken("not a valid signed JWT") from None
        if max_age is not None and claims["iat"] < time.time() - max_age - LEEWAY:
            raise InvalidIdToken(f"was issued more than {max_age:.0f} seconds ago (iat)")
        return claims
