"""A real OpenID provider for tests: oidc-provider (npm; `make setup` installs it into
`.cache/oidc-provider`) run by Node on 127.0.0.1 (`oidc_provider.mjs` beside this file), with
the test's clients, accounts and an RSA signing key the test holds too, so that it can also
mint tokens the provider would not (expired ones, or ones signed by another key).

`sign_in_over_http` walks the authorization code flow with PKCE as a browser would (the
provider's login page asks only for the account name) and returns the token endpoint's answer.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from preflight_common.ports import free_port

from preflight_testkit.checkout import repository

SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
PROVIDER_MODULE = repository() / ".cache/oidc-provider/node_modules/oidc-provider/lib/index.js"


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class RunningProvider:
    """A running provider: its issuer URL and the key its ID tokens are signed with."""

    issuer: str
    key: rsa.RSAPrivateKey = field(repr=False)
    kid: str
    process: subprocess.Popen[str] = field(repr=False)

    def mint(self, claims: dict[str, Any], *, key: rsa.RSAPrivateKey | None = None) -> str:
        """An ID token with `claims` (iss: this issuer, iat/exp: now and in 5 minutes, unless given),
        signed with this provider's key (or `key`) under its key id."""
        now = int(time.time())
        body = {"iss": self.issuer, "iat": now, "exp": now + 300, **claims}
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": self.kid})


@contextlib.contextmanager
def openid_provider(
    folder: Path,
    *,
    clients: list[dict[str, Any]],
    accounts: dict[str, dict[str, Any]],
    misissue: dict[str, str] | None = None,
    port: int = 0,
) -> Iterator[RunningProvider]:
    """Run a provider on 127.0.0.1:`port` (0: a free one) until the block ends. `misissue` maps a
    login to "tamper" (its ID token's payload altered after signing) or "expired" (re-signed as
    expired). Fails (never skips) without Node or without oidc-provider: `make setup` installs it."""
    node = shutil.which("node")
    if node is None or not PROVIDER_MODULE.is_file():
        raise RuntimeError("the test OpenID provider needs node and oidc-provider: run `make setup`")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = uuid.uuid4().hex[:12]
    jwk = {**json.loads(RSAAlgorithm.to_jwk(key)), "kid": kid, "alg": "RS256", "use": "sig"}
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "oidc-provider.json"
    config.write_text(
        json.dumps(
            {
                "module": str(PROVIDER_MODULE),
                "port": port,
                "clients": clients,
                "accounts": accounts,
                "misissue": misissue or {},
                "jwks": {"keys": [jwk]},
            }
        )
    )
    log = (folder / "oidc-provider.log").open("w")
    process = subprocess.Popen(
        [node, str(SCRIPT), str(config)], stdout=subprocess.PIPE, stderr=log, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the script prints its first line once it listens
        if not line.startswith("ready "):
            raise RuntimeError(f"the test OpenID provider did not start: see {folder / 'oidc-provider.log'}")
        yield RunningProvider(line.split()[1], key, kid, process)
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def sign_in_over_http(
    provider: RunningProvider,
    *,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    login: str,
    nonce: str,
    scope: str = "openid email groups",
) -> dict[str, Any]:
    """The token endpoint's answer (`id_token` among it) after `login` signs in for `client_id`."""
    verifier, challenge = pkce_pair()
    query = urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "scope": scope,
            "redirect_uri": redirect_uri,
            "state": secrets.token_urlsafe(16),
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    with httpx.Client(timeout=30) as http:
        answer = http.get(f"{provider.issuer}/auth?{query}", follow_redirects=True)
        answer.raise_for_status()
        answer = http.post(
            str(answer.url).rstrip("/") + "/login", data={"login": login}, follow_redirects=False
        )
        while answer.is_redirect:
            location = urljoin(str(answer.url), answer.headers["location"])
            if location.startswith(redirect_uri):
                break
            answer = http.get(location, follow_redirects=False)
        else:
            raise AssertionError(f"the provider did not redirect back: {answer.status_code}")
        code = parse_qs(urlsplit(location).query)["code"][0]
        tokens = http.post(
            f"{provider.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            auth=(client_id, client_secret),
        )
        tokens.raise_for_status()
        result: dict[str, Any] = tokens.json()
        return result
