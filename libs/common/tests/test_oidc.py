"""ID-token checks that need no provider: which issuers may be trusted at all, and tokens refused
before any key is fetched (the JWKS-backed checks run against a real provider in intake's and the
console's sign-in tests)."""

from __future__ import annotations

import jwt
import pytest
from preflight_common.oidc import InvalidIdToken, Issuer, issuer_url_problem, unverified_issuer


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://login.agency.example", None),
        ("https://login.agency.example/realms/preflight", None),
        ("http://127.0.0.1:8443", None),
        ("http://localhost:8080/idp", None),
        ("http://login.agency.example", "http:// only on a loopback host"),
        ("ftp://login.agency.example", "must be an https:// URL"),
        ("https://user:pw@login.agency.example", "no query, fragment or credentials"),
        ("https://login.agency.example/?tenant=a", "no query, fragment or credentials"),
        ("login.agency.example", "must be an https:// URL"),
    ],
)
def test_issuers_are_https_or_loopback_urls(url: str, problem: str | None) -> None:
    found = issuer_url_problem(url)
    assert found is None if problem is None else problem in (found or "")
    if problem is not None:
        with pytest.raises(ValueError, match="issuer"):
            Issuer(url)


def test_the_claimed_issuer_is_read_only_from_a_jwt_naming_one() -> None:
    assert (
        unverified_issuer(jwt.encode({"iss": "https://idp.example"}, "k" * 32, "HS256"))
        == "https://idp.example"
    )
    for token in ("", "not-a-jwt", "a.b.c", jwt.encode({"sub": "x"}, "k" * 32, "HS256")):
        with pytest.raises(InvalidIdToken):
            unverified_issuer(token)


@pytest.mark.parametrize("algorithm", ["none", "HS256"])
def test_unsigned_and_shared_secret_tokens_are_refused_before_any_key_is_fetched(algorithm: str) -> None:
    # Nothing listens at this issuer: a fetch would fail as IssuerUnavailable, not InvalidIdToken.
    issuer = Issuer("http://127.0.0.1:1")
    claims = {"iss": "http://127.0.0.1:1", "sub": "rita", "aud": "console", "nonce": "n", "exp": 2**31}
    token = jwt.encode(claims, None if algorithm == "none" else "k" * 32, algorithm)
    with pytest.raises(InvalidIdToken, match="public-key algorithm"):
        issuer.verify(token, audiences=("console",), nonce="n")
