"""LocalExecutor with real worker processes: warm reuse, replacement of workers that die or hang, timeout,
memory limit, exit statuses, cancellation, concurrency and resource budgets.

The workers are real processes running the warm-worker loop (`preflight_benchmark.worker.serve`) with a
stand-in attempt that does what its assignment says instead of running Inspect."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from preflight_benchmark.adapters.executors.local import LocalExecutor
from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import AttemptEnd
from preflight_benchmark.domain.ports import Attempt
from preflight_benchmark.testing import until

FAKE_WORKER = """
import json, os, sys, time, pathlib
from preflight_benchmark.worker.serve import serve

def attempt():
    spec = json.loads(pathlib.Path(os.environ["PREFLIGHT_WORKER_ASSIGNMENT_FILE"]).read_text())
    action = spec["action"]
    if action == "status":
        return spec["status"]
    if action == "exit":
        sys.exit(spec["status"])
    if action == "sleep":
        time.sleep(60)
    if action == "allocate":
        blob = bytearray(spec["bytes"])
    if action == "env":
        pathlib.Path(spec["out"]).write_text(json.dumps(dict(os.environ)))
    if action == "stdin":
        pathlib.Path(spec["out"]).write_text(sys.stdin.read())
    if action == "pid":
        with open(spec["out"], "a") as out:
            out.write(f"{os.getpid()}\\n")
        if spec.get("hold"):
            time.sleep(60)
    if action == "overlap":
        folder = pathlib.Path(spec["folder"])
        tag = f"{os.getpid()}-{time.monotonic_ns()}"  # a warm worker runs several attempts
        me = folder / f"running-{tag}"
        me.touch()
        peers = len(list(folder.glob("running-*")))
        (folder / f"seen-{tag}").write_text(str(peers))
        deadline = time.monotonic() + 5
        while len(list(folder.glob("seen-*"))) < spec["expect"] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        me.unlink()
    return 0

sys.exit(serve(attempt))
"""


def local_executor(tmp_path: Path, **options: Any) -> LocalExecutor:
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    settings: dict[str, Any] = {"max_concurrency": 2, "kill_grace": 1.0, **options}
    return LocalExecutor(
        work_root=tmp_path / "work",
        worker_command=[sys.executable, str(script)],
        worker_env={"PATH": "/usr/bin:/bin", "PREFLIGHT_SERVICE_TOKEN_FILE": str(tmp_path / "service.token")},
        **settings,
    )


@pytest.fixture
async def executor(tmp_path: Path) -> AsyncIterator[LocalExecutor]:
    executor = local_executor(tmp_path)
    yield executor
    await executor.close()


def pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


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
    ok, config, crash, failed = await asyncio.gather(
        executor.run(attempt({"action": "status", "status": 0}, job="bj-ok")),
        executor.run(attempt({"action": "status", "status": 78}, job="bj-config")),
        executor.run(attempt({"action": "exit", "status": 3}, job="bj-crash")),
        executor.run(attempt({"action": "status", "status": 4}, job="bj-failed")),
    )
    assert ok.end == AttemptEnd.EXITED
    assert config.end == AttemptEnd.CONFIG_ERROR
    assert (crash.end, crash.detail) == (AttemptEnd.CRASHED, "worker exited with status 3")
    assert (failed.end, failed.detail) == (AttemptEnd.CRASHED, "worker exited with status 4")


async def test_a_warm_worker_runs_attempts_one_after_another(tmp_path: Path) -> None:
    executor = local_executor(tmp_path, max_concurrency=1)
    out = tmp_path / "pids"
    try:
        first = await executor.run(attempt({"action": "pid", "out": str(out)}, job="bj-1"))
        second = await executor.run(attempt({"action": "pid", "out": str(out)}, job="bj-2"))
        assert (first.end, second.end) == (AttemptEnd.EXITED, AttemptEnd.EXITED)
        one, two = pids(out)
        assert one == two, "the second attempt ran in a new process"
        assert executor.worker_pids() == [one]
        # Each attempt still has its own folder and log.
        assert executor.folder("bj-2", 1) / "worker.log" in set(executor.folder("bj-2", 1).iterdir())
    finally:
        await executor.close()
    assert not alive(one)


async def test_an_attempt_cannot_read_the_orders_of_its_worker(tmp_path: Path) -> None:
    executor = local_executor(tmp_path, max_concurrency=1)
    out, peek = tmp_path / "pids", tmp_path / "stdin"
    try:
        reading = await executor.run(attempt({"action": "stdin", "out": str(peek)}, timeout=15))
        assert reading.end == AttemptEnd.EXITED
        assert peek.read_text() == ""  # its standard input is /dev/null, not the order pipe
        after = await executor.run(attempt({"action": "pid", "out": str(out)}, job="bj-2"))
        assert after.end == AttemptEnd.EXITED
    finally:
        await executor.close()


async def test_a_worker_that_dies_mid_attempt_is_replaced(tmp_path: Path) -> None:
    executor = local_executor(tmp_path, max_concurrency=1)
    out = tmp_path / "pids"
    try:
        running = asyncio.create_task(executor.run(attempt({"action": "pid", "out": str(out), "hold": True})))
        await until(lambda: len(pids(out)) == 1)
        (victim,) = pids(out)
        os.kill(victim, signal.SIGKILL)
        outcome = await running
        assert (outcome.end, outcome.detail) == (AttemptEnd.CRASHED, "worker killed by SIGKILL")
        again = await executor.run(attempt({"action": "pid", "out": str(out)}, job="bj-2"))
        assert again.end == AttemptEnd.EXITED
        _, replacement = pids(out)
        assert replacement != victim and alive(replacement)
    finally:
        await executor.close()


async def test_a_hung_worker_is_killed_at_its_deadline_and_its_slot_freed(tmp_path: Path) -> None:
    executor = local_executor(tmp_path, max_concurrency=1)
    out = tmp_path / "pids"
    try:
        # A first attempt warms the worker, so the deadline below is the hung attempt's alone.
        await executor.run(attempt({"action": "pid", "out": str(out)}, job="bj-0"))
        hung = asyncio.create_task(
            executor.run(attempt({"action": "pid", "out": str(out), "hold": True}, timeout=2))
        )
        waiting = asyncio.create_task(executor.run(attempt({"action": "pid", "out": str(out)}, job="bj-2")))
        outcome = await hung
        assert outcome.end == AttemptEnd.TIMED_OUT
        assert (await waiting).end == AttemptEnd.EXITED
        warm_pid, hung_pid, next_pid = pids(out)
        assert hung_pid == warm_pid
        assert not alive(hung_pid)
        assert next_pid != hung_pid
    finally:
        await executor.close()


async def test_declared_cpus_and_memory_bound_what_runs_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "overlap"
    folder.mkdir()
    executor = local_executor(tmp_path, max_concurrency=4, cpus=2, memory="8Gi")
    spec = {"action": "overlap", "folder": str(folder), "expect": 2}
    try:
        outcomes = await asyncio.gather(
            *(
                executor.run(
                    Attempt(
                        job_id=f"bj-{i}",
                        submission_id="sub-1",
                        suite_id="cyber.test",
                        attempt=1,
                        access_kind="endpoint",
                        resources=Resources(cpu="1", memory="1Gi"),
                        timeout=timedelta(seconds=60),
                        assignment=json.dumps(spec),
                    )
                )
                for i in range(4)
            )
        )
    finally:
        await executor.close()
    assert {o.end for o in outcomes} == {AttemptEnd.EXITED}
    seen = [int(p.read_text()) for p in folder.glob("seen-*")]
    # Four slots, but two CPUs: two 1-CPU attempts at once.
    assert len(seen) == 4 and max(seen) == 2, f"workers saw {seen} peers running"


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
        "PREFLIGHT_SERVICE_TOKEN_FILE",
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
