"""Job manifests for a CPU (endpoint) suite and a GPU (weights) suite pass strict schema validation."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client
from preflight.benchmark.v1 import events_pb2
from preflight.intake.v1 import events_pb2 as intake_events
from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.adapters.events import job_requested
from preflight_benchmark.adapters.executors.k8s_manifest import (
    EVAL_LOG_CREDENTIALS_DIR,
    GPU_RESOURCE,
    K8S_SANDBOX_DIR,
    K8S_SANDBOX_VALUES_ENV,
    SERVICE_ACCOUNT_DIR,
    WEIGHTS_CREDENTIALS_DIR,
    EvalLogStore,
    K8sSandbox,
    ManifestSettings,
    SecretRef,
    WeightsSettings,
    build_job,
    job_name,
)
from preflight_benchmark.config import KubernetesSettings
from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import AccessWindow, PlannedJob
from preflight_benchmark.domain.ports import Attempt
from preflight_common.config import ConfigError

# The three newest Kubernetes versions whose schemas kubernetes-validate 1.37 ships.
KUBERNETES_VERSIONS = ["1.35.0", "1.36.0", "1.37.0"]
SETTINGS = ManifestSettings(
    namespace="preflight",
    image="registry.example/preflight-benchmark:1.0.0",
    intake_target="preflight-intake:50051",
    benchmark_target="preflight-benchmark:50052",
    gpu_node_selector={"cloud.example/accelerator": "h100"},
    gpu_tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    node_selector={"kubernetes.io/os": "linux"},
    kueue_queue="preflight-benchmarks",
    otlp_endpoint="http://otel-collector.observability:4317",
    otlp_protocol="grpc",
    grpc_ca=SecretRef("preflight-grpc-tls", "ca.crt"),
    instance="preflight-prod",
    image_pull_secrets=("registry-a", "registry-b"),
    scratch_size_limit="30Gi",
    runtime_class="gvisor",
    priority_class="preflight-benchmarks",
)
LOG_ROOT = "s3://preflight-eval-logs/prod"


def attempt(access_kind: str, gpu: int = 0) -> Attempt:
    assignment = {
        "job": {"jobId": "bj-" + "a" * 32, "access": {access_kind: {"credentialRef": "cred-1"}}},
        "attempt": 2,
    }
    return Attempt(
        job_id="bj-" + "a" * 32,
        submission_id="3f0c6a52-5d55-4c43-9a3e-7d6f1f1c2b10",
        suite_id="cyber.vuln-detect",
        attempt=2,
        access_kind=access_kind,
        resources=Resources(gpu=gpu, cpu="2", memory="4Gi"),
        timeout=timedelta(hours=1),
        assignment=json.dumps(assignment),
    )


CPU_JOB = build_job(attempt("endpoint"), SETTINGS)
GPU_JOB = build_job(attempt("weights"), SETTINGS)


def containers(job: dict[str, Any]) -> list[dict[str, Any]]:
    spec = job["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("job", [CPU_JOB, GPU_JOB], ids=["cpu-endpoint", "gpu-weights"])
def test_job_manifest_passes_strict_validation(job: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(job, version, strict=True)


@pytest.mark.parametrize("gpu", [0, 2])
@pytest.mark.parametrize("access_kind", ["endpoint", "weights"])
def test_the_kubernetes_client_accepts_the_manifest(access_kind: str, gpu: int) -> None:
    """The client validates request bodies against its models (quantities are strings, not numbers)."""
    job = client.V1Job.from_dict(build_job(attempt(access_kind, gpu), SETTINGS))
    for container in [*(job.spec.template.spec.init_containers or []), *job.spec.template.spec.containers]:
        quantities = [*container.resources.requests.values(), *container.resources.limits.values()]
        assert quantities and all(isinstance(q, str) for q in quantities)


def test_pod_annotations_go_on_the_pods_only() -> None:
    annotated = ManifestSettings(
        namespace="preflight",
        image="preflight-benchmark:1",
        intake_target="intake:50051",
        benchmark_target="benchmark:50052",
        pod_annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    )
    job = build_job(attempt("endpoint"), annotated)
    assert job["spec"]["template"]["metadata"]["annotations"] == {
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"
    }
    assert "cluster-autoscaler.kubernetes.io/safe-to-evict" not in job["metadata"]["annotations"]
    assert "annotations" not in CPU_JOB["spec"]["template"]["metadata"]


def test_strict_validation_rejects_an_unknown_field() -> None:
    broken = json.loads(json.dumps(CPU_JOB))
    broken["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_job_runs_once_with_deadline_ttl_and_failure_policy() -> None:
    spec = CPU_JOB["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 3600
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 3600
    rules = spec["podFailurePolicy"]["rules"]
    assert {
        "action": "FailJob",
        "onExitCodes": {"containerName": "worker", "operator": "In", "values": [78]},
    } in rules
    assert any(
        r["action"] == "Ignore" and r["onPodConditions"][0]["type"] == "DisruptionTarget" for r in rules
    )


def test_labels_name_the_submission_job_suite_and_queue() -> None:
    labels = CPU_JOB["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "preflight"
    assert labels["preflight.dev/submission-id"] == "3f0c6a52-5d55-4c43-9a3e-7d6f1f1c2b10"
    assert labels["preflight.dev/job-id"] == "bj-" + "a" * 32
    assert labels["preflight.dev/suite-id"] == "cyber.vuln-detect"
    assert labels["kueue.x-k8s.io/queue-name"] == "preflight-benchmarks"
    assert CPU_JOB["metadata"]["name"] == job_name("bj-" + "a" * 32, 2)
    assert CPU_JOB["spec"]["template"]["metadata"]["labels"] == labels


def test_the_job_token_is_a_file_of_the_jobs_own_secret_never_an_environment_variable() -> None:
    for job in (CPU_JOB, GPU_JOB):
        for container in containers(job):
            for variable in container.get("env", []):
                assert "secretKeyRef" not in variable.get("valueFrom", {}), variable["name"]
                assert variable["name"] != "PREFLIGHT_SERVICE_TOKEN"
        pod = job["spec"]["template"]["spec"]
        worker = pod["containers"][0]
        env = {v["name"]: v.get("value") for v in worker["env"]}
        assert env["PREFLIGHT_SERVICE_TOKEN_FILE"] == "/etc/preflight/job-token/token"
        mount = next(m for m in worker["volumeMounts"] if m["mountPath"] == "/etc/preflight/job-token")
        assert mount["readOnly"] is True
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert volume["secret"] == {
            "secretName": f"{job['metadata']['name']}-token",
            "defaultMode": 0o440,
            "items": [{"key": "token", "path": "token"}],
        }


def test_workers_export_their_spans_where_the_service_does() -> None:
    env = CPU_JOB["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [v["name"] for v in env]
    values = {v["name"]: v.get("value") for v in env}
    assert values["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317"
    assert values["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    # $(POD_NAME) expands only when POD_NAME is defined before it.
    assert values["OTEL_RESOURCE_ATTRIBUTES"] == "k8s.namespace.name=preflight,k8s.pod.name=$(POD_NAME)"
    assert names.index("POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")
    quiet = build_job(attempt("endpoint"), replace(SETTINGS, otlp_endpoint="", otlp_protocol=""))
    assert not {v["name"] for v in quiet["spec"]["template"]["spec"]["containers"][0]["env"]} & {
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_RESOURCE_ATTRIBUTES",
    }


def test_workers_verify_the_services_tls_with_the_ca_from_its_secret() -> None:
    spec = CPU_JOB["spec"]["template"]["spec"]
    worker = spec["containers"][0]
    assert {"name": "grpc-ca", "mountPath": "/etc/preflight/grpc-ca", "readOnly": True} in worker[
        "volumeMounts"
    ]
    assert {"name": "PREFLIGHT_GRPC_TLS_CA", "value": "/etc/preflight/grpc-ca/ca.crt"} in worker["env"]
    [volume] = [v for v in spec["volumes"] if v["name"] == "grpc-ca"]
    assert volume["secret"] == {
        "secretName": "preflight-grpc-tls",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    plaintext = build_job(attempt("endpoint"), replace(SETTINGS, grpc_ca=None))["spec"]["template"]["spec"]
    assert "PREFLIGHT_GRPC_TLS_CA" not in {v["name"] for v in plaintext["containers"][0]["env"]}
    assert "grpc-ca" not in {v["name"] for v in plaintext["volumes"]}


def test_cpu_suite_requests_no_gpu_and_stays_off_gpu_pools() -> None:
    spec = CPU_JOB["spec"]["template"]["spec"]
    assert all(GPU_RESOURCE not in json.dumps(c["resources"]) for c in containers(CPU_JOB))
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert "tolerations" not in spec


def test_weights_job_serves_the_model_on_the_gpu_beside_the_worker() -> None:
    spec = GPU_JOB["spec"]["template"]["spec"]
    fetch, server = spec["initContainers"]
    assert fetch["command"][-3:] == ["fetch-weights", "--dest", "/models/weights"]
    assert server["restartPolicy"] == "Always", "vLLM runs as a native sidecar"
    assert server["resources"]["limits"][GPU_RESOURCE] == "1"
    assert spec["nodeSelector"]["cloud.example/accelerator"] == "h100"
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    worker_env = {v["name"]: v.get("value") for v in spec["containers"][0]["env"]}
    assert worker_env["PREFLIGHT_WORKER_MODEL_SERVER_URL"] == "http://127.0.0.1:8000/v1"


def test_a_suite_that_needs_gpus_requests_them_for_the_worker() -> None:
    job = build_job(attempt("endpoint", gpu=2), SETTINGS)
    kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)
    worker = job["spec"]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"][GPU_RESOURCE] == "2"
    assert job["spec"]["template"]["spec"]["nodeSelector"]["cloud.example/accelerator"] == "h100"


def test_secret_references_are_read_from_the_environment_and_named_when_malformed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert KubernetesSettings.from_env("benchmark:50052", LOG_ROOT).manifest.grpc_ca is None
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_GRPC_CA_SECRET", "preflight-grpc-tls:ca.crt")
    manifest = KubernetesSettings.from_env("benchmark:50052", LOG_ROOT).manifest
    assert manifest.grpc_ca == SecretRef("preflight-grpc-tls", "ca.crt")
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_GRPC_CA_SECRET", "preflight-grpc-tls")
    with pytest.raises(ConfigError, match="PREFLIGHT_BENCHMARK_K8S_GRPC_CA_SECRET: expected"):
        KubernetesSettings.from_env("benchmark:50052", LOG_ROOT)


def test_jobs_carry_the_release_label_and_no_service_links() -> None:
    """One selector (app.kubernetes.io/instance=<release>) finds every worker Job of a release and
    its pods; no variables for the namespace's Services reach the worker."""
    for job in (CPU_JOB, GPU_JOB):
        assert job["metadata"]["labels"]["app.kubernetes.io/instance"] == "preflight-prod"
        assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == "preflight-prod"
        assert job["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_scratch_is_bounded_and_requested_as_ephemeral_storage() -> None:
    spec = CPU_JOB["spec"]["template"]["spec"]
    [scratch] = [v for v in spec["volumes"] if v["name"] == "scratch"]
    assert scratch["emptyDir"] == {"sizeLimit": "30Gi"}
    assert spec["containers"][0]["resources"]["requests"]["ephemeral-storage"] == "30Gi"
    [server] = [
        c for c in GPU_JOB["spec"]["template"]["spec"]["initContainers"] if c["name"] == "model-server"
    ]
    assert server["resources"]["requests"]["ephemeral-storage"] == "200Gi", "the weights' emptyDir"


def test_pull_secrets_runtime_and_priority_class_reach_the_pod() -> None:
    for job in (CPU_JOB, GPU_JOB):
        spec = job["spec"]["template"]["spec"]
        assert spec["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]
        assert spec["runtimeClassName"] == "gvisor"
        assert spec["priorityClassName"] == "preflight-benchmarks"
    plain = build_job(
        attempt("endpoint"), replace(SETTINGS, image_pull_secrets=(), runtime_class=None, priority_class=None)
    )["spec"]["template"]["spec"]
    assert not {"imagePullSecrets", "runtimeClassName", "priorityClassName"} & set(plain)


def test_an_eval_log_claim_is_mounted_at_the_log_root_and_store_credentials_are_files_of_a_secret() -> None:
    store = EvalLogStore(
        claim="eval-logs", mount_path="/eval-logs", secret="eval-log-keys", env={"AWS_REGION": "eu-west-1"}
    )
    job = build_job(attempt("weights"), replace(SETTINGS, eval_logs=store))
    kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)
    spec = job["spec"]["template"]["spec"]
    assert {"name": "eval-logs", "persistentVolumeClaim": {"claimName": "eval-logs"}} in spec["volumes"]
    worker = spec["containers"][0]
    assert {"name": "eval-logs", "mountPath": "/eval-logs"} in worker["volumeMounts"]
    # The store's credentials are files (the client is pointed at them by `env`), never variables.
    assert "envFrom" not in worker
    assert {
        "name": "eval-log-credentials",
        "secret": {"secretName": "eval-log-keys", "defaultMode": 0o440},
    } in spec["volumes"]
    credentials = {"name": "eval-log-credentials", "mountPath": EVAL_LOG_CREDENTIALS_DIR, "readOnly": True}
    assert credentials in worker["volumeMounts"]
    assert {"name": "AWS_REGION", "value": "eu-west-1"} in worker["env"]
    # Only the worker writes eval logs: the weights fetcher and the model server see neither.
    for other in spec["initContainers"]:
        assert not {"eval-logs", "eval-log-credentials"} & {m["name"] for m in other["volumeMounts"]}
    for job in (CPU_JOB, GPU_JOB):
        for container in containers(job):
            assert "envFrom" not in container


@pytest.mark.parametrize(
    ("log_root", "claim", "expected"),
    [
        ("s3://bucket/logs", None, EvalLogStore()),
        ("gs://bucket/logs", None, EvalLogStore()),
        ("/eval-logs/", "logs-claim", EvalLogStore(claim="logs-claim", mount_path="/eval-logs")),
    ],
)
def test_the_eval_log_store_follows_the_log_root(
    monkeypatch: pytest.MonkeyPatch, log_root: str, claim: str | None, expected: EvalLogStore
) -> None:
    if claim:
        monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_CLAIM", claim)
    assert KubernetesSettings.from_env("benchmark:50052", log_root).manifest.eval_logs == expected


@pytest.mark.parametrize(
    ("log_root", "claim", "variable"),
    [
        ("/var/lib/preflight/eval-logs", "", "PREFLIGHT_BENCHMARK_LOG_ROOT"),
        ("run/benchmark/eval-logs", "logs-claim", "PREFLIGHT_BENCHMARK_LOG_ROOT"),
        ("file:///eval-logs", "", "PREFLIGHT_BENCHMARK_LOG_ROOT"),
        ("s3://bucket/logs", "logs-claim", "PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_CLAIM"),
    ],
)
def test_a_log_root_a_worker_cannot_keep_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, log_root: str, claim: str, variable: str
) -> None:
    """The worker's root file system is read-only and its scratch space goes with the pod."""
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_CLAIM", claim)
    with pytest.raises(ConfigError, match=f"^{variable}:"):
        KubernetesSettings.from_env("benchmark:50052", log_root)


def test_job_hygiene_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PREFLIGHT_BENCHMARK_K8S_INSTANCE": "preflight-prod",
        "PREFLIGHT_BENCHMARK_K8S_IMAGE_PULL_SECRETS": "registry-a, registry-b",
        "PREFLIGHT_BENCHMARK_K8S_SCRATCH_SIZE": "30Gi",
        "PREFLIGHT_BENCHMARK_K8S_RUNTIME_CLASS": "gvisor",
        "PREFLIGHT_BENCHMARK_K8S_PRIORITY_CLASS": "preflight-benchmarks",
        "PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_SECRET": "eval-log-keys",
        "PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_ENV": '{"AWS_REGION": "eu-west-1"}',
    }.items():
        monkeypatch.setenv(name, value)
    manifest = KubernetesSettings.from_env("benchmark:50052", LOG_ROOT).manifest
    assert (manifest.instance, manifest.image_pull_secrets, manifest.scratch_size_limit) == (
        "preflight-prod",
        ("registry-a", "registry-b"),
        "30Gi",
    )
    assert (manifest.runtime_class, manifest.priority_class) == ("gvisor", "preflight-benchmarks")
    assert manifest.eval_logs == EvalLogStore(secret="eval-log-keys", env={"AWS_REGION": "eu-west-1"})
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_SCRATCH_SIZE", "lots")
    with pytest.raises(ConfigError, match=r"^PREFLIGHT_BENCHMARK_K8S_SCRATCH_SIZE:"):
        KubernetesSettings.from_env("benchmark:50052", LOG_ROOT)


WEIGHTS_STORE = WeightsSettings(
    gpus=1,
    models_size_limit="400Gi",
    shm_size="32Gi",
    claim="weights-mirror",
    secret="weights-store-keys",
    env={"AWS_SHARED_CREDENTIALS_FILE": f"{WEIGHTS_CREDENTIALS_DIR}/credentials"},
)


def named(job: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in containers(job) if c["name"] == name)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("gpu", [1, 4])
def test_a_weights_suite_is_served_with_one_tensor_parallel_rank_per_declared_gpu(
    gpu: int, version: str
) -> None:
    job = build_job(attempt("weights", gpu=gpu), replace(SETTINGS, weights=WEIGHTS_STORE))
    kubernetes_validate.validate(job, version, strict=True)
    server = named(job, "model-server")
    args = server["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == str(gpu)
    assert (
        server["resources"]["requests"][GPU_RESOURCE]
        == server["resources"]["limits"][GPU_RESOURCE]
        == str(gpu)
    )
    # The GPUs are the model server's: the worker asks for none of them again.
    assert GPU_RESOURCE not in json.dumps(named(job, "worker")["resources"])
    spec = job["spec"]["template"]["spec"]
    assert spec["nodeSelector"]["cloud.example/accelerator"] == "h100"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_a_weights_suite_declaring_no_gpu_gets_the_configured_default() -> None:
    job = build_job(attempt("weights", gpu=0), replace(SETTINGS, weights=replace(WEIGHTS_STORE, gpus=2)))
    args = named(job, "model-server")["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"


def test_vllm_gets_a_memory_backed_dev_shm_and_the_download_is_requested_as_ephemeral_storage() -> None:
    job = build_job(attempt("weights", gpu=2), replace(SETTINGS, weights=WEIGHTS_STORE))
    spec = job["spec"]["template"]["spec"]
    assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}} in spec["volumes"]
    assert {"name": "models", "emptyDir": {"sizeLimit": "400Gi"}} in spec["volumes"]
    server = named(job, "model-server")
    assert {"name": "shm", "mountPath": "/dev/shm"} in server["volumeMounts"]
    fetch = named(job, "fetch-weights")
    assert fetch["resources"]["requests"]["ephemeral-storage"] == "400Gi"
    assert server["resources"]["requests"]["ephemeral-storage"] == "400Gi"
    assert "shm" not in {m["name"] for m in fetch["volumeMounts"]}


def test_the_fetcher_alone_gets_the_weights_store_credentials_as_files_and_the_mirror_read_only() -> None:
    job = build_job(attempt("weights"), replace(SETTINGS, weights=WEIGHTS_STORE))
    kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)
    spec = job["spec"]["template"]["spec"]
    assert {
        "name": "weights-mirror",
        "persistentVolumeClaim": {"claimName": "weights-mirror", "readOnly": True},
    } in spec["volumes"]
    assert {
        "name": "weights-credentials",
        "secret": {"secretName": "weights-store-keys", "defaultMode": 0o440},
    } in spec["volumes"]
    fetch = named(job, "fetch-weights")
    assert {"name": "weights-mirror", "mountPath": "/weights-mirror", "readOnly": True} in fetch[
        "volumeMounts"
    ]
    assert {"name": "weights-credentials", "mountPath": WEIGHTS_CREDENTIALS_DIR, "readOnly": True} in fetch[
        "volumeMounts"
    ]
    env = {v["name"]: v["value"] for v in fetch["env"]}
    assert env["PREFLIGHT_WORKER_WEIGHTS_MIRROR"] == "/weights-mirror"
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == f"{WEIGHTS_CREDENTIALS_DIR}/credentials"
    for other in ("model-server", "worker"):
        mounts = {m["name"] for m in named(job, other)["volumeMounts"]}
        assert not {"weights-mirror", "weights-credentials"} & mounts, other
        assert "AWS_SHARED_CREDENTIALS_FILE" not in {v["name"] for v in named(job, other)["env"]}


def test_a_digest_mismatch_in_the_fetcher_fails_the_job_at_once_and_vllm_health_gates_the_worker() -> None:
    spec = GPU_JOB["spec"]
    assert {
        "action": "FailJob",
        "onExitCodes": {"containerName": "fetch-weights", "operator": "In", "values": [78]},
    } in spec["podFailurePolicy"]["rules"]
    assert "fetch-weights" not in json.dumps(CPU_JOB["spec"]["podFailurePolicy"])
    # Order: the fetcher ends before vLLM starts; vLLM's startup probe passes before the worker starts.
    names = [c["name"] for c in spec["template"]["spec"]["initContainers"]]
    assert names == ["fetch-weights", "model-server"]
    probe = named(GPU_JOB, "model-server")["startupProbe"]
    command = " ".join(probe["exec"]["command"])
    assert "http://127.0.0.1:8000/health" in command, "vLLM listens on the pod's loopback only"
    assert "httpGet" not in probe


def test_a_kueue_queue_suspends_the_job_for_admission_and_none_leaves_it_running() -> None:
    assert CPU_JOB["spec"]["suspend"] is True
    assert GPU_JOB["spec"]["suspend"] is True
    unqueued = build_job(attempt("endpoint"), replace(SETTINGS, kueue_queue=None))
    assert "suspend" not in unqueued["spec"]
    assert "kueue.x-k8s.io/queue-name" not in unqueued["metadata"]["labels"]


def test_weights_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PREFLIGHT_BENCHMARK_K8S_WEIGHTS_GPUS": "2",
        "PREFLIGHT_BENCHMARK_K8S_WEIGHTS_STORAGE": "400Gi",
        "PREFLIGHT_BENCHMARK_K8S_WEIGHTS_SHM": "32Gi",
        "PREFLIGHT_BENCHMARK_K8S_WEIGHTS_CLAIM": "weights-mirror",
        "PREFLIGHT_BENCHMARK_K8S_WEIGHTS_SECRET": "weights-store-keys",
        "PREFLIGHT_BENCHMARK_K8S_WEIGHTS_ENV": json.dumps(dict(WEIGHTS_STORE.env)),
    }.items():
        monkeypatch.setenv(name, value)
    assert KubernetesSettings.from_env("benchmark:50052", LOG_ROOT).manifest.weights == replace(
        WEIGHTS_STORE, gpus=2
    )
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_WEIGHTS_SHM", "plenty")
    with pytest.raises(ConfigError, match=r"^PREFLIGHT_BENCHMARK_K8S_WEIGHTS_SHM:"):
        KubernetesSettings.from_env("benchmark:50052", LOG_ROOT)


SANDBOXED = replace(SETTINGS, k8s_sandbox=K8sSandbox("preflight-sandbox", "preflight-k8s-sandbox"))


def test_the_job_request_carries_the_suite_s_sandbox_from_the_catalog() -> None:
    """What decides whether a worker Job gets the sandbox's token: the suite's own catalog entry,
    carried in its job request (the attempt's `sandbox`)."""
    now = datetime(2026, 12, 7, tzinfo=UTC)
    submission = intake_events.SubmissionReceived(submission_id="3f0c6a52-5d55-4c43-9a3e-7d6f1f1c2b10")
    sandboxes = {}
    for suite in load_catalog().suites:
        planned = PlannedJob("bj-1", suite, AccessWindow(now, now + timedelta(days=30)), max_attempts=3)
        request = events_pb2.BenchmarkJobRequested.FromString(
            job_requested(planned, 1, submission, now).SerializeToString()
        )
        sandboxes[suite.id] = request.sandbox
    assert sandboxes["cyber.exploit"] == "bwrap"
    assert {sandbox for suite, sandbox in sandboxes.items() if suite != "cyber.exploit"} == {"none"}


@pytest.mark.parametrize("access_kind", ["endpoint", "weights"])
def test_only_a_sandboxed_suite_with_the_k8s_sandbox_gets_its_values_namespace_and_a_token(
    access_kind: str,
) -> None:
    sandboxed = build_job(replace(attempt(access_kind), sandbox="bwrap"), SANDBOXED)
    kubernetes_validate.validate(sandboxed, KUBERNETES_VERSIONS[-1], strict=True)
    spec = sandboxed["spec"]["template"]["spec"]
    # The token is the worker container's alone, where in-cluster clients read it.
    assert spec["automountServiceAccountToken"] is False
    worker_mounts = named(sandboxed, "worker")["volumeMounts"]
    assert {"name": "k8s-sandbox", "mountPath": K8S_SANDBOX_DIR, "readOnly": True} in worker_mounts
    assert {"name": "k8s-api-token", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True} in worker_mounts
    [token] = [v for v in spec["volumes"] if v["name"] == "k8s-api-token"]
    assert [sorted(source) for source in token["projected"]["sources"]] == [
        ["serviceAccountToken"],
        ["configMap"],
        ["downwardAPI"],
    ]
    assert {
        "name": "k8s-sandbox",
        "configMap": {
            "name": "preflight-k8s-sandbox",
            "items": [{"key": "values.yaml", "path": "values.yaml"}],
        },
    } in spec["volumes"]
    env = {e["name"]: e.get("value") for e in named(sandboxed, "worker")["env"]}
    assert env[K8S_SANDBOX_VALUES_ENV] == f"{K8S_SANDBOX_DIR}/values.yaml"
    assert env["INSPECT_K8S_DEFAULT_NAMESPACE"] == "preflight-sandbox"
    # The other containers (weights fetcher, model server) get neither the token, the values nor
    # the namespace.
    for container in containers(sandboxed):
        if container["name"] != "worker":
            assert not {"k8s-sandbox", "k8s-api-token"} & {
                m["name"] for m in container.get("volumeMounts", [])
            }
            assert "INSPECT_K8S_DEFAULT_NAMESPACE" not in {e["name"] for e in container.get("env", [])}

    # Without the deployment's sandbox, or for a suite that runs no model-written code (whose
    # worker has no use for the sandbox namespace), neither a token nor the sandbox's settings.
    for plain in (
        build_job(replace(attempt(access_kind), sandbox="bwrap"), SETTINGS),
        build_job(attempt(access_kind), SANDBOXED),
        build_job(replace(attempt(access_kind), sandbox="none"), SANDBOXED),
    ):
        plain_spec = plain["spec"]["template"]["spec"]
        assert plain_spec["automountServiceAccountToken"] is False
        assert not {"k8s-sandbox", "k8s-api-token"} & {v["name"] for v in plain_spec["volumes"]}
        names = {e["name"] for c in containers(plain) for e in c.get("env", [])}
        assert not {K8S_SANDBOX_VALUES_ENV, "INSPECT_K8S_DEFAULT_NAMESPACE"} & names


def test_the_k8s_sandbox_is_read_from_the_environment_both_settings_or_neither(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert KubernetesSettings.from_env("benchmark:50052", LOG_ROOT).manifest.k8s_sandbox is None
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_SANDBOX_NAMESPACE", "preflight-sandbox")
    with pytest.raises(ConfigError, match=r"^PREFLIGHT_BENCHMARK_K8S_SANDBOX_NAMESPACE and "):
        KubernetesSettings.from_env("benchmark:50052", LOG_ROOT)
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_SANDBOX_VALUES", "preflight-k8s-sandbox")
    assert KubernetesSettings.from_env("benchmark:50052", LOG_ROOT).manifest.k8s_sandbox == K8sSandbox(
        "preflight-sandbox", "preflight-k8s-sandbox"
    )
