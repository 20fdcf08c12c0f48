"""Fixtures for the benchmark service's tests (see `preflight_benchmark.testing`)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from preflight_benchmark.reference_model.server import ReferenceModelServer
from preflight_common.config import KafkaSettings
from preflight_testkit import benchmark as testing
from preflight_testkit.benchmark import BenchmarkProcess, IntakeStandIn, benchmark_process, service_settings

SMALL_CATALOG = Path(__file__).parent / "data" / "catalog_small.yaml"

# `k8s_cluster`: a real Kubernetes API server stack with kwok (tests/deploy/k8s_cluster.py), one per
# test run; it yields the admin kubeconfig's path.
_CLUSTER_PLUGIN = "preflight_tests_k8s_cluster"
if _CLUSTER_PLUGIN not in sys.modules:
    _path = Path(__file__).resolve().parents[3] / "tests" / "deploy" / "k8s_cluster.py"
    _spec = importlib.util.spec_from_file_location(_CLUSTER_PLUGIN, _path)
    assert _spec is not None and _spec.loader is not None
    sys.modules[_CLUSTER_PLUGIN] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules[_CLUSTER_PLUGIN])
k8s_cluster = sys.modules[_CLUSTER_PLUGIN].k8s_cluster


intake = testing.intake
model_key = testing.model_key
reference_model = testing.reference_model


@pytest.fixture(scope="module")
def slow_reference_model(model_key: str) -> Iterator[ReferenceModelServer]:
    # Inspect sends a suite's samples concurrently, so a worker takes about one delay: long enough
    # that a test can withdraw or kill it mid-run even on a loaded machine.
    server = ReferenceModelServer(api_key=model_key, model_name="frontier-slow", delay=8.0).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(
    kafka_settings: KafkaSettings, intake: IntakeStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BenchmarkProcess]:
    """The benchmark service (planner, dispatcher with the LocalExecutor, gRPC, relay) on fresh topics,
    with the small test catalog."""
    root = tmp_path_factory.mktemp("benchmark")
    mp = pytest.MonkeyPatch()
    mp.setenv("PREFLIGHT_BENCHMARK_CATALOG_FILE", str(SMALL_CATALOG))
    mp.setenv("PREFLIGHT_KAFKA_SESSION_TIMEOUT", "6")
    mp.setenv("PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL", "1")
    try:
        with benchmark_process(service_settings(root, kafka_settings, intake), root) as process:
            yield process
    finally:
        mp.undo()
