"""The benchmark process: gRPC BenchmarkService, the planner agent, the dispatcher and the outbox relay.

The benchmark declares its parts (`preflight_common.service`); the runtime serves them: the gRPC
API and the dispatcher as soon as the database is ready, whether Kafka is up or not (results
wait in the outbox), the Kafka side once the brokers answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
from preflight.benchmark.v1 import benchmark_pb2, benchmark_pb2_grpc
from preflight_common.auth import IntrospectionAuthenticator
from preflight_common.service import Background, Parts, Service, run
from preflight_common.service import serve as serve_service

from preflight_benchmark.adapters.eval_logs import EvalLogs
from preflight_benchmark.adapters.executors.local import LocalExecutor
from preflight_benchmark.adapters.grpc import BenchmarkServicer
from preflight_benchmark.adapters.tables import outbox
from preflight_benchmark.bootstrap import Components, build
from preflight_benchmark.config import BenchmarkSettings
from preflight_benchmark.domain.ports import Executor
from preflight_benchmark.entrypoints.agents import routes

SERVICE_NAMES = (benchmark_pb2.DESCRIPTOR.services_by_name["BenchmarkService"].full_name,)


def _parts(settings: BenchmarkSettings, components: Components) -> Parts:
    servicer = BenchmarkServicer(components.store, eval_logs=EvalLogs(settings.log_root))

    def register(server: grpc.aio.Server) -> None:
        benchmark_pb2_grpc.add_BenchmarkServiceServicer_to_server(servicer, server)

    authenticator = IntrospectionAuthenticator(
        settings.identity_target, settings.service_token, credentials=settings.client_tls
    )
    background = [Background("dispatcher", components.dispatcher.run)]
    if components.election is not None:
        # Stopped with the dispatcher: the Lease is released, for a stand-by to take over at once.
        background.append(Background("election", components.election.run))
    local = components.executor if isinstance(components.executor, LocalExecutor) else None
    # The local executor's workers start (and import Inspect) while the rest starts.
    starting: list[Callable[[], Awaitable[None]]] = [local.start] if local else []
    return Parts(
        registrations=[register],
        service_names=SERVICE_NAMES,
        authenticator=authenticator,
        engine=components.engine,
        outbox=outbox,
        routes=routes(settings, components.planner),
        agents="planner agent",
        background=background,
        starting=starting,
        closing=[components.executor.close, components.statuses.close, authenticator.close],
        about=f"executor {components.executor.name}",
    )


def service(
    settings: BenchmarkSettings,
    *,
    executor: Callable[[str], Executor] | None = None,
    built: Callable[[Components], None] = lambda _: None,
) -> Service:
    """The benchmark process, declared; `built(components)` is called once they are built."""

    async def parts() -> Parts:
        target = settings.worker_target()
        components = await asyncio.to_thread(
            build, settings, target, executor=executor(target) if executor else None
        )
        built(components)
        return _parts(settings, components)

    return Service("benchmark", settings, parts)


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
    components: list[Components] = []
    ready = None if on_ready is None else (lambda port: on_ready(components[0], port))
    declared = service(settings, executor=executor, built=components.append)
    await serve_service(declared, stop=stop, on_ready=ready)


def run_until_signal(settings: BenchmarkSettings) -> None:
    """Run in this (main) thread until SIGTERM or SIGINT; the process then exits within its
    shutdown grace plus `SHUTDOWN_SLACK` seconds."""
    run(service(settings))
