"""One runtime for every service process: a service declares what it is, `serve` runs it.

A service declares itself as a `Service`: its name, its settings (`ServiceSettings`: listen
address, TLS, shutdown grace, Kafka, consumer group, relay interval) and `build`, which builds
its `Parts` from its components: its gRPC servicers and health names, its authenticator and
public methods, its Kafka side (engine, outbox table, consumed routes), its periodic `Loop`s,
its other background parts (`Background`), and what to start first and close last.

`serve` then does for every service the same:

1. telemetry (`preflight-<name>`), then `build()`;
2. the gRPC server (`grpcserver.build_server`: health, reflection, authentication) starts and
   reports SERVING before anything else runs: the background parts' first steps hold the
   event loop, and would otherwise delay the first health answer;
3. the `starting` hooks are awaited; then the Kafka side (`runtime.KafkaSide`), the loops, the
   background parts and the liveness watch (`Liveness.watch`) run; "<name> serving on port N"
   is logged and `on_ready(port)` called;
4. it serves until `stop` is set, or until a background part fails. One failure policy for
   every service: a part that raises (rather than retrying on its own, as loops and the Kafka
   side do) takes the process down — it drains as below and `serve` raises, so that its
   supervisor (the embedded stack, Kubernetes) restarts it rather than letting it serve
   without that part;
5. draining: the loops and background parts are told to stop, every health service turns
   NOT_SERVING, in-flight calls get the shutdown grace, the loops and background parts are
   awaited, the Kafka side is stopped, the `closing` hooks run in order and the engine is
   disposed ("<name> stopped").

`run` runs `serve` in the main thread until SIGTERM or SIGINT, and the process then exits
within its shutdown grace plus `runtime.SHUTDOWN_SLACK` seconds (`runtime.run_until_signal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, Table

from preflight_common.auth import Authenticator
from preflight_common.bus import SOURCES
from preflight_common.config import KafkaSettings, Topics
from preflight_common.consumer import Route
from preflight_common.grpcserver import Register, ServerTLS, build_server, mark_serving
from preflight_common.liveness import Liveness
from preflight_common.runtime import SHUTDOWN_SLACK, KafkaSide, run_until_signal
from preflight_common.telemetry import setup_telemetry

log = logging.getLogger(__name__)
T = TypeVar("T")


class ServiceSettings(Protocol):
    """What the runtime reads from a service's settings."""

    @property
    def listen(self) -> str: ...  # host:port of the gRPC server (port 0 picks one)
    @property
    def tls(self) -> ServerTLS | None: ...
    @property
    def shutdown_grace(self) -> float: ...  # seconds in-flight calls get on shutdown
    @property
    def kafka(self) -> KafkaSettings: ...
    @property
    def topics(self) -> Topics: ...
    @property
    def consumer_group(self) -> str: ...
    @property
    def relay_interval(self) -> float: ...


@dataclass(frozen=True)
class Loop:
    """Work the process repeats while it runs: `work()` every `interval` seconds.

    Each round beats the process's `Liveness` as `name`. A round that raises is logged and the
    next one tried after `interval`: it never ends the loop. With `eager`, a round whose result
    is truthy (it found work, e.g. a count > 0) is followed at once by the next. The loop ends,
    its current round finished, once the process stops.
    """

    name: str
    interval: float
    work: Callable[[], Awaitable[object]]
    eager: bool = False

    async def run(self, stop: asyncio.Event, liveness: Liveness) -> None:
        """Repeat the work until `stop` is set (as a `Background` part runs)."""
        while not stop.is_set():
            liveness.beat(self.name, self.interval)
            try:
                found = await self.work()
            except Exception:
                log.exception("%s failed; retrying in %.1fs", self.name, self.interval)
                found = None
            if self.eager and found:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
        liveness.end(self.name)


@dataclass(frozen=True)
class Background:
    """A background part with a loop of its own: `run(stop, liveness)` runs until `stop` is set,
    then returns soon (finishing what it holds), beating `liveness` as it goes."""

    name: str
    run: Callable[[asyncio.Event, Liveness], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Parts:
    """What a service process is made of, built from its components."""

    registrations: Sequence[Register]
    """Add the service's servicers to the server."""
    service_names: Sequence[str]
    """Full names of the gRPC services: reported SERVING by health, listed by reflection."""
    authenticator: Authenticator
    engine: Engine
    """The service's database: the outbox's, disposed last."""
    outbox: Table
    routes: Sequence[Route]
    """The topics the service consumes (in its settings' `consumer_group`)."""
    agents: str = "agents"
    """The consumers' name in logs and in the `Liveness`."""
    public_methods: Sequence[str] = ()
    """Full method names that run without credentials (`grpcserver.build_server`)."""
    loops: Sequence[Loop] = ()
    background: Sequence[Background] = ()
    starting: Sequence[Callable[[], Awaitable[None]]] = ()
    """Awaited in order once the server serves, before the background parts start."""
    closing: Sequence[Callable[[], Awaitable[None]]] = ()
    """Awaited in order on exit, after the Kafka side stopped and before the engine is disposed."""
    about: str = ""
    """Said in parentheses after "<name> serving on port N" (e.g. the executor)."""


@dataclass(frozen=True)
class Service:
    """A service process: its `name` (a key of `bus.SOURCES`: its events' source, its telemetry
    name `preflight-<name>`), its settings, and `build`, which builds its parts (in the event
    loop: gRPC channels bind to it; blocking work goes to a thread)."""

    name: str
    settings: ServiceSettings
    build: Callable[[], Awaitable[Parts]]


def in_thread(work: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """`work` as a `Loop`'s work: each round runs it in a thread, off the event loop."""
    return lambda: asyncio.to_thread(work)


async def serve(
    service: Service, *, stop: asyncio.Event, on_ready: Callable[[int], None] | None = None
) -> None:
    """Run `service` until `stop` is set, then drain and stop it (see the module doc).

    `on_ready(port)` is called once the server accepts calls (port: the bound gRPC port).
    Raises RuntimeError, after draining, when a background part failed.
    """
    name, settings = service.name, service.settings
    setup_telemetry(f"preflight-{name}")
    parts = await service.build()
    server, port, health = build_server(
        settings.listen,
        parts.registrations,
        authenticator=parts.authenticator,
        service_names=parts.service_names,
        tls=settings.tls,
        public_methods=parts.public_methods,
    )
    liveness = Liveness()
    await server.start()
    await mark_serving(health, parts.service_names)
    kafka = KafkaSide(
        settings.kafka,
        source=SOURCES[name],
        engine=parts.engine,
        outbox=parts.outbox,
        relay_interval=settings.relay_interval,
        group=settings.consumer_group,
        routes=parts.routes,
        topics=settings.topics,
        liveness=liveness,
        agents=parts.agents,
    )
    halt = asyncio.Event()  # tells the loops and background parts to stop
    stoppable: list[asyncio.Task[None]] = []
    cancellable: list[asyncio.Task[None]] = []
    try:
        for start in parts.starting:
            await start()
        cancellable.append(asyncio.create_task(kafka.run(), name="kafka-side"))
        parallel: Sequence[Loop | Background] = (*parts.loops, *parts.background)
        stoppable.extend(asyncio.create_task(part.run(halt, liveness), name=part.name) for part in parallel)
        cancellable.append(asyncio.create_task(liveness.watch(health), name="liveness"))
        log.info("%s serving on port %d%s", name, port, f" ({parts.about})" if parts.about else "")
        if on_ready is not None:
            on_ready(port)
        await _until_stopped_or_failed(stop, [*cancellable, *stoppable])
    finally:
        log.info("%s shutting down: draining in-flight calls", name)
        halt.set()
        await health.enter_graceful_shutdown()
        await server.stop(settings.shutdown_grace)
        await asyncio.gather(*stoppable, return_exceptions=True)
        for task in cancellable:
            task.cancel()
        await asyncio.gather(*cancellable, return_exceptions=True)
        await kafka.stop()
        for close in parts.closing:
            await close()
        parts.engine.dispose()
        log.info("%s stopped", name)


def run(service: Service) -> None:
    """Run `service` in this (main) thread until SIGTERM or SIGINT; it then exits within its
    shutdown grace plus `SHUTDOWN_SLACK` seconds (with status 1 if it could not)."""
    run_until_signal(
        lambda stop: serve(service, stop=stop),
        shutdown_budget=service.settings.shutdown_grace + SHUTDOWN_SLACK,
    )


async def _until_stopped_or_failed(stop: asyncio.Event, background: Sequence[asyncio.Task[None]]) -> None:
    """Return once `stop` is set; raise RuntimeError once a background task raised.

    A task that returns is done with (the Kafka side returns once it runs).
    """
    stopping = asyncio.create_task(stop.wait(), name="stop")
    running: set[asyncio.Task[Any]] = {stopping, *background}
    try:
        while not stopping.done():
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopping}:
                failure = None if task.cancelled() else task.exception()
                if failure is not None:
                    log.error("%s failed; shutting down", task.get_name(), exc_info=failure)
                    raise RuntimeError(f"{task.get_name()} failed") from failure
    finally:
        stopping.cancel()
