"""The services' gRPC APIs, each call carrying the signed-in user's own bearer token.

The console holds no token of its own: what a page shows is exactly what the APIs let
that user see. Channels are shared by all users; credentials travel per call.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from preflight.benchmark.v1 import benchmark_pb2_grpc
from preflight.clearinghouse.v1 import clearinghouse_pb2_grpc
from preflight.identity.v1 import identity_pb2_grpc
from preflight.intake.v1 import intake_pb2_grpc
from preflight.notifier.v1 import notifier_pb2_grpc
from preflight_common.channels import aio_channel, credentials_from_env

from preflight_console.config import Settings


@dataclass(frozen=True)
class Apis:
    """Stubs of every API the console calls."""

    identity: identity_pb2_grpc.IdentityServiceStub
    intake: intake_pb2_grpc.IntakeServiceStub
    benchmark: benchmark_pb2_grpc.BenchmarkServiceStub
    clearinghouse: clearinghouse_pb2_grpc.ClearinghouseServiceStub
    notifier: notifier_pb2_grpc.NotifierServiceStub
    channels: tuple[grpc.aio.Channel, ...]

    @classmethod
    def connect(cls, settings: Settings) -> Apis:
        """Channels to the services (TLS when `PREFLIGHT_GRPC_TLS_CA` is set); they connect lazily."""
        credentials = credentials_from_env()
        intake = aio_channel(settings.intake_target, credentials)
        benchmark = aio_channel(settings.benchmark_target, credentials)
        clearinghouse = aio_channel(settings.clearinghouse_target, credentials)
        notifier = aio_channel(settings.notifier_target, credentials)
        return cls(
            identity=identity_pb2_grpc.IdentityServiceStub(intake),
            intake=intake_pb2_grpc.IntakeServiceStub(intake),
            benchmark=benchmark_pb2_grpc.BenchmarkServiceStub(benchmark),
            clearinghouse=clearinghouse_pb2_grpc.ClearinghouseServiceStub(clearinghouse),
            notifier=notifier_pb2_grpc.NotifierServiceStub(notifier),
            channels=(intake, benchmark, clearinghouse, notifier),
        )

    async def close(self) -> None:
        """Close every channel."""
        for channel in self.channels:
            await channel.close()


def credentials(token: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying `token`."""
    return (("authorization", f"Bearer {token}"),)
