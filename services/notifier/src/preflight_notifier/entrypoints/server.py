"""The notifier process: gRPC API, Kafka agents, outbox relay, scheduler, dispatcher and deliverer.

Start-up order matters for "never missed": the scheduler's first passes
catch up on everything that fell due while the process was down before the
loops settle into their interval. The gRPC API serves as soon as the database
is ready, whether Kafka is up or not: fired alerts wait in the outbox, and a
connector keeps trying to reach the brokers before it starts the relay and
the agents.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
from preflight.notifier.v1 import notifier_pb2, notifier_pb2_grpc
from preflight_common.auth import IntrospectionAuthenticator
from preflight_common.bus import SOURCES
from preflight_common.config import secret
from preflight_common.grpcserver import build_server, mark_serving
from preflight_common.liveness import Liveness
from preflight_common.runtime import SHUTDOWN_SLACK, KafkaSide
from preflight_common.runtime import run_until_signal as run_service
from preflight_common.telemetry import setup_telemetry

from preflight_notifier.adapters import tables
from preflight_notifier.adapters.grpc import NotifierServicer
from preflight_notifier.bootstrap import Components, build
from preflight_notifier.config import NotifierSettings
from preflight_notifier.entrypoints.agents import routes
from preflight_notifier.service_layer.loop import repeat

log = logging.getLogger(__name__)

SERVICE_NAMES = (notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"].full_name,)


def _background(components: Components, stop: asyncio.Event, liveness: Liveness) -> list[asyncio.Task[None]]:
    settings = components.settings

    async def schedule() -> int:
        return (await asyncio.to_thread(components.scheduler.run_pass)).handled

    async def dispatch() -> int:
        return await asyncio.to_thread(components.dispatcher.run_pass)

    return [
        asyncio.create_task(
            repeat("scheduler", schedule, stop, settings.scheduler_interval, liveness), name="scheduler"
        ),
        asyncio.create_task(
            repeat("dispatcher", dispatch, stop, settings.dispatch_interval, liveness), name="dispatcher"
        ),
        asyncio.create_task(
            repeat("deliverer", components.deliverer.run_pass, stop, settings.delivery_interval, liveness),
            name="deliverer",
        ),
    ]


async def serve(
    settings: NotifierSettings, *, stop: asyncio.Event, on_ready: Callable[[int], None] | None = None
) -> None:
    """Run the notifier until `stop` is set, then drain in-flight calls and stop every loop.

    `on_ready(port)` is called once the server accepts calls (port: the bound gRPC port).
    """
    setup_telemetry("preflight-notifier")
    service_token = secret("PREFLIGHT_SERVICE_TOKEN")
    components = await asyncio.to_thread(build, settings)
    authenticator = IntrospectionAuthenticator(
        settings.identity_target,
        service_token,
        cache_ttl=settings.introspection_cache_ttl,
        credentials=settings.client_tls,
    )
    servicer = NotifierServicer(
        components.engine, components.clock, stream_poll_interval=settings.stream_poll_interval
    )

    def register(server: grpc.aio.Server) -> None:
        notifier_pb2_grpc.add_NotifierServiceServicer_to_server(servicer, server)

    server, port, health = build_server(
        settings.listen,
        [register],
        authenticator=authenticator,
        service_names=SERVICE_NAMES,
        tls=settings.tls,
    )
    loops_stop = asyncio.Event()
    liveness = Liveness()
    # Serving first: the background parts' first steps (building the agents among them) hold the
    # event loop, and would otherwise delay the first health answer.
    await server.start()
    await mark_serving(health, SERVICE_NAMES)
    loops = _background(components, loops_stop, liveness)
    watching = asyncio.create_task(liveness.watch(health), name="liveness")
    kafka = KafkaSide(
        settings.kafka,
        source=SOURCES["notifier"],
        engine=components.engine,
        outbox=tables.outbox,
        relay_interval=settings.relay_interval,
        group=settings.consumer_group,
        routes=routes(settings, components.keeper),
        topics=settings.topics,
        liveness=liveness,
        agents="deadline agents",
    )
    connector = asyncio.create_task(kafka.run(), name="kafka-side")
    log.info("notifier serving on port %d", port)
    if on_ready is not None:
        on_ready(port)
    try:
        await stop.wait()
    finally:
        log.info("notifier shutting down: draining in-flight calls")
        await health.enter_graceful_shutdown()
        await server.stop(settings.shutdown_grace)
        loops_stop.set()
        watching.cancel()
        connector.cancel()
        await asyncio.gather(*loops, watching, connector, return_exceptions=True)
        await kafka.stop()
        await components.webhooks.close()
        await authenticator.close()
        components.engine.dispose()
        log.info("notifier stopped")


def run_until_signal(settings: NotifierSettings) -> None:
    """Run the notifier in this (main) thread until SIGTERM or SIGINT; it then exits within its
    shutdown grace plus `SHUTDOWN_SLACK` seconds."""
    run_service(
        lambda stop: serve(settings, stop=stop), shutdown_budget=settings.shutdown_grace + SHUTDOWN_SLACK
    )
