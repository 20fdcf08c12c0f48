"""The images, built with podman from the local stand-in base (deploy/docker/build_images.py), run
as their Deployment or Job runs them: the pod's and the container's security context (non-root
UID and GID, fsGroup, no privilege escalation, no capabilities, read-only root file system) and
only the volumes the pod declares, emulated as the kubelet makes them (an emptyDir a folder of
the fsGroup, a Secret's keys files of its mode, a PersistentVolumeClaim a folder); podman's
own writable /tmp, /run and /dev/shm are left out, so nothing else is writable.

The worker runs the Job that k8s_manifest.build_job produces for an attempt: a shipped suite
against the reference model, its credential from an intake stand-in, its report to a
BenchmarkService, its eval log into an S3-compatible store (moto). They all listen on the host's
loopback, which a pod network cannot reach, so the worker shares the host's network; the
services run with no network at all (`--network none`) and answer their health check from
inside, as the kubelet's exec probe asks.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from moto.server import ThreadedMotoServer
from preflight_benchmark.adapters.events import reason_to_proto
from preflight_benchmark.adapters.executors.k8s_manifest import (
    EVAL_LOG_CREDENTIALS_DIR,
    EvalLogStore,
    ManifestSettings,
    build_job,
    token_secret_name,
)
from preflight_benchmark.domain.jobs import CONFIG_ERROR_EXIT, FailureReason
from preflight_benchmark.domain.ports import Attempt
from preflight_benchmark.reference_model.server import ReferenceModelServer
from preflight_benchmark.testing import (
    IntakeStandIn,
    RecordingBenchmarkService,
    endpoint_attempt,
    intake_stand_in,
    recording_benchmark_service,
)
from preflight_common.ports import free_port

pytestmark = pytest.mark.slow

BUCKET = "preflight-eval-logs"
STORE_SECRET = "eval-log-store"
S3_CREDENTIALS = "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
# The parts of a security context this emulation applies; anything else fails the test, so a
# setting added to the manifests is either applied here too or seen to be missing.
POD_SECURITY = {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile"}
CONTAINER_SECURITY = {"allowPrivilegeEscalation", "readOnlyRootFilesystem", "capabilities", "runAsNonRoot"}


@pytest.fixture(scope="session")
def base_image(build_images: ModuleType) -> str:
    return str(build_images.base_image(sys.executable))


@pytest.fixture(scope="session")
def worker_image(build_images: ModuleType, base_image: str) -> str:
    return str(build_images.build("worker", base_image))


@pytest.fixture(scope="session")
def podman_env(build_images: ModuleType) -> dict[str, str]:
    return dict(build_images.podman_env())


@dataclass
class Kubelet:
    """Runs one container of a pod spec with podman, as the kubelet would as far as identity,
    privileges, file systems and settings go. `secrets`: Secret name -> key -> value; `claims`:
    claim name -> host folder."""

    root: Path
    env: Mapping[str, str]
    secrets: Mapping[str, Mapping[str, str]]
    claims: Mapping[str, Path]

    def run(
        self, pod: dict[str, Any], container: dict[str, Any], network: str, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", "run", "--rm", *self.arguments(pod, container, network)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def arguments(self, pod: dict[str, Any], container: dict[str, Any], network: str) -> list[str]:
        """`podman run` arguments (after `run`) for `container` of `pod`."""
        pod_security = pod.get("securityContext", {})
        security = container.get("securityContext", {})
        assert set(pod_security) <= POD_SECURITY, set(pod_security) - POD_SECURITY
        assert set(security) <= CONTAINER_SECURITY, set(security) - CONTAINER_SECURITY
        assert pod_security["runAsNonRoot"] and pod_security["runAsUser"] != 0
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}  # podman's default profile
        assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert pod.get("automountServiceAccountToken") is False and pod.get("enableServiceLinks") is False
        fs_group = int(pod_security["fsGroup"])
        argv = [
            "--pull=never",
            f"--network={network}",
            f"--user={pod_security['runAsUser']}:{pod_security['runAsGroup']}",
            f"--group-add={fs_group}",
            "--security-opt=no-new-privileges",
            "--cap-drop=ALL",
            # Only the declared volumes are writable: no /tmp, /run, /dev/shm of podman's own.
            "--read-only",
            "--read-only-tmpfs=false",
        ]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for mount in container.get("volumeMounts", []):
            source = self._volume(volumes[mount["name"]], fs_group)
            read_only = mount.get("readOnly", False) or "secret" in volumes[mount["name"]]
            argv.append(f"--volume={source}:{mount['mountPath']}{':ro' if read_only else ''}")
        for variable in container.get("env", []):
            assert set(variable) == {"name", "value"}, variable
            argv.append(f"--env={variable['name']}={variable['value']}")
        command = container.get("command")
        if command:
            argv.append(f"--entrypoint={json.dumps(command)}")
        argv.append(container["image"])
        argv += container.get("args", [])
        return argv

    def _volume(self, volume: dict[str, Any], fs_group: int) -> Path:
        if "persistentVolumeClaim" in volume:
            return self.claims[volume["persistentVolumeClaim"]["claimName"]]
        folder = self.root / str(volume["name"])
        if folder.exists():
            return folder
        folder.mkdir(parents=True)
        os.chown(folder, 0, fs_group)
        if "secret" in volume:
            secret = volume["secret"]
            data = self.secrets[secret["secretName"]]
            items = secret.get("items") or [{"key": key, "path": key} for key in data]
            for item in items:
                path = folder / item["path"]
                path.write_text(data[item["key"]])
                os.chown(path, 0, fs_group)
                path.chmod(item.get("mode", secret.get("defaultMode", 0o644)))
            folder.chmod(0o755)
        else:
            assert set(volume) == {"name", "emptyDir"}, volume
            # An emptyDir is world-writable, of the fsGroup, and what is made in it inherits the group.
            folder.chmod(0o2777)
        return folder


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntakeStandIn]:
    with intake_stand_in(tmp_path_factory.mktemp("intake")) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def model_key() -> str:
    return "sk-lab-" + secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def reference_model(model_key: str) -> Iterator[ReferenceModelServer]:
    server = ReferenceModelServer(api_key=model_key, model_name="frontier-test").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def results() -> Iterator[tuple[str, RecordingBenchmarkService]]:
    with recording_benchmark_service() as served:
        yield served


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback, with the log bucket."""
    import boto3  # type: ignore[import-untyped]

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def worker_job(
    intake: IntakeStandIn, results_target: str, image: str, attempt: Attempt, store: EvalLogStore
) -> dict[str, Any]:
    settings = ManifestSettings(
        namespace="preflight",
        image=image,
        intake_target=intake.target,
        benchmark_target=results_target,
        eval_logs=store,
    )
    return build_job(attempt, settings)


def run_worker(
    tmp_path: Path,
    env: Mapping[str, str],
    intake: IntakeStandIn,
    job: dict[str, Any],
    attempt: Attempt,
    secrets: Mapping[str, Mapping[str, str]],
) -> subprocess.CompletedProcess[str]:
    """The Job's only container, its token Secret as the executor creates it."""
    token = {token_secret_name(attempt.job_id, attempt.attempt): {"token": intake.job_token(attempt.job_id)}}
    kubelet = Kubelet(tmp_path / "volumes", env, {**token, **secrets}, claims={})
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert "initContainers" not in pod
    return kubelet.run(pod, container, network="host")


def test_the_worker_image_runs_its_job_and_its_eval_log_is_read_back_from_the_s3_store(
    tmp_path: Path,
    worker_image: str,
    podman_env: dict[str, str],
    intake: IntakeStandIn,
    reference_model: ReferenceModelServer,
    model_key: str,
    results: tuple[str, RecordingBenchmarkService],
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from inspect_ai.log import read_eval_log

    target, servicer = results
    root = f"s3://{BUCKET}/eval-logs"
    attempt = endpoint_attempt(reference_model, intake.add_credential(model_key), root)
    store = EvalLogStore(
        secret=STORE_SECRET,
        env={
            "AWS_ENDPOINT_URL_S3": s3_endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_SHARED_CREDENTIALS_FILE": f"{EVAL_LOG_CREDENTIALS_DIR}/credentials",
        },
    )
    job = worker_job(intake, target, worker_image, attempt, store)
    done = run_worker(
        tmp_path, podman_env, intake, job, attempt, {STORE_SECRET: {"credentials": S3_CREDENTIALS}}
    )

    assert done.returncode == 0, done.stderr[-4000:]
    [report] = [r for r in servicer.reports if r.job_id == attempt.job_id]
    assert report.WhichOneof("outcome") == "completed", report
    [uri] = report.completed.eval_log_uri.split(",")
    assert uri.startswith(f"{root}/{attempt.submission_id}/"), uri
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    log = read_eval_log(uri)
    assert log.status == "success" and log.eval.metadata is not None
    assert log.eval.metadata["preflight_job_id"] == attempt.job_id
    assert model_key not in json.dumps(log.model_dump(mode="json"))


def test_the_worker_image_cannot_write_its_eval_log_to_its_own_root_file_system(
    tmp_path: Path,
    worker_image: str,
    podman_env: dict[str, str],
    intake: IntakeStandIn,
    reference_model: ReferenceModelServer,
    model_key: str,
    results: tuple[str, RecordingBenchmarkService],
) -> None:
    """The image's root is read-only as the Job runs it: a log root on it is a configuration
    error (exit 78, CONFIG_ERROR naming the folder), not a crash retried per attempt."""
    target, servicer = results
    attempt = endpoint_attempt(
        reference_model, intake.add_credential(model_key), "/var/lib/preflight/eval-logs"
    )
    job = worker_job(intake, target, worker_image, attempt, EvalLogStore())
    done = run_worker(tmp_path, podman_env, intake, job, attempt, {})

    assert done.returncode == CONFIG_ERROR_EXIT, done.stderr[-4000:]
    [report] = [r for r in servicer.reports if r.job_id == attempt.job_id]
    assert report.failed.reason == reason_to_proto(FailureReason.CONFIG_ERROR)
    assert re.match(r"eval log folder /var/lib/preflight/eval-logs/", report.failed.message), report
