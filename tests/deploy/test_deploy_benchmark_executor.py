"""The benchmark service's KubernetesExecutor with nothing but the chart's dispatcher Role.

The Role and RoleBinding are rendered from the chart (`helm template`) and
applied to the test cluster; the executor then runs as the dispatcher's
ServiceAccount (a TokenRequest token): it creates a Job (twice: the 409 is
success), watches it to its end, and deletes a running one; the dispatcher
holds, renews and releases its Lease. The Role grants `get` on jobs but not on
their status subresource, so the executor reads Jobs whole.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from preflight_benchmark.adapters.executors.k8s_lease import LeaseElection
from preflight_benchmark.adapters.executors.k8s_manifest import ManifestSettings, job_name, token_secret_name
from preflight_benchmark.adapters.executors.kubernetes import KubernetesExecutor
from preflight_benchmark.adapters.grpc_clients import GrpcJobTokens
from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import AttemptEnd
from preflight_benchmark.domain.ports import Attempt
from preflight_common.auth import Principal, Role
from preflight_testkit.benchmark import intake_stand_in

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "preflight"
# The values the chart requires and has no default for (an eval-log store).
REQUIRED_VALUES = CHART.parent / "tools" / "required-values.yaml"
DISPATCHER = "preflight-benchmark"  # the chart's ServiceAccount of the benchmark service
HOLD = "preflight.test/kwok-hold"
WAIT = 60.0


@dataclass
class Namespaces:
    release: str
    jobs: str
    admin: Any  # ApiClient as the cluster admin
    dispatcher: Any  # ApiClient as the dispatcher's ServiceAccount


def _apply(admin: Any, manifest: dict[str, Any]) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    namespace = manifest["metadata"]["namespace"]
    if manifest["kind"] == "Role":
        rbac.create_namespaced_role(namespace, manifest)
    elif manifest["kind"] == "RoleBinding":
        rbac.create_namespaced_role_binding(namespace, manifest)
    else:
        raise AssertionError(f"unexpected {manifest['kind']} in templates/rbac.yaml")


@pytest.fixture(scope="module")
def namespaces(k8s_cluster: Path, helm: str) -> Iterator[Namespaces]:
    suffix = secrets.token_hex(3)
    release, jobs = f"preflight-rbac-{suffix}", f"preflight-rbac-{suffix}-jobs"
    rendered = subprocess.run(
        [
            helm,
            "template",
            "preflight",
            str(CHART),
            "--namespace",
            release,
            "--show-only",
            "templates/rbac.yaml",
            "-f",
            str(REQUIRED_VALUES),
            "--set",
            f"benchmark.jobNamespace={jobs}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    admin = config.new_client_from_config(str(k8s_cluster))
    core = client.CoreV1Api(admin)
    for name in (release, jobs):
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        core.create_namespaced_service_account(
            release, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DISPATCHER}}
        )
        manifests = [m for m in yaml.safe_load_all(rendered) if m]
        assert {m["kind"] for m in manifests} == {"Role", "RoleBinding"}
        for manifest in manifests:
            _apply(admin, manifest)
        token = core.create_namespaced_service_account_token(
            DISPATCHER,
            release,
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 600},
            },
        ).status.token
        configuration = client.Configuration(
            host=admin.configuration.host,
            api_key={"BearerToken": token},
            api_key_prefix={"BearerToken": "Bearer"},
        )
        configuration.ssl_ca_cert = admin.configuration.ssl_ca_cert
        yield Namespaces(release, jobs, admin, client.ApiClient(configuration))
    finally:
        for name in (release, jobs):
            core.delete_namespace(name)


def _executor(ns: Namespaces, job_tokens: GrpcJobTokens | None = None) -> KubernetesExecutor:
    settings = ManifestSettings(
        namespace=ns.jobs,
        image="registry.example/preflight-worker:test",
        intake_target=f"preflight-intake.{ns.release}.svc:50051",
        benchmark_target=f"preflight-benchmark.{ns.release}.svc:50052",
        pod_annotations={HOLD: ""},
    )
    return KubernetesExecutor(ns.dispatcher, settings, initial_backoff=0.05, job_tokens=job_tokens)


def _attempt() -> Attempt:
    return Attempt(
        job_id=f"bj-{uuid.uuid4().hex}",
        submission_id=str(uuid.uuid4()),
        suite_id="cyber.knowledge",
        attempt=1,
        access_kind="endpoint",
        resources=Resources(gpu=1, cpu="1", memory="1Gi"),
        timeout=timedelta(minutes=10),
        assignment="{}",
    )


async def _held_pod(ns: Namespaces, name: str) -> Any:
    core = client.CoreV1Api(ns.admin)
    async with asyncio.timeout(WAIT):
        while True:
            pods = await asyncio.to_thread(
                core.list_namespaced_pod, ns.jobs, label_selector=f"job-name={name}"
            )
            running = [p for p in pods.items if p.status.phase == "Running"]
            if running:
                return running[0]
            await asyncio.sleep(0.1)


async def test_the_dispatchers_role_lets_the_executor_run_a_job_to_its_end(namespaces: Namespaces) -> None:
    executor, attempt = _executor(namespaces), _attempt()
    name = job_name(attempt.job_id, attempt.attempt)
    await executor.create(attempt)
    await executor.create(attempt)  # AlreadyExists (409): created
    running = asyncio.create_task(executor.run(attempt))  # a third create, then the watch
    pod = await _held_pod(namespaces, name)
    await asyncio.to_thread(
        client.CoreV1Api(namespaces.admin).patch_namespaced_pod,
        pod.metadata.name,
        namespaces.jobs,
        {"metadata": {"annotations": {HOLD: None}}},  # the worker exits 0
    )
    outcome = await asyncio.wait_for(running, WAIT)
    assert (outcome.end, outcome.detail) == (AttemptEnd.EXITED, f"Job {name} succeeded")
    jobs = client.BatchV1Api(namespaces.dispatcher).list_namespaced_job(
        namespaces.jobs, label_selector=f"preflight.dev/job-id={attempt.job_id}"
    )
    assert [j.metadata.name for j in jobs.items] == [name]


async def test_the_dispatchers_role_lets_the_executor_delete_a_running_job(namespaces: Namespaces) -> None:
    executor, attempt = _executor(namespaces), _attempt()
    name = job_name(attempt.job_id, attempt.attempt)
    running = asyncio.create_task(executor.run(attempt))
    await _held_pod(namespaces, name)
    await executor.cancel(attempt.job_id, attempt.attempt)
    outcome = await asyncio.wait_for(running, WAIT)
    assert outcome.end == AttemptEnd.CANCELLED
    with pytest.raises(ApiException) as gone:
        client.BatchV1Api(namespaces.admin).read_namespaced_job(name, namespaces.jobs)
    assert gone.value.status == 404


async def test_the_dispatchers_role_lets_it_hold_renew_and_release_the_dispatcher_lease(
    namespaces: Namespaces,
) -> None:
    lease_name = "preflight-benchmark-dispatcher"  # the chart's PREFLIGHT_BENCHMARK_K8S_LEASE
    leases = client.CoordinationV1Api(namespaces.admin)
    election = LeaseElection(namespaces.dispatcher, namespaces.jobs, lease_name, "replica-a", lease_seconds=3)
    assert await asyncio.to_thread(election.try_acquire_or_renew)  # create
    first = leases.read_namespaced_lease(lease_name, namespaces.jobs).spec.renew_time
    assert await asyncio.to_thread(election.try_acquire_or_renew)  # get, update
    lease = leases.read_namespaced_lease(lease_name, namespaces.jobs).spec
    assert (lease.holder_identity, lease.renew_time > first) == ("replica-a", True)
    await asyncio.to_thread(election.release)
    assert leases.read_namespaced_lease(lease_name, namespaces.jobs).spec.holder_identity is None
    # The Role names that one Lease: reading any other is refused.
    other = LeaseElection(
        namespaces.dispatcher, namespaces.jobs, "another-lease", "replica-a", lease_seconds=3
    )
    with pytest.raises(ApiException) as refused:
        await asyncio.to_thread(other.try_acquire_or_renew)
    assert refused.value.status == 403


async def test_each_job_mounts_a_token_secret_of_its_own_job_owned_by_the_job(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    """The dispatcher's Role lets it create each Job's token Secret; the Secret holds a token of
    that job only (issued by the identity service, a real loopback stand-in of intake), is owned
    by the Job (the garbage collector deletes it with the Job) and is what the Job mounts."""
    with intake_stand_in(tmp_path) as intake:
        executor = _executor(namespaces, GrpcJobTokens(intake.target, intake.service_token))
        attempt = _attempt()
        name = job_name(attempt.job_id, attempt.attempt)
        await executor.create(attempt)
        await executor.create(attempt)  # both 409s (Job, Secret): created, the Secret kept
        admin = client.CoreV1Api(namespaces.admin)
        job = client.BatchV1Api(namespaces.admin).read_namespaced_job(name, namespaces.jobs)
        secret = admin.read_namespaced_secret(
            token_secret_name(attempt.job_id, attempt.attempt), namespaces.jobs
        )
        [owner] = secret.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid) == ("Job", name, job.metadata.uid)
        token = base64.b64decode(secret.data["token"]).decode()
        resolved = intake.tokens.resolve(token)
        assert resolved is not None and resolved[0] == Principal(attempt.job_id, Role.WORKER, "preflight")
        assert token != intake.service_token
        volumes = {v.name: v for v in job.spec.template.spec.volumes}
        [mount] = [m for m in job.spec.template.spec.containers[0].volume_mounts if m.name == "job-token"]
        assert mount.read_only
        assert volumes["job-token"].secret.secret_name == secret.metadata.name
        # Nothing else of the service's reaches the pod: no volume of another Secret holds a token.
        assert [v.secret.secret_name for v in volumes.values() if v.secret] == [secret.metadata.name]
        # The Role lets the dispatcher create Secrets, never read one.
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(namespaces.dispatcher).read_namespaced_secret(
                secret.metadata.name, namespaces.jobs
            )
        assert refused.value.status == 403
        # Deleting the Job (the executor's cancel) deletes its Secret: the garbage collector.
        await executor.cancel(attempt.job_id, attempt.attempt)

        async def secret_gone() -> None:
            while True:
                try:
                    await asyncio.to_thread(
                        admin.read_namespaced_secret, secret.metadata.name, namespaces.jobs
                    )
                except ApiException as exc:
                    if exc.status == 404:
                        return
                    raise
                await asyncio.sleep(0.1)

        await asyncio.wait_for(secret_gone(), WAIT)
