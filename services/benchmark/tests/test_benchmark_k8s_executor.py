"""KubernetesExecutor's API calls against a loopback HTTP server that answers like the batch/v1 API.

The stand-in keeps Jobs in memory and lets a test inject server errors and end
Jobs; it checks the executor's create/watch/delete calls, 409 handling and
retries. Runs against a real API server come with the cluster fixture.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client
from preflight_benchmark.adapters import events
from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.adapters.executors.k8s_manifest import ManifestSettings, job_name
from preflight_benchmark.adapters.executors.kubernetes import KubernetesExecutor
from preflight_benchmark.adapters.grpc_clients import GrpcSubmissionStatuses
from preflight_benchmark.adapters.store import JobStore
from preflight_benchmark.adapters.tracing import job_span
from preflight_benchmark.bootstrap import migrate
from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import AttemptEnd, FailureReason, JobStatus
from preflight_benchmark.domain.ports import Attempt
from preflight_benchmark.service_layer.dispatcher import Dispatcher, DispatcherSettings, _attempt
from preflight_benchmark.service_layer.planner import Planner
from preflight_common.db import make_engine
from preflight_common.liveness import Liveness
from preflight_testkit.benchmark import intake_stand_in, submission
from preflight_testkit.waiting import until

PREFIX = "/apis/batch/v1/namespaces/preflight/jobs"


class FakeBatchApi:
    """In-memory Jobs behind a ThreadingHTTPServer on 127.0.0.1."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.failures: list[int] = []  # statuses to answer the next create calls with
        self.creates = 0
        self.deletes: list[str] = []
        self.changed = threading.Condition()
        # Set when the test ends: open watches answer at once instead of at their timeout.
        self.closed = False
        self.watches = 0  # watch requests received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        """Answer every open watch now."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def finish(self, name: str, condition: str, reason: str = "") -> None:
        with self.changed:
            job = self.jobs[name]
            job["metadata"]["resourceVersion"] = str(int(job["metadata"]["resourceVersion"]) + 1)
            job["status"] = {"conditions": [{"type": condition, "status": "True", "reason": reason}]}
            self.changed.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str) -> None:
                self._send(
                    code,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": reason,
                        "code": code,
                    },
                )

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with api.changed:
                    api.creates += 1
                    if api.failures:
                        self._status(api.failures.pop(0), "InternalError")
                        return
                    name = body["metadata"]["name"]
                    if name in api.jobs:
                        self._status(HTTPStatus.CONFLICT, "AlreadyExists")
                        return
                    body["metadata"]["resourceVersion"] = "1"
                    body["status"] = {}
                    api.jobs[name] = body
                self._send(HTTPStatus.CREATED, body)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                if url.path == PREFIX and query.get("watch") == ["true"]:
                    self._watch(query["fieldSelector"][0].removeprefix("metadata.name="), query)
                    return
                name = url.path.removeprefix(PREFIX + "/").removesuffix("/status")
                with api.changed:
                    job = api.jobs.get(name)
                if job is None:
                    self._status(HTTPStatus.NOT_FOUND, "NotFound")
                else:
                    self._send(HTTPStatus.OK, job)

            def _watch(self, name: str, query: dict[str, list[str]]) -> None:
                since = int(query.get("resourceVersion", ["0"])[0] or 0)
                with api.changed:
                    api.watches += 1
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                with api.changed:
                    api.changed.wait_for(
                        lambda: (
                            api.closed
                            or name not in api.jobs
                            or int(api.jobs[name]["metadata"]["resourceVersion"]) > since
                        ),
                        timeout=float(query.get("timeoutSeconds", ["5"])[0]),
                    )
                    job = api.jobs.get(name)
                if job is None:
                    event = {
                        "type": "DELETED",
                        "object": {"kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": name}},
                    }
                else:
                    event = {"type": "MODIFIED", "object": job}
                self.wfile.write(json.dumps(event).encode() + b"\n")

            def do_DELETE(self) -> None:
                name = urlparse(self.path).path.removeprefix(PREFIX + "/")
                with api.changed:
                    api.deletes.append(name)
                    found = api.jobs.pop(name, None)
                    api.changed.notify_all()
                if found is None:
                    self._status(HTTPStatus.NOT_FOUND, "NotFound")
                else:
                    self._send(HTTPStatus.OK, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        return Handler


@pytest.fixture
def api() -> Iterator[FakeBatchApi]:
    fake = FakeBatchApi()
    yield fake
    fake.close()
    fake.server.shutdown()


def kubernetes_executor(api: FakeBatchApi, watch_timeout: int = 5) -> KubernetesExecutor:
    configuration = client.Configuration(host=api.host)
    settings = ManifestSettings(
        namespace="preflight",
        image="preflight-benchmark:test",
        intake_target="intake:50051",
        benchmark_target="benchmark:50052",
    )
    return KubernetesExecutor(
        client.ApiClient(configuration), settings, initial_backoff=0.01, watch_timeout=watch_timeout
    )


@pytest.fixture
def executor(api: FakeBatchApi) -> KubernetesExecutor:
    return kubernetes_executor(api)


ATTEMPT = Attempt(
    job_id="bj-" + "b" * 32,
    submission_id="sub-1",
    suite_id="cyber.exploit",
    attempt=1,
    access_kind="endpoint",
    resources=Resources(),
    timeout=timedelta(minutes=5),
    assignment="{}",
)
NAME = job_name(ATTEMPT.job_id, ATTEMPT.attempt)


async def _run_until(
    executor: KubernetesExecutor, api: FakeBatchApi, condition: str, reason: str = ""
) -> Any:

    running = asyncio.create_task(executor.run(ATTEMPT))
    await until(lambda: NAME in api.jobs)
    await asyncio.sleep(0.1)
    await asyncio.to_thread(api.finish, NAME, condition, reason)
    return await running


async def test_created_job_is_watched_to_completion(executor: KubernetesExecutor, api: FakeBatchApi) -> None:
    outcome = await _run_until(executor, api, "Complete")
    assert outcome.end == AttemptEnd.EXITED
    assert api.jobs[NAME]["spec"]["template"]["spec"]["containers"][0]["image"] == "preflight-benchmark:test"


async def test_an_existing_job_is_reattached_not_recreated(
    executor: KubernetesExecutor, api: FakeBatchApi
) -> None:
    await executor.create(ATTEMPT)
    outcome = await _run_until(executor, api, "Failed", "DeadlineExceeded")
    assert api.creates == 2, "the second create got 409 and counted as success"
    assert outcome.end == AttemptEnd.TIMED_OUT


async def test_server_errors_are_retried_with_backoff(
    executor: KubernetesExecutor, api: FakeBatchApi
) -> None:
    api.failures = [500, 503, 502]
    outcome = await _run_until(executor, api, "Failed", "PodFailurePolicy")
    assert api.creates == 4
    assert outcome.end == AttemptEnd.CONFIG_ERROR


async def test_persistent_server_errors_end_the_attempt_as_infrastructure(
    executor: KubernetesExecutor, api: FakeBatchApi
) -> None:
    api.failures = [503] * 10
    outcome = await executor.run(ATTEMPT)
    assert outcome.end == AttemptEnd.INFRASTRUCTURE
    assert "503" in outcome.detail and api.creates == 5


async def test_backoff_limit_failure_is_a_crash(executor: KubernetesExecutor, api: FakeBatchApi) -> None:
    outcome = await _run_until(executor, api, "Failed", "BackoffLimitExceeded")
    assert outcome.end == AttemptEnd.CRASHED


async def test_cancel_deletes_the_job_and_ends_the_watch(
    executor: KubernetesExecutor, api: FakeBatchApi
) -> None:

    running = asyncio.create_task(executor.run(ATTEMPT))
    await until(lambda: NAME in api.jobs)
    await executor.cancel(ATTEMPT.job_id, ATTEMPT.attempt)
    assert (await running).end == AttemptEnd.CANCELLED
    assert api.deletes == [NAME]
    await executor.cancel(ATTEMPT.job_id, ATTEMPT.attempt)  # deleting a missing Job is harmless


async def test_a_job_of_a_withdrawn_submission_left_running_by_a_previous_process_is_stopped(
    executor: KubernetesExecutor, api: FakeBatchApi, tmp_path: Path
) -> None:
    """After a restart the dispatcher re-attaches to the Jobs it had started, unless intake says the
    submission was withdrawn meanwhile: then the Job is deleted and nothing new is created."""

    migrate(f"sqlite:///{tmp_path / 'benchmark.db'}")
    engine = make_engine(f"sqlite:///{tmp_path / 'benchmark.db'}")
    store = JobStore(engine, jobs_topic="jobs", results_topic="results")
    received = submission(base_url="http://127.0.0.1:9/v1", model_name="m", credential_ref="cred-1")
    planner = Planner(store, load_catalog(), events, job_span, executor=executor.name, max_attempts=3)
    planner.plan("e1", received)
    now = datetime.now(UTC)
    [pending, *_] = store.due(now, 1)
    started = store.start_attempt(pending, now)
    assert started is not None
    await executor.create(_attempt(started, str(tmp_path), events))  # the previous process's worker
    with intake_stand_in(tmp_path) as intake:
        intake.servicer.withdrawn.add(received.submission_id)
        statuses = GrpcSubmissionStatuses(intake.target, intake.service_token)
        settings = DispatcherSettings(log_root=str(tmp_path), poll_interval=0.05)
        dispatcher = Dispatcher(store, events, job_span, executor, statuses, settings)
        stop = asyncio.Event()
        running = asyncio.create_task(dispatcher.run(stop, Liveness()))
        try:
            await until(
                lambda: all(j.status is JobStatus.FAILED for j in store.in_status(*JobStatus)), timeout=60
            )
            await until(lambda: not api.jobs, timeout=60)  # the previous process's Job is deleted
        finally:
            stop.set()
            await running
            await statuses.close()
    ended = store.in_status(*JobStatus)
    assert {j.failure_reason for j in ended} == {FailureReason.WITHDRAWN}
    assert api.creates == 1, "no worker was started for the withdrawn submission"
    engine.dispose()


async def test_no_worker_starts_while_intake_cannot_say_whether_the_submission_was_withdrawn(
    executor: KubernetesExecutor, api: FakeBatchApi, tmp_path: Path
) -> None:

    migrate(f"sqlite:///{tmp_path / 'benchmark.db'}")
    engine = make_engine(f"sqlite:///{tmp_path / 'benchmark.db'}")
    store = JobStore(engine, jobs_topic="jobs", results_topic="results")
    received = submission(base_url="http://127.0.0.1:9/v1", model_name="m", credential_ref="cred-1")
    planner = Planner(store, load_catalog(), events, job_span, executor=executor.name, max_attempts=3)
    planned = planner.plan("e1", received)
    with intake_stand_in(tmp_path) as intake:
        intake.servicer.unavailable = True
        statuses = GrpcSubmissionStatuses(intake.target, intake.service_token)
        settings = DispatcherSettings(
            log_root=str(tmp_path), max_concurrency=planned, poll_interval=0.05, status_retry_cap=0.2
        )
        dispatcher = Dispatcher(store, events, job_span, executor, statuses, settings)
        stop = asyncio.Event()
        running = asyncio.create_task(dispatcher.run(stop, Liveness()))
        try:
            # Every job's attempt asks again and again, and none is launched.
            await until(lambda: len(intake.servicer.status_queries) >= 3 * planned, timeout=60)
            assert api.creates == 0
            intake.servicer.unavailable = False
            await until(lambda: api.creates == planned, timeout=60)
        finally:
            stop.set()
            await running
            await statuses.close()
            # As the service's shutdown does.
            await executor.close()
    engine.dispose()


async def test_close_ends_the_open_watches_so_the_event_loop_closes_at_once(api: FakeBatchApi) -> None:
    """A stopping dispatcher leaves its attempts' watches in worker threads, which the process's
    event loop waits for when it closes: `close` (the service's shutdown) ends them, instead of
    leaving them to their timeout, a minute here."""
    executor = kubernetes_executor(api, watch_timeout=60)
    running = asyncio.create_task(executor.run(ATTEMPT))
    await until(lambda: api.watches >= 1, "the Job's watch")
    running.cancel()  # as the dispatcher's stop does
    await executor.close()
    # Every worker thread of the loop ended (the watch's included), well before the watch's timeout.
    await asyncio.wait_for(asyncio.get_running_loop().shutdown_default_executor(), timeout=30)
    assert api.jobs[NAME]["status"] == {}, "the Job itself goes on"
