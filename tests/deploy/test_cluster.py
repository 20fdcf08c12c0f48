"""Against a real kube-apiserver (the ``k8s_cluster`` fixture): the test
cluster itself, `helm install` of the chart, and the dispatcher's RBAC."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from preflight_testkit.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "preflight"
# The values the chart requires and has no default for (an eval-log store).
REQUIRED_VALUES = REPO / "deploy" / "helm" / "tools" / "required-values.yaml"


def api_client(kubeconfig: Path):  # type: ignore[no-untyped-def]
    from kubernetes import config

    return config.new_client_from_config(str(kubeconfig))


def create_namespace(api: Any, name: str) -> None:
    from kubernetes import client

    client.CoreV1Api(api).create_namespace(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )


def job_body(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "registry.example.com/noop:1",
                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        }
                    ],
                },
            },
        },
    }


def job_finished(batch: Any, name: str, ns: str) -> str | None:
    job = batch.read_namespaced_job(name, ns)
    for c in job.status.conditions or []:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return str(c.type)
    return None


# --------------------------------------------------------------------------- the cluster


def test_api_server_version_and_node(k8s_cluster: Path) -> None:
    from kubernetes import client

    api = api_client(k8s_cluster)
    version = client.VersionApi(api).get_code()
    assert version.git_version == "v1.36.3"
    (node,) = client.CoreV1Api(api).list_node().items
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    assert node.status.allocatable["nvidia.com/gpu"] == "8"


def test_jobs_complete_or_fail_on_the_simulated_node(k8s_cluster: Path) -> None:
    from kubernetes import client

    api = api_client(k8s_cluster)
    ns = f"jobs-{secrets.token_hex(3)}"
    create_namespace(api, ns)
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(ns, job_body("ok"))
    batch.create_namespaced_job(ns, job_body("fails", {"preflight.test/kwok-exit": "3"}))
    assert eventually(lambda: job_finished(batch, "ok", ns), "job ok") == "Complete"
    assert eventually(lambda: job_finished(batch, "fails", ns), "job fails") == "Failed"
    pods = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector="job-name=fails").items
    assert pods[0].status.container_statuses[0].state.terminated.exit_code == 3
    batch.create_namespaced_job(ns, job_body("held", {"preflight.test/kwok-hold": ""}))
    core = client.CoreV1Api(api)

    def held_running() -> bool:
        pods = core.list_namespaced_pod(ns, label_selector="job-name=held").items
        return bool(pods) and pods[0].status.phase == "Running"

    eventually(held_running, "held pod running")
    time.sleep(2)
    assert held_running() and job_finished(batch, "held", ns) is None
    client.CoreV1Api(api).delete_namespace(ns)


# --------------------------------------------------------------------------- the chart


@dataclass
class Release:
    name: str
    namespace: str
    job_namespace: str
    kubeconfig: Path
    manifest: list[dict[str, Any]]


def helm_cmd(helm: str, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture(scope="module")
def release(k8s_cluster: Path, helm: str) -> Iterator[Release]:
    suffix = secrets.token_hex(3)
    ns, job_ns = f"preflight-{suffix}", f"preflight-{suffix}-jobs"
    api = api_client(k8s_cluster)
    create_namespace(api, job_ns)
    res = helm_cmd(
        helm,
        k8s_cluster,
        "install",
        "preflight",
        str(CHART),
        "--namespace",
        ns,
        "--create-namespace",
        "--wait",
        "--timeout",
        "3m",
        "-f",
        str(REQUIRED_VALUES),
        "--set",
        f"benchmark.jobNamespace={job_ns}",
        "--set",
        "intake.autoscaling.enabled=true",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    got = helm_cmd(helm, k8s_cluster, "get", "manifest", "preflight", "--namespace", ns)
    assert got.returncode == 0, got.stderr
    manifest = [d for d in yaml.safe_load_all(got.stdout) if d]
    yield Release("preflight", ns, job_ns, k8s_cluster, manifest)
    helm_cmd(helm, k8s_cluster, "uninstall", "preflight", "--namespace", ns, "--wait")
    from kubernetes import client

    for n in (ns, job_ns):
        client.CoreV1Api(api).delete_namespace(n)


def test_install_creates_every_object(release: Release) -> None:
    from kubernetes import dynamic

    dyn = dynamic.DynamicClient(api_client(release.kubeconfig))
    kinds = set()
    for obj in release.manifest:
        resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        ns = obj["metadata"].get("namespace", release.namespace)
        live = resource.get(name=obj["metadata"]["name"], namespace=ns)
        assert live.metadata.labels["app.kubernetes.io/instance"] == "preflight"
        kinds.add(obj["kind"])
    assert {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ConfigMap",
        "Role",
        "RoleBinding",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
    } <= kinds


def test_deployments_become_ready(release: Release) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(api_client(release.kubeconfig))
    deps = apps.list_namespaced_deployment(release.namespace).items
    assert {d.metadata.name for d in deps} == {
        "preflight-intake",
        "preflight-benchmark",
        "preflight-clearinghouse",
        "preflight-notifier",
        "preflight-console",
    }
    for d in deps:
        assert d.status.ready_replicas == (d.spec.replicas or 1), d.metadata.name


def test_topic_hook_ran_and_was_cleaned_up(release: Release, helm: str) -> None:
    from kubernetes import client

    batch = client.BatchV1Api(api_client(release.kubeconfig))
    names = [j.metadata.name for j in batch.list_namespaced_job(release.namespace).items]
    assert "preflight-topics" not in names, "hook-succeeded deletes the Job"
    hooks = helm_cmd(helm, release.kubeconfig, "get", "hooks", "preflight", "--namespace", release.namespace)
    assert "preflight-topics" in hooks.stdout


def test_upgrade_runs_and_keeps_the_release_healthy(release: Release, helm: str) -> None:
    res = helm_cmd(
        helm,
        release.kubeconfig,
        "upgrade",
        "preflight",
        str(CHART),
        "--namespace",
        release.namespace,
        "--reuse-values",
        "--set",
        "notifier.replicaCount=2",
        "--wait",
        "--timeout",
        "3m",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    status = helm_cmd(
        helm, release.kubeconfig, "status", "preflight", "--namespace", release.namespace, "-o", "json"
    )
    assert json.loads(status.stdout)["info"]["status"] == "deployed"


# --------------------------------------------------------------------------- RBAC


def sar(
    api: Any, user: str, ns: str, verb: str, resource: str, group: str = "", subresource: str = ""
) -> bool:
    from kubernetes import client

    attrs = {"namespace": ns, "verb": verb, "group": group, "resource": resource}
    if subresource:
        attrs["subresource"] = subresource
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
                "resourceAttributes": attrs,
            },
        }
    )
    return bool(review.status.allowed)


def test_dispatcher_may_manage_jobs_in_the_job_namespace_only(release: Release) -> None:
    api = api_client(release.kubeconfig)
    sa = f"system:serviceaccount:{release.namespace}:preflight-benchmark"
    jns = release.job_namespace
    for verb in ("create", "get", "list", "watch", "delete"):
        assert sar(api, sa, jns, verb, "jobs", "batch"), verb
    for verb in ("get", "list", "watch"):
        assert sar(api, sa, jns, verb, "pods"), verb
    denied = [
        (jns, "get", "secrets", ""),
        (jns, "list", "secrets", ""),
        (release.namespace, "get", "secrets", ""),
        (jns, "create", "pods", ""),
        (jns, "delete", "pods", ""),
        (jns, "update", "jobs", "batch"),
        (jns, "patch", "jobs", "batch"),
        (jns, "create", "cronjobs", "batch"),
        (jns, "get", "configmaps", ""),
        (release.namespace, "create", "jobs", "batch"),
        ("default", "create", "jobs", "batch"),
        ("kube-system", "list", "pods", ""),
    ]
    for ns, verb, resource, group in denied:
        assert not sar(api, sa, ns, verb, resource, group), (ns, verb, resource)
    assert not sar(api, sa, jns, "create", "pods", subresource="exec")
    assert not sar(api, sa, jns, "get", "pods", subresource="log")


def test_other_services_have_no_kubernetes_permissions(release: Release) -> None:
    api = api_client(release.kubeconfig)
    for svc in ("intake", "clearinghouse", "notifier"):
        user = f"system:serviceaccount:{release.namespace}:preflight-{svc}"
        assert not sar(api, user, release.job_namespace, "create", "jobs", "batch"), svc
        assert not sar(api, user, release.namespace, "get", "secrets"), svc


def token_client(release: Release, sa: str):  # type: ignore[no-untyped-def]
    """An API client authenticated as a ServiceAccount (TokenRequest API)."""
    from kubernetes import client

    admin = api_client(release.kubeconfig)
    tr = client.CoreV1Api(admin).create_namespaced_service_account_token(
        sa,
        release.namespace,
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 600},
        },
    )
    cfg = client.Configuration(
        host=admin.configuration.host,
        api_key={"BearerToken": tr.status.token},
        api_key_prefix={"BearerToken": "Bearer"},
    )
    cfg.ssl_ca_cert = admin.configuration.ssl_ca_cert
    return client.ApiClient(cfg)


def dispatcher_settings(release: Release, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The benchmark service's own Kubernetes settings, from the deployed dispatcher's env."""
    from kubernetes import client

    try:
        from preflight_benchmark.config import KubernetesSettings
    except ImportError as exc:
        return None, str(exc)
    dep = client.AppsV1Api(api_client(release.kubeconfig)).read_namespaced_deployment(
        "preflight-benchmark", release.namespace
    )
    for e in dep.spec.template.spec.containers[0].env:
        if e.name.startswith("PREFLIGHT_") and e.value is not None:
            monkeypatch.setenv(e.name, e.value)
    target = next(
        e.value for e in dep.spec.template.spec.containers[0].env if e.name == "PREFLIGHT_BENCHMARK_TARGET"
    )
    return KubernetesSettings.from_env(target, os.environ["PREFLIGHT_BENCHMARK_LOG_ROOT"]), ""


def test_dispatcher_token_runs_a_worker_job_and_cannot_read_secrets(
    release: Release, monkeypatch: pytest.MonkeyPatch, require
) -> None:  # type: ignore[no-untyped-def]
    """As the dispatcher's ServiceAccount: create the Job the benchmark service builds from the
    chart's settings, see it complete, and be refused Secrets and other namespaces."""
    import datetime as dt

    from kubernetes import client
    from kubernetes.client.rest import ApiException

    settings, why = dispatcher_settings(release, monkeypatch)
    require(settings is not None, f"preflight-benchmark is not importable: {why}")
    from preflight_benchmark.adapters.executors.k8s_manifest import build_job
    from preflight_benchmark.domain.catalog import Resources
    from preflight_benchmark.domain.ports import Attempt

    attempt = Attempt(
        job_id="bj-deploytest01",
        submission_id="sub-deploytest",
        suite_id="cyber.knowledge",
        attempt=1,
        access_kind="endpoint",
        resources=Resources(gpu=0, cpu="1", memory="2Gi"),
        timeout=dt.timedelta(minutes=30),
        assignment="{}",
    )
    job = build_job(attempt, settings.manifest)
    assert job["metadata"]["namespace"] == release.job_namespace
    spec = job["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "preflight-worker"
    assert spec["containers"][0]["image"].endswith("/preflight-worker:0.1.0")

    api = token_client(release, "preflight-benchmark")
    review = client.AuthorizationV1Api(api).create_self_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": release.job_namespace,
                    "verb": "create",
                    "group": "batch",
                    "resource": "jobs",
                }
            },
        }
    )
    assert review.status.allowed

    batch = client.BatchV1Api(api)
    name = batch.create_namespaced_job(release.job_namespace, job).metadata.name
    assert eventually(lambda: job_finished(batch, name, release.job_namespace), "worker job") == "Complete"
    pods = client.CoreV1Api(api).list_namespaced_pod(release.job_namespace, label_selector=f"job-name={name}")
    assert pods.items and pods.items[0].spec.automount_service_account_token is False
    batch.delete_namespaced_job(name, release.job_namespace, propagation_policy="Background")

    for ns in (release.job_namespace, release.namespace):
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).list_namespaced_secret(ns)
        assert err.value.status == 403
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).read_namespaced_secret("preflight-worker", ns)
        assert err.value.status == 403
    other = {**job, "metadata": {**job["metadata"], "namespace": release.namespace}}
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(release.namespace, other)
    assert err.value.status == 403


def install_crd(api: Any, crd: dict[str, Any]) -> None:
    """Create `crd` (unless it exists) and wait until the API server serves it."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    extensions = client.ApiextensionsV1Api(api)
    try:
        extensions.create_custom_resource_definition(crd)
    except ApiException as e:
        assert e.status == 409, e
    eventually(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in extensions.read_custom_resource_definition(crd["metadata"]["name"]).status.conditions
            or []
        ),
        f"{crd['metadata']['name']} established",
    )


def create_strictly(api: Any, obj: dict[str, Any]) -> list[str]:
    """Create `obj` on the API server as a dry run with strict field validation (an unknown field
    is refused, not pruned); returns the server's warnings. Raises ApiException when refused."""
    from kubernetes import client

    plural = obj["kind"].lower() + ("es" if obj["kind"].endswith("s") else "s")
    namespace = obj["metadata"].get("namespace")
    if "/" not in obj["apiVersion"]:  # the core group, under /api (not /apis): the same request
        request = api.param_serialize(
            "POST",
            f"/api/{obj['apiVersion']}/namespaces/{{namespace}}/{plural}",
            path_params={"namespace": namespace},
            query_params=[("dryRun", "All"), ("fieldValidation", "Strict")],
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body=obj,
            auth_settings=["BearerToken"],
        )
        _, _, core_headers = api._call_with_legacy_options(
            request, {"201": "object"}, False, True, None, False
        )
        return [w for w in core_headers.get("Warning", "").split(",") if w]
    group, version = obj["apiVersion"].split("/")
    custom = client.CustomObjectsApi(api)
    options = {"dry_run": "All", "field_validation": "Strict"}
    if namespace:
        _, _, headers = custom.create_namespaced_custom_object_with_http_info(
            group, version, namespace, plural, obj, **options
        )
    else:
        _, _, headers = custom.create_cluster_custom_object_with_http_info(
            group, version, plural, obj, **options
        )
    return [w for w in headers.get("Warning", "").split(",") if w]


def test_kueue_queues_and_grpc_route_are_accepted_by_the_api_server_with_the_published_crds(
    k8s_cluster: Path, helm: str, check_chart: ModuleType, tmp_path: Path
) -> None:
    """The chart's Kueue queues and GRPCRoute, created on the real API server with the CRDs Kueue
    and the Gateway API publish: accepted with strict field validation and no deprecation warning
    (the server also runs the CRDs' CEL rules, which the offline check cannot)."""
    from kubernetes.client.rest import ApiException

    api = api_client(k8s_cluster)
    for name in check_chart.PUBLISHED_CRD_FILES.values():
        install_crd(api, yaml.safe_load((check_chart.PUBLISHED_CRDS / name).read_text()))
    namespace = f"preflight-kueue-{secrets.token_hex(3)}"
    create_namespace(api, namespace)
    values = tmp_path / "kueue.yaml"
    flavor = {
        "name": "h100",
        "nodeLabels": {"cloud.example/accelerator": "h100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "quota": {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8"},
    }
    kueue = {
        "enabled": True,
        "queueName": "preflight-gpu",
        "create": True,
        "cohort": "research",
        "flavors": [flavor],
    }
    values.write_text(
        yaml.safe_dump(
            {
                "benchmark": {"jobNamespace": namespace, "worker": {"kueue": kueue}},
                "gateway": {
                    "enabled": True,
                    "parentRefs": [{"name": "edge"}],
                    "hostnames": ["preflight.example"],
                },
            }
        )
    )
    rendered = check_chart.render(helm, CHART, [REQUIRED_VALUES, values])
    assert rendered.returncode == 0, rendered.stderr
    docs = check_chart.documents(rendered.stdout)
    custom = [d for d in docs if d["kind"] in {"ResourceFlavor", "ClusterQueue", "LocalQueue", "GRPCRoute"}]
    assert sorted(d["kind"] for d in custom) == ["ClusterQueue", "GRPCRoute", "LocalQueue", "ResourceFlavor"]
    for obj in custom:
        if obj["kind"] == "GRPCRoute":
            obj["metadata"]["namespace"] = namespace
        assert create_strictly(api, obj) == [], obj["kind"]

    # The server applies what the offline check does not: a CEL rule of ClusterQueue.
    (queue,) = [d for d in custom if d["kind"] == "ClusterQueue"]
    resources = queue["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
    left_out = resources.pop()  # a flavor must give a quota for every covered resource
    with pytest.raises(ApiException) as refused:
        create_strictly(api, queue)
    assert refused.value.status == 422
    assert check_chart.validate_objects([queue], []) == []
    # And Kueue's deprecated v1beta1, which this chart rendered before, draws a warning.
    resources.append(left_out)
    old = {**queue, "apiVersion": "kueue.x-k8s.io/v1beta1", "spec": {**queue["spec"], "cohort": "research"}}
    del old["spec"]["cohortName"]
    assert any("deprecated" in w for w in create_strictly(api, old))


def test_production_example_installs(k8s_cluster: Path, helm: str) -> None:
    """examples/production.yaml against the real API server (with a stand-in ServiceMonitor CRD)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = api_client(k8s_cluster)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {
                "plural": "servicemonitors",
                "singular": "servicemonitor",
                "kind": "ServiceMonitor",
                "listKind": "ServiceMonitorList",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    install_crd(api, crd)
    ns = f"preflight-prod-{secrets.token_hex(3)}"
    try:
        create_namespace(api, "preflight-benchmarks")
    except ApiException as e:
        assert e.status == 409, e
    res = helm_cmd(
        helm,
        k8s_cluster,
        "install",
        "preflight",
        str(CHART),
        "--namespace",
        ns,
        "--create-namespace",
        "-f",
        str(CHART / "examples" / "production.yaml"),
        "--wait",
        "--timeout",
        "3m",
    )
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        sms = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "monitoring.coreos.com", "v1", ns, "servicemonitors"
        )
        assert len(sms["items"]) == 4
        roles = client.RbacAuthorizationV1Api(api).list_namespaced_role("preflight-benchmarks").items
        assert [r.metadata.name for r in roles] == ["preflight-benchmark-jobs"]
        hpas = client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler(ns).items
        assert len(hpas) == 2
    finally:
        helm_cmd(helm, k8s_cluster, "uninstall", "preflight", "--namespace", ns, "--wait")
        client.CoreV1Api(api).delete_namespace(ns)


# --------------------------------------------------------------------------- Inspect's Kubernetes sandbox


def render_agent_env(helm: str, namespace: str, values: list[Path]) -> list[dict[str, Any]]:
    """inspect-k8s-sandbox's own chart (agent-env, from the installed package) rendered as it
    installs it for a sample: in `namespace`, with the values files given and its --set values."""
    from k8s_sandbox._helm import DEFAULT_CHART

    command = [helm, "template", "agent-env-test", str(DEFAULT_CHART), "--namespace", namespace]
    for file in values:
        command += ["--values", str(file)]
    command += ["--set=annotations.inspectTaskName=cyber.exploit", "--set=labels.inspectSampleUUID=s1"]
    res = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert res.returncode == 0, res.stderr
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    for doc in docs:  # as `helm install --namespace` puts them
        doc["metadata"].setdefault("namespace", namespace)
    return docs


def sandbox_pod(statefulset: dict[str, Any]) -> dict[str, Any]:
    """The Pod the StatefulSet's controller would create (its template, in its namespace)."""
    template = statefulset["spec"]["template"]
    metadata = {**template["metadata"], "name": f"{statefulset['metadata']['name']}-0"}
    metadata["namespace"] = statefulset["metadata"]["namespace"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def test_k8s_sandbox_pods_with_the_charts_values_are_admitted_by_the_restricted_sandbox_namespace(
    k8s_cluster: Path, helm: str, check_chart: ModuleType, tmp_path: Path
) -> None:
    """The chart's sandbox namespace (restricted Pod Security enforced, deny-all NetworkPolicy) is
    created on the real API server; inspect-k8s-sandbox's own chart, rendered with the Helm values
    our chart gives the workers, validates strictly and its objects — and the Pod its StatefulSet
    makes — are accepted there with no Pod Security warning and no Cilium, as is the worker Job
    that mounts those values and the sandbox's token. With the package's default values (root, no
    securityContext, gVisor, CiliumNetworkPolicies) the same namespace warns about the StatefulSet
    and refuses its Pod."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    from preflight_benchmark.adapters.executors.k8s_manifest import K8sSandbox, ManifestSettings, build_job
    from preflight_testkit.benchmark import exploit_attempt

    api = api_client(k8s_cluster)
    namespace = f"preflight-sandbox-{secrets.token_hex(3)}"
    job_namespace = f"{namespace}-jobs"
    values = tmp_path / "sandbox.yaml"
    sandbox = {"enabled": True, "namespace": namespace}
    values.write_text(
        yaml.safe_dump(
            {
                "image": {"pullSecrets": ["registry-credentials"]},
                "benchmark": {"jobNamespace": job_namespace, "worker": {"k8sSandbox": sandbox}},
            }
        )
    )
    rendered = check_chart.render(helm, CHART, [REQUIRED_VALUES, values])
    assert rendered.returncode == 0, rendered.stderr
    ours = check_chart.documents(rendered.stdout)
    [namespace_doc] = [d for d in ours if d["kind"] == "Namespace"]
    assert namespace_doc["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    [deny_all] = [d for d in ours if d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == namespace]
    [config_map] = [
        d for d in ours if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-k8s-sandbox")
    ]
    sandbox_values = tmp_path / "values.yaml"
    sandbox_values.write_text(config_map["data"]["values.yaml"])

    core = client.CoreV1Api(api)
    core.create_namespace(namespace_doc)
    create_namespace(api, job_namespace)
    try:
        client.NetworkingV1Api(api).create_namespaced_network_policy(namespace, deny_all)
        docs = render_agent_env(helm, namespace, [sandbox_values])
        assert sorted({d["kind"] for d in docs}) == ["ConfigMap", "StatefulSet"]
        assert check_chart.validate_objects(docs, ["1.35.0", "1.36.0", "1.37.0"]) == []
        [statefulset] = [d for d in docs if d["kind"] == "StatefulSet"]
        pulling = statefulset["spec"]["template"]["spec"]["imagePullSecrets"]
        assert pulling == [{"name": "registry-credentials"}]
        for obj in [*docs, sandbox_pod(statefulset)]:
            assert create_strictly(api, obj) == [], obj["kind"]
        settings = ManifestSettings(
            namespace=job_namespace,
            image="registry.example.com/preflight/preflight-worker:0.1.0",
            intake_target="preflight-intake:50051",
            benchmark_target="preflight-benchmark:50052",
            service_account="preflight-worker",
            k8s_sandbox=K8sSandbox(namespace, config_map["metadata"]["name"]),
        )
        exploit = exploit_attempt("bj-sandboxtest01")
        assert "k8s-api-token" in {
            v["name"] for v in build_job(exploit, settings)["spec"]["template"]["spec"]["volumes"]
        }
        assert create_strictly(api, build_job(exploit, settings)) == []

        # The package's defaults: gVisor, which the API server knows here, so that Pod Security
        # alone decides.
        try:
            client.NodeV1Api(api).create_runtime_class(
                {
                    "apiVersion": "node.k8s.io/v1",
                    "kind": "RuntimeClass",
                    "metadata": {"name": "gvisor"},
                    "handler": "runsc",
                }
            )
        except ApiException as e:
            assert e.status == 409, e
        defaults = render_agent_env(helm, namespace, [])
        assert "CiliumNetworkPolicy" in {d["kind"] for d in defaults}
        [statefulset] = [d for d in defaults if d["kind"] == "StatefulSet"]
        assert any("PodSecurity" in w for w in create_strictly(api, statefulset))
        with pytest.raises(ApiException) as refused:
            create_strictly(api, sandbox_pod(statefulset))
        message = json.loads(refused.value.body)["message"]
        assert refused.value.status == 403, message
        assert 'violates PodSecurity "restricted:latest"' in message and "runAsNonRoot" in message, message
    finally:
        core.delete_namespace(namespace)
        core.delete_namespace(job_namespace)
