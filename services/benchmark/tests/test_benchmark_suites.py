"""The shipped suites through Inspect AI against the reference model server: an oracle scores 1.0,
wrong answers score 0, and the scripted model scores exactly what the README promises."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import EvalLog
from inspect_ai.model import get_model
from preflight_benchmark.reference_model.script import Mode
from preflight_benchmark.reference_model.server import ReferenceModelServer
from preflight_benchmark.suites import bwrap
from preflight_benchmark.suites.bwrap import BubblewrapSandboxEnvironment
from preflight_benchmark.suites.datasets import (
    discovery_projects,
    exploit_challenges,
    knowledge_questions,
    vuln_snippets,
)
from preflight_benchmark.suites.sandbox import run_target
from preflight_testkit.skips import needs_bwrap

TASKS = [f"preflight_benchmark/{name}" for name in ("vuln_detect", "exploit", "knowledge", "discovery")]
# The scripted reference model on the full shipped suites (also in the README).
REFERENCE_SCORES = {
    ("vuln_detect", "accuracy"): 22 / 32,
    ("exploit", "accuracy"): 7 / 10,
    ("knowledge", "accuracy"): 35 / 52,
    ("discovery", "recall"): 2 / 3,
    ("discovery", "precision"): 5 / 6,
}


@pytest.fixture(scope="module")
def scores_by_mode(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[tuple[str, str], float]]:
    """Every shipped suite, in full, against three reference servers (oracle, wrong, scripted) in one eval."""
    modes: tuple[Mode, ...] = ("oracle", "wrong", "reference")
    servers = [ReferenceModelServer(mode=mode, model_name=mode, api_key="k").start() for mode in modes]
    try:
        models = [
            get_model(f"openai-api/ref/{s.model_name}", base_url=s.base_url, api_key="k", memoize=False)
            for s in servers
        ]
        logs: list[EvalLog] = inspect_eval(
            TASKS, model=models, log_dir=str(tmp_path_factory.mktemp("inspect-logs")), display="none"
        )
    finally:
        for server in servers:
            server.stop()
    assert [log.status for log in logs] == ["success"] * 12
    scores: dict[str, dict[tuple[str, str], float]] = {mode: {} for mode in modes}
    for log in logs:
        assert log.results is not None
        mode = log.eval.model.split("/")[-1]
        for score in log.results.scores:
            for name, metric in score.metrics.items():
                if name != "stderr":
                    task = log.eval.task.split("/")[-1]
                    scores[mode][(task, score.name if name == "mean" else name)] = metric.value
    return scores


def test_suites_have_the_promised_sizes() -> None:
    assert len(vuln_snippets()) >= 30
    assert {s.language for s in vuln_snippets()} == {"c", "python"}
    assert len(exploit_challenges()) >= 10
    assert len(knowledge_questions()) >= 50
    assert all(len(q.choices) == 4 and q.answer in "ABCD" for q in knowledge_questions())
    assert sum(len(p.bugs) for p in discovery_projects()) >= 10


def test_an_oracle_solves_every_suite(scores_by_mode: dict[str, dict[tuple[str, str], float]]) -> None:
    assert scores_by_mode["oracle"] == {key: 1.0 for key in REFERENCE_SCORES}


def test_wrong_answers_are_marked_wrong(scores_by_mode: dict[str, dict[tuple[str, str], float]]) -> None:
    assert scores_by_mode["wrong"] == {key: 0.0 for key in REFERENCE_SCORES}


def test_the_scripted_reference_model_scores_as_documented(
    scores_by_mode: dict[str, dict[tuple[str, str], float]],
) -> None:
    assert scores_by_mode["reference"] == pytest.approx(REFERENCE_SCORES)


def _sandbox(source: str, stdin: str = "") -> Any:
    async def run() -> Any:
        environments = await BubblewrapSandboxEnvironment.sample_init("probe", None, {})
        try:
            return await run_target(
                environments["default"], "probe.py", source, stdin, "FLAG{x}", python=bwrap.interpreter()
            )
        finally:
            await BubblewrapSandboxEnvironment.sample_cleanup("probe", None, environments, False)

    return asyncio.run(run())


@needs_bwrap
def test_sandbox_refuses_network_and_does_not_count_it_as_a_crash() -> None:
    run = _sandbox("import socket\nsocket.create_connection(('127.0.0.1', 9))\n")
    assert "SANDBOX: socket" in run.stderr and not run.crashed


@needs_bwrap
def test_sandbox_refuses_subprocesses_and_file_writes() -> None:
    assert "SANDBOX: subprocess" in _sandbox("import subprocess\nsubprocess.run(['true'])\n").stderr
    assert "open for writing" in _sandbox("open('out.txt', 'w').write('x')\n").stderr


@needs_bwrap
def test_sandbox_limits_cpu_time_and_an_endless_loop_is_no_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bwrap, "CPU_SECONDS", 1)
    run = _sandbox("while True:\n    pass\n")
    assert run.returncode < 0 and not run.crashed


@needs_bwrap
def test_sandbox_reports_an_uncaught_exception_as_a_crash_and_passes_the_flag() -> None:
    assert _sandbox("raise ValueError('boom')\n").crashed
    assert _sandbox("import os\nprint(os.environ['PREFLIGHT_FLAG'])\n").stdout.strip() == "FLAG{x}"


def test_the_exploit_suite_runs_in_the_k8s_sandbox_when_the_worker_is_given_its_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A worker Job with Inspect's Kubernetes sandbox (PREFLIGHT_WORKER_K8S_SANDBOX_VALUES, the
    chart's values file) runs cyber.exploit's targets in ``k8s`` with its image's python3; any
    other worker in ``bwrap`` with its own interpreter."""
    from inspect_ai._util.registry import registry_params
    from inspect_ai.util import SandboxEnvironmentSpec
    from preflight_benchmark.suites.exploit import exploit

    monkeypatch.delenv("PREFLIGHT_WORKER_K8S_SANDBOX_VALUES", raising=False)
    local = exploit()
    assert local.sandbox == SandboxEnvironmentSpec("bwrap")
    assert local.scorer is not None and registry_params(local.scorer[0]) == {"python": bwrap.interpreter()}
    values = tmp_path / "values.yaml"
    values.write_text("services: {}\n")
    monkeypatch.setenv("PREFLIGHT_WORKER_K8S_SANDBOX_VALUES", str(values))
    k8s = exploit()
    assert k8s.sandbox == SandboxEnvironmentSpec("k8s", str(values))
    assert k8s.scorer is not None and registry_params(k8s.scorer[0]) == {"python": "python3"}


def test_reference_model_cli_prints_its_port_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "preflight_benchmark.entrypoints.reference_model_cli", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as response:
            assert b"reference" in response.read()
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_reference_model_refuses_a_non_loopback_address() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ReferenceModelServer(host="0.0.0.0")


def test_reference_model_refuses_a_wrong_key() -> None:
    import urllib.error
    import urllib.request

    server = ReferenceModelServer(api_key="right").start()
    try:
        request = urllib.request.Request(  # noqa: S310 - an http URL on loopback
            f"{server.base_url}/chat/completions", data=b"{}", headers={"Authorization": "Bearer wrong"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310
        assert refused.value.code == 401
    finally:
        server.stop()


@pytest.fixture(autouse=True, scope="module")
def _offline_inspect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    folder = tmp_path_factory.mktemp("inspect-data")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_DATA_HOME", str(folder / "data"))
    mp.setenv("XDG_CACHE_HOME", str(folder / "cache"))
    yield
    mp.undo()


def test_a_host_that_cannot_build_the_sandbox_fails_the_task_at_its_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(RuntimeError, match="cannot start on this host: bwrap: No permissions"):
        asyncio.run(BubblewrapSandboxEnvironment.task_init("exploit", None))
