"""ExchangeIdToken against a real OpenID provider (oidc-provider on loopback) over real gRPC:
intake verifies the ID token itself, maps it by the declared mapping (deny by default) and issues
a short-lived token that is recorded (and so revocable) like every other."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc, sign_in_pb2, sign_in_pb2_grpc
from preflight_common.auth import Role
from preflight_common.config import KafkaSettings
from preflight_intake.domain.federation import Federation
from preflight_testkit.intake import IntakeUnderTest, create_topics, fresh_keyring, make_settings
from preflight_testkit.oidc import RunningProvider, openid_provider, sign_in_over_http
from preflight_testkit.rpc import introspect

pytestmark = pytest.mark.slow  # an OpenID provider process and the Kafka broker

CLIENT_ID = "preflight-console"
CLIENT_SECRET = "console-secret-" + "x" * 32
REDIRECT = "http://127.0.0.1:9/sign-in/oidc/callback"
MAX_LIFETIME = 7200.0
ACCOUNTS = {
    "rita": {"email": "rita@agency.example", "email_verified": True, "groups": []},
    "ollie": {"email": "ops@hospital.example", "email_verified": True, "groups": []},
    "lena": {"email": "lena@acme.example", "email_verified": True, "groups": ["preflight-labs-acme"]},
    "eve": {"email": "ops@hospital.example", "email_verified": False, "groups": []},
    "mallory": {"email": "mallory@elsewhere.example", "email_verified": True, "groups": ["other"]},
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    }
    with openid_provider(tmp_path_factory.mktemp("oidc"), clients=[client], accounts=ACCOUNTS) as running:
        yield running


def mapping(issuer: str) -> str:
    return f"""
issuers:
  - issuer: {issuer}
    audiences: [{CLIENT_ID}]
    principals:
      - {{claim: sub, value: rita, role: reviewer, organisation: agency}}
      - {{claim: email, value: ops@hospital.example, principal_id: ollie, role: operator,
         organisation: st-marys, sectors: [healthcare]}}
      - {{claim: groups, value: preflight-labs-acme, role: lab, organisation: acme}}
"""


@pytest.fixture(scope="module")
def intake(
    provider: RunningProvider, kafka_settings: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IntakeUnderTest]:
    settings = make_settings(
        tmp_path_factory.mktemp("intake-oidc"),
        kafka_settings,
        federation=Federation.parse(mapping(provider.issuer)),
        oidc_token_lifetime=MAX_LIFETIME,
    )
    create_topics(settings, kafka_settings)
    server = IntakeUnderTest(settings, fresh_keyring()).start()
    yield server
    server.stop()


def exchange(intake: IntakeUnderTest, id_token: str, nonce: str, lifetime: int = 0) -> Any:
    """ExchangeIdToken without any credentials, as the console calls it."""
    with grpc.insecure_channel(intake.target) as channel:
        stub = sign_in_pb2_grpc.SignInServiceStub(channel)
        return stub.ExchangeIdToken(
            sign_in_pb2.ExchangeIdTokenRequest(id_token=id_token, nonce=nonce, lifetime_seconds=lifetime),
            timeout=30,
        )


def refusal(intake: IntakeUnderTest, id_token: str, nonce: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        exchange(intake, id_token, nonce)
    return caught.value


def signed_in(provider: RunningProvider, login: str, nonce: str) -> str:
    answer = sign_in_over_http(
        provider,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT,
        login=login,
        nonce=nonce,
    )
    token: str = answer["id_token"]
    return token


def test_a_mapped_user_gets_a_short_lived_token_that_works_and_revokes(
    provider: RunningProvider, intake: IntakeUnderTest
) -> None:
    nonce = secrets.token_urlsafe(16)
    answer = exchange(intake, signed_in(provider, "rita", nonce), nonce, lifetime=3600)
    assert (answer.principal.principal_id, answer.principal.role, answer.principal.organisation) == (
        "rita",
        identity_pb2.ROLE_REVIEWER,
        "agency",
    )
    expires = answer.expires_at.ToDatetime(tzinfo=UTC)
    assert abs((expires - datetime.now(UTC)) - timedelta(hours=1)) < timedelta(minutes=2)
    assert introspect(intake.target, answer.token).active
    with grpc.insecure_channel(intake.target) as channel:
        intake_pb2_grpc.IntakeServiceStub(channel).ListSubmissions(
            intake_pb2.ListSubmissionsRequest(),
            metadata=(("authorization", f"Bearer {answer.token}"),),
            timeout=30,
        )
        identity_pb2_grpc.IdentityServiceStub(channel).RevokeToken(
            identity_pb2.RevokeTokenRequest(token_id=answer.token_id),
            metadata=(("authorization", f"Bearer {intake.token('root', Role.ADMIN, 'preflight')}"),),
            timeout=30,
        )
    with pytest.raises(grpc.RpcError) as caught:
        introspect(intake.target, answer.token)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_longer_lifetime_than_the_bound_gets_the_bound(
    provider: RunningProvider, intake: IntakeUnderTest
) -> None:
    nonce = secrets.token_urlsafe(16)
    answer = exchange(intake, signed_in(provider, "rita", nonce), nonce, lifetime=30 * 24 * 3600)
    lifetime = answer.expires_at.ToDatetime(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(seconds=MAX_LIFETIME - 120) < lifetime <= timedelta(seconds=MAX_LIFETIME)


def test_verified_email_and_group_rules_map_and_everyone_else_is_denied(
    provider: RunningProvider, intake: IntakeUnderTest
) -> None:
    nonce = secrets.token_urlsafe(16)
    operator = exchange(intake, signed_in(provider, "ollie", nonce), nonce).principal
    assert (operator.principal_id, operator.role, operator.organisation, list(operator.sectors)) == (
        "ollie",
        identity_pb2.ROLE_OPERATOR,
        "st-marys",
        ["healthcare"],
    )
    lab = exchange(intake, signed_in(provider, "lena", nonce), nonce).principal
    assert (lab.principal_id, lab.role, lab.organisation) == ("lena", identity_pb2.ROLE_LAB, "acme")
    # The same address, but the provider does not vouch for it; and a user no rule names.
    for login in ("eve", "mallory"):
        refused = refusal(intake, signed_in(provider, login, nonce), nonce)
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, login


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "rita"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_tampered_expired_stale_foreign_or_other_sign_ins_tokens_are_unauthenticated(
    provider: RunningProvider, intake: IntakeUnderTest
) -> None:
    nonce = secrets.token_urlsafe(16)
    now = int(time.time())
    claims = {"sub": "rita", "aud": CLIENT_ID, "nonce": nonce}
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "signature": _tampered(signed_in(provider, "mallory", nonce)),
        "expired": provider.mint({**claims, "iat": now - 900, "exp": now - 300}),
        "issued more than": provider.mint({**claims, "iat": now - 3600}),
        "signature does not verify": provider.mint(claims, key=other_key),
        "audience": provider.mint({**claims, "aud": "another-client"}),
        "trusted issuer": provider.mint({**claims, "iss": "https://login.elsewhere.example"}),
        "public-key algorithm": jwt.encode({**claims, "iss": provider.issuer, "exp": now + 60}, None, "none"),
    }
    for reason, token in cases.items():
        refused = refusal(intake, token, nonce)
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED, reason
        assert reason in (refused.details() or ""), (reason, refused.details())
    # A real token, from a real sign-in, presented with another sign-in's nonce.
    refused = refusal(intake, signed_in(provider, "rita", nonce), secrets.token_urlsafe(16))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "nonce" in (refused.details() or "")


@pytest.mark.parametrize(
    ("id_token", "nonce", "field"),
    [
        ("", "n", "id_token"),
        ("x.y.z", "", "nonce"),
        ("not-a-jwt", "n", "id_token"),
        ("a" * 70_000, "n", "id_token"),
    ],
)
def test_malformed_requests_are_invalid_argument_naming_the_field(
    intake: IntakeUnderTest, id_token: str, nonce: str, field: str
) -> None:
    refused = refusal(intake, id_token, nonce)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(refused)  # type: ignore[arg-type]
    assert status is not None
    detail = error_details_pb2.BadRequest()
    status.details[0].Unpack(detail)
    assert [v.field for v in detail.field_violations] == [field]
