"""SubmitModel throughput and latency, next to a bare grpc.aio server answering same-size messages.

Usage: python bench/intake_throughput.py [--seconds 8] [--concurrency 1,16] [--no-kafka] [--postgresql]

Starts, each as its own process on loopback: a local Apache Kafka broker (unless --no-kafka),
`preflight-intake serve` on a fresh SQLite database (or, with --postgresql, a throwaway local
PostgreSQL server's; so every submission is authenticated, validated, encrypted, stored with its
status history and outbox event, and relayed to Kafka), the services' gRPC runtime alone
(`preflight_common.grpcserver.build_server`: the tracing and authentication interceptors, the
token cache over the same token table, the request guard) around a SubmitModel that answers
intake's last response without doing anything, and a bare grpc.aio server whose one method answers
with a response of the same size. The same asyncio load generator then drives each, at each
concurrency in turn, for the same time, and prints calls/s with p50/p99 latency and the server
process's CPU per call side by side, the ratios of their throughputs to the bare server's, and
how long the relay took to drain the outbox after the load. Between them it drives SubmitModel's
use case alone (`Intake.submit` over the same database, in the bench's process, no gRPC: the
request's decoding, validation, encryption, the event and the transaction), with this process's
CPU per call. The runtime's line is the ceiling of any SubmitModel handler; intake's time per call
is about the runtime's plus the use case's. Goals: at concurrency 1, at least half the bare
server's throughput and p99 at most 20 ms; throughput growing with concurrency. About two minutes
with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from preflight.common.v1 import common_pb2
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc, submission_pb2
from preflight_common.auth import INTROSPECTION_CACHE_TTL, LocalAuthenticator, Principal, Role, TokenStore
from preflight_common.config import KafkaSettings, Topics
from preflight_common.db import make_engine
from preflight_common.fields import timestamp
from preflight_common.grpcserver import build_server
from preflight_common.localkafka import LocalKafka
from preflight_common.ports import free_port
from preflight_common.telemetry import setup_telemetry
from preflight_common.topics import TopicSpec, ensure_topics
from preflight_intake.adapters import codec, tables
from preflight_intake.adapters.crypto import KEYS_VARIABLE, Keyring, new_key_entry
from preflight_intake.bootstrap import build, migrate
from preflight_intake.config import IntakeSettings
from preflight_intake.domain.access import Caller
from preflight_testkit.postgres import LocalPostgres
from sqlalchemy import func, select

BASELINE_METHOD = "/bench.Baseline/Call"
SERVICE = intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name
TOPICS = Topics(submissions="bench.submissions")


def submit_request() -> intake_pb2.SubmitModelRequest:
    now = datetime.now(UTC)
    return intake_pb2.SubmitModelRequest(
        model=submission_pb2.ModelIdentity(developer="bench-lab", name="frontier", version="1.0"),
        planned_release=timestamp(now + timedelta(days=20)),
        access=intake_pb2.ModelAccessSpec(
            endpoint=intake_pb2.EndpointAccessSpec(
                base_url="https://api.bench-lab.example/v1",
                model_name="frontier-preview",
                credential="sk-" + "x" * 40,
            )
        ),
        access_window=submission_pb2.AccessWindow(
            start=timestamp(now), end=timestamp(now + timedelta(days=10))
        ),
        contacts=[common_pb2.Contact(name="Ada", email="ada@bench-lab.example", role="security")],
        declared_capabilities=["code_generation", "tool_use"],
        intended_use="General-purpose assistant.",
        idempotency_key=f"bench-{uuid.uuid4()}",
    )


async def drive(call: Callable[[], Awaitable[object]], seconds: float, concurrency: int) -> list[float]:
    """Run `call` from `concurrency` workers for `seconds`; return each call's latency (s)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


@dataclass(frozen=True)
class Run:
    """One measured load: each call's latency (s) and the CPU the server process spent (s)."""

    latencies: list[float]
    server_cpu: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc), threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(
    call: Callable[[], Awaitable[object]], seconds: float, concurrency: int, server_pid: int
) -> Run:
    before = cpu_seconds(server_pid)
    latencies = await drive(call, seconds, concurrency)
    return Run(latencies, cpu_seconds(server_pid) - before)


def rate(run: Run, seconds: float) -> float:
    return len(run.latencies) / seconds


def summary(name: str, run: Run, seconds: float) -> str:
    """Throughput, p50/p99 latency, and the server's CPU per call: on a shared, loaded machine
    the last moves least with the load of other processes."""
    ordered = sorted(run.latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    cpu = run.server_cpu / len(ordered) * 1000
    return (
        f"{name:<44} {rate(run, seconds):>7.0f}/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
        f"   server CPU {cpu:5.2f} ms/call   ({len(ordered)} calls)"
    )


async def bench_submit(
    target: str, token: str, seconds: float, levels: list[int], server_pid: int
) -> tuple[dict[int, Run], bytes]:
    """Latencies of SubmitModel at each concurrency in `levels`, and the last response."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)
        last = intake_pb2.SubmitModelResponse()

        async def call() -> None:
            nonlocal last
            last = await stub.SubmitModel(submit_request(), metadata=metadata, timeout=30)

        results = {}
        for concurrency in levels:
            await drive(call, 2.0, concurrency)  # warm-up
            results[concurrency] = await measured(call, seconds, concurrency, server_pid)
        return results, last.SerializeToString()


async def bench_use_case(database_url: str, keys: str, seconds: float, levels: list[int]) -> dict[int, Run]:
    """Latencies of SubmitModel's use case, in this process over the database at `database_url`
    (wired as intake wires it), at each concurrency in `levels`, with this process's CPU."""
    components = build(IntakeSettings(database_url=database_url, topics=TOPICS), Keyring.parse(keys))
    caller = Caller("bench", Role.LAB.value, "bench-lab")

    async def call() -> None:
        request = submit_request()
        await components.intake.submit(caller, codec.submission_draft(request), codec.request_digest(request))

    try:
        results = {}
        for concurrency in levels:
            await drive(call, 2.0, concurrency)
            results[concurrency] = await measured(call, seconds, concurrency, os.getpid())
        return results
    finally:
        components.store.close()
        components.engine.dispose()


async def bench_baseline(
    target: str, request_size: int, seconds: float, levels: list[int], server_pid: int
) -> dict[int, Run]:
    async with grpc.aio.insecure_channel(target) as channel:
        method = channel.unary_unary(BASELINE_METHOD)
        payload = b"r" * request_size

        async def call() -> None:
            await method(payload, timeout=30)

        results = {}
        for concurrency in levels:
            await drive(call, 2.0, concurrency)
            results[concurrency] = await measured(call, seconds, concurrency, server_pid)
        return results


def serve_baseline(port: int, response_size: int) -> None:
    """The bare server: one generic unary method answering `response_size` bytes."""
    answer = b"a" * response_size

    async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return answer

    async def main() -> None:
        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            "bench.Baseline", {"Call": grpc.unary_unary_rpc_method_handler(handle)}
        )
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


def serve_runtime(port: int, response_file: str) -> None:
    """The services' gRPC runtime, authenticating against the token table of the database
    PREFLIGHT_DATABASE_URL names (as intake's), around a SubmitModel answering the response in
    `response_file`."""
    response = intake_pb2.SubmitModelResponse.FromString(Path(response_file).read_bytes())
    database_url = os.environ["PREFLIGHT_DATABASE_URL"]

    async def main() -> None:
        setup_telemetry("preflight-bench-runtime")
        tokens = TokenStore(make_engine(database_url), tables.api_tokens)

        async def submit(
            request: intake_pb2.SubmitModelRequest, context: grpc.aio.ServicerContext
        ) -> intake_pb2.SubmitModelResponse:
            return response

        def register(server: grpc.aio.Server) -> None:
            method = grpc.unary_unary_rpc_method_handler(
                submit,
                request_deserializer=intake_pb2.SubmitModelRequest.FromString,
                response_serializer=intake_pb2.SubmitModelResponse.SerializeToString,
            )
            server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(SERVICE, {"SubmitModel": method}),)
            )

        server, _port, _health = build_server(
            f"127.0.0.1:{port}",
            [register],
            authenticator=LocalAuthenticator(tokens, cache_ttl=INTROSPECTION_CACHE_TTL),
            service_names=[SERVICE],
        )
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


def wait_for_line(proc: subprocess.Popen[str], log: Path | None, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process exited: {log.read_text() if log else ''}"
        if log is not None and text in log.read_text(errors="replace"):
            return
        if log is None and proc.stdout is not None and text in proc.stdout.readline():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{text!r} not seen within {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", default="1,16", help="comma-separated levels, in order")
    parser.add_argument("--no-kafka", action="store_true", help="no broker: events stay in the outbox")
    parser.add_argument("--postgresql", action="store_true", help="a local PostgreSQL server, not SQLite")
    parser.add_argument(
        "--baseline-server", nargs=2, type=int, metavar=("PORT", "SIZE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--runtime-server", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        serve_baseline(*args.baseline_server)
        return 0
    if args.runtime_server:
        port, response_file = args.runtime_server
        serve_runtime(int(port), response_file)
        return 0
    levels = [int(level) for level in args.concurrency.split(",")]

    work = Path(tempfile.mkdtemp(prefix="intake-bench-"))
    kafka = None if args.no_kafka else LocalKafka(work / "kafka")
    postgres = LocalPostgres() if args.postgresql else None
    processes: list[subprocess.Popen[str]] = []
    try:
        kafka_settings = KafkaSettings("127.0.0.1:9")  # nothing listens there: the relay keeps retrying
        if kafka is not None:
            started = time.monotonic()
            kafka.start()
            kafka_settings = kafka.admin_settings()
            print(f"kafka broker ready in {time.monotonic() - started:.1f}s")
            # The topic intake writes, and those its progress agents consume (as in a deployment: a
            # missing one would have them retry its metadata throughout the run).
            names = (TOPICS.submissions, TOPICS.benchmark_jobs, TOPICS.benchmark_results, TOPICS.reviews)
            ensure_topics(kafka_settings, [TopicSpec(name, partitions=6) for name in names])

        database_url = f"sqlite:///{work / 'intake.db'}"
        if postgres is not None:
            postgres.start()
            database_url = postgres.url
        migrate(database_url)
        engine = make_engine(database_url)
        token = TokenStore(engine, tables.api_tokens).create(Principal("bench", Role.LAB, "bench-lab")).token
        intake_port = free_port()
        keys = work / "encryption.keys"
        keys.write_text(new_key_entry("bench"))
        log = work / "intake.log"
        env = {
            **os.environ,
            "PREFLIGHT_DATABASE_URL": database_url,
            "PREFLIGHT_GRPC_LISTEN": f"127.0.0.1:{intake_port}",
            KEYS_VARIABLE: str(keys),
            **kafka_settings.env(),
            "PREFLIGHT_TOPIC_SUBMISSIONS": TOPICS.submissions,
            "PREFLIGHT_INTAKE_CONSUMER_GROUP": f"intake-bench-{uuid.uuid4().hex[:6]}",
        }
        with log.open("w") as out:
            intake = subprocess.Popen(
                [sys.executable, "-m", "preflight_intake.entrypoints.cli", "serve"],
                env=env,
                stdout=out,
                stderr=out,
                text=True,
            )
        processes.append(intake)
        wait_for_line(intake, log, f"intake serving on port {intake_port}")

        print(f"load: {levels} concurrent callers, {args.seconds:.0f}s each after a 2s warm-up")
        intake_latencies, response = asyncio.run(
            bench_submit(f"127.0.0.1:{intake_port}", token, args.seconds, levels, intake.pid)
        )
        drain_started = time.monotonic()
        pending = 1
        while kafka is not None and pending and time.monotonic() - drain_started < 60:
            with engine.connect() as conn:
                pending = conn.execute(
                    select(func.count()).where(tables.outbox.c.sent_at.is_(None))
                ).scalar_one()
            time.sleep(0.1)
        drained = time.monotonic() - drain_started
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(tables.submissions)).scalar_one()
        intake.terminate()
        intake.wait(30)

        use_case_latencies = asyncio.run(bench_use_case(database_url, keys.read_text(), args.seconds, levels))

        response_file = work / "response.bin"
        response_file.write_bytes(response)
        runtime_port = free_port()
        runtime = subprocess.Popen(
            [sys.executable, __file__, "--runtime-server", str(runtime_port), str(response_file)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(runtime)
        wait_for_line(runtime, None, "ready")
        runtime_latencies, _ = asyncio.run(
            bench_submit(f"127.0.0.1:{runtime_port}", token, args.seconds, levels, runtime.pid)
        )
        runtime.terminate()
        runtime.wait(30)

        baseline_port = free_port()
        baseline = subprocess.Popen(
            [sys.executable, __file__, "--baseline-server", str(baseline_port), str(len(response))],
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(baseline)
        wait_for_line(baseline, None, "ready")
        request_size = submit_request().ByteSize()
        baseline_latencies = asyncio.run(
            bench_baseline(f"127.0.0.1:{baseline_port}", request_size, args.seconds, levels, baseline.pid)
        )

        print(f"messages: request {request_size} B, response {len(response)} B")
        database = "PostgreSQL" if postgres is not None else "SQLite"
        for level in levels:
            ours, empty, bare = intake_latencies[level], runtime_latencies[level], baseline_latencies[level]
            print(f"concurrency {level}:")
            print(summary(f"  SubmitModel (intake, {database}, outbox)", ours, args.seconds))
            use_case = summary(
                "  its use case alone, in process, no gRPC", use_case_latencies[level], args.seconds
            )
            print(use_case.replace("server CPU", "       CPU"))
            print(summary("  services' gRPC runtime, empty SubmitModel", empty, args.seconds))
            print(summary("  bare grpc.aio server, same-size messages", bare, args.seconds))
            bare_rate = rate(bare, args.seconds)
            print(
                f"  intake/bare throughput {rate(ours, args.seconds) / bare_rate:.2f}x"
                f"   runtime/bare {rate(empty, args.seconds) / bare_rate:.2f}x"
            )
        print(f"submissions stored by intake: {stored}", end="")
        print(
            f"; outbox drained to Kafka {drained:.1f}s after the load" if kafka is not None else " (no Kafka)"
        )
        engine.dispose()
        return 0
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if kafka is not None:
            kafka.stop()
        if postgres is not None:
            postgres.stop()


if __name__ == "__main__":
    sys.exit(main())
