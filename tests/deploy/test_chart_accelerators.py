"""The chart's accelerator classes reach the benchmark service as it reads them: the rendered
PREFLIGHT_BENCHMARK_K8S_ACCELERATORS parses into the classes given in values, and a rendered
catalog naming one of them loads, while one naming another is refused."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.adapters.executors.k8s_manifest import AcceleratorClass
from preflight_benchmark.config import accelerator_classes
from preflight_benchmark.domain.catalog import CatalogError

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "preflight"
SHIPPED_CATALOG = REPO / "services/benchmark/src/preflight_benchmark/catalog/suites.yaml"
ACCELERATORS = {
    "nvidia-a100-80gb": {
        "resourceName": "nvidia.com/gpu",
        "nodeSelector": {"cloud.example/accelerator": "a100-80gb"},
        "tolerations": [{"key": "cloud.example/a100", "operator": "Exists", "effect": "NoSchedule"}],
        "runtimeClassName": "nvidia",
    },
    "amd-mi300x": {"resourceName": "amd.com/gpu"},
}


def catalog_naming(accelerator: str) -> str:
    catalog = yaml.safe_load(SHIPPED_CATALOG.read_text())
    catalog["suites"][0]["resources"]["gpu"] = 1
    catalog["suites"][0]["accelerator"] = accelerator
    return yaml.safe_dump(catalog)


def rendered(helm: str, check_chart: ModuleType, tmp_path: Path, accelerator: str) -> dict[str, Any]:
    """The benchmark service's environment as the chart renders it with ACCELERATORS and a
    catalog whose first suite names `accelerator`; that catalog is written to tmp_path/catalog.yaml."""
    values = tmp_path / "accelerators.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "benchmark": {
                    "evalLogs": {"root": "s3://preflight-eval-logs/reviews"},
                    "accelerators": ACCELERATORS,
                    "catalog": catalog_naming(accelerator),
                }
            }
        )
    )
    res = check_chart.render(helm, CHART, [values])
    assert res.returncode == 0, res.stderr
    docs = check_chart.documents(res.stdout)
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-benchmark")
    )
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    catalog = next(
        d["data"]["catalog.yaml"]
        for d in docs
        if d["kind"] == "ConfigMap" and "catalog.yaml" in d.get("data", {})
    )
    (tmp_path / "catalog.yaml").write_text(catalog)
    return env


@pytest.mark.parametrize("accelerator", ["nvidia-a100-80gb", "amd-mi300x"])
def test_a_catalog_naming_a_class_of_the_chart_loads_in_the_service(
    helm: str, check_chart: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accelerator: str
) -> None:
    env = rendered(helm, check_chart, tmp_path, accelerator)
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_ACCELERATORS", env["PREFLIGHT_BENCHMARK_K8S_ACCELERATORS"])
    classes = accelerator_classes()
    assert classes == {
        "nvidia-a100-80gb": AcceleratorClass(
            resource_name="nvidia.com/gpu",
            node_selector={"cloud.example/accelerator": "a100-80gb"},
            tolerations=({"key": "cloud.example/a100", "operator": "Exists", "effect": "NoSchedule"},),
            runtime_class="nvidia",
        ),
        "amd-mi300x": AcceleratorClass(resource_name="amd.com/gpu"),
    }
    suite = load_catalog(tmp_path / "catalog.yaml", accelerators=classes).suites[0]
    assert (suite.resources.gpu, suite.resources.accelerator) == (1, accelerator)


def test_a_catalog_naming_a_class_the_chart_does_not_map_is_refused(
    helm: str, check_chart: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = rendered(helm, check_chart, tmp_path, "nvidia-h200")
    monkeypatch.setenv("PREFLIGHT_BENCHMARK_K8S_ACCELERATORS", env["PREFLIGHT_BENCHMARK_K8S_ACCELERATORS"])
    with pytest.raises(
        CatalogError, match=r"suites\[0\]\.accelerator: 'nvidia-h200' is not an accelerator class"
    ):
        load_catalog(tmp_path / "catalog.yaml", accelerators=accelerator_classes())
