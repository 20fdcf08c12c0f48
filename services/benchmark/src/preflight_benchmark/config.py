"""Settings from the environment (every variable is documented in the service's README)."""

from __future__ import annotations

import json
import re
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

import grpc
from preflight_common.channels import credentials_from_env
from preflight_common.config import (
    ConfigError,
    KafkaSettings,
    Topics,
    database_url,
    env,
    env_int,
    env_positive,
    secret,
)
from preflight_common.grpcserver import ServerTLS

from preflight_benchmark.adapters.executors.k8s_manifest import (
    AcceleratorClass,
    EvalLogStore,
    K8sSandbox,
    ManifestSettings,
    SecretRef,
    WeightsSettings,
)
from preflight_benchmark.adapters.quantity import to_bytes
from preflight_benchmark.domain.catalog import ACCELERATOR

DEFAULT_DATABASE_URL = "sqlite:///run/benchmark/benchmark.db"
EXECUTORS = ("local", "kubernetes")
# Eval-log stores a worker with a read-only root file system writes to (fsspec URLs: s3fs comes
# with Inspect AI; for gs:// the worker image needs gcsfs, which the worker checks before a run).
OBJECT_STORES = ("s3://", "gs://")
# A Kubernetes extended resource name: a domain-qualified name such as nvidia.com/gpu.
EXTENDED_RESOURCE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?/[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


def _json(name: str, default: Any) -> Any:
    raw = env(name, "")
    if not raw:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name}: not valid JSON ({exc})") from None


def _string_map(name: str) -> dict[str, str]:
    value = _json(name, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{name}: expected a JSON object of strings")
    return value


def _secret_ref(name: str, default: str) -> SecretRef | None:
    """A `<secret name>:<key>` variable; None when it (and its default) is empty."""
    value = env(name, default)
    if not value:
        return None
    secret, sep, key = value.partition(":")
    if not sep or not secret or not key:
        raise ConfigError(f"{name}: expected <secret name>:<key>")
    return SecretRef(secret, key)


def _names(name: str) -> tuple[str, ...]:
    """A comma-separated list of names (empty entries dropped)."""
    return tuple(n.strip() for n in env(name, "").split(",") if n.strip())


def _quantity(name: str, default: str) -> str:
    value = env(name, default)
    try:
        to_bytes(value)
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not a quantity") from None
    return value


def _optional_quantity(name: str) -> str | None:
    """A memory quantity, or None when the variable is unset or empty."""
    return _quantity(name, "") if env(name, "") else None


ACCELERATORS_ENV = "PREFLIGHT_BENCHMARK_K8S_ACCELERATORS"
ACCELERATOR_KEYS = frozenset({"resourceName", "nodeSelector", "tolerations", "runtimeClassName"})


def _accelerator_class(name: str, value: Any) -> AcceleratorClass:
    where = f"{ACCELERATORS_ENV}: {name}"
    if not ACCELERATOR.fullmatch(name):
        raise ConfigError(f"{where}: not an accelerator class name (a DNS label, e.g. nvidia-a100-80gb)")
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected an object")
    if unknown := sorted(set(value) - ACCELERATOR_KEYS):
        raise ConfigError(f"{where}.{unknown[0]}: not a setting of an accelerator class")
    resource = value.get("resourceName")
    # Counted as an extended resource: a GPU the pod does not request is one it does not get.
    if not isinstance(resource, str) or not EXTENDED_RESOURCE.fullmatch(resource):
        raise ConfigError(f"{where}.resourceName: expected the GPUs' extended resource, e.g. nvidia.com/gpu")
    selector = value.get("nodeSelector", {})
    if not isinstance(selector, dict) or not all(isinstance(v, str) for v in selector.values()):
        raise ConfigError(f"{where}.nodeSelector: expected an object of strings")
    tolerations = value.get("tolerations", [])
    if not isinstance(tolerations, list) or not all(isinstance(t, dict) for t in tolerations):
        raise ConfigError(f"{where}.tolerations: expected a list of tolerations")
    runtime_class = value.get("runtimeClassName", "")
    if not isinstance(runtime_class, str):
        raise ConfigError(f"{where}.runtimeClassName: expected a RuntimeClass name")
    return AcceleratorClass(
        resource_name=resource,
        node_selector=selector,
        tolerations=tuple(tolerations),
        runtime_class=runtime_class or None,
    )


def accelerator_classes() -> dict[str, AcceleratorClass]:
    """The accelerator classes suites may name (PREFLIGHT_BENCHMARK_K8S_ACCELERATORS: a JSON object
    of class name → resourceName, nodeSelector, tolerations, runtimeClassName); ConfigError names
    the class and setting at fault."""
    value = _json(ACCELERATORS_ENV, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{ACCELERATORS_ENV}: expected a JSON object of accelerator classes")
    return {name: _accelerator_class(name, spec) for name, spec in value.items()}


def weights_settings() -> WeightsSettings:
    """How GPU workers fetch and serve weights (PREFLIGHT_BENCHMARK_K8S_VLLM_IMAGE, ..._WEIGHTS_*)."""
    gpus = env_int("PREFLIGHT_BENCHMARK_K8S_WEIGHTS_GPUS", WeightsSettings.gpus)
    if gpus < 1:
        raise ConfigError("PREFLIGHT_BENCHMARK_K8S_WEIGHTS_GPUS: must be at least 1")
    return WeightsSettings(
        vllm_image=env("PREFLIGHT_BENCHMARK_K8S_VLLM_IMAGE", WeightsSettings.vllm_image),
        gpus=gpus,
        models_size_limit=_quantity(
            "PREFLIGHT_BENCHMARK_K8S_WEIGHTS_STORAGE", WeightsSettings.models_size_limit
        ),
        shm_size=_quantity("PREFLIGHT_BENCHMARK_K8S_WEIGHTS_SHM", WeightsSettings.shm_size),
        claim=env("PREFLIGHT_BENCHMARK_K8S_WEIGHTS_CLAIM", "") or None,
        secret=env("PREFLIGHT_BENCHMARK_K8S_WEIGHTS_SECRET", "") or None,
        env=_string_map("PREFLIGHT_BENCHMARK_K8S_WEIGHTS_ENV"),
    )


def eval_log_store(log_root: str) -> EvalLogStore:
    """Where the Kubernetes executor's workers keep eval logs, checked against `log_root`
    (PREFLIGHT_BENCHMARK_LOG_ROOT): an object-store prefix, or an absolute path where the claim
    PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_CLAIM is mounted. A worker's root file system is read-only
    and its scratch space goes with the pod, so any other root is refused (ConfigError)."""
    claim = env("PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_CLAIM", "") or None
    secret = env("PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_SECRET", "") or None
    store_env = _string_map("PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_ENV")
    if log_root.startswith(OBJECT_STORES):
        if claim is not None:
            raise ConfigError(
                "PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_CLAIM: set only when PREFLIGHT_BENCHMARK_LOG_ROOT is "
                "the path where the claim is mounted, not an object-store prefix"
            )
        return EvalLogStore(secret=secret, env=store_env)
    if claim is None or not log_root.startswith("/") or "://" in log_root:
        raise ConfigError(
            "PREFLIGHT_BENCHMARK_LOG_ROOT: the Kubernetes executor's workers need an s3:// or gs:// prefix, "
            "or an absolute path with PREFLIGHT_BENCHMARK_K8S_EVAL_LOGS_CLAIM (a worker's own disk is "
            "read-only and gone with its pod)"
        )
    return EvalLogStore(claim=claim, mount_path=log_root.rstrip("/") or "/", secret=secret, env=store_env)


def k8s_sandbox() -> K8sSandbox | None:
    """Inspect's Kubernetes sandbox for the workers (PREFLIGHT_BENCHMARK_K8S_SANDBOX_NAMESPACE and
    PREFLIGHT_BENCHMARK_K8S_SANDBOX_VALUES, the ConfigMap of its Helm values: both, or neither)."""
    namespace = env("PREFLIGHT_BENCHMARK_K8S_SANDBOX_NAMESPACE", "")
    values = env("PREFLIGHT_BENCHMARK_K8S_SANDBOX_VALUES", "")
    if bool(namespace) != bool(values):
        raise ConfigError(
            "PREFLIGHT_BENCHMARK_K8S_SANDBOX_NAMESPACE and PREFLIGHT_BENCHMARK_K8S_SANDBOX_VALUES: "
            "set both (Inspect's Kubernetes sandbox) or neither"
        )
    return K8sSandbox(namespace=namespace, values_config_map=values) if namespace else None


@dataclass(frozen=True)
class KubernetesSettings:
    kubeconfig: str | None
    manifest: ManifestSettings
    # The Lease (in the Jobs' namespace) whose holder is the one dispatcher that creates Jobs.
    lease_name: str
    lease_seconds: int
    lease_identity: str

    @classmethod
    def from_env(cls, benchmark_target: str, log_root: str) -> KubernetesSettings:
        """The executor's settings; `log_root` is the service's PREFLIGHT_BENCHMARK_LOG_ROOT."""
        scratch = _quantity("PREFLIGHT_BENCHMARK_K8S_SCRATCH_SIZE", ManifestSettings.scratch_size_limit)
        manifest = ManifestSettings(
            namespace=env("PREFLIGHT_BENCHMARK_K8S_NAMESPACE", "preflight"),
            image=env("PREFLIGHT_BENCHMARK_K8S_IMAGE", "preflight-benchmark:latest"),
            intake_target=env("PREFLIGHT_INTAKE_TARGET", "preflight-intake:50051"),
            benchmark_target=benchmark_target,
            service_account=env("PREFLIGHT_BENCHMARK_K8S_SERVICE_ACCOUNT", "") or None,
            node_selector=_string_map("PREFLIGHT_BENCHMARK_K8S_NODE_SELECTOR"),
            tolerations=_json("PREFLIGHT_BENCHMARK_K8S_TOLERATIONS", []),
            gpu_node_selector=_string_map("PREFLIGHT_BENCHMARK_K8S_GPU_NODE_SELECTOR"),
            gpu_tolerations=_json("PREFLIGHT_BENCHMARK_K8S_GPU_TOLERATIONS", []),
            accelerators=accelerator_classes(),
            kueue_queue=env("PREFLIGHT_BENCHMARK_K8S_KUEUE_QUEUE", "") or None,
            pod_annotations=_string_map("PREFLIGHT_BENCHMARK_K8S_POD_ANNOTATIONS"),
            backoff_limit=env_int("PREFLIGHT_BENCHMARK_K8S_BACKOFF_LIMIT", 0),
            ttl_seconds_after_finished=env_int("PREFLIGHT_BENCHMARK_K8S_TTL_SECONDS", 3600),
            weights=weights_settings(),
            otlp_endpoint=env("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            otlp_protocol=env("OTEL_EXPORTER_OTLP_PROTOCOL", ""),
            grpc_ca=_secret_ref("PREFLIGHT_BENCHMARK_K8S_GRPC_CA_SECRET", ""),
            eval_logs=eval_log_store(log_root),
            instance=env("PREFLIGHT_BENCHMARK_K8S_INSTANCE", ManifestSettings.instance),
            image_pull_secrets=_names("PREFLIGHT_BENCHMARK_K8S_IMAGE_PULL_SECRETS"),
            scratch_size_limit=scratch,
            runtime_class=env("PREFLIGHT_BENCHMARK_K8S_RUNTIME_CLASS", "") or None,
            priority_class=env("PREFLIGHT_BENCHMARK_K8S_PRIORITY_CLASS", "") or None,
            k8s_sandbox=k8s_sandbox(),
        )
        lease_seconds = env_int("PREFLIGHT_BENCHMARK_K8S_LEASE_SECONDS", 15)
        if lease_seconds < 3:
            raise ConfigError(
                f"PREFLIGHT_BENCHMARK_K8S_LEASE_SECONDS must be at least 3, got {lease_seconds}"
            )
        return cls(
            kubeconfig=env("PREFLIGHT_BENCHMARK_K8S_KUBECONFIG", "") or None,
            manifest=manifest,
            lease_name=env("PREFLIGHT_BENCHMARK_K8S_LEASE", "preflight-benchmark-dispatcher"),
            lease_seconds=lease_seconds,
            # The pod's name, made unique per process: a restarted container is a new candidate.
            lease_identity=f"{socket.gethostname()}-{secrets.token_hex(4)}",
        )


@dataclass(frozen=True)
class BenchmarkSettings:
    # Secrets (the URL may carry the database password): never in a repr, a log or a traceback.
    database_url: str = field(repr=False)
    listen: str
    identity_target: str
    service_token: str = field(repr=False)
    intake_target: str
    benchmark_target: str
    executor: str
    max_concurrency: int
    max_attempts: int
    poll_interval: float
    relay_interval: float
    log_root: str
    work_dir: str
    worker_memory: str | None
    shutdown_grace: float
    consumer_group: str
    kafka: KafkaSettings
    topics: Topics
    tls: ServerTLS | None = None
    # TLS for calls to intake's IdentityService (PREFLIGHT_GRPC_TLS_CA); None: plaintext.
    client_tls: grpc.ChannelCredentials | None = None
    # Running attempts of one organisation past which its jobs yield to other organisations' (0: none).
    lab_cap: int = 1
    # The local executor's budget of declared CPUs and memory (None: only max_concurrency bounds it).
    local_cpus: float | None = None
    local_memory: str | None = None
    # Attempts a warm local worker runs before it is replaced.
    worker_max_jobs: int = 50

    @classmethod
    def from_env(cls) -> BenchmarkSettings:
        listen = env("PREFLIGHT_GRPC_LISTEN", "127.0.0.1:50052")
        executor = env("PREFLIGHT_BENCHMARK_EXECUTOR", "local")
        if executor not in EXECUTORS:
            raise ConfigError(f"PREFLIGHT_BENCHMARK_EXECUTOR: one of {', '.join(EXECUTORS)}")
        max_attempts = env_int("PREFLIGHT_BENCHMARK_MAX_ATTEMPTS", 3)
        if max_attempts < 1:
            raise ConfigError("PREFLIGHT_BENCHMARK_MAX_ATTEMPTS: must be at least 1")
        max_concurrency = env_int("PREFLIGHT_BENCHMARK_MAX_CONCURRENCY", 2)
        lab_cap = env_int("PREFLIGHT_BENCHMARK_LAB_CAP", max(1, max_concurrency // 2))
        if lab_cap < 0:
            raise ConfigError("PREFLIGHT_BENCHMARK_LAB_CAP: must be 0 (no cap) or more")
        return cls(
            database_url=database_url(DEFAULT_DATABASE_URL),
            listen=listen,
            identity_target=env("PREFLIGHT_IDENTITY_TARGET", "127.0.0.1:50051"),
            service_token=secret("PREFLIGHT_SERVICE_TOKEN", ""),
            intake_target=env("PREFLIGHT_INTAKE_TARGET", "127.0.0.1:50051"),
            benchmark_target=env("PREFLIGHT_BENCHMARK_TARGET", ""),
            executor=executor,
            max_concurrency=max_concurrency,
            max_attempts=max_attempts,
            poll_interval=env_positive("PREFLIGHT_BENCHMARK_POLL_INTERVAL", 0.5),
            relay_interval=env_positive("PREFLIGHT_BENCHMARK_RELAY_INTERVAL", 0.2),
            log_root=env("PREFLIGHT_BENCHMARK_LOG_ROOT", "run/benchmark/eval-logs"),
            work_dir=env("PREFLIGHT_BENCHMARK_WORK_DIR", "run/benchmark/work"),
            worker_memory=_optional_quantity("PREFLIGHT_BENCHMARK_WORKER_MEMORY"),
            shutdown_grace=env_positive("PREFLIGHT_BENCHMARK_SHUTDOWN_GRACE", 10.0),
            consumer_group=env("PREFLIGHT_BENCHMARK_CONSUMER_GROUP", "preflight-benchmark-planner"),
            kafka=KafkaSettings.from_env(),
            topics=Topics.from_env(),
            tls=ServerTLS.from_env("PREFLIGHT_BENCHMARK"),
            client_tls=credentials_from_env(),
            lab_cap=lab_cap,
            local_cpus=(
                env_positive("PREFLIGHT_BENCHMARK_LOCAL_CPUS", 1.0)
                if env("PREFLIGHT_BENCHMARK_LOCAL_CPUS", "")
                else None
            ),
            local_memory=_optional_quantity("PREFLIGHT_BENCHMARK_LOCAL_MEMORY"),
            worker_max_jobs=max(1, env_int("PREFLIGHT_BENCHMARK_WORKER_MAX_JOBS", 50)),
        )

    def worker_target(self) -> str:
        """Where workers reach BenchmarkService: PREFLIGHT_BENCHMARK_TARGET, else loopback:<listen port>."""
        if self.benchmark_target:
            return self.benchmark_target
        _, _, port = self.listen.rpartition(":")
        if not port.isdigit() or port == "0":
            raise ConfigError(
                "PREFLIGHT_BENCHMARK_TARGET: required when PREFLIGHT_GRPC_LISTEN has no fixed port"
            )
        return f"127.0.0.1:{port}"
