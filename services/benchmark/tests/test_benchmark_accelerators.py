"""Accelerator classes: a suite names one in the catalog, the deployment maps it to a GPU resource
name, node selector, tolerations and RuntimeClass, and the Job's pod gets exactly those."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes import client
from preflight.benchmark.v1 import events_pb2
from preflight.intake.v1 import events_pb2 as intake_events
from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.adapters.events import job_requested
from preflight_benchmark.adapters.executors.k8s_manifest import (
    AcceleratorClass,
    ManifestSettings,
    UnknownAcceleratorError,
    build_job,
)
from preflight_benchmark.adapters.executors.kubernetes import KubernetesExecutor
from preflight_benchmark.bootstrap import build
from preflight_benchmark.config import BenchmarkSettings, KubernetesSettings
from preflight_benchmark.domain.catalog import CatalogError, Resources, parse_catalog
from preflight_benchmark.domain.jobs import AccessWindow, AttemptEnd, PlannedJob
from preflight_benchmark.domain.ports import Attempt
from preflight_benchmark.service_layer.dispatcher import _resources
from preflight_common.config import ConfigError

A100 = AcceleratorClass(
    resource_name="nvidia.com/gpu",
    node_selector={"cloud.example/accelerator": "a100-80gb", "cloud.example/pool": "eval-a100"},
    tolerations=(
        {"key": "cloud.example/a100", "operator": "Equal", "value": "reserved", "effect": "NoSchedule"},
    ),
    runtime_class="nvidia",
)
MI300 = AcceleratorClass(resource_name="amd.com/gpu", node_selector={"cloud.example/accelerator": "mi300x"})
SETTINGS = ManifestSettings(
    namespace="preflight",
    image="registry.example/preflight-benchmark:1.0.0",
    intake_target="preflight-intake:50051",
    benchmark_target="preflight-benchmark:50052",
    node_selector={"kubernetes.io/os": "linux"},
    tolerations=[{"key": "preflight.dev/workers", "operator": "Exists", "effect": "NoSchedule"}],
    gpu_node_selector={"cloud.example/accelerator": "generic"},
    gpu_tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    accelerators={"nvidia-a100-80gb": A100, "amd-mi300x": MI300},
    runtime_class="gvisor",
)
LOG_ROOT = "s3://preflight-eval-logs/prod"


def attempt(access_kind: str, gpu: int, accelerator: str = "") -> Attempt:
    return Attempt(
        job_id="bj-" + "b" * 32,
        submission_id="3f0c6a52-5d55-4c43-9a3e-7d6f1f1c2b10",
        suite_id="cyber.ctf-gpu",
        attempt=1,
        access_kind=access_kind,
        resources=Resources(gpu=gpu, cpu="4", memory="16Gi", accelerator=accelerator),
        timeout=timedelta(hours=2),
        assignment=json.dumps({"job": {"jobId": "bj-" + "b" * 32}, "attempt": 1}),
    )


def pod(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def container(job: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod(job)
    return next(c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == name)


def test_an_endpoint_suite_on_a_class_gets_its_gpus_nodes_tolerations_and_runtime() -> None:
    job = build_job(attempt("endpoint", 2, "nvidia-a100-80gb"), SETTINGS)
    kubernetes_validate.validate(job, "1.37.0", strict=True)
    assert container(job, "worker")["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi", "ephemeral-storage": "20Gi", "nvidia.com/gpu": "2"},
        "limits": {"memory": "16Gi", "nvidia.com/gpu": "2"},
    }
    # The class's nodes instead of the generic GPU pool; every worker's own selector still applies.
    assert pod(job)["nodeSelector"] == {
        "kubernetes.io/os": "linux",
        "cloud.example/accelerator": "a100-80gb",
        "cloud.example/pool": "eval-a100",
    }
    assert pod(job)["tolerations"] == [
        {"key": "preflight.dev/workers", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "cloud.example/a100", "operator": "Equal", "value": "reserved", "effect": "NoSchedule"},
    ]
    assert pod(job)["runtimeClassName"] == "nvidia"


def test_a_weights_suite_on_a_class_serves_the_model_on_that_class_s_resource() -> None:
    job = build_job(attempt("weights", 4, "amd-mi300x"), SETTINGS)
    kubernetes_validate.validate(job, "1.37.0", strict=True)
    server = container(job, "model-server")["resources"]
    assert server["requests"]["amd.com/gpu"] == "4"
    assert server["limits"] == {"memory": "32Gi", "amd.com/gpu": "4"}
    assert "nvidia.com/gpu" not in json.dumps(pod(job)["initContainers"])
    assert "amd.com/gpu" not in json.dumps(container(job, "worker")["resources"])
    assert pod(job)["nodeSelector"] == {"kubernetes.io/os": "linux", "cloud.example/accelerator": "mi300x"}
    assert pod(job)["tolerations"] == [
        {"key": "preflight.dev/workers", "operator": "Exists", "effect": "NoSchedule"}
    ]
    # A class naming no RuntimeClass runs in the deployment's.
    assert pod(job)["runtimeClassName"] == "gvisor"


def test_a_suite_without_a_class_keeps_the_generic_gpu_nodes() -> None:
    job = build_job(attempt("endpoint", 1), SETTINGS)
    assert container(job, "worker")["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod(job)["nodeSelector"] == {"kubernetes.io/os": "linux", "cloud.example/accelerator": "generic"}
    assert pod(job)["tolerations"][1] == SETTINGS.gpu_tolerations[0]
    assert pod(job)["runtimeClassName"] == "gvisor"


def test_a_class_the_deployment_no_longer_maps_fails_the_attempt_as_a_configuration_error() -> None:
    with pytest.raises(UnknownAcceleratorError, match="'nvidia-h200'"):
        build_job(attempt("endpoint", 1, "nvidia-h200"), SETTINGS)


def catalog(**suite: Any) -> dict[str, Any]:
    base = {
        "id": "cyber.ctf-gpu",
        "version": "1",
        "task": "preflight_benchmark/knowledge",
        "capability": "security_knowledge",
        "timeout_seconds": 60,
        "access_kinds": ["endpoint", "weights"],
        "resources": {"gpu": 2, "cpu": "4", "memory": "16Gi"},
    }
    return {"catalog_version": "1", "suites": [{**base, **suite}]}


def test_the_catalog_carries_a_suite_s_class_through_the_job_request_to_the_attempt() -> None:
    parsed = parse_catalog(catalog(accelerator="nvidia-a100-80gb"), accelerators={"nvidia-a100-80gb"})
    suite = parsed.suites[0]
    assert suite.resources == Resources(gpu=2, cpu="4", memory="16Gi", accelerator="nvidia-a100-80gb")
    now = datetime(2026, 12, 7, tzinfo=UTC)
    planned = PlannedJob("bj-1", suite, AccessWindow(now, now + timedelta(days=30)), max_attempts=3)
    submission = intake_events.SubmissionReceived(submission_id="3f0c6a52-5d55-4c43-9a3e-7d6f1f1c2b10")
    request = events_pb2.BenchmarkJobRequested.FromString(
        job_requested(planned, 1, submission, now).SerializeToString()
    )
    assert _resources(request) == suite.resources


NOT_A_NAME = r"^suites\[0\]\.accelerator: expected an accelerator class name"


@pytest.mark.parametrize(
    ("suite", "known", "message"),
    [
        (
            {"accelerator": "nvidia-h200"},
            {"nvidia-a100-80gb"},
            r"^suites\[0\]\.accelerator: 'nvidia-h200' is not an accelerator class of this deployment "
            r"\(known: nvidia-a100-80gb\)$",
        ),
        (
            {"accelerator": "nvidia-a100-80gb"},
            set(),
            r"^suites\[0\]\.accelerator: .* \(known: none\)$",
        ),
        (
            {"accelerator": "nvidia-a100-80gb", "resources": {"gpu": 0, "cpu": "1", "memory": "2Gi"}},
            {"nvidia-a100-80gb"},
            r"^suites\[0\]\.accelerator: 'nvidia-a100-80gb' needs GPUs, and resources\.gpu requests none$",
        ),
        (
            {"accelerator": "nvidia-a100-80gb", "resources": None},
            None,
            r"^suites\[0\]\.accelerator: .* needs GPUs",
        ),
        ({"accelerator": "NVIDIA A100"}, None, NOT_A_NAME),
        ({"accelerator": 100}, None, NOT_A_NAME),
    ],
    ids=["unknown-class", "no-classes", "no-gpus", "no-resources", "not-a-name", "not-a-string"],
)
def test_the_catalog_refuses_a_class_it_cannot_place(
    suite: dict[str, Any], known: set[str] | None, message: str
) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(catalog(**suite), accelerators=known)


def test_an_executor_without_gpus_loads_a_catalog_naming_any_class(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog(accelerator="nvidia-h200")))
    assert load_catalog(path).suites[0].resources.accelerator == "nvidia-h200"
    with pytest.raises(CatalogError, match=rf"^{path}: suites\[0\]\.accelerator: 'nvidia-h200' is not"):
        load_catalog(path, accelerators={"nvidia-a100-80gb"})


ACCELERATORS = {
    "nvidia-a100-80gb": {
        "resourceName": "nvidia.com/gpu",
        "nodeSelector": {"cloud.example/accelerator": "a100-80gb", "cloud.example/pool": "eval-a100"},
        "tolerations": [
            {"key": "cloud.example/a100", "operator": "Equal", "value": "reserved", "effect": "NoSchedule"}
        ],
        "runtimeClassName": "nvidia",
    },
    "amd-mi300x": {"resourceName": "amd.com/gpu", "nodeSelector": {"cloud.example/accelerator": "mi300x"}},
}


def test_the_classes_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert KubernetesSettings.from_env("benchmark:50052", LOG_ROOT).manifest.accelerators == {}
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_ACCELERATORS", json.dumps(ACCELERATORS))
    manifest = KubernetesSettings.from_env("benchmark:50052", LOG_ROOT).manifest
    assert manifest.accelerators == {"nvidia-a100-80gb": A100, "amd-mi300x": MI300}


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ([], r": expected a JSON object of accelerator classes"),
        ({"A100": {"resourceName": "nvidia.com/gpu"}}, r"A100: not an accelerator class name"),
        ({"a100": "nvidia.com/gpu"}, r"a100: expected an object"),
        ({"a100": {"nodeSelector": {}}}, r"a100\.resourceName: expected the GPUs' extended resource"),
        ({"a100": {"resourceName": "gpu"}}, r"a100\.resourceName: expected the GPUs' extended resource"),
        ({"a100": {"resourceName": "nvidia.com/gpu", "nodeSelector": {"a": 1}}}, r"a100\.nodeSelector"),
        ({"a100": {"resourceName": "nvidia.com/gpu", "tolerations": {"key": "x"}}}, r"a100\.tolerations"),
        ({"a100": {"resourceName": "nvidia.com/gpu", "runtimeClassName": 1}}, r"a100\.runtimeClassName"),
        ({"a100": {"resourceName": "nvidia.com/gpu", "gpus": 8}}, r"a100\.gpus: not a setting"),
    ],
    ids=[
        "not-an-object",
        "bad-name",
        "not-a-class",
        "no-resource",
        "bare-resource",
        "selector",
        "tolerations",
        "runtime",
        "unknown-key",
    ],
)
def test_a_malformed_class_is_refused_at_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, classes: Any, message: str
) -> None:
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_ACCELERATORS", json.dumps(classes))
    with pytest.raises(ConfigError, match=r"^PREFLIGHT_BENCHMARK_K8S_ACCELERATORS\b.*" + message):
        KubernetesSettings.from_env("benchmark:50052", LOG_ROOT)


def test_the_kubernetes_executor_fails_an_attempt_on_an_unmapped_class_as_a_configuration_error() -> None:
    """A job requested before the deployment stopped mapping its class: no Job is created (the
    client points nowhere) and the attempt ends without a retry."""
    api = client.ApiClient(client.Configuration(host="http://127.0.0.1:9"))
    executor = KubernetesExecutor(api, SETTINGS, api_attempts=1)
    outcome = asyncio.run(executor.run(attempt("endpoint", 1, "nvidia-h200")))
    assert outcome.end is AttemptEnd.CONFIG_ERROR
    assert "'nvidia-h200'" in outcome.detail


def test_the_kubernetes_service_refuses_at_start_a_catalog_naming_an_unmapped_class(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = tmp_path / "service.token"
    token.write_text("pft_benchmark-service-token\n")
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog(accelerator="nvidia-h200")))
    for name, value in {
        "PREFLIGHT_SERVICE_TOKEN_FILE": str(token),
        "PREFLIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'benchmark.db'}",
        "PREFLIGHT_BENCHMARK_EXECUTOR": "kubernetes",
        "PREFLIGHT_BENCHMARK_LOG_ROOT": LOG_ROOT,
        "PREFLIGHT_BENCHMARK_CATALOG_FILE": str(path),
        "PREFLIGHT_BENCHMARK_K8S_ACCELERATORS": json.dumps(ACCELERATORS),
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(CatalogError, match=r"suites\[0\]\.accelerator: 'nvidia-h200' is not"):
        build(BenchmarkSettings.from_env(), "preflight-benchmark:50052")
