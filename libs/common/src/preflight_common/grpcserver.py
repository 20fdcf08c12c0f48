"""Building Preflight's gRPC servers: authenticated by default, with health, reflection and tracing.

Servicers must be asyncio servicers (`async def` methods): the server is a
`grpc.aio.Server`. Every method except health checking and reflection runs
only for an authenticated principal (`preflight_common.auth.current_principal()`
inside the handler); a call without valid credentials ends UNAUTHENTICATED
before the handler runs, and a probe's (`Role.PROBE`) call of a method outside
`auth.PROBE_METHODS` PERMISSION_DENIED.

Then every request is checked before its handler sees it: bytes that do not parse, and
string fields over their limits (`preflight_common.fields`), end INVALID_ARGUMENT naming
the field. No status carries an exception's class or text: a handler raising
`InvalidArgument` answers INVALID_ARGUMENT, a full database or disk UNAVAILABLE
("storage is exhausted"), anything else INTERNAL with the details in the log only.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from preflight_common.auth import (
    PROBE_METHODS,
    Authenticator,
    Principal,
    Role,
    bearer_token,
    reset_current_principal,
    set_current_principal,
)
from preflight_common.config import ConfigError, env, env_file_bytes
from preflight_common.db import storage_exhausted
from preflight_common.fields import InvalidArgument, string_violations
from preflight_common.pagetokens import page_tokens

log = logging.getLogger(__name__)

PUBLIC_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

Register = Callable[[grpc.aio.Server], None]


@dataclass(frozen=True)
class ServerTLS:
    """Server certificate and key (PEM); with `client_ca`, client certificates are required (mTLS).

    With `health_listen`, the server also listens there in plaintext for health checks only
    (Kubernetes gRPC probes do not speak TLS); every other call on it is refused.
    """

    certificate_chain: bytes
    private_key: bytes = field(repr=False)  # a secret: never in a repr, a log or a traceback
    client_ca: bytes | None = None
    health_listen: str | None = None

    @classmethod
    def from_env(cls, prefix: str) -> ServerTLS | None:
        """TLS from `<prefix>_TLS_CERT` and `<prefix>_TLS_KEY` (PEM file paths); with
        `<prefix>_TLS_CLIENT_CA`, client certificates are required (mTLS); with
        `<prefix>_TLS_HEALTH_LISTEN`, a plaintext health-only listener. None when unset;
        ConfigError naming the variable when the set is incomplete or a file is unreadable."""
        cert, key, client_ca, health_listen = (
            f"{prefix}_TLS_{part}" for part in ("CERT", "KEY", "CLIENT_CA", "HEALTH_LISTEN")
        )
        present = {name: bool(env(name, "")) for name in (cert, key, client_ca, health_listen)}
        if not present[cert] and not present[key]:
            for needs_tls in (client_ca, health_listen):
                if present[needs_tls]:
                    raise ConfigError(f"{needs_tls} needs {cert} and {key}")
            return None
        if not (present[cert] and present[key]):
            raise ConfigError(f"{cert} and {key} go together")
        return cls(
            certificate_chain=env_file_bytes(cert),
            private_key=env_file_bytes(key),
            client_ca=env_file_bytes(client_ca) if present[client_ca] else None,
            health_listen=env(health_listen, "") or None,
        )

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


class _EncryptedOnly:
    """Refuses calls that did not come over TLS, then authenticates as `inner` does."""

    def __init__(self, inner: Authenticator) -> None:
        self._inner = inner

    async def authenticate(self, token: str | None, context: grpc.aio.ServicerContext) -> Any:
        if context.auth_context().get("transport_security_type") != [b"ssl"]:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "this listener serves health checks only; call the TLS port"
            )
        return await self._inner.authenticate(token, context)


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates every non-public call and binds the principal for the handler.

    Every unary-request call (public ones too) is also guarded: a request that does not parse
    or has an over-long string field ends INVALID_ARGUMENT before the handler runs, and a
    handler's failure is answered without its text (`_answer_failure`).
    """

    def __init__(self, authenticator: Authenticator, public_methods: Sequence[str] = ()) -> None:
        self._authenticator = authenticator
        self._public = (*PUBLIC_METHOD_PREFIXES, *public_methods)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None:
            return handler
        if method.startswith(self._public):
            return _wrap(handler, method, None, None)
        token = bearer_token(handler_call_details.invocation_metadata)
        return _wrap(handler, method, self._authenticator, token)


async def _authenticate(
    authenticator: Authenticator, token: str | None, context: grpc.aio.ServicerContext
) -> Any:
    try:
        principal = await authenticator.authenticate(token, context)
    except grpc.aio.AioRpcError as exc:
        log.warning("token introspection failed: %s", exc.code())
        await context.abort(grpc.StatusCode.UNAVAILABLE, "authentication service unavailable")
    if principal is None:
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED, "missing, invalid, expired or revoked credentials"
        )
    return principal


class _Undecodable:
    """What a guarded request deserializer yields for bytes that do not parse."""


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer`, answering `_Undecodable()` instead of raising (gRPC would answer UNKNOWN
    with the parser's exception)."""
    if deserializer is None:
        return None
    parse = deserializer

    def deserialize(raw: bytes) -> Any:
        try:
            return parse(raw)
        except Exception:  # DecodeError, or whatever else a parser raises on garbage
            return _Undecodable()

    return deserialize


async def _check_request(request: Any, context: grpc.aio.ServicerContext) -> None:
    """End the call INVALID_ARGUMENT if the request did not parse or breaks a string limit."""
    if isinstance(request, _Undecodable):
        await invalid_argument(context, [("request", "is not a well-formed message of the method's type")])
    violations = string_violations(request) if isinstance(request, Message) else []
    if violations:
        await invalid_argument(context, violations)


async def _answer_failure(exc: Exception, method: str, context: grpc.aio.ServicerContext) -> NoReturn:
    """End the call for a handler's exception, never with the exception's class or text.

    InvalidArgument → INVALID_ARGUMENT with its field violations; a full database or disk →
    UNAVAILABLE (retryable: the same request, with its idempotency key, succeeds once there is
    room); anything else → INTERNAL, details only in the log. An abort passes through.
    """
    if isinstance(exc, grpc.aio.BaseError):
        raise exc
    if isinstance(exc, InvalidArgument):
        await invalid_argument(context, exc.violations)
    elif storage_exhausted(exc):
        log.error("%s: storage is exhausted", method)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "storage is exhausted; retry later")
    else:
        log.error("%s failed", method, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; it has been logged")
    raise AssertionError("context.abort returned")


def _wrap(
    handler: grpc.RpcMethodHandler, method: str, authenticator: Authenticator | None, token: str | None
) -> grpc.RpcMethodHandler:
    """Guard `handler`; with an authenticator, run it only for an authenticated principal."""

    async def bind(context: grpc.aio.ServicerContext) -> contextvars.Token[Principal] | None:
        if authenticator is None:
            return None
        principal = await _authenticate(authenticator, token, context)
        if principal.role is Role.PROBE and method not in PROBE_METHODS:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a probe may call only the probe reads")
        return set_current_principal(principal)

    def unbind(bound: contextvars.Token[Principal] | None) -> None:
        if bound is not None:
            reset_current_principal(bound)

    if handler.unary_unary:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            bound = await bind(context)
            try:
                await _check_request(request, context)
                return await inner_uu(request, context)
            except Exception as exc:
                await _answer_failure(exc, method, context)
            finally:
                unbind(bound)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, _lenient(handler.request_deserializer), handler.response_serializer
        )
    if handler.unary_stream:
        inner_us = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            bound = await bind(context)
            try:
                await _check_request(request, context)
                stream = inner_us(request, context)
                if inspect.isawaitable(stream):
                    # A handler that writes its messages with `context.write` (grpc.health.v1's Watch).
                    await stream
                else:
                    async for item in stream:
                        yield item
            except Exception as exc:
                await _answer_failure(exc, method, context)
            finally:
                unbind(bound)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, _lenient(handler.request_deserializer), handler.response_serializer
        )
    if authenticator is None:
        return handler  # server reflection: a public bidirectional stream
    raise NotImplementedError("client-streaming methods are not used by Preflight")


def build_server(
    listen: str,
    registrations: Iterable[Register],
    *,
    authenticator: Authenticator,
    service_names: Sequence[str],
    tls: ServerTLS | None = None,
    public_methods: Sequence[str] = (),
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Create (not start) a server listening on `listen` (host:port; port 0 picks one).

    `public_methods` (full method names, `/package.Service/Method`) run without credentials,
    like health checks: only for a method whose request is its own credential.

    Returns the server, the bound port and the health servicer (every name in
    `service_names` and the overall "" service start SERVING; set NOT_SERVING on shutdown).
    """
    page_tokens()  # a bad PREFLIGHT_PAGE_TOKEN_KEY fails at startup, not on the first List call
    health_listen = tls.health_listen if tls else None
    server = grpc.aio.server(
        interceptors=[
            aio_server_interceptor(),  # type: ignore[no-untyped-call]
            AuthInterceptor(
                _EncryptedOnly(authenticator) if health_listen else authenticator, public_methods
            ),
        ],
        options=[("grpc.so_reuseport", 0)],
    )
    for register in registrations:
        register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    port = server.add_secure_port(listen, tls.credentials()) if tls else server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    if health_listen and server.add_insecure_port(health_listen) == 0:
        raise OSError(f"cannot listen on {health_listen}")
    return server, port, health_servicer


async def mark_serving(health_servicer: health.aio.HealthServicer, service_names: Sequence[str]) -> None:
    """Report every service (and the server as a whole) SERVING."""
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


async def invalid_argument(context: grpc.aio.ServicerContext, violations: Sequence[tuple[str, str]]) -> None:
    """End the call with INVALID_ARGUMENT and `google.rpc.BadRequest` field violations.

    The message names every field; clients read the details with
    `grpc_status.rpc_status.from_call`.
    """
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=name, description=description)
            for name, description in violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    message = "; ".join(f"{name}: {description}" for name, description in violations)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])
    rich = rpc_status.to_status(status)
    await context.abort(rich.code, rich.details, rich.trailing_metadata)
