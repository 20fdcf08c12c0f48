"""The benchmark process: gRPC BenchmarkService, the planner agent, the dispatcher and the outbox relay.

The gRPC API and the dispatcher run as soon as the database is ready, whether
Kafka is up or not: results wait in the outbox. A connector keeps trying to
reach Kafka; once it does, it starts the relay thread and the planner agent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
from preflight.benchmark.v1 import benchmark_pb2, benchmark_pb2_grpc
from preflight_common.auth import IntrospectionAuthenticator
from preflight_common.bus import SOURCES
from preflight_common.grpcserver import build_server, mark_serving
from preflight_common.liveness import Liveness
from preflight_common.runtime import SHUTDOWN_SLACK, KafkaSide
from preflight_common.runtime import run_until_signal as run_service
from preflight_common.telemetry import setup_telemetry

from preflight_benchmark.adapters.eval_logs import EvalLogs
from preflight_benchmark.adapters.executors.local import LocalExecutor
from preflight_benchmark.adapters.grpc import BenchmarkServicer
from preflight_benchmark.adapters.store import outbox
from preflight_benchmark.bootstrap import Components, build
from preflight_benchmark.config import BenchmarkSettings
from preflight_benchmark.domain.ports import Executor
from preflight_benchmark.entrypoints.agents import routes

log = logging.getLogger(__name__)

SERVICE_NAMES = (benchmark_pb2.DESCRIPTOR.services_by_name["BenchmarkService"].full_name,)


async def _logged(work: Coroutine[Any, Any, None]) -> None:
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("the Kafka side failed to start; the planner is not consuming")
        raise


async def serve(
    settings: BenchmarkSettings,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[Components, int], None] | None = None,
    executor: Callable[[str], Executor] | None = None,
) -> None:
    """Run until `stop` is set, then drain in-flight calls and stop.

    `on_ready(components, port)` is called once the server accepts calls.
    `executor(benchmark_target)` replaces the configured executor.
    """
    setup_telemetry("preflight-benchmark")
    target = settings.worker_target()
    components = await asyncio.to_thread(
        build, settings, target, executor=executor(target) if executor else None
    )
    servicer = BenchmarkServicer(components.store, eval_logs=EvalLogs(settings.log_root))

    def register(server: grpc.aio.Server) -> None:
        benchmark_pb2_grpc.add_BenchmarkServiceServicer_to_server(servicer, server)

    authenticator = IntrospectionAuthenticator(
        settings.identity_target, settings.service_token, credentials=settings.client_tls
    )
    server, port, health = build_server(
        settings.listen,
        [register],
        authenticator=authenticator,
        service_names=SERVICE_NAMES,
        tls=settings.tls,
    )
    liveness = Liveness()
    # Serving first: the background parts' first steps (building the agents among them) hold the
    # event loop, and would otherwise delay the first health answer.
    await server.start()
    await mark_serving(health, SERVICE_NAMES)
    kafka = KafkaSide(
        settings.kafka,
        source=SOURCES["benchmark"],
        engine=components.engine,
        outbox=outbox,
        relay_interval=settings.relay_interval,
        group=settings.consumer_group,
        routes=routes(settings, components.planner),
        topics=settings.topics,
        liveness=liveness,
        agents="planner agent",
    )
    local = components.executor if isinstance(components.executor, LocalExecutor) else None
    if local is not None:
        await local.start()  # its workers import Inspect while the rest starts
    dispatcher_stop = asyncio.Event()
    background = [
        asyncio.create_task(_logged(kafka.run()), name="kafka-side"),
        asyncio.create_task(components.dispatcher.run(dispatcher_stop, liveness), name="dispatcher"),
    ]
    if components.election is not None:
        # Stopped with the dispatcher: the Lease is released, for a stand-by to take over at once.
        background.append(
            asyncio.create_task(components.election.run(dispatcher_stop, liveness), name="election")
        )
    watching = asyncio.create_task(liveness.watch(health), name="liveness")
    log.info("benchmark serving on port %d (executor %s)", port, components.executor.name)
    if on_ready is not None:
        on_ready(components, port)
    try:
        await stop.wait()
    finally:
        log.info("benchmark shutting down")
        dispatcher_stop.set()
        await health.enter_graceful_shutdown()
        await server.stop(settings.shutdown_grace)
        await asyncio.gather(*background[1:], return_exceptions=True)
        background[0].cancel()
        watching.cancel()
        await asyncio.gather(background[0], watching, return_exceptions=True)
        await kafka.stop()
        if local is not None:
            await local.close()
        await components.statuses.close()
        components.engine.dispose()


def run_until_signal(settings: BenchmarkSettings) -> None:
    """Run in this (main) thread until SIGTERM or SIGINT; the process then exits within its
    shutdown grace plus `SHUTDOWN_SLACK` seconds."""
    run_service(
        lambda stop: serve(settings, stop=stop), shutdown_budget=settings.shutdown_grace + SHUTDOWN_SLACK
    )
