"""The clearinghouse process: gRPC server (ClearinghouseService, health, reflection), the outbox
relay, the consuming agents, the periodic end of lapsed embargoes and the periodic signed
checkpoints of the audit log's chain head.

The clearinghouse declares its parts (`preflight_common.service`); the runtime serves them: the
gRPC API as soon as the database is ready, whether Kafka is up or not (issued reports and
finding notices wait in the outbox), the Kafka side once the brokers answer. Callers are
authenticated by introspecting their bearer tokens at intake's IdentityService
(PREFLIGHT_IDENTITY_TARGET) with this service's own token (the file PREFLIGHT_SERVICE_TOKEN_FILE
names), or by client certificate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
from grpc_health.v1 import health
from preflight.clearinghouse.v1 import clearinghouse_pb2, clearinghouse_pb2_grpc
from preflight_common.auth import Authenticator, IntrospectionAuthenticator
from preflight_common.config import secret
from preflight_common.grpcserver import Register, build_server
from preflight_common.service import Loop, Parts, Service, in_thread, run
from preflight_common.service import serve as serve_service

from preflight_clearinghouse.adapters import tables
from preflight_clearinghouse.adapters.grpc import ClearinghouseServicer
from preflight_clearinghouse.bootstrap import Components, build, signer_from_env
from preflight_clearinghouse.config import ClearinghouseSettings
from preflight_clearinghouse.domain.reviews.ports import Signer
from preflight_clearinghouse.entrypoints.agents import routes

log = logging.getLogger(__name__)

SERVICE_NAMES = (clearinghouse_pb2.DESCRIPTOR.services_by_name["ClearinghouseService"].full_name,)


def _registration(components: Components) -> Register:
    servicer = ClearinghouseServicer(
        components.reviews,
        components.registry,
        components.checkpoints,
        stream_poll_interval=components.settings.stream_poll_interval,
    )

    def register(server: grpc.aio.Server) -> None:
        clearinghouse_pb2_grpc.add_ClearinghouseServiceServicer_to_server(servicer, server)

    return register


def build_grpc_server(
    components: Components, authenticator: Authenticator, listen: str
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """The (not started) gRPC server of `components`, listening on `listen`."""
    return build_server(
        listen,
        [_registration(components)],
        authenticator=authenticator,
        service_names=SERVICE_NAMES,
        tls=components.settings.tls,
    )


def _loops(components: Components) -> list[Loop]:
    settings = components.settings

    def end_lapsed_embargoes() -> None:
        ended = components.registry.end_lapsed_embargoes()
        if ended:
            log.info("ended %d lapsed embargo(es)", ended)

    def publish_checkpoint() -> None:
        signed = components.checkpoints.publish_if_due()
        if signed is not None:
            log.info("signed audit checkpoint at entry %d", signed.checkpoint.seq)

    return [
        Loop("ending lapsed embargoes", settings.embargo_interval, in_thread(end_lapsed_embargoes)),
        Loop("publishing audit checkpoints", settings.checkpoint_interval, in_thread(publish_checkpoint)),
    ]


async def _parts(settings: ClearinghouseSettings, signer: Signer, service_token: str) -> Parts:
    components = await asyncio.to_thread(build, settings, signer)
    authenticator = IntrospectionAuthenticator(
        settings.identity_target,
        service_token,
        cache_ttl=settings.auth_cache_ttl,
        credentials=settings.client_tls,
    )
    return Parts(
        registrations=[_registration(components)],
        service_names=SERVICE_NAMES,
        authenticator=authenticator,
        engine=components.engine,
        outbox=tables.outbox,
        routes=routes(settings, components.reviews),
        loops=_loops(components),
        closing=[authenticator.close],
        about=f"signing key {signer.key_id}",
    )


def service(settings: ClearinghouseSettings, signer: Signer, service_token: str) -> Service:
    """The clearinghouse process, declared."""
    return Service("clearinghouse", settings, lambda: _parts(settings, signer, service_token))


async def serve(
    settings: ClearinghouseSettings,
    signer: Signer,
    service_token: str,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Run the clearinghouse until `stop` is set, then drain in-flight calls and stop.

    `on_ready(port)` is called once the server accepts calls (port: the bound gRPC port).
    """
    await serve_service(service(settings, signer, service_token), stop=stop, on_ready=on_ready)


def run_until_signal(settings: ClearinghouseSettings) -> None:
    """Run the clearinghouse in this (main) thread until SIGTERM or SIGINT; it then exits within
    its shutdown grace plus `SHUTDOWN_SLACK` seconds."""
    signer = signer_from_env(settings)
    service_token = secret("PREFLIGHT_SERVICE_TOKEN")
    run(service(settings, signer, service_token))
