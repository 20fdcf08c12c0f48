"""The worker as its Kubernetes Job runs it: the container of the manifest k8s_manifest.py builds,
its command, environment and volume mounts, on a read-only root file system (bubblewrap), against
the reference model, a credential from intake and a BenchmarkService that records the report.

It completes the suite, and its eval log is readable afterwards from the configured store: an
S3-compatible server on loopback (moto) for an s3:// log root, a folder standing for the
PersistentVolumeClaim for a claim. Kubernetes' own parts (secrets, emptyDirs, the claim) are
emulated from the manifest's volumes and references; nothing is added to what it declares.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from preflight.benchmark.v1 import events_pb2
from preflight_benchmark.adapters.events import reason_to_proto
from preflight_benchmark.adapters.executors.k8s_manifest import (
    EvalLogStore,
    ManifestSettings,
    build_job,
)
from preflight_benchmark.domain.jobs import CONFIG_ERROR_EXIT, FailureReason
from preflight_benchmark.domain.ports import Attempt
from preflight_benchmark.reference_model.server import ReferenceModelServer
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
)
from preflight_testkit.skips import needs_bwrap

BWRAP = shutil.which("bwrap")
pytestmark = needs_bwrap
WORKER = str(Path(sys.executable).parent / "preflight-worker")
results = testing.results
s3_endpoint = testing.s3_endpoint


@dataclass
class Kubelet:
    """Runs a Job's worker container as the kubelet would, as far as files and settings go."""

    root: Path
    secrets: dict[str, dict[str, str]]
    claims: dict[str, Path]

    def run(self, job: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        spec = job["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        volumes = {v["name"]: self._volume(v) for v in spec["volumes"]}
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
        for variable in container["env"]:
            if "value" in variable:
                env[variable["name"]] = variable["value"]
            else:
                ref = variable["valueFrom"]["secretKeyRef"]
                env[variable["name"]] = self.secrets[ref["name"]][ref["key"]]
        # A read-only root: an empty root of its own, every top-level folder bound read-only
        # (one that holds a mount point, e.g. /etc for a Secret volume, rebuilt from its entries
        # so the mount point can be made, as a container image's folder would allow), the
        # container's volumes at their mount paths, then all of it remounted read-only.
        mounts = [Path(m["mountPath"]) for m in container["volumeMounts"]]
        argv = [str(BWRAP), "--die-with-parent", "--tmpfs", "/"]
        rebuilt = []
        for entry in sorted(Path("/").iterdir()):
            if entry.name in ("proc", "dev"):
                continue
            if entry.is_symlink():
                argv += ["--symlink", os.readlink(entry), str(entry)]
            elif entry.is_dir() and any(m.is_relative_to(entry) and m != entry for m in mounts):
                argv += ["--tmpfs", str(entry)]
                for child in sorted(entry.iterdir()):
                    if child.is_symlink():
                        argv += ["--symlink", os.readlink(child), str(child)]
                    else:
                        argv += ["--ro-bind", str(child), str(child)]
                rebuilt.append(str(entry))
            else:
                argv += ["--ro-bind", str(entry), str(entry)]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        for mount in container["volumeMounts"]:
            bind = "--ro-bind" if mount.get("readOnly") else "--bind"
            argv += [bind, str(volumes[mount["name"]]), mount["mountPath"]]
        for folder in rebuilt:
            argv += ["--remount-ro", folder]
        argv += ["--remount-ro", "/", "--chdir", "/", *container["command"]]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)

    def _volume(self, volume: dict[str, Any]) -> Path:
        if "persistentVolumeClaim" in volume:
            return self.claims[volume["persistentVolumeClaim"]["claimName"]]
        folder = self.root / volume["name"]
        folder.mkdir(parents=True)
        if "secret" in volume:
            data = self.secrets[volume["secret"]["secretName"]]
            items = volume["secret"].get("items") or [{"key": key, "path": key} for key in data]
            for item in items:
                (folder / item["path"]).write_text(data[item["key"]])
        else:
            assert "emptyDir" in volume, volume
        return folder


def manifest_settings(intake: IntakeStandIn, results_target: str, store: EvalLogStore) -> ManifestSettings:
    return ManifestSettings(
        namespace="preflight",
        image="preflight-worker:test",
        intake_target=intake.target,
        benchmark_target=results_target,
        worker_command=(WORKER,),
        eval_logs=store,
    )


def run_job(
    tmp_path: Path,
    intake: IntakeStandIn,
    results: tuple[str, RecordingBenchmarkService],
    attempt: Attempt,
    store: EvalLogStore,
    claims: dict[str, Path],
) -> events_pb2.BenchmarkCompleted:
    target, servicer = results
    job = build_job(attempt, manifest_settings(intake, target, store))
    secrets = {**job_token_secret(intake, attempt), EVAL_LOG_STORE_SECRET: {"credentials": S3_CREDENTIALS}}
    done = Kubelet(tmp_path / "volumes", secrets, claims).run(job)
    assert done.returncode == 0, done.stderr[-4000:]
    [report] = [r for r in servicer.reports if r.job_id == attempt.job_id]
    assert report.WhichOneof("outcome") == "completed", report
    return report.completed


def test_a_worker_job_writes_its_eval_log_to_the_s3_store(
    tmp_path: Path,
    intake: IntakeStandIn,
    reference_model: ReferenceModelServer,
    model_key: str,
    results: tuple[str, RecordingBenchmarkService],
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = f"s3://{EVAL_LOG_BUCKET}/eval-logs"
    attempt = endpoint_attempt(reference_model, intake.add_credential(model_key), root)
    completed = run_job(tmp_path, intake, results, attempt, s3_eval_log_store(s3_endpoint), claims={})

    [uri] = completed.eval_log_uri.split(",")
    assert uri.startswith(f"{root}/{attempt.submission_id}/"), uri
    log = read_s3_eval_log(uri, s3_endpoint, monkeypatch)
    assert log.status == "success" and log.eval.metadata is not None
    assert log.eval.metadata["preflight_job_id"] == attempt.job_id
    assert model_key not in json.dumps(log.model_dump(mode="json"))


def test_a_worker_job_writes_its_eval_log_to_the_mounted_claim(
    tmp_path: Path,
    intake: IntakeStandIn,
    reference_model: ReferenceModelServer,
    model_key: str,
    results: tuple[str, RecordingBenchmarkService],
) -> None:
    from inspect_ai.log import read_eval_log

    claim = tmp_path / "claim"
    claim.mkdir()
    root = "/eval-logs"
    attempt = endpoint_attempt(reference_model, intake.add_credential(model_key), root)
    store = EvalLogStore(claim="preflight-eval-logs", mount_path=root)
    completed = run_job(tmp_path, intake, results, attempt, store, claims={"preflight-eval-logs": claim})

    [uri] = completed.eval_log_uri.split(",")
    relative = Path(uri).relative_to(root)
    assert relative.parts[0] == attempt.submission_id, uri
    log = read_eval_log(str(claim / relative))
    assert log.status == "success"
    assert log.eval.metadata is not None and log.eval.metadata["preflight_job_id"] == attempt.job_id


def test_a_log_root_on_the_read_only_file_system_is_reported_as_a_configuration_error(
    tmp_path: Path,
    intake: IntakeStandIn,
    reference_model: ReferenceModelServer,
    model_key: str,
    results: tuple[str, RecordingBenchmarkService],
) -> None:
    """A worker whose log root is no store (the container's own read-only disk) reports
    CONFIG_ERROR naming the folder and exits 78, so the Job fails at once instead of crashing
    once per attempt."""
    target, servicer = results
    attempt = endpoint_attempt(
        reference_model, intake.add_credential(model_key), "/var/lib/preflight/eval-logs"
    )
    job = build_job(attempt, manifest_settings(intake, target, EvalLogStore()))
    secrets = job_token_secret(intake, attempt)
    done = Kubelet(tmp_path / "volumes", secrets, claims={}).run(job)
    assert done.returncode == CONFIG_ERROR_EXIT, done.stderr[-4000:]
    [report] = [r for r in servicer.reports if r.job_id == attempt.job_id]
    assert report.failed.reason == reason_to_proto(FailureReason.CONFIG_ERROR)
    assert not report.failed.retryable
    assert report.failed.message.startswith("eval log folder /var/lib/preflight/eval-logs/"), report
