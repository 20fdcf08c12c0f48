"""Dispatchers against a real Kubernetes API server: one leader, and Jobs deleted by someone else.

The `k8s_cluster` fixture runs etcd, kube-apiserver and kwok on loopback (see
preflight_testkit.k8s). Worker pods carry `preflight.test/kwok-hold`, so
they stay Running until the test ends or deletes them. Each dispatcher talks to
the API server through its own client, whose user agent names the replica: the
API server records it as the field manager of every Job that replica created.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from preflight_benchmark.adapters import events
from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.adapters.executors.k8s_lease import LeaseElection
from preflight_benchmark.adapters.executors.k8s_manifest import ManifestSettings, job_name
from preflight_benchmark.adapters.executors.kubernetes import KubernetesExecutor
from preflight_benchmark.adapters.grpc_clients import GrpcSubmissionStatuses
from preflight_benchmark.adapters.store import JobStore
from preflight_benchmark.adapters.tracing import job_span
from preflight_benchmark.bootstrap import migrate
from preflight_benchmark.domain.jobs import FailureReason, JobStatus
from preflight_benchmark.domain.ports import Leadership
from preflight_benchmark.service_layer.dispatcher import Dispatcher, DispatcherSettings
from preflight_benchmark.service_layer.planner import Planner
from preflight_common.db import make_engine
from preflight_common.liveness import Liveness
from preflight_testkit.benchmark import intake_stand_in, submission
from preflight_testkit.waiting import until

K8S_CATALOG = Path(__file__).parent / "data" / "catalog_k8s.yaml"
HOLD = "preflight.test/kwok-hold"
EXIT = "preflight.test/kwok-exit"
LOG_ROOT = "s3://preflight-eval-logs/k8s-test"
WAIT = 90.0


@dataclass
class Namespace:
    kubeconfig: Path
    name: str
    batch: Any
    core: Any

    def api(self, replica: str) -> client.ApiClient:
        api: client.ApiClient = config.new_client_from_config(str(self.kubeconfig))
        api.user_agent = replica  # the field manager of what this client creates
        return api

    def jobs(self) -> dict[str, str]:
        """Job name → the replica that created it (the field manager of its spec, not of its status)."""
        return {
            j.metadata.name: next(m.manager for m in j.metadata.managed_fields if not m.subresource)
            for j in self.batch.list_namespaced_job(self.name).items
        }

    def delete_job(self, name: str) -> None:
        """What `kubectl delete job` does."""
        self.batch.delete_namespaced_job(name, self.name, propagation_policy="Background")

    def end_worker(self, name: str, exit_code: int) -> None:
        pods = self.core.list_namespaced_pod(self.name, label_selector=f"job-name={name}").items
        for pod in pods:
            self.core.patch_namespaced_pod(
                pod.metadata.name,
                self.name,
                {"metadata": {"annotations": {HOLD: None, EXIT: str(exit_code)}}},
            )


@pytest.fixture
def namespace(k8s_cluster: Path) -> Iterator[Namespace]:
    api = config.new_client_from_config(str(k8s_cluster))
    name = f"preflight-leader-{secrets.token_hex(3)}"
    core = client.CoreV1Api(api)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield Namespace(k8s_cluster, name, client.BatchV1Api(api), core)
    finally:
        core.delete_namespace(name)


def _executor(namespace: Namespace, replica: str) -> KubernetesExecutor:
    settings = ManifestSettings(
        namespace=namespace.name,
        image="registry.example/preflight-worker:test",
        intake_target="intake:50051",
        benchmark_target="benchmark:50052",
        pod_annotations={HOLD: ""},
    )
    return KubernetesExecutor(namespace.api(replica), settings, initial_backoff=0.05, watch_timeout=5)


def _store(tmp_path: Path, max_attempts: int) -> tuple[JobStore, list[str]]:
    """A job table with one submission's jobs planned (the two endpoint suites); their ids."""
    url = f"sqlite:///{tmp_path / 'benchmark.db'}"
    migrate(url)
    store = JobStore(make_engine(url), jobs_topic="jobs", results_topic="results")
    received = submission(base_url="http://127.0.0.1:9/v1", model_name="m", credential_ref="cred-1")
    catalog = load_catalog(K8S_CATALOG)
    Planner(store, catalog, events, job_span, executor="kubernetes", max_attempts=max_attempts).plan(
        "e1", received
    )
    return store, sorted(j.job_id for j in store.in_status(*JobStatus))


@asynccontextmanager
async def _dispatching(
    store: JobStore,
    executor: KubernetesExecutor,
    tmp_path: Path,
    leadership: Leadership | None = None,
    concurrency: int = 2,
) -> AsyncIterator[Dispatcher]:
    with intake_stand_in(tmp_path) as intake:
        statuses = GrpcSubmissionStatuses(intake.target, intake.service_token)
        settings = DispatcherSettings(log_root=LOG_ROOT, max_concurrency=concurrency, poll_interval=0.1)
        dispatcher = Dispatcher(store, events, job_span, executor, statuses, settings, leadership=leadership)
        stop = asyncio.Event()
        running = asyncio.create_task(dispatcher.run(stop, Liveness()))
        try:
            yield dispatcher
        finally:
            stop.set()
            await running
            await statuses.close()


def _lease_renewals(namespace: Namespace, lease: str) -> tuple[str, Any]:
    spec = client.CoordinationV1Api(namespace.api("test")).read_namespaced_lease(lease, namespace.name).spec
    return spec.holder_identity, spec.renew_time


async def test_one_replica_leads_and_a_stand_by_takes_over_once_the_leaders_renewals_stop(
    namespace: Namespace, tmp_path: Path
) -> None:
    store, _ = _store(tmp_path, max_attempts=3)
    replicas = ("replica-a", "replica-b")
    elections = {
        r: LeaseElection(namespace.api(r), namespace.name, "dispatcher", r, lease_seconds=3) for r in replicas
    }
    stop = asyncio.Event()
    renewing = {r: asyncio.create_task(e.run(stop, Liveness())) for r, e in elections.items()}
    try:
        async with (
            # One Job at a time for the service: the bound holds for the leader, not per replica.
            _dispatching(store, _executor(namespace, "replica-a"), tmp_path, elections["replica-a"], 1) as a,
            _dispatching(store, _executor(namespace, "replica-b"), tmp_path, elections["replica-b"], 1) as b,
        ):
            dispatchers = {"replica-a": a, "replica-b": b}
            await until(lambda: any(e.leading() for e in elections.values()), timeout=WAIT)
            leader = next(r for r, e in elections.items() if e.leading())
            stand_by = next(r for r in replicas if r != leader)
            await until(lambda: bool(namespace.jobs()), timeout=WAIT)
            # While the leader renews its Lease twice more, the stand-by creates nothing.
            for _ in range(2):
                seen = _lease_renewals(namespace, "dispatcher")
                await until(lambda s=seen: _lease_renewals(namespace, "dispatcher") != s, timeout=WAIT)
            first = namespace.jobs()
            assert list(first.values()) == [leader], first
            assert dispatchers[stand_by].running == {}
            ((job_id, attempt),) = dispatchers[leader].running.items()
            assert first == {job_name(job_id, attempt): leader}

            renewing[leader].cancel()  # the leader's renewals stop (it neither renews nor releases)
            await until(lambda: elections[stand_by].leading(), timeout=WAIT)
            assert not elections[leader].leading()
            # The new leader adopts the running attempt (its Job is not created again) ...
            await until(lambda: dispatchers[stand_by].running == {job_id: attempt}, timeout=WAIT)
            await until(lambda: dispatchers[leader].running == {}, timeout=WAIT)
            # ... settles its end, and creates the next Job.
            await asyncio.to_thread(namespace.end_worker, job_name(job_id, attempt), 1)
            await until(lambda: len(namespace.jobs()) == 2, timeout=WAIT)
            created = namespace.jobs()
            assert created[job_name(job_id, attempt)] == leader
            assert [r for n, r in created.items() if n != job_name(job_id, attempt)] == [stand_by], created
    finally:
        stop.set()
        await asyncio.gather(*renewing.values(), return_exceptions=True)


async def test_jobs_deleted_by_someone_else_are_retried_within_attempts_then_fail_as_infrastructure(
    namespace: Namespace, tmp_path: Path
) -> None:
    store, job_ids = _store(tmp_path, max_attempts=2)
    async with _dispatching(store, _executor(namespace, "replica-a"), tmp_path):
        for attempt in (1, 2):
            names = {job_name(j, attempt) for j in job_ids}
            await until(lambda n=names: n <= set(namespace.jobs()), timeout=WAIT)
            for name in names:
                await asyncio.to_thread(namespace.delete_job, name)
        await until(
            lambda: all(j.status is JobStatus.FAILED for j in store.in_status(*JobStatus)), timeout=WAIT
        )
    for job in store.in_status(*JobStatus):
        assert (job.failure_reason, job.attempt) == (FailureReason.INFRASTRUCTURE, 2)
        assert "was deleted by someone else" in job.message


async def test_a_job_whose_kubernetes_job_vanished_while_no_dispatcher_watched_is_retried(
    namespace: Namespace, tmp_path: Path
) -> None:
    """A RUNNING job whose Job is gone when a dispatcher adopts it (its TTL collected it during an
    outage) spends that attempt: it runs again as the next attempt, the old Job is not recreated."""
    store, job_ids = _store(tmp_path, max_attempts=3)
    now = datetime.now(UTC)
    for job in store.due(now, len(job_ids)):
        assert store.start_attempt(job, now) is not None  # started by a dispatcher that then went away
    async with _dispatching(store, _executor(namespace, "replica-a"), tmp_path):
        await until(lambda: {job_name(j, 2) for j in job_ids} <= set(namespace.jobs()), timeout=WAIT)
    assert not {job_name(j, 1) for j in job_ids} & set(namespace.jobs())
    assert {(j.status, j.attempt) for j in store.in_status(*JobStatus)} == {(JobStatus.RUNNING, 2)}
