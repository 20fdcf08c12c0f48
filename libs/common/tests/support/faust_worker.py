"""A faust worker that consumes one topic through `consume_events` into a SQLite store.

Started by the consumer tests as its own process (faust owns its event loop and signals):

    python faust_worker.py --topic TOPIC --app-id GROUP --db FILE
                           [--crash-after EVENT_ID [--crash-exit-code N]] [--spans FILE]
                           [--health-port PORT]

The broker and credentials come from the `PREFLIGHT_KAFKA_*` environment. TOPIC is taken for
the submissions topic, so the worker accepts intake's events (source `preflight.intake`) only.

The handler is an idempotent consumer: every delivery is first recorded in `deliveries` (its
own transaction, so redeliveries are visible), then `claim_event` and the effect (a row in
`effects`) are written in ONE transaction. A `SubmissionWithdrawn` whose reason is `poison`
raises `PoisonEvent`. With `--crash-after`, the process dies (`os._exit`) after the effect
of that event is committed and before the handler returns, so before faust may acknowledge the
event and commit its offset.
With `--spans`, finished spans (in-memory exporter) are written to FILE as JSON lines on exit.
With `--health-port`, the worker is watched as a service is: `setup_telemetry` (so Prometheus
metrics when `OTEL_METRICS_EXPORTER` says so), its consumer lag sampled into a `Liveness`
(`watch_consumer_lag`), published on a gRPC health server on 127.0.0.1:PORT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import faust
import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from preflight.intake.v1.events_pb2 import ReleasePlanChanged, SubmissionReceived, SubmissionWithdrawn
from preflight_common.config import KafkaSettings, Topics, env_float
from preflight_common.consumer import DeadLetters, PoisonEvent, consume_events, make_faust_app
from preflight_common.db import make_engine
from preflight_common.envelope import EventAttributes, EventRegistry
from preflight_common.idempotency import claim_event, processed_events_table
from preflight_common.liveness import Liveness
from preflight_common.metrics import watch_consumer_lag
from preflight_common.producer import EventPublisher
from preflight_common.telemetry import setup_telemetry
from sqlalchemy import Column, Integer, MetaData, String, Table, insert

CONSUMER = "test-worker"
POISON = "poison"

metadata = MetaData()
processed_events = processed_events_table(metadata)
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
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--crash-after", default="")
    parser.add_argument("--crash-exit-code", type=int, default=1)
    parser.add_argument("--spans", type=Path)
    parser.add_argument("--health-port", type=int)
    args = parser.parse_args()

    exporter = InMemorySpanExporter()
    if args.spans:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

    engine = make_engine(f"sqlite:///{args.db}")
    metadata.create_all(engine)
    settings = KafkaSettings.from_env()
    topics = Topics(submissions=args.topic)
    publisher = EventPublisher(settings, source="preflight-tests/worker")
    dead_letters = DeadLetters(publisher)
    registry = EventRegistry([SubmissionReceived, ReleasePlanChanged, SubmissionWithdrawn])
    commit_interval = env_float("PREFLIGHT_KAFKA_COMMIT_INTERVAL", 1.0)

    async def apply(attributes: EventAttributes, payload: Message) -> None:
        with engine.begin() as conn:
            conn.execute(insert(deliveries).values(event_id=attributes.id))
        if isinstance(payload, SubmissionWithdrawn) and payload.reason == POISON:
            raise PoisonEvent(f"submission {payload.submission_id} cannot be withdrawn")
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
        if attributes.id == args.crash_after:
            # Give faust several commit intervals first: had it acknowledged the event before
            # the handler returned, its offset would be committed now and never redelivered.
            await asyncio.sleep(4 * commit_interval)
            os._exit(args.crash_exit_code)

    app = make_faust_app(args.app_id, settings)
    topic = app.topic(args.topic)

    @app.agent(topic)
    async def consume(stream: faust.StreamT[bytes]) -> None:
        await consume_events(stream.events(), registry, apply, dead_letters, topics=topics)

    if args.health_port:
        setup_telemetry("preflight-tests-worker")
        liveness = Liveness()
        watch_consumer_lag(app, liveness)

        @app.task
        async def serve_health() -> None:
            server = grpc.aio.server()
            servicer = health.aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
            server.add_insecure_port(f"127.0.0.1:{args.health_port}")
            await server.start()
            await liveness.watch(servicer, interval=0.2)

    try:
        faust.Worker(app, loglevel="warning", override_logging=False).execute_from_commandline()
    finally:
        publisher.close()
        if args.spans:
            lines = [
                json.dumps(json.loads(span.to_json(indent=None))) for span in exporter.get_finished_spans()
            ]
            args.spans.write_text("".join(f"{line}\n" for line in lines))


if __name__ == "__main__":
    sys.exit(main())
