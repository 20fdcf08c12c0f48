"""Intake's fixtures and helpers, for its tests: a real intake server on loopback (in this process,
`IntakeUnderTest`, or as child processes, `IntakeProcesses`), tokens for principals of every role,
well-formed requests to start from, and `ClearinghouseStandIn`, the clearinghouse's GetSigningKey on
loopback with a real Ed25519 key that signs review reports as the clearinghouse does. Nothing is
mocked.

Fixtures, taken in by name by services/intake/tests/conftest.py: `clearinghouse_stand_in`
(session), `intake` (one server a test module shares), `intake_factory`, `intake_settings`,
`intake_processes`, `topics` (a `TopicReader` as the broker's administrator), `make_request`,
`timestamp`, `credential`; and `eventually` (preflight_testkit.waiting).
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.timestamp_pb2 import Timestamp
from kafka import KafkaConsumer, TopicPartition
from preflight.clearinghouse.v1 import clearinghouse_pb2
from preflight.clearinghouse.v1 import events_pb2 as review_events
from preflight.common.v1 import common_pb2
from preflight.intake.v1 import intake_pb2, submission_pb2
from preflight_common.auth import Principal, Role, TokenStore
from preflight_common.bus import service_principal
from preflight_common.config import KafkaSettings, Topics
from preflight_common.db import make_engine
from preflight_common.ports import free_port
from preflight_common.topics import TopicSpec, ensure_topics
from preflight_intake.adapters import tables
from preflight_intake.adapters.crypto import Keyring, new_key_entry
from preflight_intake.bootstrap import migrate
from preflight_intake.config import IntakeSettings
from preflight_intake.entrypoints.server import serve
from sqlalchemy import Engine, func, select

from preflight_testkit.clients import create_principal, service_grants_as
from preflight_testkit.clock import ts
from preflight_testkit.waiting import wait_until as wait_until

KEY_ID = "ed25519-stand-in"


class SigningKeys:
    """Answers GetSigningKey for its one key (NOT_FOUND otherwise) and notes who asked."""

    def __init__(self) -> None:
        self.private_key = Ed25519PrivateKey.generate()
        self.public_key = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.authorizations: list[str] = []

    def get_signing_key(
        self, request: clearinghouse_pb2.GetSigningKeyRequest, context: grpc.ServicerContext
    ) -> clearinghouse_pb2.GetSigningKeyResponse:
        self.authorizations += [
            value for key, value in context.invocation_metadata() if key == "authorization"
        ]
        if request.key_id != KEY_ID:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such signing key")
        return clearinghouse_pb2.GetSigningKeyResponse(
            key_id=KEY_ID, algorithm="Ed25519", public_key=self.public_key
        )

    def report(
        self,
        submission_id: str,
        *,
        signed_for: str = "",
        signer: Ed25519PrivateKey | None = None,
        **claims: Any,
    ) -> review_events.ReviewReportReady:
        """A ReviewReportReady for `submission_id`; its body is signed as being for `signed_for` (default:
        the same submission) by `signer` (default: this key)."""
        report_id = str(uuid.uuid4())
        body = json.dumps(
            {
                "schema": "preflight.review-report/1",
                "report_id": report_id,
                "submission_id": signed_for or submission_id,
                "version": 1,
                "signing_key_id": KEY_ID,
                "tier": "TIER_1",
                **claims,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        return review_events.ReviewReportReady(
            report_id=report_id,
            submission_id=submission_id,
            version=1,
            tier="TIER_1",
            body=body,
            signature=(signer or self.private_key).sign(body),
            signing_key_id=KEY_ID,
        )


class ClearinghouseStandIn:
    """`SigningKeys` served on 127.0.0.1 until `stop()`."""

    def __init__(self) -> None:
        self.keys = SigningKeys()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        method = grpc.unary_unary_rpc_method_handler(
            self.keys.get_signing_key,
            request_deserializer=clearinghouse_pb2.GetSigningKeyRequest.FromString,
            response_serializer=clearinghouse_pb2.GetSigningKeyResponse.SerializeToString,
        )
        service = clearinghouse_pb2.DESCRIPTOR.services_by_name["ClearinghouseService"].full_name
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {"GetSigningKey": method}),)
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None)


CREDENTIAL = "sk-live-7f3a9c2e-THIS-IS-THE-LAB-SECRET-0b1d"


def valid_request(organisation: str = "lab-a", **overrides: Any) -> intake_pb2.SubmitModelRequest:
    """A SubmitModelRequest every rule accepts (release in 20 days, a 10-day window)."""
    now = datetime.now(UTC)
    request = intake_pb2.SubmitModelRequest(
        model=submission_pb2.ModelIdentity(developer=organisation, name="frontier", version="1.0"),
        planned_release=ts(now + timedelta(days=20)),
        access=intake_pb2.ModelAccessSpec(
            endpoint=intake_pb2.EndpointAccessSpec(
                base_url="https://api.lab.example/v1", model_name="frontier-preview", credential=CREDENTIAL
            )
        ),
        access_window=submission_pb2.AccessWindow(start=ts(now), end=ts(now + timedelta(days=10))),
        contacts=[common_pb2.Contact(name="Ada", email="ada@lab.example", role="security")],
        declared_capabilities=["code_generation"],
        intended_use="assistant",
        idempotency_key=f"test-{uuid.uuid4()}",
    )
    for name, value in overrides.items():
        setattr(request, name, value)
    return request


@dataclass
class IntakeUnderTest:
    """An intake server running on loopback, and direct access to its database for checks."""

    settings: IntakeSettings
    keyring: Keyring
    port: int = 0
    _stop: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _error: list[BaseException] = field(default_factory=list)
    _engine: Engine | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url)
        return self._engine

    def start(self) -> IntakeUnderTest:
        ready = threading.Event()

        def ready_on(port: int) -> None:
            self.port = port
            ready.set()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve(self.settings, self.keyring, stop=self._stop, on_ready=ready_on)

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:
                self._error.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="intake-under-test", daemon=True)
        self._thread.start()
        ready.wait(60)
        if self._error:
            raise self._error[0]
        assert self.port, "intake did not start within 60s"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)
            if self._thread.is_alive():
                faulthandler.dump_traceback(all_threads=True)
                raise AssertionError("intake did not stop within 30s (threads dumped above)")
        if self._engine is not None:
            self._engine.dispose()

    def token(
        self,
        principal_id: str,
        role: Role = Role.LAB,
        organisation: str = "lab-a",
        expires_at: datetime | None = None,
    ) -> str:
        return self.tokens().create(Principal(principal_id, role, organisation), expires_at).token

    def tokens(self) -> TokenStore:
        return TokenStore(self.engine, tables.api_tokens)

    def count(self, table: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def make_settings(tmp: Path, admin: KafkaSettings, **overrides: Any) -> IntakeSettings:
    """Settings of an intake server with topics of its own, authenticating as a principal with
    exactly intake's production grants on them (created here by the administrator `admin`)."""
    suffix = uuid.uuid4().hex[:8]
    topics = Topics(
        submissions=f"submissions.{suffix}",
        benchmark_jobs=f"jobs.{suffix}",
        benchmark_results=f"results.{suffix}",
        reviews=f"reviews.{suffix}",
    )
    tmp.mkdir(parents=True, exist_ok=True)
    user = f"{service_principal('intake')}-{suffix}"
    kafka = create_principal(admin, user, service_grants_as(user, "intake", topics), tmp / "kafka.password")
    settings = IntakeSettings(
        database_url=f"sqlite:///{tmp / 'intake.db'}",
        listen="127.0.0.1:0",
        relay_interval=0.1,
        shutdown_grace=2.0,
        consumer_group=f"{service_principal('intake')}-{suffix}",
        kafka=kafka,
        topics=topics,
    )
    return replace(settings, **overrides)


def create_topics(settings: IntakeSettings, admin: KafkaSettings) -> None:
    """Create the topics intake uses, and their DLQs, as the administrator `admin`."""
    names = [
        settings.topics.submissions,
        settings.topics.benchmark_jobs,
        settings.topics.benchmark_results,
        settings.topics.reviews,
    ]
    ensure_topics(admin, [TopicSpec(n, partitions=1) for n in names + [Topics.dlq(n) for n in names]])


def fresh_keyring() -> Keyring:
    return Keyring.parse(new_key_entry("test1"))


@pytest.fixture(scope="session")
def clearinghouse_stand_in() -> Iterator[ClearinghouseStandIn]:
    """The clearinghouse's GetSigningKey on loopback, with the key its review reports are signed with."""
    stand_in = ClearinghouseStandIn()
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="module")
def intake(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_settings: KafkaSettings,
    clearinghouse_stand_in: ClearinghouseStandIn,
) -> Iterator[IntakeUnderTest]:
    """One intake server (SQLite, real Kafka) shared by a test module, trusting the stand-in's key."""
    settings = make_settings(
        tmp_path_factory.mktemp("intake"), kafka_settings, clearinghouse_target=clearinghouse_stand_in.target
    )
    create_topics(settings, kafka_settings)
    server = IntakeUnderTest(settings, fresh_keyring()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def intake_factory(tmp_path: Path, kafka_settings: KafkaSettings) -> Iterator[Callable[..., IntakeUnderTest]]:
    """`start(settings=None, **overrides)`: an intake server with its own database and topics (or the
    given settings, e.g. from `intake_settings`), stopped after the test."""
    started: list[IntakeUnderTest] = []

    def start(settings: IntakeSettings | None = None, **overrides: Any) -> IntakeUnderTest:
        if settings is None:
            settings = make_settings(tmp_path / f"i{len(started)}", kafka_settings, **overrides)
            create_topics(settings, kafka_settings)
        server = IntakeUnderTest(settings, fresh_keyring()).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def intake_settings(tmp_path: Path, kafka_settings: KafkaSettings) -> IntakeSettings:
    """Settings for one intake server, its topics created (to start it later with `intake_factory`)."""
    settings = make_settings(tmp_path / "prepared", kafka_settings)
    create_topics(settings, kafka_settings)
    return settings


@dataclass
class IntakeProcess:
    """`preflight-intake serve` as a child process (its output goes to a log file)."""

    env: dict[str, str]
    log_path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> IntakeProcess:
        log = self.log_path.open("ab")
        proc = self.proc = subprocess.Popen(
            [sys.executable, "-m", "preflight_intake.entrypoints.cli", "serve"],
            env=self.env,
            stdout=log,
            stderr=log,
        )

        def serving() -> bool:
            if f"intake serving on port {self.port}" in self.log_path.read_text(errors="replace"):
                return True
            assert proc.poll() is None, f"intake exited:\n{self.log_path.read_text()}"
            return False

        wait_until(serving, 60, "intake to start serving")
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(30)


@dataclass
class IntakeProcesses:
    """Starts intake child processes that share one database, key, port and topics (so one can
    take over after another was killed)."""

    settings: IntakeSettings
    base_env: dict[str, str]
    log_path: Path
    port: int
    started: list[IntakeProcess] = field(default_factory=list)

    def start(self, **env_overrides: str) -> IntakeProcess:
        process = IntakeProcess({**self.base_env, **env_overrides}, self.log_path, self.port).start()
        self.started.append(process)
        return process

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def intake_processes(tmp_path: Path, kafka_settings: KafkaSettings) -> Iterator[IntakeProcesses]:
    settings = make_settings(tmp_path, kafka_settings)
    migrate(settings.database_url)
    port = free_port()
    keys = tmp_path / "encryption.keys"
    keys.write_text(new_key_entry("proc1"))
    env = {
        **os.environ,
        "PREFLIGHT_DATABASE_URL": settings.database_url,
        "PREFLIGHT_GRPC_LISTEN": f"127.0.0.1:{port}",
        "PREFLIGHT_INTAKE_ENCRYPTION_KEYS_FILE": str(keys),
        **settings.kafka.env(),
        "PREFLIGHT_INTAKE_CONSUMER_GROUP": settings.consumer_group,
        "PREFLIGHT_INTAKE_RELAY_INTERVAL": "0.1",
        "PREFLIGHT_TOPIC_SUBMISSIONS": settings.topics.submissions,
        "PREFLIGHT_TOPIC_BENCHMARK_JOBS": settings.topics.benchmark_jobs,
        "PREFLIGHT_TOPIC_BENCHMARK_RESULTS": settings.topics.benchmark_results,
        "PREFLIGHT_TOPIC_REVIEWS": settings.topics.reviews,
    }
    processes = IntakeProcesses(settings, env, tmp_path / "intake.log", port)
    yield processes
    for process in processes.started:
        if process.proc is not None and process.proc.poll() is None:
            process.kill()


class TopicReader:
    """Reads single-partition topics from the beginning (no consumer group), as `settings`' principal."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings

    def until(self, topic: str, done: Callable[[list[Any]], bool], timeout: float = 45) -> list[Any]:
        """The topic's records, polling until `done(records)` holds or the timeout passes."""
        consumer = KafkaConsumer(
            topic,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **self.settings.kafka_python_options(),
        )
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while not done(records) and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=200).values():
                    records.extend(batch)
        finally:
            consumer.close()
        return records

    def all(self, topic: str) -> list[Any]:
        """Every record on the topic now."""
        consumer = KafkaConsumer(enable_auto_commit=False, **self.settings.kafka_python_options())
        partition = TopicPartition(topic, 0)
        try:
            consumer.assign([partition])
            consumer.seek_to_beginning(partition)
            end = consumer.end_offsets([partition])[partition]
            records: list[Any] = []
            while consumer.position(partition) < end:
                for batch in consumer.poll(timeout_ms=500).values():
                    records.extend(batch)
            return records
        finally:
            consumer.close()

    @staticmethod
    def of_subject(records: list[Any], subject: str) -> list[Any]:
        return [r for r in records if r.key == subject.encode()]


@pytest.fixture(scope="session")
def topics(kafka_settings: KafkaSettings) -> TopicReader:
    """Reads topics as the broker's administrator."""
    return TopicReader(kafka_settings)


@pytest.fixture
def make_request() -> Callable[..., intake_pb2.SubmitModelRequest]:
    """`make_request(organisation="lab-a", **fields)`: a valid SubmitModelRequest (see valid_request)."""
    return valid_request


@pytest.fixture
def timestamp() -> Callable[[datetime], Timestamp]:
    return ts


@pytest.fixture
def credential() -> str:
    """The endpoint credential every valid request carries (to search for leaks)."""
    return CREDENTIAL
