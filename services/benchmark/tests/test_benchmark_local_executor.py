"""LocalExecutor with real subprocesses: timeout, memory limit, exit statuses, cancellation, concurrency."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from preflight_benchmark.adapters.executors.local import LocalExecutor
from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import AttemptEnd
from preflight_benchmark.domain.ports import Attempt
from preflight_benchmark.testing import until

FAKE_WORKER = """
import json, os, sys, time, pathlib
spec = json.loads(pathlib.Path(os.environ["PREFLIGHT_WORKER_ASSIGNMENT_FILE"]).read_text())
action = spec["action"]
if action == "exit":
    sys.exit(spec["status"])
if action == "sleep":
    time.sleep(60)
if action == "allocate":
    blob = bytearray(spec["bytes"])
    sys.exit(0)
if action == "env":
    pathlib.Path(spec["out"]).write_text(json.dumps(dict(os.environ)))
if action == "overlap":
    folder = pathlib.Path(spec["folder"])
    me = folder / f"running-{os.getpid()}"
    me.touch()
    peers = len(list(folder.glob("running-*")))
    (folder / f"seen-{os.getpid()}").write_text(str(peers))
    deadline = time.monotonic() + 5
    while len(list(folder.glob("seen-*"))) < spec["expect"] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    me.unlink()
"""


@pytest.fixture
def executor(tmp_path: Path) -> LocalExecutor:
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    return LocalExecutor(
        work_root=tmp_path / "work",
        worker_command=[sys.executable, str(script)],
        worker_env={"PATH": "/usr/bin:/bin", "PREFLIGHT_SERVICE_TOKEN": "service-token"},
        max_concurrency=2,
        kill_grace=1.0,
    )


def attempt(
    spec: dict[str, object], *, job: str = "bj-1", timeout: float = 30, memory: str = "1Gi"
) -> Attempt:
    return Attempt(
        job_id=job,
        submission_id="sub-1",
        suite_id="cyber.test",
        attempt=1,
        access_kind="endpoint",
        resources=Resources(memory=memory),
        timeout=timedelta(seconds=timeout),
        assignment=json.dumps(spec),
    )


async def test_exit_statuses_map_to_attempt_ends(executor: LocalExecutor) -> None:
    ok, config, crash = await asyncio.gather(
        executor.run(attempt({"action": "exit", "status": 0}, job="bj-ok")),
        executor.run(attempt({"action": "exit", "status": 78}, job="bj-config")),
        executor.run(attempt({"action": "exit", "status": 3}, job="bj-crash")),
    )
    assert ok.end == AttemptEnd.EXITED
    assert config.end == AttemptEnd.CONFIG_ERROR
    assert (crash.end, crash.detail) == (AttemptEnd.CRASHED, "worker exited with status 3")


async def test_a_worker_past_its_timeout_is_killed(executor: LocalExecutor) -> None:
    outcome = await executor.run(attempt({"action": "sleep"}, timeout=0.5))
    assert outcome.end == AttemptEnd.TIMED_OUT
    assert executor.pids() == {}


async def test_a_worker_over_its_memory_limit_crashes(executor: LocalExecutor) -> None:
    outcome = await executor.run(attempt({"action": "allocate", "bytes": 512 * 2**20}, memory="200Mi"))
    assert outcome.end == AttemptEnd.CRASHED
    log = (executor.folder("bj-1", 1) / "worker.log").read_text()
    assert "MemoryError" in log
    fine = await executor.run(attempt({"action": "allocate", "bytes": 512 * 2**20}, job="bj-2", memory="1Gi"))
    assert fine.end == AttemptEnd.EXITED


async def test_cancel_stops_a_running_worker(executor: LocalExecutor) -> None:
    running = asyncio.create_task(executor.run(attempt({"action": "sleep"})))
    await until(lambda: bool(executor.pids()))
    await executor.cancel("bj-1", 1)
    assert (await running).end == AttemptEnd.CANCELLED


async def test_workers_get_only_the_configured_environment(executor: LocalExecutor, tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    await executor.run(attempt({"action": "env", "out": str(out)}))
    env = json.loads(out.read_text())
    assert set(env) <= {
        "PATH",
        "PREFLIGHT_SERVICE_TOKEN",
        "PREFLIGHT_WORKER_ASSIGNMENT_FILE",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
        "LC_CTYPE",
    }
    assert env["XDG_DATA_HOME"].startswith(str(executor.folder("bj-1", 1)))


async def test_at_most_max_concurrency_workers_run_at_once(executor: LocalExecutor, tmp_path: Path) -> None:
    folder = tmp_path / "overlap"
    folder.mkdir()
    spec = {"action": "overlap", "folder": str(folder), "expect": 2}
    outcomes = await asyncio.gather(*(executor.run(attempt(spec, job=f"bj-{i}")) for i in range(4)))
    assert {o.end for o in outcomes} == {AttemptEnd.EXITED}
    seen = [int(p.read_text()) for p in folder.glob("seen-*")]
    assert len(seen) == 4
    assert max(seen) == 2, f"workers saw {seen} peers running"
