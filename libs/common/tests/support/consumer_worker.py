"""A service-like process that consumes one topic through `KafkaSide` into a SQLite store.

Started by the consumer tests as its own process, so that it can be killed or stopped with a
signal exactly as a service is:

    python consumer_worker.py --topic TOPIC --group GROUP --db FILE
                              [--crash-after EVENT_ID [--crash-exit-code N]] [--spans FILE]
                              [--health-port PORT] [--handling-time S]

The broker and credentials come from the `PREFLIGHT_KAFKA_*` environment. TOPIC is taken for
the submissions topic, so the worker accepts intake's events (source `preflight.intake`) only.
SIGTERM stops it as `run_until_signal` stops a service (`KafkaSide.stop`, then exit 0).

The handler is an idempotent consumer: every delivery is first recorded in `deliveries` (its
own transaction, so redeliveries are visible), then `claim_event` and the effect (a row in
`effects`) are written in ONE transaction, in a worker thread as the services do. A
`SubmissionWithdrawn` whose reason is `poison` raises `PoisonEvent`. With `--crash-after`, the
process dies (`os._exit`) after the effect of that event is committed and before the handler
returns. With `--handling-time`, each delivery takes that long (a busy handler).
With `--spans`, finished spans (in-memory exporter) are written to FILE as JSON lines on exit.
With `--health-port`, the process is watched as a service is: `setup_telemetry` (so Prometheus
metrics when `OTEL_METRICS_EXPORTER` says so) and its `Liveness` (the consumer lag among it)
published on a gRPC health server on 127.0.0.1:PORT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from preflight.intake.v1.events_pb2 import ReleasePlanChanged, SubmissionReceived, SubmissionWithdrawn
from preflight_common.bus import SOURCES
from preflight_common.config import KafkaSettings, Topics
from preflight_common.consumer import PoisonEvent, Route
from preflight_common.db import make_engine
from preflight_common.envelope import EventAttributes, EventRegistry
from preflight_common.idempotency import claim_event, processed_events_table
from preflight_common.liveness import Liveness
from preflight_common.outbox import outbox_table
from preflight_common.runtime import KafkaSide, run_until_signal
from preflight_common.telemetry import setup_telemetry
from sqlalchemy import Column, Integer, MetaData, String, Table, insert

CONSUMER = "test-worker"
POISON = "poison"

metadata = MetaData()
processed_events = processed_events_table(metadata)
outbox = outbox_table(metadata)
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(200), nullable=False),
)
effects = Table(
    "effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(200), nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("sequence", Integer, nullable=False),
)


def sequence_of(payload: Message) -> int:
    """The per-subject sequence number the tests put in the payload (0 when it has none)."""
    if isinstance(payload, SubmissionReceived | ReleasePlanChanged):
        return payload.deadline_version
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--crash-after", default="")
    parser.add_argument("--crash-exit-code", type=int, default=1)
    parser.add_argument("--spans", type=Path)
    parser.add_argument("--health-port", type=int)
    parser.add_argument("--handling-time", type=float, default=0.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    exporter = InMemorySpanExporter()
    if args.spans:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    if args.health_port:
        setup_telemetry("preflight-tests-worker")

    engine = make_engine(f"sqlite:///{args.db}")
    metadata.create_all(engine)

    def record_delivery(event_id: str) -> None:
        with engine.begin() as conn:
            conn.execute(insert(deliveries).values(event_id=event_id))

    def apply_effect(attributes: EventAttributes, payload: Message) -> None:
        with engine.begin() as conn:
            if claim_event(conn, processed_events, CONSUMER, attributes.id):
                conn.execute(
                    insert(effects).values(
                        event_id=attributes.id,
                        event_type=attributes.type,
                        subject=attributes.subject,
                        sequence=sequence_of(payload),
                    )
                )

    async def apply(attributes: EventAttributes, payload: Message) -> None:
        await asyncio.to_thread(record_delivery, attributes.id)
        if args.handling_time:
            await asyncio.sleep(args.handling_time)
        if isinstance(payload, SubmissionWithdrawn) and payload.reason == POISON:
            raise PoisonEvent(f"submission {payload.submission_id} cannot be withdrawn")
        await asyncio.to_thread(apply_effect, attributes, payload)
        if attributes.id == args.crash_after:
            os._exit(args.crash_exit_code)

    registry = EventRegistry([SubmissionReceived, ReleasePlanChanged, SubmissionWithdrawn])

    async def serve(stop: asyncio.Event) -> None:
        liveness = Liveness()
        kafka = KafkaSide(
            KafkaSettings.from_env(),
            source=SOURCES["intake"],
            engine=engine,
            outbox=outbox,
            relay_interval=1.0,
            group=args.group,
            routes=[Route(args.topic, registry, apply)],
            topics=Topics(submissions=args.topic),
            liveness=liveness,
            agents="test consumer",
        )
        server = None
        watching = None
        if args.health_port:
            server = grpc.aio.server()
            servicer = health.aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
            server.add_insecure_port(f"127.0.0.1:{args.health_port}")
            await server.start()
            watching = asyncio.create_task(liveness.watch(servicer, interval=0.2))
        await kafka.run()
        await stop.wait()
        await kafka.stop()
        if watching is not None:
            watching.cancel()
        if server is not None:
            await server.stop(0)

    try:
        run_until_signal(serve, shutdown_budget=60)
    finally:
        if args.spans:
            lines = [
                json.dumps(json.loads(span.to_json(indent=None))) for span in exporter.get_finished_spans()
            ]
            args.spans.write_text("".join(f"{line}\n" for line in lines))


if __name__ == "__main__":
    sys.exit(main())
