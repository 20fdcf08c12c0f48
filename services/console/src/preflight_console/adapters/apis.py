"""The services' APIs, each call carrying the signed-in user's own bearer token
(`domain.ports.ServiceApis`).

The console holds no token of its own: what a page shows is exactly what the APIs let
that user see. Channels are shared by all users; each user's calls go through the SDK's
asyncio clients made for that user's token, and the few calls the SDK has not go through
stubs here, their refusals raised as the SDK's typed errors too.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from preflight.clearinghouse.v1 import clearinghouse_pb2, clearinghouse_pb2_grpc
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight.intake.v1 import sign_in_pb2, sign_in_pb2_grpc
from preflight.sdk.aio import (
    AsyncBenchmarkClient,
    AsyncClearinghouseClient,
    AsyncIntakeClient,
    AsyncNotifierClient,
)
from preflight.sdk.errors import from_rpc_error
from preflight_common.channels import aio_channel, credentials_from_env

from preflight_console.config import Settings

TIMEOUT = 15.0
"""Seconds each call may take."""

T = TypeVar("T")


@dataclass(frozen=True)
class Apis:
    """Channels to every service the console calls, and the stubs for what the SDK has not:
    `IntrospectToken`, `ExchangeIdToken` (called without credentials: the ID token is the
    credential) and `GetFinding`'s `next_states` (the SDK's `get_finding` returns the finding
    alone)."""

    identity: identity_pb2_grpc.IdentityServiceStub
    sign_in: sign_in_pb2_grpc.SignInServiceStub
    findings: clearinghouse_pb2_grpc.ClearinghouseServiceStub
    intake_channel: grpc.aio.Channel
    benchmark_channel: grpc.aio.Channel
    clearinghouse_channel: grpc.aio.Channel
    notifier_channel: grpc.aio.Channel

    @classmethod
    def connect(cls, settings: Settings) -> Apis:
        """Channels to the services (TLS when `PREFLIGHT_GRPC_TLS_CA` is set); they connect lazily."""
        credentials = credentials_from_env()
        intake = aio_channel(settings.intake_target, credentials)
        clearinghouse = aio_channel(settings.clearinghouse_target, credentials)
        return cls(
            identity=identity_pb2_grpc.IdentityServiceStub(intake),
            sign_in=sign_in_pb2_grpc.SignInServiceStub(intake),
            findings=clearinghouse_pb2_grpc.ClearinghouseServiceStub(clearinghouse),
            intake_channel=intake,
            benchmark_channel=aio_channel(settings.benchmark_target, credentials),
            clearinghouse_channel=clearinghouse,
            notifier_channel=aio_channel(settings.notifier_target, credentials),
        )

    def intake(self, token: str) -> AsyncIntakeClient:
        """Intake, as the holder of `token`."""
        return AsyncIntakeClient(self.intake_channel, token=token, timeout=TIMEOUT)

    def benchmark(self, token: str) -> AsyncBenchmarkClient:
        """The benchmark service, as the holder of `token`."""
        return AsyncBenchmarkClient(self.benchmark_channel, token=token, timeout=TIMEOUT)

    def clearinghouse(self, token: str) -> AsyncClearinghouseClient:
        """The clearinghouse, as the holder of `token`."""
        return AsyncClearinghouseClient(self.clearinghouse_channel, token=token, timeout=TIMEOUT)

    def notifier(self, token: str) -> AsyncNotifierClient:
        """The notifier, as the holder of `token`."""
        return AsyncNotifierClient(self.notifier_channel, token=token, timeout=TIMEOUT)

    async def introspect(self, token: str) -> identity_pb2.IntrospectTokenResponse:
        """What the identity service says of `token`, asked with `token` itself."""
        request = identity_pb2.IntrospectTokenRequest(token=token)
        return await _typed(
            self.identity.IntrospectToken(request, metadata=_credentials(token), timeout=TIMEOUT)
        )

    async def exchange_id_token(
        self, request: sign_in_pb2.ExchangeIdTokenRequest
    ) -> sign_in_pb2.ExchangeIdTokenResponse:
        """A Preflight token for a verified ID token (no credentials: the ID token is one)."""
        return await _typed(self.sign_in.ExchangeIdToken(request, timeout=TIMEOUT))

    async def finding(self, token: str, finding_id: str) -> clearinghouse_pb2.GetFindingResponse:
        """One finding as the holder of `token` may see it, with its `next_states`."""
        return await _typed(
            self.findings.GetFinding(
                clearinghouse_pb2.GetFindingRequest(finding_id=finding_id),
                metadata=_credentials(token),
                timeout=TIMEOUT,
            )
        )

    async def close(self) -> None:
        """Close every channel."""
        for channel in (
            self.intake_channel,
            self.benchmark_channel,
            self.clearinghouse_channel,
            self.notifier_channel,
        ):
            await channel.close()


def _credentials(token: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying `token`, for the stubs' calls."""
    return (("authorization", f"Bearer {token}"),)


async def _typed(call: Awaitable[T]) -> T:
    """The answer of a stub's call; a refusal raised as the SDK's typed error for its status."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc) from exc
