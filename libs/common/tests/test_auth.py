"""Authentication: hashed tokens with expiry and revocation, the identity service over real gRPC,
introspection by other services, mTLS principals, and INVALID_ARGUMENT details."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight_common.auth import (
    JOB_TOKEN_MAX_LIFETIME,
    IdentityServicer,
    IntrospectionAuthenticator,
    LocalAuthenticator,
    Principal,
    Role,
    TokenCache,
    TokenStore,
    current_principal,
    hash_token,
    tokens_table,
)
from preflight_common.channels import aio_channel
from preflight_common.db import make_engine
from preflight_common.grpcserver import build_server, invalid_argument, mark_serving
from preflight_testkit.tls import TestAuthority
from sqlalchemy import Engine, MetaData, event, select

ADMIN = Principal("root", Role.ADMIN, "agency")
SERVICE = Principal("clearinghouse", Role.SERVICE, "preflight")
LAB = Principal("alice", Role.LAB, "lab-a")
OPERATOR = Principal("grid-ops", Role.OPERATOR, "utility-1", frozenset({"energy"}))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> TokenStore:
    metadata = MetaData()
    table = tokens_table(metadata)
    metadata.create_all(engine)
    return TokenStore(engine, table)


def test_token_resolves_to_its_principal_and_only_its_hash_is_stored(
    store: TokenStore, engine: Engine
) -> None:
    issued = store.create(OPERATOR, description="grid operator")
    resolved = store.resolve(issued.token)
    assert resolved is not None
    assert resolved[0] == OPERATOR
    assert resolved[1] == issued.token_id
    with engine.connect() as conn:
        rows = conn.execute(select(store._table)).all()
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0])
    assert issued.token not in stored
    assert hash_token(issued.token) in stored


def test_wrong_expired_and_revoked_tokens_do_not_resolve(store: TokenStore) -> None:
    live = store.create(LAB)
    assert store.resolve(live.token + "x") is None
    assert store.resolve("not-a-token") is None
    soon = store.create(LAB, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=300))
    assert store.resolve(soon.token) is not None
    import time

    time.sleep(0.4)
    assert store.resolve(soon.token) is None
    assert store.revoke(live.token_id) is True
    assert store.resolve(live.token) is None
    assert store.revoke(live.token_id) is False


def test_token_in_the_past_is_refused(store: TokenStore) -> None:
    with pytest.raises(ValueError, match="future"):
        store.create(LAB, expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))


async def _whoami(
    request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
) -> health_pb2.HealthCheckResponse:
    """A protected method that reports who called it."""
    principal = current_principal()
    if request.service == "invalid":
        await invalid_argument(context, [("model.name", "must not be empty"), ("contacts[0].email", "bad")])
    await context.send_initial_metadata((("principal", f"{principal.role.value}:{principal.principal_id}"),))
    return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def _register_whoami(server: grpc.aio.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        "test.Whoami",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                _whoami,
                request_deserializer=health_pb2.HealthCheckRequest.FromString,
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))


@pytest.fixture
async def issuer(tmp_path: object) -> AsyncIterator[tuple[str, TokenStore]]:
    """Intake's role: the identity service with a local token store, on a loopback port."""
    engine = make_engine(f"sqlite:///{tmp_path}/tokens.db")
    metadata = MetaData()
    table = tokens_table(metadata)
    metadata.create_all(engine)
    store = TokenStore(engine, table)
    servicer = IdentityServicer(store)
    server, port, health = build_server(
        "127.0.0.1:0",
        [lambda s: identity_pb2_grpc.add_IdentityServiceServicer_to_server(servicer, s), _register_whoami],
        authenticator=LocalAuthenticator(store),
        service_names=["preflight.identity.v1.IdentityService"],
    )
    await server.start()
    await mark_serving(health, ["preflight.identity.v1.IdentityService"])
    yield f"127.0.0.1:{port}", store
    await server.stop(None)
    engine.dispose()


async def _whoami_call(
    target: str, token: str | None, service: str = "", credentials: grpc.ChannelCredentials | None = None
) -> tuple[grpc.StatusCode, str]:
    async with aio_channel(target, credentials) as channel:
        call = channel.unary_unary(
            "/test.Whoami/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )(
            health_pb2.HealthCheckRequest(service=service),
            metadata=(("authorization", f"Bearer {token}"),) if token is not None else None,
        )
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, dict(await call.initial_metadata())["principal"]


async def test_every_method_requires_a_valid_token_but_health_is_public(
    issuer: tuple[str, TokenStore],
) -> None:
    target, store = issuer
    lab = store.create(LAB)
    assert await _whoami_call(target, lab.token) == (grpc.StatusCode.OK, "lab:alice")
    assert (await _whoami_call(target, None))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert (await _whoami_call(target, "pft_wrong"))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert (await _whoami_call(target, ""))[0] == grpc.StatusCode.UNAUTHENTICATED
    store.revoke(lab.token_id)
    assert (await _whoami_call(target, lab.token))[0] == grpc.StatusCode.UNAUTHENTICATED
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_invalid_argument_carries_field_violations(issuer: tuple[str, TokenStore]) -> None:
    target, store = issuer
    token = store.create(LAB).token
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/test.Whoami/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )(health_pb2.HealthCheckRequest(service="invalid"), metadata=(("authorization", f"Bearer {token}"),))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model.name" in (caught.value.details() or "")
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["model.name", "contacts[0].email"]


async def test_identity_service_is_admin_only_and_introspection_serves_other_services(
    issuer: tuple[str, TokenStore],
) -> None:
    target, store = issuer
    admin = store.create(ADMIN).token
    lab = store.create(LAB).token
    async with grpc.aio.insecure_channel(target) as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        request = identity_pb2.CreateTokenRequest(principal=OPERATOR.to_proto())
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.CreateToken(request, metadata=(("authorization", f"Bearer {lab}"),))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        created = await stub.CreateToken(request, metadata=(("authorization", f"Bearer {admin}"),))
        service = await stub.CreateToken(
            identity_pb2.CreateTokenRequest(principal=SERVICE.to_proto()),
            metadata=(("authorization", f"Bearer {admin}"),),
        )
        with pytest.raises(grpc.aio.AioRpcError) as no_role:
            await stub.CreateToken(
                identity_pb2.CreateTokenRequest(
                    principal=identity_pb2.Principal(principal_id="x", organisation="y")
                ),
                metadata=(("authorization", f"Bearer {admin}"),),
            )
        assert no_role.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Another service authenticates the operator's token through introspection.
    remote = IntrospectionAuthenticator(target, service.token, cache_ttl=0.0)
    try:
        principal = await remote.authenticate(created.token, context=None)  # type: ignore[arg-type]
        assert principal == OPERATOR
        assert await remote.authenticate("pft_unknown", context=None) is None  # type: ignore[arg-type]
        async with grpc.aio.insecure_channel(target) as channel:
            await identity_pb2_grpc.IdentityServiceStub(channel).RevokeToken(
                identity_pb2.RevokeTokenRequest(token_id=created.token_id),
                metadata=(("authorization", f"Bearer {admin}"),),
            )
        assert await remote.authenticate(created.token, context=None) is None  # type: ignore[arg-type]
    finally:
        await remote.close()
    # A lab token may not introspect others' tokens.
    lab_remote = IntrospectionAuthenticator(target, lab, cache_ttl=0.0)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as forbidden:
            await lab_remote.authenticate(admin, context=None)  # type: ignore[arg-type]
        assert forbidden.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # ... but may introspect the token it presents: who it is, nothing about anyone else.
        assert await lab_remote.authenticate(lab, context=None) == LAB  # type: ignore[arg-type]
    finally:
        await lab_remote.close()


async def test_a_probe_introspects_its_own_token_and_may_call_nothing_but_the_probe_reads(
    issuer: tuple[str, TokenStore],
) -> None:
    target, store = issuer
    probe = store.create(Principal("helm-test", Role.PROBE, "preflight")).token
    others = store.create(LAB).token
    # Intake's probe read: the token it presents, which says who it is.
    remote = IntrospectionAuthenticator(target, probe, cache_ttl=0.0)
    try:
        assert await remote.authenticate(probe, context=None) == Principal(  # type: ignore[arg-type]
            "helm-test", Role.PROBE, "preflight"
        )
        with pytest.raises(grpc.aio.AioRpcError) as another:
            await remote.authenticate(others, context=None)  # type: ignore[arg-type]
        assert another.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await remote.close()
    # Any other method is refused before its handler runs, whatever the handler would allow.
    code, details = await _whoami_call(target, probe)
    assert (code, details) == (grpc.StatusCode.PERMISSION_DENIED, "a probe may call only the probe reads")
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as create:
            await identity_pb2_grpc.IdentityServiceStub(channel).CreateToken(
                identity_pb2.CreateTokenRequest(principal=LAB.to_proto()),
                metadata=(("authorization", f"Bearer {probe}"),),
            )
    assert create.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_client_certificate_maps_to_a_principal(store: TokenStore) -> None:
    from preflight_common.grpcserver import ServerTLS

    authority = TestAuthority()
    server_cert = authority.issue("localhost")
    ca_pem = authority.pem

    server, port, _ = build_server(
        "127.0.0.1:0",
        [_register_whoami],
        authenticator=LocalAuthenticator(store),
        service_names=[],
        tls=ServerTLS(server_cert.certificate, server_cert.key, client_ca=ca_pem),
    )
    await server.start()
    try:
        results = []
        for ou in ("lab", "janitor"):
            client = authority.issue("alice", organisation="lab-a", unit=ou)
            credentials = grpc.ssl_channel_credentials(ca_pem, client.key, client.certificate)
            options = (("grpc.ssl_target_name_override", "localhost"),)
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options) as channel:
                call = channel.unary_unary(
                    "/test.Whoami/Check",
                    request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                    response_deserializer=health_pb2.HealthCheckResponse.FromString,
                )(health_pb2.HealthCheckRequest())
                try:
                    await call
                    results.append(dict(await call.initial_metadata())["principal"])
                except grpc.aio.AioRpcError as exc:
                    results.append(exc.code().name)
        assert results == ["lab:alice", "UNAUTHENTICATED"]
    finally:
        await server.stop(None)


def test_server_tls_from_the_environment_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from pathlib import Path

    from preflight_common.config import ConfigError
    from preflight_common.grpcserver import ServerTLS

    folder = Path(str(tmp_path))
    assert ServerTLS.from_env("PREFLIGHT_X") is None
    monkeypatch.setenv("PREFLIGHT_X_TLS_CLIENT_CA", str(folder / "ca.pem"))
    with pytest.raises(ConfigError, match="PREFLIGHT_X_TLS_CLIENT_CA needs PREFLIGHT_X_TLS_CERT"):
        ServerTLS.from_env("PREFLIGHT_X")
    monkeypatch.setenv("PREFLIGHT_X_TLS_CERT", str(folder / "cert.pem"))
    with pytest.raises(ConfigError, match="PREFLIGHT_X_TLS_CERT and PREFLIGHT_X_TLS_KEY go together"):
        ServerTLS.from_env("PREFLIGHT_X")
    monkeypatch.setenv("PREFLIGHT_X_TLS_KEY", str(folder / "key.pem"))
    with pytest.raises(ConfigError, match="PREFLIGHT_X_TLS_CERT: cannot read"):
        ServerTLS.from_env("PREFLIGHT_X")
    for name in ("ca", "cert", "key"):
        (folder / f"{name}.pem").write_bytes(f"{name} pem".encode())
    tls = ServerTLS.from_env("PREFLIGHT_X")
    assert tls == ServerTLS(b"cert pem", b"key pem", client_ca=b"ca pem")
    assert "key pem" not in repr(tls)  # settings are shown in logs and tracebacks; the key never


async def test_the_token_cache_stays_bounded_under_made_up_tokens(store: TokenStore) -> None:
    cache = TokenCache(3600, max_entries=3)

    async def lookup(token: str) -> tuple[Principal | None, dt.datetime | None]:
        resolved = store.resolve(token)
        return (resolved[0], resolved[2]) if resolved else (None, None)

    for n in range(10):
        assert await cache.resolve(f"pft_made_up_{n}", lookup) is None
        assert len(cache) <= 3


async def test_an_answer_looked_up_across_a_clear_is_not_kept() -> None:
    """A revocation clears the cache while a lookup of the token is under way (it read the token
    before the revocation committed): that lookup's answer must not outlive the clear."""
    answered, release = asyncio.Event(), asyncio.Event()
    lookups = 0

    async def lookup(token: str) -> tuple[Principal | None, dt.datetime | None]:
        nonlocal lookups
        lookups += 1
        answered.set()
        await release.wait()
        return (LAB if lookups == 1 else None), None

    cache = TokenCache(3600)
    first = asyncio.create_task(cache.resolve("pft_revoked_meanwhile", lookup))
    await answered.wait()
    cache.clear()  # the revocation commits and clears the cache
    release.set()
    assert await first == LAB  # that call was authenticated before the revocation
    assert await cache.resolve("pft_revoked_meanwhile", lookup) is None
    assert lookups == 2


@dataclass(frozen=True)
class Refusal:
    """When a token polled until refused was first refused (wall clock, once the call returned),
    and when the last call that accepted it started (monotonic and wall clock).

    A cached answer is checked during the call, so an accepting call started before the answer's
    end: bounds on `accepted_until` hold however slowly a loaded machine runs the calls."""

    refused_at: dt.datetime
    accepted_until: float
    accepted_until_wall: dt.datetime


async def _refused_within(
    remote: IntrospectionAuthenticator | LocalAuthenticator, token: str, deadline: float
) -> Refusal | None:
    """Poll until the token is refused or `deadline` (monotonic) passes (None)."""
    accepted_until, accepted_until_wall = -math.inf, dt.datetime.min.replace(tzinfo=dt.UTC)  # none yet
    while time.monotonic() < deadline:
        started, started_wall = time.monotonic(), dt.datetime.now(dt.UTC)
        if await remote.authenticate(token, context=None) is None:  # type: ignore[arg-type]
            return Refusal(dt.datetime.now(dt.UTC), accepted_until, accepted_until_wall)
        accepted_until, accepted_until_wall = started, started_wall
        await asyncio.sleep(0.02)
    return None


async def test_an_introspected_token_stops_working_at_its_expiry_whatever_the_cache(
    issuer: tuple[str, TokenStore],
) -> None:
    target, store = issuer
    remote = IntrospectionAuthenticator(target, store.create(SERVICE).token, cache_ttl=3600)
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    token = store.create(LAB, expires_at=expiry).token
    try:
        assert await remote.authenticate(token, context=None) == LAB  # type: ignore[arg-type]
        refusal = await _refused_within(remote, token, time.monotonic() + 30)
        assert refusal is not None, "the cached answer outlived the token"
        assert refusal.accepted_until_wall < expiry <= refusal.refused_at
    finally:
        await remote.close()


async def test_a_revoked_token_stops_working_within_the_introspection_cache_ttl(
    issuer: tuple[str, TokenStore],
) -> None:
    target, store = issuer
    admin = store.create(ADMIN).token
    remote = IntrospectionAuthenticator(target, store.create(SERVICE).token)
    issued = store.create(LAB)
    try:
        assert await remote.authenticate(issued.token, context=None) == LAB  # type: ignore[arg-type]
        async with grpc.aio.insecure_channel(target) as channel:
            await identity_pb2_grpc.IdentityServiceStub(channel).RevokeToken(
                identity_pb2.RevokeTokenRequest(token_id=issued.token_id),
                metadata=(("authorization", f"Bearer {admin}"),),
            )
        revoked = time.monotonic()
        refusal = await _refused_within(remote, issued.token, revoked + 30)
        assert refusal is not None
        # The documented bound: no call starting 2 seconds (the cache TTL) after it accepts it.
        assert refusal.accepted_until < revoked + 2.0
    finally:
        await remote.close()


async def test_introspection_reaches_a_tls_issuer_with_the_ca_from_the_environment(
    store: TokenStore, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from preflight_common.channels import credentials_from_env
    from preflight_common.config import ConfigError
    from preflight_common.grpcserver import ServerTLS

    folder = Path(str(tmp_path))
    authority = TestAuthority()
    server_cert = authority.issue("localhost")
    servicer = IdentityServicer(store)
    server, port, _ = build_server(
        "127.0.0.1:0",
        [lambda s: identity_pb2_grpc.add_IdentityServiceServicer_to_server(servicer, s)],
        authenticator=LocalAuthenticator(store),
        service_names=["preflight.identity.v1.IdentityService"],
        tls=ServerTLS(server_cert.certificate, server_cert.key),
    )
    await server.start()
    operator_token = store.create(OPERATOR).token
    service_token = store.create(SERVICE).token
    assert credentials_from_env() is None  # unset: plaintext
    (folder / "ca.pem").write_bytes(authority.pem)
    monkeypatch.setenv("PREFLIGHT_GRPC_TLS_CA", str(folder / "ca.pem"))
    trusted = IntrospectionAuthenticator(
        f"127.0.0.1:{port}", service_token, cache_ttl=0.0, credentials=credentials_from_env()
    )
    plaintext = IntrospectionAuthenticator(f"127.0.0.1:{port}", service_token, cache_ttl=0.0)
    try:
        assert await trusted.authenticate(operator_token, context=None) == OPERATOR  # type: ignore[arg-type]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await plaintext.authenticate(operator_token, context=None)  # type: ignore[arg-type]
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await trusted.close()
        await plaintext.close()
        await server.stop(None)
    monkeypatch.setenv("PREFLIGHT_GRPC_TLS_CA", str(folder / "missing.pem"))
    with pytest.raises(ConfigError, match="PREFLIGHT_GRPC_TLS_CA: cannot read"):
        credentials_from_env()


async def test_a_tls_server_answers_only_health_checks_on_its_plaintext_health_listener(
    store: TokenStore,
) -> None:
    from preflight_common.grpcserver import ServerTLS
    from preflight_common.ports import free_port

    authority = TestAuthority()
    issued = authority.issue("localhost")
    health_target = f"127.0.0.1:{free_port()}"
    server, port, health = build_server(
        "127.0.0.1:0",
        [_register_whoami],
        authenticator=LocalAuthenticator(store),
        service_names=["test.Whoami"],
        tls=ServerTLS(issued.certificate, issued.key, health_listen=health_target),
    )
    await server.start()
    await mark_serving(health, ["test.Whoami"])
    token = store.create(LAB).token
    try:
        async with grpc.aio.insecure_channel(health_target) as channel:  # as a Kubernetes gRPC probe
            answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        code, details = await _whoami_call(health_target, token)
        assert (code, details) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "this listener serves health checks only; call the TLS port",
        )
        tls = grpc.ssl_channel_credentials(authority.pem)
        assert await _whoami_call(f"localhost:{port}", token, credentials=tls) == (
            grpc.StatusCode.OK,
            "lab:alice",
        )
    finally:
        await server.stop(None)


@pytest.fixture
def token_lookups(engine: Engine) -> Iterator[list[str]]:
    """The statements reading the tokens table, as they are executed."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "api_tokens" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def test_a_caching_local_authenticator_reads_each_token_once_per_ttl_and_forgets_at_revocation(
    store: TokenStore, token_lookups: list[str]
) -> None:
    local = LocalAuthenticator(store, cache_ttl=3600)
    issued = store.create(LAB)
    for _ in range(20):
        assert await local.authenticate(issued.token, context=None) == LAB  # type: ignore[arg-type]
        assert await local.authenticate("pft_made_up", context=None) is None  # type: ignore[arg-type]
    assert len(token_lookups) == 2
    store.revoke(issued.token_id)
    assert await local.authenticate(issued.token, context=None) is None  # type: ignore[arg-type]


async def test_a_token_revoked_elsewhere_stops_working_within_the_local_cache_ttl(
    store: TokenStore, engine: Engine
) -> None:
    local = LocalAuthenticator(store, cache_ttl=1.0)
    issued = store.create(LAB)
    assert await local.authenticate(issued.token, context=None) == LAB  # type: ignore[arg-type]
    # Another process (e.g. `preflight-intake token revoke`) revokes it in the same database.
    assert TokenStore(engine, store._table).revoke(issued.token_id)
    revoked = time.monotonic()
    refusal = await _refused_within(local, issued.token, revoked + 30)
    assert refusal is not None
    assert refusal.accepted_until < revoked + 1.0


async def test_a_locally_cached_token_stops_working_at_its_expiry(store: TokenStore) -> None:
    local = LocalAuthenticator(store, cache_ttl=3600)
    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    token = store.create(LAB, expires_at=expiry).token
    assert await local.authenticate(token, context=None) == LAB  # type: ignore[arg-type]
    refusal = await _refused_within(local, token, time.monotonic() + 30)
    assert refusal is not None, "the cached answer outlived the token"
    assert refusal.accepted_until_wall < expiry <= refusal.refused_at


async def test_a_service_issues_job_tokens_bound_to_one_job_and_expiring_soon(
    issuer: tuple[str, TokenStore],
) -> None:
    target, store = issuer
    service, lab = store.create(SERVICE).token, store.create(LAB).token
    soon = Timestamp()
    soon.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30))
    too_late = Timestamp()
    too_late.FromDatetime(dt.datetime.now(dt.UTC) + JOB_TOKEN_MAX_LIFETIME + dt.timedelta(minutes=1))
    async with grpc.aio.insecure_channel(target) as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)

        async def issue(token: str, request: identity_pb2.IssueJobTokenRequest) -> str:
            response = await stub.IssueJobToken(request, metadata=(("authorization", f"Bearer {token}"),))
            return str(response.token)

        issued = await issue(service, identity_pb2.IssueJobTokenRequest(job_id="job-1", expires_at=soon))
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await issue(lab, identity_pb2.IssueJobTokenRequest(job_id="job-1", expires_at=soon))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        for request, field in (
            (identity_pb2.IssueJobTokenRequest(job_id="job-1"), "expires_at"),
            (identity_pb2.IssueJobTokenRequest(job_id="job-1", expires_at=too_late), "expires_at"),
            (identity_pb2.IssueJobTokenRequest(job_id="job 1", expires_at=soon), "job_id"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as invalid:
                await issue(service, request)
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (invalid.value.details() or "").startswith(field)
    resolved = store.resolve(issued)
    assert resolved is not None
    principal, _, expires = resolved
    assert principal == Principal("job-1", Role.WORKER, SERVICE.organisation)
    assert expires == soon.ToDatetime(tzinfo=dt.UTC)
