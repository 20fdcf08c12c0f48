"""The batch/v1 Job manifest for one attempt (plain dicts, as sent to the API server).

Endpoint access: one `worker` container. The worker writes its eval logs to the
configured store (an object-store prefix, or a PersistentVolumeClaim mounted at
the log root): its root file system is read-only, with only `/scratch` writable.

Weights access: an init container fetches the weights into an emptyDir and
checks every declared digest (exit 78, failing the Job, on a mismatch: nothing
is served), and a vLLM server runs as a native sidecar (an init container with
`restartPolicy: Always`, Kubernetes >= 1.29) on the suite's GPUs with one
tensor-parallel rank per GPU and a memory-backed /dev/shm, reachable by the
worker on 127.0.0.1. Its startup probe (vLLM's /health, checked from inside the
container because vLLM listens on the pod's loopback only) holds the worker back
until the model is served; Kubernetes stops the sidecar when the worker ends, so
the Job completes.

Accelerator classes: a suite whose catalog entry names one (`accelerator`) gets
that class's GPU resource name, node selector, tolerations and RuntimeClass
instead of the generic GPU ones (`gpu_node_selector`, `gpu_tolerations`).

Kueue: with a queue name the Job carries `kueue.x-k8s.io/queue-name` and is
created suspended; Kueue unsuspends it when the queue's ClusterQueue admits it.

Inspect's Kubernetes sandbox (`k8s_sandbox`): the worker container of a sandboxed suite (the
attempt's `sandbox`, from the catalog) gets the sandbox's Helm values (a ConfigMap mounted
read-only under K8S_SANDBOX_DIR, named by K8S_SANDBOX_VALUES_ENV), the sandbox namespace
(INSPECT_K8S_DEFAULT_NAMESPACE) and a token of the pod's ServiceAccount where in-cluster clients
look for it (SERVICE_ACCOUNT_DIR, a projected volume the kubelet renews), with which it installs
sandbox Pods there. No other container gets the token (not the model server of a weights
suite), and a suite that runs no model-written code, or a deployment without the sandbox, gets
no token at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from preflight_benchmark.domain.jobs import CONFIG_ERROR_EXIT
from preflight_benchmark.domain.ports import Attempt

GPU_RESOURCE = "nvidia.com/gpu"
ASSIGNMENT_ENV = "PREFLIGHT_WORKER_ASSIGNMENT"
MODEL_SERVER_PORT = 8000
# Writable scratch space (an emptyDir): the root file systems are read-only.
SCRATCH = "/scratch"
# Where a worker finds the CA that verifies the services' gRPC TLS certificates.
GRPC_CA_DIR = "/etc/preflight/grpc-ca"
# The Job's own token Secret (`token_secret`) is mounted here (read-only, mode 0440): never an
# environment variable, and never the service's token.
JOB_TOKEN_DIR = "/etc/preflight/job-token"  # noqa: S105 - a path, not a secret
# The eval-log store's credentials Secret is mounted here, one file per key (read-only, 0440).
EVAL_LOG_CREDENTIALS_DIR = "/etc/preflight/eval-log-credentials"
# The weights store's credentials Secret, in the fetch-weights container only.
WEIGHTS_CREDENTIALS_DIR = "/etc/preflight/weights-credentials"
# Where a weights mirror's PersistentVolumeClaim is mounted (read-only) in the fetch-weights container.
WEIGHTS_MIRROR_DIR = "/weights-mirror"
MODELS_DIR = "/models"
FETCH_WEIGHTS = "fetch-weights"
SERVED_MODEL = "weights"
# Where the Helm values of Inspect's Kubernetes sandbox are mounted, and the variable naming the file.
K8S_SANDBOX_DIR = "/etc/preflight/k8s-sandbox"
K8S_SANDBOX_VALUES_ENV = "PREFLIGHT_WORKER_K8S_SANDBOX_VALUES"
# Where in-cluster Kubernetes clients (the Python client, Helm) read the ServiceAccount's token.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
LABEL_PREFIX = "preflight.dev"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
INVALID_LABEL_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str


@dataclass(frozen=True)
class EvalLogStore:
    """Where workers keep eval logs beyond the pod.

    `claim`: a PersistentVolumeClaim mounted read-write at `mount_path` (the log root);
    None when the log root is an object-store prefix (s3://, gs://), reached with the
    pod's workload identity or with the keys of `secret` as files under
    EVAL_LOG_CREDENTIALS_DIR (never environment variables).
    `env`: plain settings of the store client (e.g. AWS_REGION, AWS_ENDPOINT_URL_S3), among
    them the path of its credentials file (e.g. AWS_SHARED_CREDENTIALS_FILE,
    GOOGLE_APPLICATION_CREDENTIALS) under EVAL_LOG_CREDENTIALS_DIR.
    """

    claim: str | None = None
    mount_path: str = ""
    secret: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AcceleratorClass:
    """Where the GPUs of one accelerator class are: the extended resource that counts them
    (`resource_name`, e.g. nvidia.com/gpu), the nodes that have them (`node_selector`,
    `tolerations`) and the RuntimeClass that exposes them (`runtime_class`, None: the
    deployment's). Pods on the class get these instead of the generic GPU node selector and
    tolerations; the selector and tolerations of every worker pod still apply."""

    resource_name: str = GPU_RESOURCE
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    runtime_class: str | None = None


class UnknownAcceleratorError(ValueError):
    """An attempt's suite names an accelerator class the deployment does not map (any more)."""


@dataclass(frozen=True)
class WeightsSettings:
    """How weights are fetched and served beside the worker.

    `gpus`: GPUs of a weights suite whose catalog entry declares none (the suite's own `gpu`
    otherwise). `models_size_limit`: the size of the weights' emptyDir, requested as
    ephemeral storage by the fetcher that fills it and the server that reads it. `shm_size`: the
    memory-backed /dev/shm of vLLM's tensor-parallel workers. `claim`: a PersistentVolumeClaim
    holding artifacts under their digest (PREFLIGHT_WORKER_WEIGHTS_MIRROR); `secret`: the store's
    credentials as files under WEIGHTS_CREDENTIALS_DIR; `env`: plain settings of the store client
    (e.g. AWS_SHARED_CREDENTIALS_FILE, AWS_ENDPOINT_URL_S3, GOOGLE_APPLICATION_CREDENTIALS).
    """

    vllm_image: str = "vllm/vllm-openai:v0.33.0"
    gpus: int = 1
    memory: str = "32Gi"
    cpu: str = "8"
    models_size_limit: str = "200Gi"
    shm_size: str = "16Gi"
    extra_args: tuple[str, ...] = ()
    claim: str | None = None
    secret: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class K8sSandbox:
    """Inspect's Kubernetes sandbox (inspect-k8s-sandbox) for the workers' sandboxed suites: the
    namespace its Pods run in (the workers' ServiceAccount may manage Pods there) and the
    ConfigMap, in the job namespace, whose `values.yaml` holds its Helm values."""

    namespace: str
    values_config_map: str


@dataclass(frozen=True)
class ManifestSettings:
    namespace: str
    image: str
    intake_target: str
    benchmark_target: str
    worker_command: tuple[str, ...] = ("preflight-worker",)
    service_account: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    gpu_node_selector: Mapping[str, str] = field(default_factory=dict)
    gpu_tolerations: Sequence[Mapping[str, Any]] = ()
    # The accelerator classes suites may name, by name.
    accelerators: Mapping[str, AcceleratorClass] = field(default_factory=dict)
    kueue_queue: str | None = None
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    backoff_limit: int = 0
    ttl_seconds_after_finished: int = 3600
    image_pull_policy: str = "IfNotPresent"
    weights: WeightsSettings = WeightsSettings()
    # Where the worker exports its spans (OTEL_EXPORTER_OTLP_ENDPOINT/_PROTOCOL); empty: nowhere.
    otlp_endpoint: str = ""
    otlp_protocol: str = ""
    # The Secret key holding the CA of the services' gRPC TLS certificates; None: plaintext gRPC.
    grpc_ca: SecretRef | None = None
    eval_logs: EvalLogStore = EvalLogStore()
    # The release the Jobs belong to (label app.kubernetes.io/instance): one selector finds them all.
    instance: str = "preflight"
    image_pull_secrets: tuple[str, ...] = ()
    # Size limit of the /scratch emptyDir, also the worker's ephemeral-storage request.
    scratch_size_limit: str = "20Gi"
    runtime_class: str | None = None
    priority_class: str | None = None
    # None: sandboxed suites use bubblewrap inside the worker, and no ServiceAccount token is mounted.
    k8s_sandbox: K8sSandbox | None = None


def job_name(job_id: str, attempt: int) -> str:
    """A DNS-1123 name, unique per (job, attempt)."""
    return f"preflight-{job_id.removeprefix('bj-')[:20]}-a{attempt}"


def token_secret_name(job_id: str, attempt: int) -> str:
    """The name of the attempt's job token Secret: its Job's name, suffixed."""
    return f"{job_name(job_id, attempt)}-token"


def token_secret(attempt: Attempt, settings: ManifestSettings, job_uid: str, token: str) -> dict[str, Any]:
    """The Secret holding the attempt's job token, owned by its Job (uid `job_uid`): the garbage
    collector deletes it with the Job, whoever deletes that."""
    name = job_name(attempt.job_id, attempt.attempt)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": token_secret_name(attempt.job_id, attempt.attempt),
            "namespace": settings.namespace,
            "labels": labels(attempt, settings),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job_uid}],
        },
        "type": "Opaque",
        "immutable": True,
        "stringData": {"token": token},
    }


def _label(value: str) -> str:
    cleaned = INVALID_LABEL_CHARS.sub("-", value)[:63].strip("-._")
    return cleaned or "unknown"


def labels(attempt: Attempt, settings: ManifestSettings) -> dict[str, str]:
    result = {
        "app.kubernetes.io/name": "preflight-worker",
        "app.kubernetes.io/instance": settings.instance,
        "app.kubernetes.io/component": "benchmark-worker",
        "app.kubernetes.io/part-of": "preflight",
        "app.kubernetes.io/managed-by": "preflight-benchmark",
        f"{LABEL_PREFIX}/submission-id": _label(attempt.submission_id),
        f"{LABEL_PREFIX}/job-id": _label(attempt.job_id),
        f"{LABEL_PREFIX}/suite-id": _label(attempt.suite_id),
        f"{LABEL_PREFIX}/attempt": str(attempt.attempt),
    }
    if settings.kueue_queue:
        result[KUEUE_QUEUE_LABEL] = settings.kueue_queue
    return result


def _restricted() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _telemetry_env(settings: ManifestSettings) -> list[dict[str, Any]]:
    """The worker's spans go where the service's go, with the pod named in their resource."""
    if not settings.otlp_endpoint:
        return []
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "OTEL_RESOURCE_ATTRIBUTES",
            "value": f"k8s.namespace.name={settings.namespace},k8s.pod.name=$(POD_NAME)",
        },
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": settings.otlp_endpoint},
    ]
    if settings.otlp_protocol:
        env.append({"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": settings.otlp_protocol})
    return env


def accelerator(attempt: Attempt, settings: ManifestSettings) -> AcceleratorClass:
    """Where the attempt's GPUs are: its suite's accelerator class, else the generic GPU nodes;
    raises UnknownAcceleratorError for a class the deployment does not map."""
    name = attempt.resources.accelerator
    if not name:
        return AcceleratorClass(
            node_selector=settings.gpu_node_selector,
            tolerations=settings.gpu_tolerations,
            runtime_class=settings.runtime_class,
        )
    if name not in settings.accelerators:
        raise UnknownAcceleratorError(
            f"suite {attempt.suite_id} names accelerator class {name!r}, which this deployment does not map"
        )
    chosen = settings.accelerators[name]
    return replace(chosen, runtime_class=chosen.runtime_class or settings.runtime_class)


def build_job(attempt: Attempt, settings: ManifestSettings) -> dict[str, Any]:
    """The Job for `attempt`; no secret inline nor in the environment (the job's token is a file of
    its own Secret's volume, `token_secret`, named by PREFLIGHT_SERVICE_TOKEN_FILE). Raises
    UnknownAcceleratorError when its suite's accelerator class is not mapped."""
    weights = attempt.access_kind == "weights"
    needs_gpu = weights or attempt.resources.gpu > 0
    gpus = accelerator(attempt, settings)
    job_labels = labels(attempt, settings)
    env: list[dict[str, Any]] = [
        {"name": ASSIGNMENT_ENV, "value": attempt.assignment},
        {"name": "PREFLIGHT_INTAKE_TARGET", "value": settings.intake_target},
        {"name": "PREFLIGHT_BENCHMARK_TARGET", "value": settings.benchmark_target},
        {"name": "PREFLIGHT_SERVICE_TOKEN_FILE", "value": f"{JOB_TOKEN_DIR}/token"},
        {"name": "HOME", "value": SCRATCH},
        {"name": "TMPDIR", "value": SCRATCH},
        {"name": "XDG_DATA_HOME", "value": f"{SCRATCH}/data"},
        {"name": "XDG_CACHE_HOME", "value": f"{SCRATCH}/cache"},
        *_telemetry_env(settings),
    ]
    # Quantities are strings: the API (and the client's models) reject numbers.
    worker_resources: dict[str, dict[str, str]] = {
        "requests": {
            "cpu": attempt.resources.cpu,
            "memory": attempt.resources.memory,
            # Scheduled where /scratch fits: the kubelet evicts a pod whose emptyDir outgrows its limit.
            "ephemeral-storage": settings.scratch_size_limit,
        },
        "limits": {"memory": attempt.resources.memory},
    }
    # A weights suite's GPUs are the model server's; an endpoint suite's, the worker's own.
    if attempt.resources.gpu > 0 and not weights:
        worker_resources["limits"][gpus.resource_name] = str(attempt.resources.gpu)
        worker_resources["requests"][gpus.resource_name] = str(attempt.resources.gpu)
    volumes: list[dict[str, Any]] = [
        {"name": "scratch", "emptyDir": {"sizeLimit": settings.scratch_size_limit}},
        {
            "name": "job-token",
            "secret": {
                "secretName": token_secret_name(attempt.job_id, attempt.attempt),
                "defaultMode": 0o440,
                "items": [{"key": "token", "path": "token"}],
            },
        },
    ]
    worker_mounts: list[dict[str, Any]] = [
        {"name": "scratch", "mountPath": SCRATCH},
        {"name": "job-token", "mountPath": JOB_TOKEN_DIR, "readOnly": True},
    ]
    init_containers: list[dict[str, Any]] = []
    store = settings.eval_logs
    if store.claim is not None:
        volumes.append({"name": "eval-logs", "persistentVolumeClaim": {"claimName": store.claim}})
        worker_mounts.append({"name": "eval-logs", "mountPath": store.mount_path})
    if store.secret is not None:
        credentials = {"secretName": store.secret, "defaultMode": 0o440}
        volumes.append({"name": "eval-log-credentials", "secret": credentials})
        worker_mounts.append(
            {"name": "eval-log-credentials", "mountPath": EVAL_LOG_CREDENTIALS_DIR, "readOnly": True}
        )
    env += [{"name": name, "value": value} for name, value in sorted(store.env.items())]
    if settings.grpc_ca is not None:
        ca = settings.grpc_ca
        volumes.append(
            {
                "name": "grpc-ca",
                "secret": {"secretName": ca.name, "items": [{"key": ca.key, "path": "ca.crt"}]},
            }
        )
        worker_mounts.append({"name": "grpc-ca", "mountPath": GRPC_CA_DIR, "readOnly": True})
        env.append({"name": "PREFLIGHT_GRPC_TLS_CA", "value": f"{GRPC_CA_DIR}/ca.crt"})
    if settings.k8s_sandbox is not None and attempt.sandboxed:
        sandbox = settings.k8s_sandbox
        volumes += [
            {
                "name": "k8s-sandbox",
                "configMap": {
                    "name": sandbox.values_config_map,
                    "items": [{"key": "values.yaml", "path": "values.yaml"}],
                },
            },
            # What automountServiceAccountToken would give every container, for the worker alone.
            {
                "name": "k8s-api-token",
                "projected": {
                    "defaultMode": 0o440,
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                        {
                            "configMap": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                                ]
                            }
                        },
                    ],
                },
            },
        ]
        worker_mounts += [
            {"name": "k8s-sandbox", "mountPath": K8S_SANDBOX_DIR, "readOnly": True},
            {"name": "k8s-api-token", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True},
        ]
        env += [
            {"name": K8S_SANDBOX_VALUES_ENV, "value": f"{K8S_SANDBOX_DIR}/values.yaml"},
            {"name": "INSPECT_K8S_DEFAULT_NAMESPACE", "value": sandbox.namespace},
        ]
    if weights:
        env += [
            {
                "name": "PREFLIGHT_WORKER_MODEL_SERVER_URL",
                "value": f"http://127.0.0.1:{MODEL_SERVER_PORT}/v1",
            },
            {"name": "PREFLIGHT_WORKER_SERVED_MODEL", "value": SERVED_MODEL},
        ]
        volumes += _weights_volumes(settings.weights)
        init_containers = _weights_containers(attempt, settings, gpus.resource_name)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # Only the worker container may get a token (with the k8s sandbox: its own projected volume).
        "automountServiceAccountToken": False,
        # No variables for every Service in the namespace: the worker calls only what it is told.
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "worker",
                "image": settings.image,
                "imagePullPolicy": settings.image_pull_policy,
                "command": list(settings.worker_command),
                "env": env,
                "resources": worker_resources,
                "securityContext": _restricted(),
                "volumeMounts": worker_mounts,
            }
        ],
        "volumes": volumes,
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    if settings.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    runtime_class = gpus.runtime_class if needs_gpu else settings.runtime_class
    if runtime_class:
        pod_spec["runtimeClassName"] = runtime_class
    if settings.priority_class:
        pod_spec["priorityClassName"] = settings.priority_class
    node_selector = {**settings.node_selector, **(gpus.node_selector if needs_gpu else {})}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    tolerations = [*settings.tolerations, *(gpus.tolerations if needs_gpu else ())]
    if tolerations:
        pod_spec["tolerations"] = [dict(t) for t in tolerations]
    pod_metadata: dict[str, Any] = {"labels": job_labels}
    if settings.pod_annotations:
        pod_metadata["annotations"] = dict(settings.pod_annotations)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(attempt.job_id, attempt.attempt),
            "namespace": settings.namespace,
            "labels": job_labels,
            "annotations": {
                f"{LABEL_PREFIX}/job-id": attempt.job_id,
                f"{LABEL_PREFIX}/submission-id": attempt.submission_id,
            },
        },
        "spec": {
            # Kueue admits a Job by unsuspending it; created running, it would bypass the queue.
            **({"suspend": True} if settings.kueue_queue else {}),
            "backoffLimit": settings.backoff_limit,
            "activeDeadlineSeconds": max(1, int(attempt.timeout.total_seconds())),
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "worker",
                            "operator": "In",
                            "values": [CONFIG_ERROR_EXIT],
                        },
                    },
                    *(
                        [
                            {
                                "action": "FailJob",
                                "onExitCodes": {
                                    "containerName": FETCH_WEIGHTS,
                                    "operator": "In",
                                    "values": [CONFIG_ERROR_EXIT],
                                },
                            }
                        ]
                        if weights
                        else []
                    ),
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
            "template": {"metadata": pod_metadata, "spec": pod_spec},
        },
    }


def weights_gpus(attempt: Attempt, settings: ManifestSettings) -> int:
    """The GPUs serving a weights suite: as its catalog entry declares, else the configured default."""
    return attempt.resources.gpu or settings.weights.gpus


def _weights_volumes(w: WeightsSettings) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": "models", "emptyDir": {"sizeLimit": w.models_size_limit}},
        # vLLM's tensor-parallel workers share tensors through /dev/shm, 64 MiB by default in a pod.
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": w.shm_size}},
    ]
    if w.claim is not None:
        volumes.append(
            {"name": "weights-mirror", "persistentVolumeClaim": {"claimName": w.claim, "readOnly": True}}
        )
    if w.secret is not None:
        volumes.append(
            {"name": "weights-credentials", "secret": {"secretName": w.secret, "defaultMode": 0o440}}
        )
    return volumes


def _weights_containers(
    attempt: Attempt, settings: ManifestSettings, gpu_resource: str
) -> list[dict[str, Any]]:
    w = settings.weights
    gpus = str(weights_gpus(attempt, settings))
    models_mount: list[dict[str, Any]] = [
        {"name": "models", "mountPath": MODELS_DIR},
        {"name": "scratch", "mountPath": SCRATCH},
    ]
    fetch_mounts: list[dict[str, Any]] = list(models_mount)
    fetch_env: list[dict[str, Any]] = [
        {"name": ASSIGNMENT_ENV, "value": attempt.assignment},
        {"name": "HOME", "value": SCRATCH},
        {"name": "TMPDIR", "value": SCRATCH},
    ]
    if w.claim is not None:
        fetch_mounts.append({"name": "weights-mirror", "mountPath": WEIGHTS_MIRROR_DIR, "readOnly": True})
        fetch_env.append({"name": "PREFLIGHT_WORKER_WEIGHTS_MIRROR", "value": WEIGHTS_MIRROR_DIR})
    if w.secret is not None:
        fetch_mounts.append(
            {"name": "weights-credentials", "mountPath": WEIGHTS_CREDENTIALS_DIR, "readOnly": True}
        )
    fetch_env += [{"name": name, "value": value} for name, value in sorted(w.env.items())]
    health = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{MODEL_SERVER_PORT}/health', timeout=5)"
    )
    return [
        {
            "name": FETCH_WEIGHTS,
            "image": settings.image,
            "imagePullPolicy": settings.image_pull_policy,
            "command": [*settings.worker_command, FETCH_WEIGHTS, "--dest", f"{MODELS_DIR}/{SERVED_MODEL}"],
            "env": fetch_env,
            "resources": {
                # It fills the weights' emptyDir: scheduled only where the download fits.
                "requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": w.models_size_limit},
                "limits": {"memory": "1Gi"},
            },
            "securityContext": _restricted(),
            "volumeMounts": fetch_mounts,
        },
        {
            "name": "model-server",
            "image": w.vllm_image,
            "imagePullPolicy": settings.image_pull_policy,
            # A native sidecar: started before the worker, stopped after it.
            "restartPolicy": "Always",
            "args": [
                "--model",
                f"{MODELS_DIR}/{SERVED_MODEL}",
                "--served-model-name",
                SERVED_MODEL,
                "--host",
                "127.0.0.1",
                "--port",
                str(MODEL_SERVER_PORT),
                "--api-key",
                "local",
                "--tensor-parallel-size",
                gpus,
                *w.extra_args,
            ],
            "env": [{"name": "HOME", "value": SCRATCH}, {"name": "HF_HUB_OFFLINE", "value": "1"}],
            "resources": {
                # The weights' emptyDir is on the node's disk; /dev/shm counts against the memory limit.
                "requests": {
                    "cpu": w.cpu,
                    "memory": w.memory,
                    gpu_resource: gpus,
                    "ephemeral-storage": w.models_size_limit,
                },
                "limits": {"memory": w.memory, gpu_resource: gpus},
            },
            # The worker starts once this succeeds. vLLM listens on the pod's loopback, which the
            # kubelet's httpGet (from the node, to the pod's IP) cannot reach: ask from inside.
            "startupProbe": {
                "exec": {"command": ["python3", "-c", health]},
                "periodSeconds": 10,
                "timeoutSeconds": 8,
                "failureThreshold": 180,
            },
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [*models_mount, {"name": "shm", "mountPath": "/dev/shm"}],  # noqa: S108 - its own volume
        },
    ]
