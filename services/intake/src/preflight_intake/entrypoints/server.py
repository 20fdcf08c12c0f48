"""The intake process: gRPC server (IntakeService + IdentityService, health, reflection), the outbox
relay, the progress agents and the periodic closing of released submissions.

The gRPC API serves as soon as the database is ready, whether Kafka is up or
not: accepted submissions wait in the outbox. A Kafka connector keeps trying
to reach the brokers; once it does, it starts the relay thread and the faust
agents, which then ride out later broker outages themselves.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import faust
import grpc
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc
from preflight_common.auth import IdentityServicer, LocalAuthenticator
from preflight_common.consumer import DeadLetters
from preflight_common.grpcserver import build_server, mark_serving
from preflight_common.outbox import OutboxRelay
from preflight_common.producer import EventPublisher
from preflight_common.telemetry import setup_telemetry

from preflight_intake.adapters import tables
from preflight_intake.adapters.crypto import Keyring
from preflight_intake.adapters.servicer import IntakeServicer
from preflight_intake.bootstrap import Components, build
from preflight_intake.config import IntakeSettings
from preflight_intake.entrypoints.agents import build_app

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE_NAMES = (
    intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name,
    identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
)
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
        """Start the relay and the agents, retrying (with backoff) whatever fails while Kafka is away.

        Returns once both run; from then on they ride out broker outages themselves.
        """
        settings = self._components.settings
        self._publisher = await _retrying("the Kafka producer", self._new_publisher)
        relay = OutboxRelay(self._components.engine, tables.outbox, self._publisher)
        self._relay = threading.Thread(
            target=relay.run_forever,
            args=(self._stop, settings.relay_interval),
            name="outbox-relay",
            daemon=True,
        )
        self._relay.start()
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self._app = await _retrying("the progress agents", self._started_app)
        log.info("outbox relay and progress agents running")

    async def _new_publisher(self) -> EventPublisher:
        settings = self._components.settings
        return await asyncio.to_thread(EventPublisher, settings.kafka, source=settings.source)

    async def _started_app(self) -> faust.App:
        assert self._publisher is not None
        app = build_app(self._components.settings, self._components.intake, DeadLetters(self._publisher))
        try:
            await app.start()
        except BaseException:
            await app.stop()
            raise
        return app

    async def stop(self, timeout: float) -> None:
        """Stop the agents (committing what they applied), then the relay, then flush the publisher.

        Each step gets `timeout` seconds; one that overruns is logged and left behind, so that
        shutdown always ends (what it did not finish is redelivered or republished later).
        """
        self._stop.set()
        if self._app is not None:
            try:
                await asyncio.wait_for(self._app.stop(), timeout)
            except TimeoutError:
                log.warning("the progress agents did not stop within %.0fs", timeout)
        if self._relay is not None:
            await asyncio.to_thread(self._relay.join, timeout)
            if self._relay.is_alive():
                log.warning("the outbox relay did not stop within %.0fs", timeout)
        if self._publisher is not None:
            await asyncio.to_thread(self._publisher.close, timeout)


async def _retrying(what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt()` until it succeeds; Kafka clients raise many unrelated types while brokers are away."""
    backoff = 0.5
    while True:
        try:
            return await attempt()
        except Exception as exc:
            log.warning("%s: Kafka unreachable (%s); retrying in %.1fs", what, exc, backoff)
        await asyncio.sleep(backoff)
        backoff = min(_MAX_BACKOFF, backoff * 2)


async def _close_released_periodically(components: Components) -> None:
    while True:
        try:
            await asyncio.to_thread(components.intake.close_released)
        except Exception:
            log.exception("closing released submissions failed; retrying next round")
        await asyncio.sleep(components.settings.close_interval)


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
    servicer = IntakeServicer(components.intake, watch_poll_interval=settings.watch_poll_interval)
    identity = IdentityServicer(components.tokens)

    def register_intake(server: grpc.aio.Server) -> None:
        intake_pb2_grpc.add_IntakeServiceServicer_to_server(servicer, server)

    def register_identity(server: grpc.aio.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(identity, server)

    server, port, health = build_server(
        settings.listen,
        [register_intake, register_identity],
        authenticator=LocalAuthenticator(components.tokens),
        service_names=SERVICE_NAMES,
        tls=settings.tls,
    )
    kafka = KafkaSide(components)
    background = [
        asyncio.create_task(kafka.run(), name="kafka-side"),
        asyncio.create_task(_close_released_periodically(components), name="close-released"),
    ]
    await server.start()
    await mark_serving(health, SERVICE_NAMES)
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
        await kafka.stop(settings.shutdown_grace)
        components.engine.dispose()
        log.info("intake stopped")


async def _wait(event: asyncio.Event) -> None:
    await event.wait()


def run_until_signal(settings: IntakeSettings, keyring: Keyring) -> None:
    """Run intake in this (main) thread until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, keyring, stop=stop)

    asyncio.run(main())
