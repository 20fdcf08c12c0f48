"""The notifier process: gRPC API, Kafka agents, outbox relay, scheduler, dispatcher and deliverer.

Start-up order matters for "never missed": the scheduler's first passes catch up on everything
that fell due while the process was down before the loops settle into their interval. The
notifier declares its parts (`preflight_common.service`); the runtime serves them: the gRPC API
as soon as the database is ready, whether Kafka is up or not (fired alerts wait in the outbox),
the Kafka side once the brokers answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
from preflight.notifier.v1 import notifier_pb2, notifier_pb2_grpc
from preflight_common.auth import IntrospectionAuthenticator
from preflight_common.config import secret
from preflight_common.service import Loop, Parts, Service, in_thread, run
from preflight_common.service import serve as serve_service

from preflight_notifier.adapters import tables
from preflight_notifier.adapters.grpc import NotifierServicer
from preflight_notifier.bootstrap import Components, build
from preflight_notifier.config import NotifierSettings
from preflight_notifier.entrypoints.agents import routes

SERVICE_NAMES = (notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"].full_name,)


def _loops(components: Components) -> list[Loop]:
    """The scheduler, dispatcher and deliverer: each pass again at once while it finds work."""
    settings = components.settings
    return [
        Loop(
            "scheduler",
            settings.scheduler_interval,
            in_thread(lambda: components.scheduler.run_pass().handled),
            eager=True,
        ),
        Loop("dispatcher", settings.dispatch_interval, in_thread(components.dispatcher.run_pass), eager=True),
        Loop("deliverer", settings.delivery_interval, components.deliverer.run_pass, eager=True),
    ]


async def _parts(settings: NotifierSettings) -> Parts:
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

    return Parts(
        registrations=[register],
        service_names=SERVICE_NAMES,
        authenticator=authenticator,
        engine=components.engine,
        outbox=tables.outbox,
        routes=routes(settings, components.keeper),
        agents="deadline agents",
        loops=_loops(components),
        closing=[components.webhooks.close, authenticator.close],
    )


def service(settings: NotifierSettings) -> Service:
    """The notifier process, declared."""
    return Service("notifier", settings, lambda: _parts(settings))


async def serve(
    settings: NotifierSettings, *, stop: asyncio.Event, on_ready: Callable[[int], None] | None = None
) -> None:
    """Run the notifier until `stop` is set, then drain in-flight calls and stop every loop.

    `on_ready(port)` is called once the server accepts calls (port: the bound gRPC port).
    """
    await serve_service(service(settings), stop=stop, on_ready=on_ready)


def run_until_signal(settings: NotifierSettings) -> None:
    """Run the notifier in this (main) thread until SIGTERM or SIGINT; it then exits within its
    shutdown grace plus `SHUTDOWN_SLACK` seconds."""
    run(service(settings))
