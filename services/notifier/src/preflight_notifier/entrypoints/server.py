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
import signal
import threading
from collections.abc import Callable

import faust
import grpc
from preflight.notifier.v1 import notifier_pb2, notifier_pb2_grpc
from preflight_common.auth import IntrospectionAuthenticator
from preflight_common.config import env
from preflight_common.consumer import DeadLetters
from preflight_common.grpcserver import build_server, mark_serving
from preflight_common.outbox import OutboxRelay
from preflight_common.producer import EventPublisher
from preflight_common.telemetry import setup_telemetry

from preflight_notifier.adapters import tables
from preflight_notifier.adapters.grpc_api import NotifierServicer
from preflight_notifier.bootstrap import Components, build
from preflight_notifier.config import NotifierSettings
from preflight_notifier.entrypoints.agents import build_app
from preflight_notifier.service_layer.loop import repeat

log = logging.getLogger(__name__)

SERVICE_NAMES = (notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"].full_name,)
_MAX_BACKOFF = 10.0


class KafkaSide:
    """The parts that need Kafka: publisher, outbox relay (a thread) and faust agents."""

    def __init__(self, components: Components) -> None:
        self._components = components
        self._stop = threading.Event()
        self._publisher: EventPublisher | None = None
        self._relay: threading.Thread | None = None
        self._app: faust.App | None = None

    async def run(self) -> None:
        """Connect (retrying until it works), then start the relay and the agents."""
        settings = self._components.settings
        backoff = 0.5
        while self._publisher is None:
            try:
                self._publisher = await asyncio.to_thread(
                    EventPublisher, settings.kafka, source=settings.source
                )
            except Exception as exc:  # kafka-python raises several unrelated types when brokers are away
                log.warning("Kafka unreachable (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(_MAX_BACKOFF, backoff * 2)
        relay = OutboxRelay(self._components.engine, tables.outbox, self._publisher)
        self._relay = threading.Thread(
            target=relay.run_forever,
            args=(self._stop, settings.relay_interval),
            name="outbox-relay",
            daemon=True,
        )
        self._relay.start()
        self._app = build_app(settings, self._components.keeper, DeadLetters(self._publisher))
        await self._app.start()
        log.info("outbox relay and deadline agents running")

    async def stop(self) -> None:
        """Stop the agents (committing what they applied), the relay, and flush the publisher."""
        self._stop.set()
        if self._app is not None:
            await self._app.stop()
        if self._relay is not None:
            await asyncio.to_thread(self._relay.join)
        if self._publisher is not None:
            await asyncio.to_thread(self._publisher.close)


def _background(components: Components, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    settings = components.settings

    async def schedule() -> int:
        return (await asyncio.to_thread(components.scheduler.run_pass)).handled

    async def dispatch() -> int:
        return await asyncio.to_thread(components.dispatcher.run_pass)

    return [
        asyncio.create_task(
            repeat("scheduler", schedule, stop, settings.scheduler_interval), name="scheduler"
        ),
        asyncio.create_task(
            repeat("dispatcher", dispatch, stop, settings.dispatch_interval), name="dispatcher"
        ),
        asyncio.create_task(
            repeat("deliverer", components.deliverer.run_pass, stop, settings.delivery_interval),
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
    service_token = env("PREFLIGHT_SERVICE_TOKEN")
    components = await asyncio.to_thread(build, settings)
    authenticator = IntrospectionAuthenticator(
        settings.identity_target, service_token, cache_ttl=settings.introspection_cache_ttl
    )
    servicer = NotifierServicer(
        components.engine, components.clock, stream_poll_interval=settings.stream_poll_interval
    )

    def register(server: grpc.aio.Server) -> None:
        notifier_pb2_grpc.add_NotifierServiceServicer_to_server(servicer, server)

    server, port, health = build_server(
        settings.listen, [register], authenticator=authenticator, service_names=SERVICE_NAMES
    )
    loops_stop = asyncio.Event()
    loops = _background(components, loops_stop)
    kafka = KafkaSide(components)
    connector = asyncio.create_task(kafka.run(), name="kafka-side")
    await server.start()
    await mark_serving(health, SERVICE_NAMES)
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
        connector.cancel()
        await asyncio.gather(*loops, connector, return_exceptions=True)
        await kafka.stop()
        await components.webhooks.close()
        await authenticator.close()
        components.engine.dispose()
        log.info("notifier stopped")


def run_until_signal(settings: NotifierSettings) -> None:
    """Run the notifier in this (main) thread until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop=stop)

    asyncio.run(main())
