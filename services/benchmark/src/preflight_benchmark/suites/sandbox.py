"""The exploit suite's target runs: a target program in the sample's Inspect sandbox, through
``sandbox_runner.py``, with a wall-clock timeout and its output clipped.

The sandbox is ``bwrap`` (no network, no view of the worker's processes, environment or files,
one writable folder, CPU-time, memory and file-size limits) unless the worker is given the Helm
values of Inspect's Kubernetes sandbox (PREFLIGHT_WORKER_K8S_SANDBOX_VALUES, set in worker Jobs
by the Kubernetes executor): then ``k8s``, a Pod per sample in the sandbox namespace, with no
network, a read-only root and one writable working folder, the container's CPU and memory limits,
running the targets with the ``python3`` of its image."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from importlib import resources

from inspect_ai.util import SandboxEnvironment, SandboxEnvironmentSpec

from preflight_benchmark.adapters.executors.k8s_manifest import K8S_SANDBOX_VALUES_ENV
from preflight_benchmark.suites.bwrap import interpreter
from preflight_benchmark.suites.sandbox_runner import CRASHED

OUTPUT_BYTES = 64 * 1024
WALL_SECONDS = 10
CRASH_SIGNALS = frozenset({-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS, -signal.SIGFPE, -signal.SIGILL})
RUNNER = "sandbox_runner.py"


@dataclass(frozen=True)
class TargetSandbox:
    """The sandbox the targets run in (a Task's `sandbox`) and the Python interpreter there."""

    spec: SandboxEnvironmentSpec
    python: str


def target_sandbox() -> TargetSandbox:
    """``k8s`` with the Helm values file PREFLIGHT_WORKER_K8S_SANDBOX_VALUES names, if set;
    otherwise ``bwrap``."""
    values = os.environ.get(K8S_SANDBOX_VALUES_ENV, "")
    if values:
        return TargetSandbox(SandboxEnvironmentSpec("k8s", values), "python3")
    return TargetSandbox(SandboxEnvironmentSpec("bwrap"), interpreter())


@dataclass(frozen=True)
class SandboxRun:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool

    @property
    def crashed(self) -> bool:
        """An uncaught exception or a fatal signal (not a limit, a timeout or a sandbox refusal)."""
        return not self.timed_out and (self.returncode == CRASHED or self.returncode in CRASH_SIGNALS)


async def run_target(
    sandbox: SandboxEnvironment, filename: str, source: str, stdin: str, flag: str, *, python: str
) -> SandboxRun:
    """Run the target `source` (named `filename`) on `stdin` with the interpreter `python` in
    `sandbox`; the flag is in its environment."""
    runner = resources.files("preflight_benchmark.suites").joinpath(RUNNER).read_text(encoding="utf-8")
    await sandbox.write_file(RUNNER, runner)
    await sandbox.write_file(filename, source)
    command = [python, "-I", "-S", "-B", RUNNER, filename]
    try:
        run = await sandbox.exec(command, input=stdin, env={"PREFLIGHT_FLAG": flag}, timeout=WALL_SECONDS)
    except TimeoutError:
        return SandboxRun(-signal.SIGKILL, "", "", timed_out=True)
    return SandboxRun(run.returncode, run.stdout[:OUTPUT_BYTES], run.stderr[:OUTPUT_BYTES], timed_out=False)
