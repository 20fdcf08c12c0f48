"""The benchmark service with its KubernetesExecutor against a real Kubernetes API server.

The `k8s_cluster` fixture runs etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (one simulated node, label `type: kwok`, 8 GPUs) on
loopback; the service runs with its real wiring (SQLite store, dispatcher,
outbox relay, planner agent) on a real Kafka broker, configured by the
environment as in production, and every event asserted is read back from its
topic.

No container runs under kwok, so no worker reports by itself. Every worker pod
carries `preflight.test/kwok-hold` (through PREFLIGHT_BENCHMARK_K8S_POD_ANNOTATIONS)
and stays Running until the test ends it the way a worker would, by patching
the pod's annotations for kwok: without the hold it ends Succeeded (exit 0);
with `preflight.test/kwok-exit: "<code>"` it ends Failed with that exit code.
Where a worker would report, the test reports over gRPC as the worker does.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import secrets
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from preflight.benchmark.v1 import benchmark_pb2, events_pb2
from preflight.intake.v1 import events_pb2 as intake_events
from preflight.intake.v1 import submission_pb2
from preflight_benchmark.adapters.executors.k8s_manifest import AcceleratorClass, build_job, job_name
from preflight_benchmark.adapters.executors.kubernetes import KubernetesExecutor, api_client_from
from preflight_benchmark.adapters.grpc_clients import GrpcJobTokens, GrpcResultReporter
from preflight_benchmark.config import KubernetesSettings
from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import AttemptEnd
from preflight_benchmark.domain.ports import Attempt
from preflight_common.auth import Principal, Role
from preflight_common.config import KafkaSettings
from preflight_testkit.benchmark import (
    BenchmarkProcess,
    IntakeStandIn,
    benchmark_process,
    service_settings,
    submission,
    wait_until,
)

K8S_CATALOG = Path(__file__).parent / "data" / "catalog_k8s.yaml"
HOLD = "preflight.test/kwok-hold"
EXIT = "preflight.test/kwok-exit"
GPU = "nvidia.com/gpu"
NODE = "kwok-node-0"
NODE_SELECTOR = {"kubernetes.io/os": "linux"}
GPU_NODE_SELECTOR = {"type": "kwok"}
GPU_TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
MAX_ATTEMPTS = 2
WAIT = 60.0
# Nothing runs in the pods (kwok): the eval-log store is only named.
LOG_ROOT = "s3://preflight-eval-logs/k8s-test"
REASON = events_pb2.FailureReason


@dataclasses.dataclass
class Cluster:
    """The admin clients and the namespace the service creates its Jobs in."""

    kubeconfig: Path
    namespace: str
    batch: Any
    core: Any

    def job(self, name: str) -> Any | None:
        try:
            return self.batch.read_namespaced_job(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def jobs_of(self, submission_id: str) -> list[Any]:
        selector = f"preflight.dev/submission-id={submission_id}"
        return list(self.batch.list_namespaced_job(self.namespace, label_selector=selector).items)

    def ended(self, name: str) -> tuple[str, str] | None:
        """(condition type, reason) once the Job has completed or failed; ("Deleted", "") once gone."""
        job = self.job(name)
        if job is None:
            return "Deleted", ""
        for condition in job.status.conditions or []:
            if condition.type in ("Complete", "Failed") and condition.status == "True":
                return str(condition.type), str(condition.reason)
        return None

    def pods(self, name: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={name}").items)

    def held_pod(self, name: str) -> Any:
        """The Job's pod once kwok runs it (held)."""

        def running() -> Any:
            return next((p for p in self.pods(name) if p.status.phase == "Running"), None)

        return wait_until(running, WAIT, f"the pod of Job {name} running")

    def job_token(self, name: str) -> str:
        """The token in the Secret Job `name` mounts (the dispatcher creates it just after the Job)."""
        (volume,) = [v for v in self.job(name).spec.template.spec.volumes if v.name == "job-token"]

        def token() -> str | None:
            try:
                secret = self.core.read_namespaced_secret(volume.secret.secret_name, self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            return base64.b64decode(secret.data["token"]).decode()

        return str(wait_until(token, WAIT, f"the token Secret of Job {name}"))

    def end_worker(self, name: str, exit_code: int = 0) -> None:
        """End the held worker of Job `name` with `exit_code`, as kwok simulates it."""
        pod = self.held_pod(name)
        annotations: dict[str, str | None] = {HOLD: None}
        if exit_code:
            annotations[EXIT] = str(exit_code)
        self.core.patch_namespaced_pod(
            pod.metadata.name, self.namespace, {"metadata": {"annotations": annotations}}
        )


@pytest.fixture(scope="module")
def cluster(k8s_cluster: Path) -> Iterator[Cluster]:
    api = config.new_client_from_config(str(k8s_cluster))
    namespace = f"preflight-bench-{secrets.token_hex(3)}"
    core = client.CoreV1Api(api)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    try:
        yield Cluster(k8s_cluster, namespace, client.BatchV1Api(api), core)
    finally:
        core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def k8s_env(cluster: Cluster) -> Iterator[None]:
    """The Kubernetes executor's settings, from the environment as the service reads them."""
    mp = pytest.MonkeyPatch()
    for name, value in {
        "PREFLIGHT_BENCHMARK_CATALOG_FILE": str(K8S_CATALOG),
        "PREFLIGHT_BENCHMARK_K8S_KUBECONFIG": str(cluster.kubeconfig),
        "PREFLIGHT_BENCHMARK_K8S_NAMESPACE": cluster.namespace,
        "PREFLIGHT_BENCHMARK_K8S_IMAGE": "registry.example/preflight-worker:test",
        "PREFLIGHT_BENCHMARK_K8S_NODE_SELECTOR": json.dumps(NODE_SELECTOR),
        "PREFLIGHT_BENCHMARK_K8S_GPU_NODE_SELECTOR": json.dumps(GPU_NODE_SELECTOR),
        "PREFLIGHT_BENCHMARK_K8S_GPU_TOLERATIONS": json.dumps([GPU_TOLERATION]),
        "PREFLIGHT_BENCHMARK_K8S_POD_ANNOTATIONS": json.dumps({HOLD: ""}),
        "PREFLIGHT_KAFKA_SESSION_TIMEOUT": "6",
        "PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL": "1",
    }.items():
        mp.setenv(name, value)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def k8s_service(
    k8s_env: None,
    kafka_settings: KafkaSettings,
    intake: IntakeStandIn,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BenchmarkProcess]:
    root = tmp_path_factory.mktemp("benchmark-k8s")
    settings = dataclasses.replace(
        service_settings(root, kafka_settings, intake, max_concurrency=6, max_attempts=MAX_ATTEMPTS),
        executor="kubernetes",
        log_root=LOG_ROOT,
    )
    with benchmark_process(settings, root) as process:
        yield process


def _submit(service: BenchmarkProcess, access: submission_pb2.ModelAccess | None = None) -> str:
    received = submission(base_url="https://lab.example/v1", model_name="frontier", credential_ref="cred-k8s")
    if access is not None:
        received.access.CopyFrom(access)
    service.publish(received)
    return received.submission_id


def _jobs_by_suite(service: BenchmarkProcess, submission_id: str, suites: int) -> dict[str, str]:
    """Suite id → job id, once the planner published its BenchmarkJobRequested events."""
    requested = wait_until(
        lambda: (
            (r := service.tap.of(events_pb2.BenchmarkJobRequested, submission_id)) and len(r) == suites and r
        ),
        WAIT,
        f"{suites} BenchmarkJobRequested",
    )
    return {r.suite_id: r.job_id for r in requested}


def _terminal(service: BenchmarkProcess, submission_id: str, count: int) -> dict[str, Any]:
    """Job id → its terminal event, once `count` were published."""
    events = wait_until(
        lambda: (t := service.tap.terminal(submission_id)) and len(t) >= count and t,
        WAIT,
        f"{count} terminal events",
    )
    assert len(events) == count, events
    return {e.job_id: e for e in events}


def test_cpu_and_gpu_suites_run_as_jobs_and_reported_results_complete_them(
    k8s_service: BenchmarkProcess, cluster: Cluster, intake: IntakeStandIn
) -> None:
    submission_id = _submit(k8s_service)
    jobs = _jobs_by_suite(k8s_service, submission_id, 2)
    cpu, gpu = job_name(jobs["k8s.cpu"], 1), job_name(jobs["k8s.gpu"], 1)
    cpu_pod, gpu_pod = cluster.held_pod(cpu), cluster.held_pod(gpu)

    # What the API server stored and the scheduler placed.
    gpu_job = cluster.job(gpu)
    worker = gpu_job.spec.template.spec.containers[0]
    assert worker.resources.requests[GPU] == worker.resources.limits[GPU] == "1"
    assert gpu_job.spec.template.spec.node_selector == {**NODE_SELECTOR, **GPU_NODE_SELECTOR}
    assert [t.to_dict() for t in gpu_job.spec.template.spec.tolerations] == [
        {**GPU_TOLERATION, "toleration_seconds": None, "value": None}
    ]
    assert gpu_job.spec.active_deadline_seconds == 600
    assert gpu_job.spec.pod_failure_policy.rules[0].on_exit_codes.values == [78]
    cpu_spec = cluster.job(cpu).spec.template.spec
    assert GPU not in cpu_spec.containers[0].resources.requests
    assert (cpu_spec.node_selector, cpu_spec.tolerations) == (NODE_SELECTOR, None)
    assert cpu_pod.spec.node_name == gpu_pod.spec.node_name == NODE
    assert gpu_pod.metadata.labels["preflight.dev/job-id"] == jobs["k8s.gpu"]

    # Each worker reports its result, with the token of the Secret its Job mounts, then exits 0.
    for suite, name in (("k8s.cpu", cpu), ("k8s.gpu", gpu)):
        report = benchmark_pb2.ReportJobResultRequest(
            job_id=jobs[suite], attempt=1, completed=events_pb2.BenchmarkCompleted(samples_total=3)
        )
        reporter = GrpcResultReporter(k8s_service.target, cluster.job_token(name))
        assert asyncio.run(reporter.report(report)).accepted
        cluster.end_worker(name)

    ended = _terminal(k8s_service, submission_id, 2)
    assert all(isinstance(e, events_pb2.BenchmarkCompleted) for e in ended.values()), ended
    assert {(e.suite_id, e.attempt, e.samples_total) for e in ended.values()} == {
        ("k8s.cpu", 1, 3),
        ("k8s.gpu", 1, 3),
    }
    # The service left the reported workers to exit: their Jobs complete and stay for their TTL.
    for name in (cpu, gpu):
        assert wait_until(lambda n=name: cluster.ended(n), WAIT, f"Job {name} ended") == (
            "Complete",
            "CompletionsReached",
        )
    assert len(cluster.jobs_of(submission_id)) == 2


def test_a_job_that_succeeds_without_a_reported_result_fails_at_once_as_a_configuration_error(
    k8s_service: BenchmarkProcess, cluster: Cluster
) -> None:
    submission_id = _submit(k8s_service)
    jobs = _jobs_by_suite(k8s_service, submission_id, 2)
    for job_id in jobs.values():
        cluster.end_worker(job_name(job_id, 1))  # exit 0, nothing reported

    ended = _terminal(k8s_service, submission_id, 2)
    for job_id, event in ended.items():
        assert isinstance(event, events_pb2.BenchmarkFailed), event
        assert (event.reason, event.retryable, event.attempt) == (
            REASON.FAILURE_REASON_CONFIG_ERROR,
            False,
            1,
        )
        assert f"without reporting a result (Job {job_name(job_id, 1)} succeeded)" in event.message
        # The service may see the pod's exit before the Job controller records the Job's end.
        name = job_name(job_id, 1)
        assert wait_until(lambda n=name: cluster.ended(n), WAIT, "the Job's end") == (
            "Complete",
            "CompletionsReached",
        )
    assert len(cluster.jobs_of(submission_id)) == 2, "no second attempt"


def test_a_crashed_worker_is_retried_in_a_new_job_and_a_configuration_error_fails_the_job_at_once(
    k8s_service: BenchmarkProcess, cluster: Cluster
) -> None:
    submission_id = _submit(k8s_service)
    jobs = _jobs_by_suite(k8s_service, submission_id, 2)
    crashing, misconfigured = jobs["k8s.cpu"], jobs["k8s.gpu"]

    cluster.end_worker(job_name(crashing, 1), exit_code=1)
    cluster.end_worker(job_name(misconfigured, 1), exit_code=78)
    assert wait_until(lambda: cluster.ended(job_name(crashing, 1)), WAIT, "attempt 1 failed") == (
        "Failed",
        "BackoffLimitExceeded",
    )
    cluster.end_worker(job_name(crashing, 2), exit_code=1)  # the retry: a new Job, which crashes too

    ended = _terminal(k8s_service, submission_id, 2)
    crashed, config_error = ended[crashing], ended[misconfigured]
    assert isinstance(crashed, events_pb2.BenchmarkFailed)
    assert (crashed.reason, crashed.retryable, crashed.attempt) == (
        REASON.FAILURE_REASON_WORKER_CRASHED,
        True,
        MAX_ATTEMPTS,
    )
    assert "BackoffLimitExceeded" in crashed.message
    assert isinstance(config_error, events_pb2.BenchmarkFailed)
    assert (config_error.reason, config_error.retryable, config_error.attempt) == (
        REASON.FAILURE_REASON_CONFIG_ERROR,
        False,
        1,
    )
    assert "PodFailurePolicy" in config_error.message
    assert cluster.ended(job_name(misconfigured, 1)) == ("Failed", "PodFailurePolicy")
    assert sorted(j.metadata.name for j in cluster.jobs_of(submission_id)) == sorted(
        [job_name(crashing, 1), job_name(crashing, 2), job_name(misconfigured, 1)]
    )


def test_a_weights_job_past_its_deadline_fails_as_timeout(
    k8s_service: BenchmarkProcess, cluster: Cluster
) -> None:
    weights = submission_pb2.ModelAccess(
        weights=submission_pb2.WeightsAccess(
            artifact_uri="file:///models/frontier.safetensors", sha256="0" * 64, format="safetensors"
        )
    )
    submission_id = _submit(k8s_service, weights)
    (job_id,) = _jobs_by_suite(k8s_service, submission_id, 1).values()
    name = job_name(job_id, 1)

    (event,) = _terminal(k8s_service, submission_id, 1).values()  # the pod stays held: the deadline ends it
    assert isinstance(event, events_pb2.BenchmarkFailed)
    assert (event.reason, event.retryable, event.attempt) == (REASON.FAILURE_REASON_TIMEOUT, False, 1)
    assert cluster.ended(name) == ("Failed", "DeadlineExceeded")
    # The API server took the weights Job: the fetch step, and vLLM as a native sidecar on a GPU.
    spec = cluster.job(name).spec
    assert spec.active_deadline_seconds == 3
    fetch, server = spec.template.spec.init_containers
    assert (fetch.name, fetch.restart_policy) == ("fetch-weights", None)
    assert (server.name, server.restart_policy, server.resources.limits[GPU]) == (
        "model-server",
        "Always",
        "1",
    )
    assert spec.template.spec.node_selector == {**NODE_SELECTOR, **GPU_NODE_SELECTOR}


def test_withdrawal_fails_the_jobs_and_deletes_them(k8s_service: BenchmarkProcess, cluster: Cluster) -> None:
    submission_id = _submit(k8s_service)
    jobs = _jobs_by_suite(k8s_service, submission_id, 2)
    names = [job_name(job_id, 1) for job_id in jobs.values()]
    for name in names:
        cluster.held_pod(name)

    k8s_service.publish(
        intake_events.SubmissionWithdrawn(
            submission_id=submission_id, organisation="lab-a", reason="lab request"
        )
    )

    ended = _terminal(k8s_service, submission_id, 2)
    assert {(type(e), e.reason, e.attempt) for e in ended.values()} == {
        (events_pb2.BenchmarkFailed, REASON.FAILURE_REASON_WITHDRAWN, 1)
    }
    wait_until(lambda: not cluster.jobs_of(submission_id), WAIT, "the Jobs deleted")
    wait_until(lambda: not any(cluster.pods(n) for n in names), WAIT, "their pods deleted")


async def test_creating_an_existing_job_is_success_and_the_executor_attaches_to_it(
    k8s_env: None, cluster: Cluster
) -> None:
    settings = KubernetesSettings.from_env("preflight-benchmark:50052", LOG_ROOT)
    executor = KubernetesExecutor(
        api_client_from(settings.kubeconfig), settings.manifest, initial_backoff=0.05
    )
    attempt = Attempt(
        job_id=f"bj-{uuid.uuid4().hex}",
        submission_id=str(uuid.uuid4()),
        suite_id="k8s.cpu",
        attempt=1,
        access_kind="endpoint",
        resources=Resources(cpu="1", memory="1Gi"),
        timeout=timedelta(minutes=10),
        assignment="{}",
    )
    name = job_name(attempt.job_id, attempt.attempt)
    await executor.create(attempt)
    uid = cluster.job(name).metadata.uid
    with pytest.raises(ApiException) as conflict:
        cluster.batch.create_namespaced_job(cluster.namespace, build_job(attempt, settings.manifest))
    assert conflict.value.status == 409

    await executor.create(attempt)  # the 409 counts as created
    running = asyncio.create_task(executor.run(attempt))  # creates again (409) and watches
    await asyncio.to_thread(cluster.end_worker, name)
    outcome = await asyncio.wait_for(running, WAIT)
    assert (outcome.end, outcome.detail) == (AttemptEnd.EXITED, f"Job {name} succeeded")
    assert [j.metadata.uid for j in cluster.jobs_of(attempt.submission_id)] == [uid]


async def test_a_resumed_attempt_whose_job_has_no_token_secret_yet_gets_one(
    k8s_env: None, cluster: Cluster, intake: IntakeStandIn
) -> None:
    """The dispatcher stopped between creating a Job and its token Secret: the next one, resuming
    the attempt, creates the Secret (its pod would wait for it until the deadline) and watches."""
    settings = KubernetesSettings.from_env("preflight-benchmark:50052", LOG_ROOT)
    executor = KubernetesExecutor(
        api_client_from(settings.kubeconfig),
        settings.manifest,
        initial_backoff=0.05,
        job_tokens=GrpcJobTokens(intake.target, intake.service_token),
    )
    attempt = Attempt(
        job_id=f"bj-{uuid.uuid4().hex}",
        submission_id=str(uuid.uuid4()),
        suite_id="k8s.cpu",
        attempt=1,
        access_kind="endpoint",
        resources=Resources(cpu="1", memory="1Gi"),
        timeout=timedelta(minutes=10),
        assignment="{}",
        resumed=True,
    )
    name = job_name(attempt.job_id, attempt.attempt)
    cluster.batch.create_namespaced_job(cluster.namespace, build_job(attempt, settings.manifest))
    running = asyncio.create_task(executor.run(attempt))
    token = await asyncio.to_thread(cluster.job_token, name)
    resolved = intake.tokens.resolve(token)
    assert resolved is not None and resolved[0] == Principal(attempt.job_id, Role.WORKER, "preflight")
    await asyncio.to_thread(cluster.end_worker, name)
    outcome = await asyncio.wait_for(running, WAIT)
    assert (outcome.end, outcome.detail) == (AttemptEnd.EXITED, f"Job {name} succeeded")


async def test_a_job_queued_for_kueue_stays_suspended_with_no_pod_until_admitted(
    k8s_env: None, cluster: Cluster
) -> None:
    """Kueue admits a Job by unsuspending it: until then the API server's Job controller starts no
    pod and the attempt waits (it does not end, nor count as failed); once admitted it runs as any."""
    settings = KubernetesSettings.from_env("preflight-benchmark:50052", LOG_ROOT)
    manifest = dataclasses.replace(settings.manifest, kueue_queue="preflight-gpu")
    executor = KubernetesExecutor(api_client_from(settings.kubeconfig), manifest, initial_backoff=0.05)
    attempt = Attempt(
        job_id=f"bj-{uuid.uuid4().hex}",
        submission_id=str(uuid.uuid4()),
        suite_id="k8s.gpu",
        attempt=1,
        access_kind="endpoint",
        resources=Resources(gpu=1, cpu="1", memory="1Gi"),
        timeout=timedelta(minutes=10),
        assignment="{}",
    )
    name = job_name(attempt.job_id, attempt.attempt)
    running = asyncio.create_task(executor.run(attempt))

    def suspended() -> Any:
        job = cluster.job(name)
        conditions = (job.status.conditions or []) if job is not None and job.status else []
        return any(c.type == "Suspended" and c.status == "True" for c in conditions) and job

    job = await asyncio.to_thread(wait_until, suspended, WAIT, f"Job {name} suspended by its controller")
    assert job.spec.suspend is True
    assert job.metadata.labels["kueue.x-k8s.io/queue-name"] == "preflight-gpu"
    assert job.status.active in (None, 0) and job.status.start_time is None
    assert await asyncio.to_thread(cluster.pods, name) == []
    assert not running.done(), "a queued attempt has not ended"

    # Admission, as Kueue performs it.
    await asyncio.to_thread(
        cluster.batch.patch_namespaced_job, name, cluster.namespace, {"spec": {"suspend": False}}
    )
    await asyncio.to_thread(cluster.end_worker, name)
    outcome = await asyncio.wait_for(running, WAIT)
    assert (outcome.end, outcome.detail) == (AttemptEnd.EXITED, f"Job {name} succeeded")


async def test_the_scheduler_places_a_suite_on_its_accelerator_class_s_nodes_only(
    k8s_env: None, cluster: Cluster
) -> None:
    """A class whose node selector matches the (GPU) node runs there with the class's GPUs; a class
    whose nodes the cluster lacks leaves its pod unschedulable instead of on another GPU node."""
    settings = KubernetesSettings.from_env("preflight-benchmark:50052", LOG_ROOT)
    classes = {
        "kwok-gpu": AcceleratorClass(GPU, GPU_NODE_SELECTOR, (GPU_TOLERATION,)),
        "absent-gpu": AcceleratorClass(GPU, {"cloud.example/accelerator": "h200"}),
    }
    manifest = dataclasses.replace(settings.manifest, accelerators=classes)
    executor = KubernetesExecutor(api_client_from(settings.kubeconfig), manifest, initial_backoff=0.05)

    def on(accelerator: str) -> Attempt:
        return Attempt(
            job_id=f"bj-{uuid.uuid4().hex}",
            submission_id=str(uuid.uuid4()),
            suite_id="k8s.gpu",
            attempt=1,
            access_kind="endpoint",
            resources=Resources(gpu=2, cpu="1", memory="1Gi", accelerator=accelerator),
            timeout=timedelta(minutes=10),
            assignment="{}",
        )

    placed, absent = on("kwok-gpu"), on("absent-gpu")
    runs = [asyncio.create_task(executor.run(a)) for a in (placed, absent)]
    placed_name, absent_name = (job_name(a.job_id, a.attempt) for a in (placed, absent))
    pod = await asyncio.to_thread(cluster.held_pod, placed_name)
    assert pod.spec.node_name == NODE
    assert pod.spec.node_selector == {**NODE_SELECTOR, **GPU_NODE_SELECTOR}
    assert pod.spec.containers[0].resources.limits[GPU] == "2"

    def unschedulable() -> bool:
        return any(
            c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
            for p in cluster.pods(absent_name)
            for c in (p.status.conditions or [])
        )

    await asyncio.to_thread(wait_until, unschedulable, WAIT, f"the pod of Job {absent_name} unschedulable")
    await asyncio.to_thread(cluster.end_worker, placed_name)
    await executor.cancel(absent.job_id, absent.attempt)
    outcomes = await asyncio.wait_for(asyncio.gather(*runs), WAIT)
    assert [o.end for o in outcomes] == [AttemptEnd.EXITED, AttemptEnd.CANCELLED]


def _threads_in_a_job_watch() -> list[str]:
    """The threads now reading a Kubernetes watch."""
    frames = sys._current_frames()
    found = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident) if thread.ident is not None else None
        while frame is not None:
            if frame.f_code.co_filename.endswith("kubernetes/watch/watch.py"):
                found.append(thread.name)
                break
            frame = frame.f_back
    return found


def test_a_service_stopped_while_its_jobs_run_leaves_them_running_and_no_watch_open(
    k8s_env: None,
    kafka_settings: KafkaSettings,
    intake: IntakeStandIn,
    cluster: Cluster,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The service's shutdown ends its Jobs' watches at once (the process's event loop waits for
    the threads reading them when it closes; left alone, they read on for up to a minute, past the
    shutdown budget), and leaves the Jobs to the next dispatcher."""
    # A dispatcher Lease of its own: the module's service leads with the default one.
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_LEASE", f"stopping-{secrets.token_hex(3)}")
    root = tmp_path_factory.mktemp("benchmark-k8s-stop")
    settings = dataclasses.replace(
        service_settings(root, kafka_settings, intake, max_attempts=MAX_ATTEMPTS),
        executor="kubernetes",
        log_root=LOG_ROOT,
    )
    with benchmark_process(settings, root) as service:
        submission_id = _submit(service)
        jobs = _jobs_by_suite(service, submission_id, 2)
        wait_until(lambda: len(_threads_in_a_job_watch()) >= 2, WAIT, "both Jobs watched")
    wait_until(lambda: not _threads_in_a_job_watch(), 20, "no thread left reading a Job watch")
    assert {job.metadata.name for job in cluster.jobs_of(submission_id)} == {
        job_name(job_id, 1) for job_id in jobs.values()
    }
