"""The intake process: gRPC server (IntakeService, IdentityService, SignInService, health,
reflection), the outbox relay, the progress agents and the periodic closing of released submissions.

Intake declares its parts (`preflight_common.service`); the runtime serves them: the gRPC API
as soon as the database is ready, whether Kafka is up or not (accepted submissions wait in the
outbox), the Kafka side once the brokers answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc, sign_in_pb2, sign_in_pb2_grpc
from preflight_common.auth import INTROSPECTION_CACHE_TTL, IdentityServicer, LocalAuthenticator
from preflight_common.service import Loop, Parts, Service, in_thread, run
from preflight_common.service import serve as serve_service

from preflight_intake.adapters import tables
from preflight_intake.adapters.crypto import Keyring
from preflight_intake.adapters.grpc import IntakeServicer
from preflight_intake.adapters.reports import ReportVerifier
from preflight_intake.adapters.sign_in import EXCHANGE_METHOD, SignInServicer
from preflight_intake.bootstrap import build
from preflight_intake.config import IntakeSettings
from preflight_intake.entrypoints.agents import routes

SERVICE_NAMES = (
    intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name,
    identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
    sign_in_pb2.DESCRIPTOR.services_by_name["SignInService"].full_name,
)


CHECKPOINT_INTERVAL = 1.0
"""Seconds between SQLite WAL checkpoints (`IntakeStore.checkpoint`)."""


async def _parts(settings: IntakeSettings, keyring: Keyring) -> Parts:
    components = await asyncio.to_thread(build, settings, keyring)
    intake, store = components.intake, components.store
    identity = IdentityServicer(components.tokens)
    sign_in = SignInServicer(settings.federation, components.tokens, settings.oidc_token_lifetime)
    reports = ReportVerifier(settings.clearinghouse_target, settings.client_tls, components.tokens)

    def register_intake(server: grpc.aio.Server) -> None:
        intake_pb2_grpc.add_IntakeServiceServicer_to_server(IntakeServicer(intake), server)

    def register_identity(server: grpc.aio.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(identity, server)
        sign_in_pb2_grpc.add_SignInServiceServicer_to_server(sign_in, server)

    loops = [
        Loop("closing released submissions", settings.close_interval, in_thread(intake.close_released)),
        Loop(
            "watch resync",
            settings.watch_resync_interval,
            in_thread(lambda: store.changes.resync(store.latest_sequences)),
        ),
    ]
    if components.engine.dialect.name == "sqlite":
        loops.append(Loop("database checkpoints", CHECKPOINT_INTERVAL, in_thread(store.checkpoint)))
    return Parts(
        registrations=[register_intake, register_identity],
        service_names=SERVICE_NAMES,
        authenticator=LocalAuthenticator(components.tokens, cache_ttl=INTROSPECTION_CACHE_TTL),
        public_methods=(EXCHANGE_METHOD,),
        engine=components.engine,
        outbox=tables.outbox,
        routes=routes(settings, intake, reports),
        agents="progress agents",
        loops=loops,
        # The submissions' writer thread, idle by then: the drain ended every SubmitModel call.
        closing=[in_thread(store.close)],
    )


def service(settings: IntakeSettings, keyring: Keyring) -> Service:
    """The intake process, declared."""
    return Service("intake", settings, lambda: _parts(settings, keyring))


async def serve(
    settings: IntakeSettings,
    keyring: Keyring,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Run intake until `stop` is set, then drain in-flight calls (up to the shutdown grace) and stop;
    `on_ready(port)` once the server accepts calls (port: the bound gRPC port)."""
    await serve_service(service(settings, keyring), stop=stop, on_ready=on_ready)


def run_until_signal(settings: IntakeSettings, keyring: Keyring) -> None:
    """Run intake in this (main) thread until SIGTERM or SIGINT; it then exits within its
    shutdown grace plus `SHUTDOWN_SLACK` seconds."""
    run(service(settings, keyring))
