"""The `k8s_cluster` fixture: a real Kubernetes API server stack for tests.

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

The kit's plugin loads it: any test can use the fixture, e.g.

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

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from preflight_testkit.checkout import load_script, repository
from preflight_testkit.skips import running_in_ci


def load_cluster_module() -> ModuleType:
    """deploy/k8s/cluster.py (the local API server stack, a script) loaded as a module."""
    return load_script("preflight_deploy_k8s_cluster", "deploy/k8s/cluster.py")


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[Path]:
    """The admin kubeconfig of the local API server stack (see the module's docstring)."""
    cluster = load_cluster_module()
    missing = cluster.binaries_present()
    if missing:
        if running_in_ci() or os.environ.get("PREFLIGHT_K8S_BUILD") == "1":
            subprocess.run([str(repository() / "deploy" / "k8s" / "build.sh"), "all"], check=True)
        else:
            pytest.skip(f"test cluster binaries not built ({', '.join(missing)}): run `make k8s-build`")
    already = cluster.status()
    state = already or cluster.up()
    try:
        yield Path(state.kubeconfig)
    finally:
        if already is None and os.environ.get("PREFLIGHT_K8S_KEEP") != "1":
            cluster.down()
