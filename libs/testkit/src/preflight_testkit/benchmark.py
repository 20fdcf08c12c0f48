"""The benchmark service's fixtures and helpers, for its tests, the image tests and the benchmarks
under bench/: real servers on loopback, nothing mocked.

- `IntakeStandIn`: a gRPC server implementing intake's ResolveCredential, GetSubmission (the
  status) and the IdentityService (the parts of intake the benchmark service and its workers call);
- `BenchmarkProcess`: the benchmark service (`serve`) in a background event loop,
  authenticating to Kafka with exactly the benchmark service's production grants;
- `EventTap`: reads the benchmark topics and decodes every event;
- `submission(...)`: a SubmissionReceived for an endpoint;
- `recording_benchmark_service()`: a BenchmarkService on loopback that accepts and keeps every
  worker's report (`RecordingBenchmarkService`);
- `endpoint_attempt(...)`: the first attempt of a knowledge-suite job against the reference model,
  as a Job manifest (k8s_manifest.build_job) takes it;
- `new_jobs(...)`: a submission's jobs as the planner makes them; `plan_pending(...)` stores them
  pending;
- `job_token_secret(...)`: an attempt's token Secret as the Kubernetes executor creates it;
- module-scoped fixtures for a test module or conftest to take in by name (`from
  preflight_testkit.benchmark import intake`): `intake`, `model_key`, `reference_model`,
  `slow_reference_model`, `service` (`BenchmarkProcess` with `SMALL_CATALOG`), `results` (a
  recording BenchmarkService's target and servicer) and `s3_endpoint` (an S3-compatible store
  on loopback, moto, holding `EVAL_LOG_BUCKET`); `s3_eval_log_store(...)`
  is that store as a Job reaches it, `read_s3_eval_log(...)` reads a log back from it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from kafka import KafkaConsumer
from preflight.benchmark.v1 import benchmark_pb2, benchmark_pb2_grpc, events_pb2
from preflight.identity.v1 import identity_pb2_grpc
from preflight.intake.v1 import events_pb2 as intake_events
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc, submission_pb2
from preflight_benchmark.adapters import events
from preflight_benchmark.adapters.executors.k8s_manifest import (
    EVAL_LOG_CREDENTIALS_DIR,
    EvalLogStore,
    token_secret_name,
)
from preflight_benchmark.adapters.store import JobStore
from preflight_benchmark.bootstrap import Components
from preflight_benchmark.config import BenchmarkSettings
from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import job_id
from preflight_benchmark.domain.ports import Attempt
from preflight_benchmark.domain.records import NewJob
from preflight_benchmark.entrypoints.server import serve
from preflight_benchmark.reference_model.server import ReferenceModelServer
from preflight_common.auth import (
    IdentityServicer,
    LocalAuthenticator,
    Principal,
    Role,
    TokenStore,
    require_role,
    tokens_table,
)
from preflight_common.bus import SOURCES, service_principal
from preflight_common.config import KafkaSettings, Topics
from preflight_common.db import make_engine
from preflight_common.envelope import EventRegistry, decode_record, encode_event
from preflight_common.grpcserver import ServerTLS, build_server
from preflight_common.ports import free_port
from preflight_common.producer import EventPublisher
from preflight_common.topics import TopicSpec, ensure_topics
from sqlalchemy import MetaData

from preflight_testkit.checkout import repository
from preflight_testkit.clients import create_principal, service_grants_as
from preflight_testkit.clock import ts
from preflight_testkit.loops import LoopThread as LoopThread
from preflight_testkit.waiting import wait_until as wait_until

if TYPE_CHECKING:
    from inspect_ai.log import EvalLog

T = TypeVar("T")
SMALL_CATALOG = repository() / "services/benchmark/tests/data/catalog_small.yaml"
"""The benchmark tests' catalog: 3 samples a suite, 2 projects."""
BENCHMARK_EVENTS = EventRegistry(
    [
        events_pb2.BenchmarkJobRequested,
        events_pb2.BenchmarkCompleted,
        events_pb2.BenchmarkFailed,
        events_pb2.BenchmarkPlanEnded,
    ]
)


class ResolveCredentialServicer(intake_pb2_grpc.IntakeServiceServicer):
    """ResolveCredential (a job's `worker` token resolves the references it knows for that job, as
    intake's does) and GetSubmission
    (a submission's status: BENCHMARKING unless `withdrawn` names it; UNAVAILABLE while
    `unavailable` is set)."""

    def __init__(self) -> None:
        self.credentials: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.withdrawn: set[str] = set()
        self.unavailable = False
        self.status_queries: list[str] = []

    async def GetSubmission(
        self, request: intake_pb2.GetSubmissionRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.GetSubmissionResponse:
        await require_role(context, Role.SERVICE, Role.REVIEWER)
        self.status_queries.append(request.submission_id)
        if self.unavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "intake is unavailable")
        status = (
            intake_pb2.SUBMISSION_STATUS_WITHDRAWN
            if request.submission_id in self.withdrawn
            else intake_pb2.SUBMISSION_STATUS_BENCHMARKING
        )
        return intake_pb2.GetSubmissionResponse(
            submission=intake_pb2.Submission(submission_id=request.submission_id, status=status)
        )

    async def ResolveCredential(
        self, request: intake_pb2.ResolveCredentialRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.ResolveCredentialResponse:
        worker = await require_role(context, Role.WORKER)
        if worker.principal_id != request.job_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "only the job's own token resolves")
        self.calls.append((request.credential_ref, request.job_id))
        if request.credential_ref not in self.credentials:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown credential reference")
        return intake_pb2.ResolveCredentialResponse(credential=self.credentials[request.credential_ref])


@dataclass
class IntakeStandIn:
    target: str
    tokens: TokenStore
    servicer: ResolveCredentialServicer
    service_token: str
    reviewer_token: str
    operator_token: str
    lab_tokens: dict[str, str] = field(default_factory=dict)

    def lab_token(self, organisation: str) -> str:
        if organisation not in self.lab_tokens:
            issued = self.tokens.create(Principal(f"lab-{organisation}", Role.LAB, organisation))
            self.lab_tokens[organisation] = issued.token
        return self.lab_tokens[organisation]

    def job_token(self, job_id: str) -> str:
        """A token of job `job_id`'s worker, as IssueJobToken issues it."""
        return self.tokens.create(Principal(job_id, Role.WORKER, "preflight")).token

    def add_credential(self, secret: str) -> str:
        ref = f"cred-{uuid.uuid4().hex}"
        self.servicer.credentials[ref] = secret
        return ref


@contextmanager
def intake_stand_in(folder: Path, tls: ServerTLS | None = None) -> Iterator[IntakeStandIn]:
    """Serve ResolveCredential and IdentityService on a free loopback port (tokens in `folder`;
    over TLS with `tls`)."""
    metadata = MetaData()
    table = tokens_table(metadata)
    engine = make_engine(f"sqlite:///{folder / 'tokens.db'}")
    metadata.create_all(engine)
    store = TokenStore(engine, table)
    servicer = ResolveCredentialServicer()  # type: ignore[abstract] # only what the benchmark calls is served
    identity = IdentityServicer(store)
    loop = LoopThread("intake-stand-in")

    def register_intake(server: grpc.aio.Server) -> None:
        intake_pb2_grpc.add_IntakeServiceServicer_to_server(servicer, server)

    def register_identity(server: grpc.aio.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(identity, server)

    async def start() -> tuple[grpc.aio.Server, int]:
        server, port, _ = build_server(
            "127.0.0.1:0",
            [register_intake, register_identity],
            authenticator=LocalAuthenticator(store),
            service_names=["preflight.intake.v1.IntakeService", "preflight.identity.v1.IdentityService"],
            tls=tls,
        )
        await server.start()
        return server, port

    server, port = loop.run(start())
    try:
        yield IntakeStandIn(
            target=f"127.0.0.1:{port}",
            tokens=store,
            servicer=servicer,
            service_token=store.create(Principal("benchmark", Role.SERVICE, "preflight")).token,
            reviewer_token=store.create(Principal("reviewer", Role.REVIEWER, "agency")).token,
            operator_token=store.create(
                Principal("operator", Role.OPERATOR, "utility", frozenset({"energy"}))
            ).token,
        )
    finally:
        loop.run(server.stop(0))
        loop.close()
        engine.dispose()


def _await_count(read: Callable[[], list[Any]], count: int, timeout: float, what: str) -> list[Any]:
    def counted() -> list[Any]:
        found = read()
        return found if len(found) == count else []

    return wait_until(counted, timeout, f"{count} {what}")


class EventTap:
    """Reads the benchmark topics from the beginning and keeps every decoded event and raw record."""

    def __init__(self, kafka: KafkaSettings, topics: list[str]) -> None:
        self._consumer = KafkaConsumer(
            *topics, auto_offset_reset="earliest", enable_auto_commit=False, **kafka.kafka_python_options()
        )
        self.events: list[tuple[str, Any, Message]] = []
        self.raw: list[bytes] = []

    def poll(self) -> None:
        for records in self._consumer.poll(timeout_ms=100).values():
            for record in records:
                self.raw.append(record.value + b"".join(v or b"" for _, v in record.headers))
                attributes, payload = decode_record(record.headers, record.value, BENCHMARK_EVENTS)
                self.events.append((record.topic, attributes, payload))

    def of(self, kind: type[Message], submission_id: str) -> list[Any]:
        self.poll()
        matching: list[Any] = [p for _, _, p in self.events if isinstance(p, kind)]
        return [p for p in matching if p.submission_id == submission_id]

    def terminal(self, submission_id: str) -> list[Any]:
        return self.of(events_pb2.BenchmarkCompleted, submission_id) + self.of(
            events_pb2.BenchmarkFailed, submission_id
        )

    def requested(self, submission_id: str, count: int, timeout: float) -> list[Any]:
        """The submission's BenchmarkJobRequested events once exactly `count` are read;
        TimeoutError after `timeout` seconds."""
        return _await_count(
            lambda: self.of(events_pb2.BenchmarkJobRequested, submission_id), count, timeout, "jobs requested"
        )

    def ended(self, submission_id: str, count: int, timeout: float) -> list[Any]:
        """The submission's terminal events (BenchmarkCompleted, BenchmarkFailed) once exactly
        `count` are read; TimeoutError after `timeout` seconds."""
        return _await_count(lambda: self.terminal(submission_id), count, timeout, "terminal events")

    def close(self) -> None:
        self._consumer.close()


def submission(
    *,
    base_url: str,
    model_name: str,
    credential_ref: str,
    organisation: str = "lab-a",
    start: datetime | None = None,
    end: datetime | None = None,
) -> intake_events.SubmissionReceived:
    """A SubmissionReceived for an OpenAI-compatible endpoint (window: open now for a week by default)."""
    now = datetime.now(UTC)
    return intake_events.SubmissionReceived(
        submission_id=str(uuid.uuid4()),
        organisation=organisation,
        model=submission_pb2.ModelIdentity(developer=organisation, name="frontier", version="2026-06"),
        access=submission_pb2.ModelAccess(
            endpoint=submission_pb2.EndpointAccess(
                base_url=base_url, model_name=model_name, credential_ref=credential_ref
            )
        ),
        access_window=submission_pb2.AccessWindow(
            start=ts(start or now - timedelta(minutes=1)),
            end=ts(end or now + timedelta(days=7)),
        ),
        received_at=ts(now),
        planned_release=ts(now + timedelta(days=30)),
    )


@dataclass
class BenchmarkProcess:
    """The running service and the clients tests use around it.

    `settings` are the service's own (its Kafka principal has the benchmark service's
    production grants and no more); `admin` are the broker administrator's, with which the
    tests create topics, play intake (`publisher`) and read any topic (`tap`).
    """

    settings: BenchmarkSettings
    admin: KafkaSettings
    components: Components
    port: int
    publisher: EventPublisher
    tap: EventTap
    root: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def publish(self, message: Message, event_id: str | None = None) -> str:
        """Publish an intake event on the submissions topic; returns its event id."""
        subject = str(cast(Any, message).submission_id)  # every intake event has one
        record = encode_event(message, source=SOURCES["intake"], subject=subject, event_id=event_id)
        self.publisher.publish_record(self.settings.topics.submissions, record)
        assert record.attributes is not None
        return record.attributes.id


def service_settings(
    root: Path,
    kafka: KafkaSettings,
    intake: IntakeStandIn,
    *,
    max_concurrency: int = 2,
    max_attempts: int = 3,
) -> BenchmarkSettings:
    """Settings for a service on fresh topics, with its files under `root`; `kafka` is the broker
    administrator's (`benchmark_process` gives the service a principal of its own)."""
    suffix = uuid.uuid4().hex[:10]
    return BenchmarkSettings(
        database_url=f"sqlite:///{root / 'benchmark.db'}",
        listen=f"127.0.0.1:{free_port()}",
        identity_target=intake.target,
        service_token=intake.service_token,
        intake_target=intake.target,
        benchmark_target="",
        executor="local",
        max_concurrency=max_concurrency,
        max_attempts=max_attempts,
        poll_interval=0.1,
        relay_interval=0.05,
        log_root=str(root / "eval-logs"),
        work_dir=str(root / "work"),
        worker_memory=None,
        shutdown_grace=2.0,
        consumer_group=f"{service_principal('benchmark')}-test-{suffix}",
        kafka=kafka,
        topics=Topics(
            submissions=f"test.submissions.{suffix}",
            benchmark_jobs=f"test.jobs.{suffix}",
            benchmark_results=f"test.results.{suffix}",
        ),
    )


@contextmanager
def benchmark_process(settings: BenchmarkSettings, root: Path) -> Iterator[BenchmarkProcess]:
    """Create the topics and run `serve(settings)` in a background loop until the block ends.

    `settings.kafka` is the administrator's: it creates the topics and a principal with exactly
    the benchmark service's production grants on them, as which the service runs.
    """
    topics = settings.topics
    admin = settings.kafka
    user = f"{service_principal('benchmark')}-{uuid.uuid4().hex[:10]}"
    grants = service_grants_as(user, "benchmark", topics)
    settings = replace(settings, kafka=create_principal(admin, user, grants, root / f"{user}.password"))
    ensure_topics(
        admin,
        [
            TopicSpec(name, partitions=1)
            for name in (
                topics.submissions,
                Topics.dlq(topics.submissions),
                topics.benchmark_jobs,
                topics.benchmark_results,
            )
        ],
    )
    loop = LoopThread("benchmark-service")
    stop = asyncio.Event()
    ready: concurrent.futures.Future[tuple[Components, int]] = concurrent.futures.Future()
    running = loop.submit(serve(settings, stop=stop, on_ready=lambda c, p: ready.set_result((c, p))))
    started: list[concurrent.futures.Future[Any]] = [ready, running]
    concurrent.futures.wait(started, timeout=60, return_when=concurrent.futures.FIRST_COMPLETED)
    if running.done():
        running.result()  # raises what stopped the service
    components, port = ready.result(0)
    publisher = EventPublisher(admin, source=SOURCES["intake"])
    tap = EventTap(admin, [topics.benchmark_jobs, topics.benchmark_results])
    try:
        yield BenchmarkProcess(settings, admin, components, port, publisher, tap, root)
    finally:
        loop.loop.call_soon_threadsafe(stop.set)
        running.result(60)
        loop.close()
        publisher.close()
        tap.close()


class RecordingBenchmarkService(benchmark_pb2_grpc.BenchmarkServiceServicer):
    """Accepts every ReportJobResult and keeps it in `reports`."""

    def __init__(self) -> None:
        self.reports: list[benchmark_pb2.ReportJobResultRequest] = []

    def ReportJobResult(
        self, request: benchmark_pb2.ReportJobResultRequest, context: grpc.ServicerContext
    ) -> benchmark_pb2.ReportJobResultResponse:
        self.reports.append(request)
        return benchmark_pb2.ReportJobResultResponse(accepted=True)


@contextmanager
def recording_benchmark_service() -> Iterator[tuple[str, RecordingBenchmarkService]]:
    """A `RecordingBenchmarkService` on a free loopback port: (its target, the servicer)."""
    servicer = RecordingBenchmarkService()  # type: ignore[abstract] # only what workers call is served
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    benchmark_pb2_grpc.add_BenchmarkServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(grace=None)


def endpoint_attempt(model: ReferenceModelServer, credential_ref: str, log_root: str) -> Attempt:
    """The first attempt of a knowledge-suite job against the reference model (two samples), its
    eval logs under `log_root`/<submission id>."""
    submission_id = str(uuid.uuid4())
    job_id = f"bj-{uuid.uuid4().hex}"
    job = events_pb2.BenchmarkJobRequested(
        job_id=job_id,
        submission_id=submission_id,
        suite_id="cyber.knowledge",
        suite_version="1.0.0",
        attempt=1,
        task_ref="preflight_benchmark/knowledge",
        sample_limit=2,
        access=submission_pb2.ModelAccess(
            endpoint=submission_pb2.EndpointAccess(
                base_url=model.base_url, model_name=model.model_name, credential_ref=credential_ref
            )
        ),
    )
    assignment = benchmark_pb2.WorkerAssignment(
        job=job, attempt=1, log_dir=f"{log_root.rstrip('/')}/{submission_id}"
    )
    return Attempt(
        job_id=job_id,
        submission_id=submission_id,
        suite_id=job.suite_id,
        attempt=1,
        access_kind="endpoint",
        resources=Resources(cpu="1", memory="2Gi"),
        timeout=timedelta(minutes=10),
        assignment=json_format.MessageToJson(assignment, indent=None),
    )


def exploit_attempt(job_id: str = "bj-" + "e" * 32) -> Attempt:
    """An attempt of cyber.exploit, the suite that runs model-written code (catalog sandbox
    `bwrap`), for building its worker Job."""
    return Attempt(
        job_id=job_id,
        submission_id="sub-exploit",
        suite_id="cyber.exploit",
        attempt=1,
        access_kind="endpoint",
        resources=Resources(cpu="1", memory="2Gi"),
        timeout=timedelta(hours=1),
        assignment="{}",
        sandbox="bwrap",
    )


def new_jobs(submission_id: str, suites: Iterable[str], window: tuple[datetime, datetime]) -> list[NewJob]:
    """Jobs of `suites` (version 1, two attempts each) for the submission, runnable within
    `window`, with their BenchmarkJobRequested records, as the planner makes them."""
    jobs = []
    for suite in suites:
        message = events_pb2.BenchmarkJobRequested(
            job_id=job_id(submission_id, suite, "1"), submission_id=submission_id, suite_id=suite
        )
        jobs.append(
            NewJob(
                message.job_id,
                suite,
                "1",
                "capability",
                2,
                *window,
                message.SerializeToString(),
                events.requested_record(message),
            )
        )
    return jobs


def plan_pending(
    store: JobStore,
    submission_id: str,
    organisation: str,
    suites: Iterable[str],
    window: tuple[datetime, datetime],
) -> list[str]:
    """The `new_jobs` of the submission stored pending as the planner stores them (their records
    in the outbox); the jobs' ids."""
    jobs = new_jobs(submission_id, suites, window)
    store.plan(f"plan-{submission_id}", submission_id, organisation, "local", jobs, datetime.now(UTC))
    return [j.job_id for j in jobs]


def job_token_secret(intake: IntakeStandIn, attempt: Attempt) -> dict[str, dict[str, str]]:
    """The attempt's token Secret as the Kubernetes executor creates it (`token_secret`): name ->
    key -> value, its job's token under `token`."""
    return {token_secret_name(attempt.job_id, attempt.attempt): {"token": intake.job_token(attempt.job_id)}}


EVAL_LOG_BUCKET = "preflight-eval-logs"
EVAL_LOG_STORE_SECRET = "eval-log-store"  # noqa: S105 - a Secret's name
# The store's credentials as a worker gets them: a file of the Secret, named by the client's setting.
S3_CREDENTIALS = "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n"


def s3_eval_log_store(endpoint: str) -> EvalLogStore:
    """The store at `endpoint` (`s3_endpoint`) as a Job reaches it: its keys the file `credentials`
    (`S3_CREDENTIALS`) of the Secret `EVAL_LOG_STORE_SECRET`."""
    return EvalLogStore(
        secret=EVAL_LOG_STORE_SECRET,
        env={
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_SHARED_CREDENTIALS_FILE": f"{EVAL_LOG_CREDENTIALS_DIR}/credentials",
        },
    )


def read_s3_eval_log(uri: str, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> EvalLog:
    """The eval log at `uri` in the store at `endpoint`, read with the store's keys set for the test."""
    from inspect_ai.log import read_eval_log

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    return read_eval_log(uri)


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntakeStandIn]:
    with intake_stand_in(tmp_path_factory.mktemp("intake")) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def model_key() -> str:
    """The lab's endpoint credential: long and random, so a search for it cannot hit by chance."""
    return "sk-lab-" + secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def reference_model(model_key: str) -> Iterator[ReferenceModelServer]:
    server = ReferenceModelServer(api_key=model_key, model_name="frontier-test").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slow_reference_model(model_key: str) -> Iterator[ReferenceModelServer]:
    """The reference model answering each request after 8 s."""
    # Inspect sends a suite's samples concurrently, so a worker takes about one delay: long enough
    # that a test can withdraw or kill it mid-run even on a loaded machine.
    server = ReferenceModelServer(api_key=model_key, model_name="frontier-slow", delay=8.0).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(
    kafka_settings: KafkaSettings, intake: IntakeStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BenchmarkProcess]:
    """The benchmark service (planner, dispatcher with the LocalExecutor, gRPC, relay) on fresh topics,
    with the small test catalog (`SMALL_CATALOG`)."""
    root = tmp_path_factory.mktemp("benchmark")
    mp = pytest.MonkeyPatch()
    mp.setenv("PREFLIGHT_BENCHMARK_CATALOG_FILE", str(SMALL_CATALOG))
    try:
        with benchmark_process(service_settings(root, kafka_settings, intake), root) as process:
            yield process
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def results() -> Iterator[tuple[str, RecordingBenchmarkService]]:
    with recording_benchmark_service() as served:
        yield served


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback (its URL), with the bucket `EVAL_LOG_BUCKET`."""
    import boto3  # type: ignore[import-untyped]
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto accepts any key
        )
        s3.create_bucket(Bucket=EVAL_LOG_BUCKET)
        yield endpoint
    finally:
        server.stop()
