"""LocalExecutor with real worker processes: warm reuse, a fresh child per attempt, replacement of workers
that die or hang, timeout, memory limit, exit statuses, cancellation, concurrency and resource budgets.

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
from preflight_testkit.waiting import until

FAKE_WORKER = """
import ctypes, json, os, resource, sys, time, pathlib
from preflight_benchmark.worker.serve import serve

LEFT = []  # what earlier attempts of this process left behind

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
    if action == "leave":
        os.environ["LEFT_BY_LAB_A"] = "lab-a"
        os.putenv("PUT_BY_LAB_A", "lab-a")  # the C environment, which os.environ does not track
        LEFT.append("lab-a")
        kept = open(spec["file"], "rb")
        LEFT.append(kept)
    if action == "look":
        fds = {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd") if fd.isdigit()
               if os.path.exists(f"/proc/self/fd/{fd}")}
        libc = ctypes.CDLL(None)
        libc.getenv.restype = ctypes.c_char_p
        seen = {
            "environ": os.environ.get("LEFT_BY_LAB_A"),
            "c_environ": (libc.getenv(b"PUT_BY_LAB_A") or b"").decode() or None,
            "global": [item for item in LEFT if isinstance(item, str)],
            "file_open": spec["file"] in fds,
        }
        pathlib.Path(spec["out"]).write_text(json.dumps(seen))
    if action == "limit":
        parent = pathlib.Path(f"/proc/{os.getppid()}/limits").read_text()
        parent_as = next(l.split()[4] for l in parent.splitlines() if l.startswith("Max address space"))
        own = resource.getrlimit(resource.RLIMIT_AS)
        with open(spec["out"], "a") as out:
            out.write(json.dumps({"own": own, "parent": parent_as}) + "\\n")
    if action == "pid":
        with open(spec["out"], "a") as out:
            out.write(f"{os.getpid()} {os.getppid()}\\n")
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
    """The pids the attempts that wrote to `path` ran as, in order."""
    return [pid for pid, _ in parents(path)]


def parents(path: Path) -> list[tuple[int, int]]:
    """(pid, parent pid) of each attempt that wrote to `path`, in order."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [(int(pid), int(parent)) for pid, parent in (line.split() for line in lines)]


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


async def test_each_attempt_runs_in_a_fresh_child_of_the_same_warm_worker(tmp_path: Path) -> None:
    executor = local_executor(tmp_path, max_concurrency=1)
    out = tmp_path / "pids"
    try:
        first = await executor.run(attempt({"action": "pid", "out": str(out)}, job="bj-1"))
        second = await executor.run(attempt({"action": "pid", "out": str(out)}, job="bj-2"))
        assert (first.end, second.end) == (AttemptEnd.EXITED, AttemptEnd.EXITED)
        (one, warm), (two, warm_again) = parents(out)
        assert one != two, "both attempts ran in the same process"
        assert warm == warm_again, "the warm worker was replaced between attempts"
        assert executor.worker_pids() == [warm]
        assert not alive(one)  # the first attempt's child ended with it
        # Each attempt still has its own folder and log.
        assert executor.folder("bj-2", 1) / "worker.log" in set(executor.folder("bj-2", 1).iterdir())
    finally:
        await executor.close()
    assert not alive(warm)


async def test_what_an_attempt_leaves_in_its_process_is_not_visible_to_the_next(tmp_path: Path) -> None:
    executor = local_executor(tmp_path, max_concurrency=1)
    kept, out = tmp_path / "lab-a-responses", tmp_path / "seen.json"
    kept.write_text("lab-a's model responses")
    try:
        left = await executor.run(attempt({"action": "leave", "file": str(kept)}, job="bj-lab-a"))
        looked = await executor.run(
            attempt({"action": "look", "file": str(kept), "out": str(out)}, job="bj-lab-b")
        )
        assert (left.end, looked.end) == (AttemptEnd.EXITED, AttemptEnd.EXITED)
    finally:
        await executor.close()
    # An environment variable (also one set in the C environment only), a module-level global and an
    # open file of the first attempt.
    assert json.loads(out.read_text()) == {
        "environ": None,
        "c_environ": None,
        "global": [],
        "file_open": False,
    }


async def test_each_attempt_has_its_own_memory_limit_and_the_warm_worker_none(tmp_path: Path) -> None:
    executor = local_executor(tmp_path, max_concurrency=1)
    out = tmp_path / "limits"
    try:
        for job, memory in (("bj-small", "200Mi"), ("bj-large", "1Gi")):
            ran = await executor.run(attempt({"action": "limit", "out": str(out)}, job=job, memory=memory))
            assert ran.end == AttemptEnd.EXITED
        fine = await executor.run(
            attempt({"action": "allocate", "bytes": 512 * 2**20}, job="bj-big", memory="1Gi")
        )
        assert fine.end == AttemptEnd.EXITED
    finally:
        await executor.close()
    small, large = (json.loads(line) for line in out.read_text().splitlines())
    assert small == {"own": [200 * 2**20, 200 * 2**20], "parent": "unlimited"}
    assert large == {"own": [2**30, 2**30], "parent": "unlimited"}


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


async def test_a_killed_attempt_crashes_and_a_warm_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    executor = local_executor(tmp_path, max_concurrency=1)
    out = tmp_path / "pids"
    hold = {"action": "pid", "out": str(out), "hold": True}
    try:
        # The attempt's child killed: the attempt crashes, its warm worker runs the next one.
        running = asyncio.create_task(executor.run(attempt(hold, job="bj-1")))
        await until(lambda: len(parents(out)) == 1)
        [(victim, warm)] = parents(out)
        assert executor.worker_pids() == [warm]
        os.kill(victim, signal.SIGKILL)
        outcome = await running
        assert (outcome.end, outcome.detail) == (AttemptEnd.CRASHED, "worker killed by SIGKILL")
        # The warm worker killed: its attempt crashes and ends with it, a new worker runs the next one.
        running = asyncio.create_task(executor.run(attempt(hold, job="bj-2")))
        await until(lambda: len(parents(out)) == 2)
        orphan, parent = parents(out)[1]
        assert parent == warm
        os.kill(warm, signal.SIGKILL)
        outcome = await running
        assert (outcome.end, outcome.detail) == (AttemptEnd.CRASHED, "worker killed by SIGKILL")
        await until(lambda: not alive(orphan))
        again = await executor.run(attempt({"action": "pid", "out": str(out)}, job="bj-3"))
        assert again.end == AttemptEnd.EXITED
        _, replacement = parents(out)[2]
        assert replacement != warm and alive(replacement)
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
        (first_pid, warm), (hung_pid, hung_parent), (next_pid, next_parent) = parents(out)
        assert not alive(hung_pid)
        assert len({first_pid, hung_pid, next_pid}) == 3
        # The attempt was killed, not its warm worker, which runs the next one.
        assert hung_parent == next_parent == warm and alive(warm)
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
