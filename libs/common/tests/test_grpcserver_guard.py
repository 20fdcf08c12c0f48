"""What every Preflight server does before and after a handler, over real gRPC on loopback:
unparseable bytes and over-long strings are INVALID_ARGUMENT naming the field, a handler's
exception never reaches the caller's status, a full database is UNAVAILABLE, a client
certificate names a principal by the token rules; and the shared field helpers (timestamps,
page tokens)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.notifier.v1 import notifier_pb2
from preflight_common.auth import (
    LocalAuthenticator,
    Principal,
    Role,
    TokenStore,
    current_principal,
    tokens_table,
)
from preflight_common.config import ConfigError
from preflight_common.db import make_engine
from preflight_common.fields import (
    DEFAULT_STRING_LIMIT,
    MATCHER_LIMIT,
    PAGE_TOKEN_LIMIT,
    InvalidArgument,
    clip_strings,
    string_violations,
    timestamp_field,
)
from preflight_common.grpcserver import ServerTLS, build_server
from preflight_common.pagetokens import PageTokens
from preflight_testkit.rpc import field_violations
from preflight_testkit.tls import TestAuthority
from sqlalchemy import Column, Integer, MetaData, Table, Text, insert
from sqlalchemy.exc import OperationalError

Handler = Callable[[notifier_pb2.CreateSilenceRequest, grpc.aio.ServicerContext], Awaitable[Any]]


@pytest.fixture
async def serve(tmp_path: Any) -> AsyncIterator[Callable[[Handler], Awaitable[tuple[str, str]]]]:
    """Start a server whose one method `test.Guard/Call` takes a CreateSilenceRequest and runs the
    given handler; returns its target and a valid token."""
    engine = make_engine(f"sqlite:///{tmp_path}/tokens.db")
    metadata = MetaData()
    store = TokenStore(engine, tokens_table(metadata))
    metadata.create_all(engine)
    servers: list[grpc.aio.Server] = []

    async def start(handler: Handler) -> tuple[str, str]:
        generic = grpc.method_handlers_generic_handler(
            "test.Guard",
            {
                "Call": grpc.unary_unary_rpc_method_handler(
                    handler,
                    request_deserializer=notifier_pb2.CreateSilenceRequest.FromString,
                    response_serializer=notifier_pb2.CreateSilenceResponse.SerializeToString,
                )
            },
        )
        server, port, _ = build_server(
            "127.0.0.1:0",
            [lambda s: s.add_generic_rpc_handlers((generic,))],
            authenticator=LocalAuthenticator(store),
            service_names=[],
        )
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}", store.create(Principal("ops", Role.OPERATOR, "bank-a")).token

    yield start
    for server in servers:
        await server.stop(None)
    engine.dispose()


async def _call(target: str, token: str, request: bytes) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary("/test.Guard/Call")
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call(request, metadata=(("authorization", f"Bearer {token}"),), timeout=10)
    return error.value


async def _refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
    raise AssertionError("the handler must not run")


async def test_unparseable_bytes_are_invalid_argument_without_parser_internals(serve: Any) -> None:
    target, token = await serve(_refuse)
    error = await _call(target, token, b"\xff\xff\xff\xff\x0f garbage")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request" in field_violations(error)
    assert "Decode" not in (error.details() or "") and "Unexpected" not in (error.details() or "")


async def test_unparseable_bytes_from_an_unauthenticated_caller_are_unauthenticated(serve: Any) -> None:
    target, _ = await serve(_refuse)
    error = await _call(target, "pft_made-up", b"\xff\xff\xff")
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_overlong_string_anywhere_in_the_request_is_refused_naming_it(serve: Any) -> None:
    target, token = await serve(_refuse)
    request = notifier_pb2.CreateSilenceRequest(
        matchers=[
            notifier_pb2.Matcher(label="kind", value="ok"),
            notifier_pb2.Matcher(label="kind", value="a" * (MATCHER_LIMIT + 1)),
        ],
        comment="x" * 4096,
    )
    error = await _call(target, token, request.SerializeToString())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {"matchers[1].value": f"at most {MATCHER_LIMIT} characters"}


def test_string_limits_default_and_per_field() -> None:
    request = notifier_pb2.CreateSilenceRequest(
        matchers=[notifier_pb2.Matcher(label="k" * (DEFAULT_STRING_LIMIT + 1), value="v" * MATCHER_LIMIT)]
    )
    assert string_violations(request) == [("matchers[0].label", f"at most {DEFAULT_STRING_LIMIT} characters")]


async def test_a_handler_raising_invalid_argument_names_its_fields(serve: Any) -> None:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        timestamp_field(request, "ends_at")
        raise AssertionError("unreachable")

    target, token = await serve(handler)
    request = notifier_pb2.CreateSilenceRequest(ends_at=Timestamp(seconds=0, nanos=-1))
    error = await _call(target, token, request.SerializeToString())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"ends_at"}
    assert "ValueError" not in (error.details() or "")


async def test_an_unexpected_exception_is_internal_without_its_class_or_text(serve: Any) -> None:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise OverflowError("int too large to convert to secret-table-name")

    target, token = await serve(handler)
    error = await _call(target, token, b"")
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "internal error; it has been logged"


async def test_a_full_database_is_unavailable_saying_storage_is_exhausted(serve: Any, tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/full.db")
    metadata = MetaData()
    rows = Table("rows", metadata, Column("id", Integer, primary_key=True), Column("body", Text))
    metadata.create_all(engine)

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        with engine.begin() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
            conn.execute(insert(rows), [{"body": "x" * 4096} for _ in range(64)])
        raise AssertionError("the insert should not fit")

    target, token = await serve(handler)
    error = await _call(target, token, b"")
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == "storage is exhausted; retry later"
    engine.dispose()


def test_storage_exhaustion_is_recognised_through_wrappers() -> None:
    from preflight_common.db import storage_exhausted

    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    assert storage_exhausted(OperationalError("INSERT", {}, full))
    assert storage_exhausted(OSError(28, "No space left on device"))
    disk_full = RuntimeError("could not extend file")
    disk_full.sqlstate = "53100"  # type: ignore[attr-defined]
    assert storage_exhausted(disk_full)
    assert not storage_exhausted(sqlite3.OperationalError("no such table: x"))
    assert not storage_exhausted(OSError(13, "Permission denied"))


def test_clip_strings_fits_every_string_to_its_limit_in_place() -> None:
    request = notifier_pb2.CreateSilenceRequest(
        matchers=[notifier_pb2.Matcher(label="k" * 300, value="v" * 2000)] * 2, comment="short"
    )
    clip_strings(request)
    assert string_violations(request) == []
    assert [len(m.label) for m in request.matchers] == [DEFAULT_STRING_LIMIT] * 2
    assert [len(m.value) for m in request.matchers] == [MATCHER_LIMIT] * 2
    assert request.comment == "short"


def _list_requests() -> list[Any]:
    """Every request message of Preflight's services that carries a page_token."""
    import importlib

    modules = [
        "preflight.intake.v1.intake_pb2",
        "preflight.benchmark.v1.benchmark_pb2",
        "preflight.clearinghouse.v1.clearinghouse_pb2",
        "preflight.notifier.v1.notifier_pb2",
    ]
    return [
        message
        for module in map(importlib.import_module, modules)
        for message in vars(module).values()
        if isinstance(message, type) and "page_token" in getattr(message, "DESCRIPTOR", None).fields_by_name
    ]


@pytest.mark.parametrize("request_type", _list_requests(), ids=lambda t: t.DESCRIPTOR.name)
def test_every_list_requests_page_token_is_held_to_the_page_token_limit(request_type: Any) -> None:
    assert string_violations(request_type(page_token="t" * PAGE_TOKEN_LIMIT)) == []
    assert string_violations(request_type(page_token="t" * (PAGE_TOKEN_LIMIT + 1))) == [
        ("page_token", f"at most {PAGE_TOKEN_LIMIT} characters")
    ]


def test_timestamp_field_converts_valid_and_names_invalid_ones() -> None:
    ok = notifier_pb2.CreateSilenceRequest(ends_at=Timestamp(seconds=1_700_000_000))
    assert timestamp_field(ok, "ends_at") == datetime.fromtimestamp(1_700_000_000, UTC)
    assert timestamp_field(ok, "starts_at") is None
    for bad in (Timestamp(nanos=-1), Timestamp(seconds=253402300800), Timestamp(seconds=-(2**62))):
        with pytest.raises(InvalidArgument) as error:
            timestamp_field(notifier_pb2.CreateSilenceRequest(starts_at=bad), "starts_at", name="x.since")
        assert [name for name, _ in error.value.violations] == ["x.since"]


def test_page_tokens_round_trip_and_refuse_edited_foreign_and_garbage_tokens() -> None:
    codec = PageTokens.from_secret("s" * 32)
    token = codec.encode("notifier.ListAlerts", [42, "alert-1"])
    assert "42" not in token
    assert codec.decode("notifier.ListAlerts", token) == [42, "alert-1"]
    assert PageTokens.from_secret("s" * 32).decode("notifier.ListAlerts", token) == [42, "alert-1"]
    assert codec.encode("x", None) == "" and codec.decode("x", "") is None
    edited = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for scope, bad in [
        ("notifier.ListAlerts", edited),
        ("clearinghouse.ListReports", token),
        ("notifier.ListAlerts", "9" * 40),
        ("notifier.ListAlerts", "é"),
        ("notifier.ListAlerts", "="),
    ]:
        with pytest.raises(InvalidArgument) as error:
            codec.decode(scope, bad)
        assert error.value.violations[0][0] == "page_token"
    with pytest.raises(InvalidArgument):
        PageTokens.from_secret("t" * 32).decode("notifier.ListAlerts", token)


def test_page_token_key_from_its_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_file = tmp_path / "page-token.key"
    key_file.write_text("k" * 32 + "\n")
    monkeypatch.delenv("PREFLIGHT_PAGE_TOKEN_KEY", raising=False)
    monkeypatch.setenv("PREFLIGHT_PAGE_TOKEN_KEY_FILE", str(key_file))
    token = PageTokens.from_env().encode("s", [1])
    assert PageTokens.from_env().decode("s", token) == [1]
    assert PageTokens.from_secret("k" * 32).decode("s", token) == [1]
    key_file.write_text("short")
    with pytest.raises(ConfigError, match="PREFLIGHT_PAGE_TOKEN_KEY_FILE"):
        PageTokens.from_env()
    monkeypatch.delenv("PREFLIGHT_PAGE_TOKEN_KEY_FILE")
    with pytest.raises(InvalidArgument):
        PageTokens.from_env().decode("s", PageTokens.from_env().encode("s", [1]))


async def test_a_client_certificate_must_name_a_principal_by_the_token_rules(tmp_path: Any) -> None:
    authority = TestAuthority()
    server_cert = authority.issue("localhost")
    engine = make_engine(f"sqlite:///{tmp_path}/certs.db")
    metadata = MetaData()
    store = TokenStore(engine, tokens_table(metadata))
    metadata.create_all(engine)
    generic = grpc.method_handlers_generic_handler(
        "test.Guard", {"Call": grpc.unary_unary_rpc_method_handler(_whoami)}
    )
    server, port, _ = build_server(
        "127.0.0.1:0",
        [lambda s: s.add_generic_rpc_handlers((generic,))],
        authenticator=LocalAuthenticator(store),
        service_names=[],
        tls=ServerTLS(server_cert.certificate, server_cert.key, client_ca=authority.pem),
    )
    await server.start()
    results = []
    try:
        for common_name, organisation in [
            ("alice", "lab-a"),
            ("alice", "Lab A"),
            ("alice\r\nX-Injected: 1", "lab-a"),
            ("alice", "https://lab-a.example/"),
        ]:
            client = authority.issue(common_name, organisation=organisation, unit="lab")
            credentials = grpc.ssl_channel_credentials(authority.pem, client.key, client.certificate)
            options = (("grpc.ssl_target_name_override", "localhost"),)
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options) as channel:
                try:
                    results.append(await channel.unary_unary("/test.Guard/Call")(b"", timeout=10))
                except grpc.aio.AioRpcError as exc:
                    results.append(exc.code().name.encode())
    finally:
        await server.stop(None)
        engine.dispose()
    assert results == [b"lab-a/alice", b"UNAUTHENTICATED", b"UNAUTHENTICATED", b"UNAUTHENTICATED"]


async def _whoami(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    principal = current_principal()
    return f"{principal.organisation}/{principal.principal_id}".encode()
