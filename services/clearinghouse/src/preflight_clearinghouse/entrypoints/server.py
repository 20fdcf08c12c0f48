"""The clearinghouse process: gRPC server (ClearinghouseService, health, reflection), the outbox
relay, the consuming agents, the periodic end of lapsed embargoes and the periodic signed
checkpoints of the audit log's chain head.

The gRPC API serves as soon as the database is ready, whether Kafka is up or
not: issued reports and finding notices wait in the outbox. A Kafka connector
keeps trying to reach the brokers; once it does, it starts the relay thread
and the faust agents. Callers are authenticated by introspecting their bearer
tokens at intake's IdentityService (PREFLIGHT_IDENTITY_TARGET) with this
service's own token (the file PREFLIGHT_SERVICE_TOKEN_FILE names), or by client certificate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc
from grpc_health.v1 import health
from preflight.clearinghouse.v1 import clearinghouse_pb2, clearinghouse_pb2_grpc
from preflight_common.auth import Authenticator, IntrospectionAuthenticator
from preflight_common.bus import SOURCES
from preflight_common.config import secret
from preflight_common.grpcserver import build_server, mark_serving
from preflight_common.liveness import Liveness
from preflight_common.runtime import SHUTDOWN_SLACK, KafkaSide
from preflight_common.runtime import run_until_signal as run_service
from preflight_common.telemetry import setup_telemetry

from preflight_clearinghouse.adapters import tables
from preflight_clearinghouse.adapters.grpc import ClearinghouseServicer
from preflight_clearinghouse.bootstrap import Components, build, signer_from_env
from preflight_clearinghouse.config import ClearinghouseSettings
from preflight_clearinghouse.entrypoints.agents import routes
from preflight_clearinghouse.service_layer.reviews import Signer

log = logging.getLogger(__name__)

SERVICE_NAMES = (clearinghouse_pb2.DESCRIPTOR.services_by_name["ClearinghouseService"].full_name,)


def build_grpc_server(
    components: Components, authenticator: Authenticator, listen: str
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """The (not started) gRPC server of `components`, listening on `listen`."""
    servicer = ClearinghouseServicer(
        components.reviews,
        components.registry,
        components.checkpoints,
        stream_poll_interval=components.settings.stream_poll_interval,
    )

    def register(server: grpc.aio.Server) -> None:
        clearinghouse_pb2_grpc.add_ClearinghouseServiceServicer_to_server(servicer, server)

    return build_server(
        listen,
        [register],
        authenticator=authenticator,
        service_names=SERVICE_NAMES,
        tls=components.settings.tls,
    )


async def _end_lapsed_embargoes(components: Components, liveness: Liveness) -> None:
    while True:
        liveness.beat("ending lapsed embargoes", components.settings.embargo_interval)
        try:
            ended = await asyncio.to_thread(components.registry.end_lapsed_embargoes)
            if ended:
                log.info("ended %d lapsed embargo(es)", ended)
        except Exception:
            log.exception("ending lapsed embargoes failed; retrying next round")
        await asyncio.sleep(components.settings.embargo_interval)


async def _publish_audit_checkpoints(components: Components, liveness: Liveness) -> None:
    while True:
        liveness.beat("publishing audit checkpoints", components.settings.checkpoint_interval)
        try:
            signed = await asyncio.to_thread(components.checkpoints.publish_if_due)
            if signed is not None:
                log.info("signed audit checkpoint at entry %d", signed.checkpoint.seq)
        except Exception:
            log.exception("signing an audit checkpoint failed; retrying next round")
        await asyncio.sleep(components.settings.checkpoint_interval)


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
    setup_telemetry("preflight-clearinghouse")
    components = await asyncio.to_thread(build, settings, signer)
    authenticator = IntrospectionAuthenticator(
        settings.identity_target,
        service_token,
        cache_ttl=settings.auth_cache_ttl,
        credentials=settings.client_tls,
    )
    server, port, health_servicer = build_grpc_server(components, authenticator, settings.listen)
    liveness = Liveness()
    # Serving first: the background parts' first steps (building the agents among them) hold the
    # event loop, and would otherwise delay the first health answer.
    await server.start()
    await mark_serving(health_servicer, SERVICE_NAMES)
    kafka = KafkaSide(
        settings.kafka,
        source=SOURCES["clearinghouse"],
        engine=components.engine,
        outbox=tables.outbox,
        relay_interval=settings.relay_interval,
        group=settings.consumer_group,
        routes=routes(settings, components.reviews),
        topics=settings.topics,
        liveness=liveness,
    )
    background = [
        asyncio.create_task(kafka.run(), name="kafka-side"),
        asyncio.create_task(_end_lapsed_embargoes(components, liveness), name="embargoes"),
        asyncio.create_task(_publish_audit_checkpoints(components, liveness), name="audit-checkpoints"),
        asyncio.create_task(liveness.watch(health_servicer), name="liveness"),
    ]
    failures: list[BaseException] = []

    def stop_on_failure(task: asyncio.Task[None]) -> None:
        # Without its agents and relay the process would serve stale data: stop it so it is restarted.
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed; stopping", task.get_name(), exc_info=task.exception())
            failures.append(task.exception())  # type: ignore[arg-type]
            stop.set()

    background[0].add_done_callback(stop_on_failure)
    log.info("clearinghouse serving on port %d (signing key %s)", port, signer.key_id)
    if on_ready is not None:
        on_ready(port)
    try:
        await stop.wait()
    finally:
        log.info("clearinghouse shutting down: draining in-flight calls")
        await health_servicer.enter_graceful_shutdown()
        await server.stop(settings.shutdown_grace)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await kafka.stop()
        await authenticator.close()
        components.engine.dispose()
        log.info("clearinghouse stopped")
    if failures:
        raise RuntimeError("the Kafka side of the clearinghouse failed") from failures[0]


def run_until_signal(settings: ClearinghouseSettings) -> None:
    """Run the clearinghouse in this (main) thread until SIGTERM or SIGINT; it then exits within
    its shutdown grace plus `SHUTDOWN_SLACK` seconds."""
    signer = signer_from_env(settings)
    service_token = secret("PREFLIGHT_SERVICE_TOKEN")
    run_service(
        lambda stop: serve(settings, signer, service_token, stop=stop),
        shutdown_budget=settings.shutdown_grace + SHUTDOWN_SLACK,
    )
