"""pytest plugin: a real Kubernetes API server stack for tests.

Fixture ``k8s_cluster`` (one per test run) yields the admin kubeconfig path
(pathlib.Path) of etcd + kube-apiserver + kube-controller-manager +
kube-scheduler + kwok (one simulated node with 8 nvidia.com/gpu; pods become
Running/Ready, Job pods Succeeded) on 127.0.0.1, started by
deploy/k8s/cluster.py from the binaries cached in .cache/bin.

- A stack already running in run/k8s (``make k8s-up``) is reused and left
  running; one this fixture started is stopped when the test run ends
  (PREFLIGHT_K8S_KEEP=1 keeps it).
- Binaries missing: built first (deploy/k8s/build.sh, 7-11 min cold on 2 cores)
  when CI=true or PREFLIGHT_K8S_BUILD=1; otherwise the test is skipped.

Use it from any conftest.py in the repository (e.g. services/benchmark/tests/conftest.py):

    import importlib.util
    import pathlib
    import sys

    _name = "preflight_tests_k8s_cluster"
    if _name not in sys.modules:
        _path = pathlib.Path(__file__).resolve().parents[3] / "tests" / "deploy" / "k8s_cluster.py"
        _spec = importlib.util.spec_from_file_location(_name, _path)
        sys.modules[_name] = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(sys.modules[_name])
    k8s_cluster = sys.modules[_name].k8s_cluster

and in a test:

    from kubernetes import client, config

    def test_jobs(k8s_cluster):  # k8s_cluster: pathlib.Path of the admin kubeconfig
        api = config.new_client_from_config(str(k8s_cluster))
        client.BatchV1Api(api).create_namespaced_job("default", {...})

Pod simulation knobs for executor tests (pod annotations, see deploy/k8s/kwok-stages.yaml):
``preflight.test/kwok-exit: "<code>"`` ends a Job's pod Failed with that exit
code; ``preflight.test/kwok-hold: ""`` keeps it Running until deleted. The node
has 64 CPUs, 512Gi, 8 nvidia.com/gpu and label ``type: kwok``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI=true a missing prerequisite is a failure."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: not skipping)")
    pytest.skip(reason)


def load_cluster_module() -> ModuleType:
    name = "preflight_deploy_k8s_cluster"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "deploy" / "k8s" / "cluster.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[Path]:
    cluster = load_cluster_module()
    missing = cluster.binaries_present()
    if missing:
        if in_ci() or os.environ.get("PREFLIGHT_K8S_BUILD") == "1":
            subprocess.run([str(REPO / "deploy" / "k8s" / "build.sh"), "all"], check=True)
        else:
            pytest.skip(f"test cluster binaries not built ({', '.join(missing)}): run `make k8s-build`")
    already = cluster.status()
    state = already or cluster.up()
    try:
        yield Path(state.kubeconfig)
    finally:
        if already is None and os.environ.get("PREFLIGHT_K8S_KEEP") != "1":
            cluster.down()
