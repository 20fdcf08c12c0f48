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

import base64
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from preflight_benchmark.adapters.events import reason_to_proto
from preflight_benchmark.adapters.executors.k8s_manifest import (
    EvalLogStore,
    ManifestSettings,
    build_job,
)
from preflight_benchmark.domain.jobs import CONFIG_ERROR_EXIT, FailureReason
from preflight_benchmark.domain.ports import Attempt
from preflight_benchmark.reference_model.server import ReferenceModelServer
from preflight_benchmark.suites.sandbox_runner import CRASHED
from preflight_testkit import benchmark as testing
from preflight_testkit.benchmark import (
    EVAL_LOG_BUCKET,
    EVAL_LOG_STORE_SECRET,
    S3_CREDENTIALS,
    IntakeStandIn,
    RecordingBenchmarkService,
    endpoint_attempt,
    job_token_secret,
    read_s3_eval_log,
    s3_eval_log_store,
    wait_until,
)
from preflight_testkit.openpgp import signing_key

# Building the images the first time takes up to 25 minutes of a loaded machine, in a fixture.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

# The parts of a security context this emulation applies; anything else fails the test, so a
# setting added to the manifests is either applied here too or seen to be missing.
POD_SECURITY = {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile"}
WAIT = 180.0
REPO = Path(__file__).resolve().parents[2]
# The service images the tests run and the Secret files each needs to serve (PREFLIGHT_<NAME>_FILE).
SERVICE_SECRETS = {
    "intake": ["intake-encryption-keys"],
    "benchmark": ["service-token"],
    "clearinghouse": ["service-token"],
    "notifier": ["service-token"],
}
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


def podman_run(
    env: Mapping[str, str], *arguments: str, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """`podman run --rm <arguments>`, its output captured as text."""
    argv = ["podman", "run", "--rm", *arguments]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=check)


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

    def start(self, name: str, pod: dict[str, Any], container: dict[str, Any], network: str) -> None:
        """Start the container in the background as `name` (remove it with `podman rm -f`)."""
        argv = ["podman", "run", "--detach", f"--name={name}", *self.arguments(pod, container, network)]
        subprocess.run(argv, env=self.env, stdout=subprocess.DEVNULL, timeout=300, check=True)

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


@pytest.fixture(scope="session", params=sorted(SERVICE_SECRETS))
def service_image(
    request: pytest.FixtureRequest, build_images: ModuleType, base_image: str
) -> tuple[str, str]:
    """(service, its image)."""
    service = str(request.param)
    return service, str(build_images.build(service, base_image))


def service_pod(
    image: str, service: str, args: list[str], secret_files: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod of the chart's Deployment or migration Job of `service` and its container: the
    chart's security contexts, its /tmp and state emptyDirs, the service's Secret files under
    /etc/preflight/secrets; settings for SQLite in the state volume, no Kafka."""
    values = yaml.safe_load((REPO / "deploy" / "helm" / "preflight" / "values.yaml").read_text())
    pod = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": values["podSecurityContext"],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {"name": "state", "emptyDir": {}},
            {"name": "secrets", "secret": {"secretName": service, "defaultMode": 0o440}},
        ],
    }
    env = {
        "PREFLIGHT_DATABASE_URL": f"sqlite:////var/lib/preflight/{service}.db",
        **{
            f"PREFLIGHT_{name.upper().replace('-', '_')}_FILE": f"/etc/preflight/secrets/{name}"
            for name in secret_files
        },
    }
    container = {
        "image": image,
        "args": args,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "securityContext": values["containerSecurityContext"],
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "state", "mountPath": "/var/lib/preflight"},
            {"name": "secrets", "mountPath": "/etc/preflight/secrets", "readOnly": True},
        ],
    }
    return pod, container


def test_each_service_image_migrates_its_database_and_answers_its_health_check(
    tmp_path: Path, service_image: tuple[str, str], build_images: ModuleType, podman_env: dict[str, str]
) -> None:
    """As the chart runs it, with no network: the migration Job's `migrate` succeeds, then the
    Deployment's `serve` answers its health check SERVING (asked from inside the pod, as an exec
    probe would: nothing outside reaches it) while Kafka is out of reach."""
    service, image = service_image
    keys = subprocess.run(
        [str(Path(sys.executable).parent / "preflight-intake"), "keygen"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    files = SERVICE_SECRETS[service]
    data = {"intake-encryption-keys": keys, "service-token": secrets.token_urlsafe(24)}
    kubelet = Kubelet(
        tmp_path / "volumes", podman_env, {service: {name: data[name] for name in files}}, claims={}
    )

    pod, migrate = service_pod(image, service, ["migrate"], files)
    done = kubelet.run(pod, migrate, network="none", timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert (tmp_path / "volumes" / "state" / f"{service}.db").stat().st_size > 0

    pod, serve = service_pod(image, service, ["serve"], files)
    name = f"preflight-{service}-{secrets.token_hex(4)}"
    kubelet.start(name, pod, serve, network="none")
    try:
        port = build_images.IMAGES[service][1]["PORT"]

        def serving() -> bool:
            health = ["podman", "exec", name, "preflight-health", f"127.0.0.1:{port}", "--timeout", "5"]
            return (
                subprocess.run(
                    health, env=podman_env, capture_output=True, timeout=60, check=False
                ).returncode
                == 0
            )

        wait_until(serving, WAIT, f"{service} answering its health check SERVING")
    finally:
        logs = subprocess.run(
            ["podman", "logs", name], env=podman_env, capture_output=True, text=True, check=False
        )
        subprocess.run(["podman", "rm", "--force", name], env=podman_env, capture_output=True, check=False)
        print(logs.stdout[-2000:], logs.stderr[-4000:])


intake = testing.intake
model_key = testing.model_key
reference_model = testing.reference_model
results = testing.results
s3_endpoint = testing.s3_endpoint


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
    kubelet = Kubelet(tmp_path / "volumes", env, {**job_token_secret(intake, attempt), **secrets}, claims={})
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
    target, servicer = results
    root = f"s3://{EVAL_LOG_BUCKET}/eval-logs"
    attempt = endpoint_attempt(reference_model, intake.add_credential(model_key), root)
    job = worker_job(intake, target, worker_image, attempt, s3_eval_log_store(s3_endpoint))
    done = run_worker(
        tmp_path, podman_env, intake, job, attempt, {EVAL_LOG_STORE_SECRET: {"credentials": S3_CREDENTIALS}}
    )

    assert done.returncode == 0, done.stderr[-4000:]
    [report] = [r for r in servicer.reports if r.job_id == attempt.job_id]
    assert report.WhichOneof("outcome") == "completed", report
    [uri] = report.completed.eval_log_uri.split(",")
    assert uri.startswith(f"{root}/{attempt.submission_id}/"), uri
    log = read_s3_eval_log(uri, s3_endpoint, monkeypatch)
    assert log.status == "success" and log.eval.metadata is not None
    assert log.eval.metadata["preflight_job_id"] == attempt.job_id
    assert model_key not in json.dumps(log.model_dump(mode="json"))


def test_the_worker_image_carries_helm_and_runs_targets_as_the_k8s_sandbox_image(
    worker_image: str, podman_env: dict[str, str]
) -> None:
    """What Inspect's Kubernetes sandbox needs of the worker image: the pinned Helm CLI (mk/deploy.mk's
    HELM_VERSION) in the worker; and, as the chart's default sandbox image, a target run through
    sandbox_runner.py with its python3 as the sandbox Pod runs it (uid 65534, no capabilities, no
    network, a read-only root with /sandbox and /tmp writable), with the shell and coreutils the
    sandbox's exec and file copies use (sh, base64, head, timeout, sync)."""
    pinned = re.search(r"^HELM_VERSION\s*:=\s*(\S+)", (REPO / "mk" / "deploy.mk").read_text(), re.MULTILINE)
    assert pinned is not None
    helm = podman_run(podman_env, "--network=none", "--entrypoint=helm", worker_image, "version", "--short")
    assert helm.returncode == 0, helm.stderr
    assert helm.stdout.strip().split("+")[0] == pinned.group(1), helm.stdout

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    runner = resources.files("preflight_benchmark.suites").joinpath("sandbox_runner.py").read_text()
    target = "import os\nif input() == 'sesame':\n    print(os.environ['PREFLIGHT_FLAG'])\nelse:\n    1 / 0\n"
    script = f"""echo {b64(runner)} | base64 -d | head -c 1000000 > sandbox_runner.py
echo {b64(target)} | base64 -d > target.py
export PREFLIGHT_FLAG='FLAG{{k8s}}'
for answer in sesame nope; do
  echo "$answer" | timeout -k 5s 10s python3 -I -S -B sandbox_runner.py target.py
  returncode=$?; sync; echo "<rc-$returncode>"
done
"""
    sandbox = [
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs=/sandbox:rw,size=64m,mode=1777",
        "--tmpfs=/tmp:rw,size=64m,mode=1777",
        "--workdir=/sandbox",
        "--user=65534:65534",
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        "--network=none",
    ]
    done = podman_run(podman_env, *sandbox, "--entrypoint", "/bin/sh", worker_image, "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["FLAG{k8s}", "<rc-0>", f"<rc-{CRASHED}>"], done.stdout + done.stderr


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


def test_the_console_image_answers_its_health_check_and_signs_with_gpg_as_the_chart_runs_it(
    tmp_path: Path,
    build_images: ModuleType,
    base_image: str,
    podman_env: dict[str, str],
    helm: str,
    check_chart: ModuleType,
) -> None:
    """The console's Deployment as the chart renders it with a CSAF signing key, with no
    network: it imports the key into its GnuPG home under /tmp at start, answers /healthz (the
    chart's probes) from inside the pod, and the image's gpg runs and signs as the non-root user
    on the read-only root."""
    image = str(build_images.build("console", base_image))
    values = tmp_path / "csaf.yaml"
    values.write_text(
        yaml.safe_dump({"console": {"csaf": {"openpgpKey": {"existingSecret": "console-csaf"}}}})
    )
    chart = REPO / "deploy" / "helm" / "preflight"
    res = check_chart.render(
        helm, chart, [REPO / "deploy" / "helm" / "tools" / "required-values.yaml", values]
    )
    assert res.returncode == 0, res.stderr
    [deployment] = [
        d
        for d in check_chart.documents(res.stdout)
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "preflight-console"
    ]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    port = container["ports"][0]["containerPort"]
    (tmp_path / "keys").mkdir()
    key = signing_key(tmp_path / "keys").read_text()
    kubelet = Kubelet(tmp_path / "volumes", podman_env, {"console-csaf": {"openpgp-key.asc": key}}, claims={})
    name = f"preflight-console-{secrets.token_hex(4)}"
    kubelet.start(name, pod, {**container, "image": image}, network="none")

    def inside(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", "exec", name, *argv], env=podman_env, capture_output=True, text=True, timeout=120
        )

    try:
        probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=5)"
        wait_until(
            lambda: inside("python", "-c", probe).returncode == 0, WAIT, "the console answering /healthz"
        )
        version = inside("gpg", "--version")
        assert version.returncode == 0 and version.stdout.startswith("gpg (GnuPG)"), version
        # The console's own signer, from the mounted key file, in a GnuPG home under /tmp.
        sign = (
            "import asyncio, os, pathlib; from preflight_console.adapters.openpgp import OpenPgpSigner;"
            "s = OpenPgpSigner(pathlib.Path(os.environ['PREFLIGHT_CONSOLE_CSAF_OPENPGP_KEY_FILE']));"
            "print(asyncio.run(s.sign(b'{}'))); s.close()"
        )
        signed = inside("python", "-c", sign)
        assert signed.returncode == 0, signed.stderr[-4000:]
        assert signed.stdout.startswith("-----BEGIN PGP SIGNATURE-----"), signed.stdout
    finally:
        logs = subprocess.run(
            ["podman", "logs", name], env=podman_env, capture_output=True, text=True, check=False
        )
        subprocess.run(["podman", "rm", "--force", name], env=podman_env, capture_output=True, check=False)
        print(logs.stdout[-2000:], logs.stderr[-4000:])


def build_steps(output: str) -> list[tuple[str, bool]]:
    """(instruction, taken from podman's layer cache) for each step `podman build` printed."""
    steps: list[tuple[str, bool]] = []
    for line in output.splitlines():
        if step := re.match(r"(?:\[\d+/\d+\] )?STEP \d+/\d+: (.*)", line):
            steps.append((step.group(1), False))
        elif line.startswith("--> Using cache") and steps:
            steps[-1] = (steps[-1][0], True)
    return steps


def test_a_change_of_the_sources_rebuilds_the_image_on_its_cached_third_party_layers(
    tmp_path: Path, build_images: ModuleType, base_image: str, podman_env: dict[str, str]
) -> None:
    """From a copy of intake's build context, built as build_images.py builds it: after an edit of
    one of the service's modules, the steps that resolve and install the third-party distributions
    (those reading constraints.txt) and the runtime stage's copy of them come from podman's layer
    cache, and the new image holds the edit."""
    dockerfile = REPO / build_images.IMAGES["intake"][0]
    context = tmp_path / "context"
    for path in [REPO / ".dockerignore", dockerfile, *build_images.context_files("intake")]:
        (context / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
        (context / path.relative_to(REPO)).write_bytes(path.read_bytes())
    tag = f"localhost/preflight-layers-test:{secrets.token_hex(4)}"

    def build() -> list[tuple[str, bool]]:
        done = subprocess.run(
            ["podman", "build", *build_images.build_arguments("intake", base_image), "--tag", tag, "."],
            cwd=context,
            env=podman_env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        return build_steps(done.stdout)

    try:
        build()
        module = context / "services" / "intake" / "src" / "preflight_intake" / "__init__.py"
        edit = f"# {secrets.token_hex(8)}\n"
        module.write_text(module.read_text() + edit)
        steps = build()
        reused = [
            (instruction, cached)
            for instruction, cached in steps
            if "constraints.txt" in instruction or "--from=dependencies" in instruction
        ]
        assert any("pip install" in instruction for instruction, _ in reused), steps
        assert all(cached for _, cached in reused), [i for i, cached in reused if not cached]
        assert not all(cached for _, cached in steps), "the edit is built"
        show = "import pathlib, preflight_intake as m; print(pathlib.Path(m.__file__).read_text())"
        python = ("--network=none", "--entrypoint=python", tag)
        installed = podman_run(podman_env, *python, "-c", show, check=True)
        assert installed.stdout.endswith(edit + "\n"), installed.stdout[-200:]
    finally:
        subprocess.run(["podman", "rmi", "--force", tag], env=podman_env, capture_output=True, check=False)
