"""The intake process: gRPC server (IntakeService, IdentityService, SignInService, health,
reflection), the outbox relay, the progress agents and the periodic closing of released submissions.

The gRPC API serves as soon as the database is ready, whether Kafka is up or
not: accepted submissions wait in the outbox. A Kafka connector keeps trying
to reach the brokers; once it does, it starts the relay thread and the faust
agents, which then ride out later broker outages themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc, sign_in_pb2, sign_in_pb2_grpc
from preflight_common.auth import INTROSPECTION_CACHE_TTL, IdentityServicer, LocalAuthenticator
from preflight_common.bus import SOURCES
from preflight_common.grpcserver import build_server, mark_serving
from preflight_common.liveness import Liveness
from preflight_common.runtime import SHUTDOWN_SLACK, KafkaSide
from preflight_common.runtime import run_until_signal as run_service
from preflight_common.telemetry import setup_telemetry

from preflight_intake.adapters import tables
from preflight_intake.adapters.crypto import Keyring
from preflight_intake.adapters.grpc import IntakeServicer
from preflight_intake.adapters.reports import ReportVerifier
from preflight_intake.adapters.sign_in import EXCHANGE_METHOD, SignInServicer
from preflight_intake.bootstrap import build
from preflight_intake.config import IntakeSettings
from preflight_intake.entrypoints.agents import routes

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name,
    identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
    sign_in_pb2.DESCRIPTOR.services_by_name["SignInService"].full_name,
)


CHECKPOINT_INTERVAL = 1.0
"""Seconds between SQLite WAL checkpoints (`IntakeStore.checkpoint`)."""


async def _periodically(what: str, interval: float, work: Callable[[], object], liveness: Liveness) -> None:
    """Run `work` (in a thread) every `interval` seconds, beating `liveness` as `what`; a round that
    fails is logged and the next one tried."""
    while True:
        liveness.beat(what, interval)
        try:
            await asyncio.to_thread(work)
        except Exception:
            log.exception("%s failed; retrying next round", what)
        await asyncio.sleep(interval)


async def serve(
    settings: IntakeSettings,
    keyring: Keyring,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Run intake until `stop` is set, then drain in-flight calls (up to the shutdown grace) and stop.

    `on_ready(port)` is called once the server accepts calls (port: the bound gRPC port).
    """
    setup_telemetry("preflight-intake")
    components = await asyncio.to_thread(build, settings, keyring)
    servicer = IntakeServicer(components.intake)
    identity = IdentityServicer(components.tokens)
    sign_in = SignInServicer(settings.federation, components.tokens, settings.oidc_token_lifetime)
    reports = ReportVerifier(settings.clearinghouse_target, settings.client_tls, components.tokens)

    def register_intake(server: grpc.aio.Server) -> None:
        intake_pb2_grpc.add_IntakeServiceServicer_to_server(servicer, server)

    def register_identity(server: grpc.aio.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(identity, server)
        sign_in_pb2_grpc.add_SignInServiceServicer_to_server(sign_in, server)

    server, port, health = build_server(
        settings.listen,
        [register_intake, register_identity],
        authenticator=LocalAuthenticator(components.tokens, cache_ttl=INTROSPECTION_CACHE_TTL),
        service_names=SERVICE_NAMES,
        tls=settings.tls,
        public_methods=(EXCHANGE_METHOD,),
    )
    liveness = Liveness()
    # Serving first: the background parts' first steps (building the agents among them) hold the
    # event loop, and would otherwise delay the first health answer.
    await server.start()
    await mark_serving(health, SERVICE_NAMES)
    kafka = KafkaSide(
        settings.kafka,
        source=SOURCES["intake"],
        engine=components.engine,
        outbox=tables.outbox,
        relay_interval=settings.relay_interval,
        group=settings.consumer_group,
        routes=routes(settings, components.intake, reports),
        topics=settings.topics,
        liveness=liveness,
        agents="progress agents",
    )
    store = components.store
    periodic: list[tuple[str, float, Callable[[], object]]] = [
        ("closing released submissions", settings.close_interval, components.intake.close_released),
        (
            "watch resync",
            settings.watch_resync_interval,
            lambda: store.changes.resync(store.latest_sequences),
        ),
    ]
    if components.engine.dialect.name == "sqlite":
        periodic.append(("database checkpoints", CHECKPOINT_INTERVAL, store.checkpoint))
    background = [
        asyncio.create_task(kafka.run(), name="kafka-side"),
        *(
            asyncio.create_task(_periodically(what, interval, work, liveness), name=what)
            for what, interval, work in periodic
        ),
        asyncio.create_task(liveness.watch(health), name="liveness"),
    ]
    log.info("intake serving on port %d", port)
    if on_ready is not None:
        on_ready(port)
    stopping: asyncio.Task[None] = asyncio.create_task(_wait(stop), name="stop")
    try:
        # A background part that fails (rather than retrying) is fatal: stop, and let the
        # supervisor restart the process.
        running: set[asyncio.Task[None]] = {stopping, *background}
        while not stopping.done():
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopping}:
                if task.exception() is not None:
                    log.error("%s failed; shutting down", task.get_name(), exc_info=task.exception())
                    raise RuntimeError(f"{task.get_name()} failed") from task.exception()
    finally:
        stopping.cancel()
        log.info("intake shutting down: draining in-flight calls")
        await health.enter_graceful_shutdown()
        await server.stop(settings.shutdown_grace)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await kafka.stop()
        components.engine.dispose()
        log.info("intake stopped")


async def _wait(event: asyncio.Event) -> None:
    await event.wait()


def run_until_signal(settings: IntakeSettings, keyring: Keyring) -> None:
    """Run intake in this (main) thread until SIGTERM or SIGINT; it then exits within its
    shutdown grace plus `SHUTDOWN_SLACK` seconds."""
    run_service(
        lambda stop: serve(settings, keyring, stop=stop),
        shutdown_budget=settings.shutdown_grace + SHUTDOWN_SLACK,
    )
