"""The services' APIs, each call carrying the signed-in user's own bearer token.

The console holds no token of its own: what a page shows is exactly what the APIs let
that user see. Channels are shared by all users; each user's calls go through the SDK's
asyncio clients made for that user's token.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from preflight.clearinghouse.v1 import clearinghouse_pb2_grpc
from preflight.identity.v1 import identity_pb2_grpc
from preflight.intake.v1 import sign_in_pb2_grpc
from preflight.sdk.aio import (
    AsyncBenchmarkClient,
    AsyncClearinghouseClient,
    AsyncIntakeClient,
    AsyncNotifierClient,
)
from preflight_common.channels import aio_channel, credentials_from_env

from preflight_console.config import Settings

TIMEOUT = 15.0
"""Seconds each call may take."""


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

    async def close(self) -> None:
        """Close every channel."""
        for channel in (
            self.intake_channel,
            self.benchmark_channel,
            self.clearinghouse_channel,
            self.notifier_channel,
        ):
            await channel.close()


def credentials(token: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying `token`, for the stubs' calls."""
    return (("authorization", f"Bearer {token}"),)
