"""LocalExecutor: runs attempts on a pool of warm worker processes of the dispatcher (the embedded default).

A worker (`preflight_benchmark.worker.serve`) is a long-lived child that
imports Inspect and the suites once and then runs attempts one after another,
handed to it over a pipe; a worker is replaced after `max_jobs_per_worker`
attempts, and whenever it dies, hangs or is stopped. Each attempt gets its own
folder (``<work_root>/<job id>/attempt-<n>/``) holding the assignment file, the
worker's log of that attempt and Inspect's data and cache folders; each worker
logs what it prints between attempts to ``<work_root>/workers/worker-<n>.log``
and has its own data and cache folders beside it for what it does outside attempts.

Limits, enforced from this side: at most `max_concurrency` attempts at once, and
(when configured) only as many as the declared CPU and memory of the running
ones fit in `cpus` and `memory` (an attempt larger than the budget runs alone);
a wall-clock deadline (the suite's timeout), past which the worker's process
group is killed; an address-space limit (`RLIMIT_AS`, the suite's memory or the
configured override) set on the worker for the attempt; no core files. A worker
whose address space already exceeds an attempt's limit is replaced rather than
handed it. Workers die with the dispatcher (parent-death signal), so a restarted
dispatcher starts the attempt afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import logging
import os
import resource
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from preflight_benchmark.adapters.quantity import to_bytes, to_cpus
from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import CONFIG_ERROR_EXIT, AttemptEnd, AttemptOutcome
from preflight_benchmark.domain.ports import Attempt
from preflight_benchmark.worker.serve import STATUS, order

log = logging.getLogger(__name__)

ASSIGNMENT_FILE_ENV = "PREFLIGHT_WORKER_ASSIGNMENT_FILE"
PR_SET_PDEATHSIG = 1
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _child_setup(memory_bytes: int | None) -> None:
    """Runs in the child between fork and exec: die with the parent, no core files, and the
    configured ceiling of every attempt's address-space limit."""
    if memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _describe(returncode: int) -> str:
    if returncode < 0:
        return f"worker killed by {signal.Signals(-returncode).name}"
    return f"worker exited with status {returncode}"


def _ended(status: int) -> AttemptOutcome:
    if status == 0:
        return AttemptOutcome(AttemptEnd.EXITED, "exit status 0")
    if status == CONFIG_ERROR_EXIT:
        return AttemptOutcome(AttemptEnd.CONFIG_ERROR, "worker reported a configuration error")
    return AttemptOutcome(AttemptEnd.CRASHED, _describe(status))


def _address_space(pid: int) -> int:
    """Bytes of the process's address space (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[0]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


@dataclass
class _Worker:
    process: asyncio.subprocess.Process
    attempts: int = 0

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


class LocalExecutor:
    """A pool of warm workers with a deadline, a memory limit and bounded, resource-sized concurrency."""

    name = "local"

    def __init__(
        self,
        *,
        work_root: Path,
        worker_command: Sequence[str],
        worker_env: Mapping[str, str],
        max_concurrency: int = 2,
        memory_limit: str | None = None,
        kill_grace: float = 5.0,
        cpus: float | None = None,
        memory: str | None = None,
        max_jobs_per_worker: int = 50,
    ) -> None:
        self._work_root = work_root
        self._command = list(worker_command)
        self._env = dict(worker_env)
        self._max_concurrency = max_concurrency
        self._memory_limit = memory_limit
        self._kill_grace = kill_grace
        self._cpus = cpus
        self._memory = to_bytes(memory) if memory else None
        self._max_jobs = max_jobs_per_worker
        self._admission = asyncio.Condition()
        self._admitted: dict[tuple[str, int], Resources] = {}
        self._idle: list[_Worker] = []
        self._busy: dict[tuple[str, int], _Worker] = {}
        self._cancelled: set[tuple[str, int]] = set()
        self._spawned = itertools.count(1)
        self._spawning = asyncio.Lock()
        self._closed = False

    def folder(self, job_id: str, attempt: int) -> Path:
        """Where the attempt's assignment, log and Inspect data are."""
        return self._work_root / job_id / f"attempt-{attempt}"

    def pids(self) -> dict[tuple[str, int], int]:
        """(job id, attempt) → pid of the worker running it."""
        return {key: worker.process.pid for key, worker in self._busy.items() if worker.alive}

    def worker_pids(self) -> list[int]:
        """The pids of every live worker, idle or busy."""
        workers = [*self._idle, *self._busy.values()]
        return [worker.process.pid for worker in workers if worker.alive]

    async def start(self) -> None:
        """Start `max_concurrency` workers now, so the first attempts find them warm."""
        await self._top_up()

    async def close(self) -> None:
        """Stop every worker (attempts still running end without a result); none starts after."""
        self._closed = True
        workers = [*self._idle, *self._busy.values()]
        self._idle.clear()
        await asyncio.gather(*(self._stop(worker) for worker in workers))

    async def run(self, attempt: Attempt) -> AttemptOutcome:
        key = (attempt.job_id, attempt.attempt)
        async with self._admit(key, attempt.resources):
            if key in self._cancelled:
                return AttemptOutcome(AttemptEnd.CANCELLED, "cancelled before start")
            folder = self.folder(*key)
            folder.mkdir(parents=True, exist_ok=True)
            assignment = folder / "assignment.json"
            assignment.write_text(attempt.assignment, encoding="utf-8")
            memory = to_bytes(self._memory_limit or attempt.resources.memory)
            worker = await self._worker_for(memory)
            self._busy[key] = worker
            try:
                outcome = await asyncio.wait_for(
                    self._hand(worker, folder, assignment, memory), attempt.timeout.total_seconds()
                )
            except TimeoutError:
                await self._stop(worker)
                outcome = AttemptOutcome(AttemptEnd.TIMED_OUT, f"suite timeout of {attempt.timeout} passed")
            except asyncio.CancelledError:
                await self._stop(worker)
                raise
            finally:
                del self._busy[key]
            if key in self._cancelled:
                self._cancelled.discard(key)
                await self._stop(worker)
                outcome = AttemptOutcome(AttemptEnd.CANCELLED, "cancelled")
            await self._release(worker)
            return outcome

    async def cancel(self, job_id: str, attempt: int) -> None:
        key = (job_id, attempt)
        self._cancelled.add(key)
        worker = self._busy.get(key)
        if worker is not None:
            await self._stop(worker)

    @contextlib.asynccontextmanager
    async def _admit(self, key: tuple[str, int], needs: Resources) -> AsyncIterator[None]:
        """Hold a slot, and the attempt's declared CPU and memory, for the block."""
        async with self._admission:
            await self._admission.wait_for(lambda: self._fits(needs))
            self._admitted[key] = needs
        try:
            yield
        finally:
            async with self._admission:
                del self._admitted[key]
                self._admission.notify_all()

    def _fits(self, needs: Resources) -> bool:
        running = list(self._admitted.values())
        if len(running) >= self._max_concurrency:
            return False
        if not running:
            return True  # an attempt larger than the whole budget still runs, alone
        if self._cpus is not None and sum(to_cpus(r.cpu) for r in running) + to_cpus(needs.cpu) > self._cpus:
            return False
        return self._memory is None or (
            sum(to_bytes(r.memory) for r in running) + to_bytes(needs.memory) <= self._memory
        )

    async def _worker_for(self, memory: int) -> _Worker:
        """An idle live worker whose address space fits `memory` (others are replaced), or a new one."""
        while self._idle:
            worker = self._idle.pop()
            if worker.alive and _address_space(worker.process.pid) < memory:
                return worker
            await self._stop(worker)
        return await self._spawn()

    async def _spawn(self) -> _Worker:
        logs = self._work_root / "workers"
        name = f"worker-{next(self._spawned)}"
        # Outside attempts (its imports), Inspect's data and cache folders are the worker's own.
        home = logs / name
        home.mkdir(parents=True, exist_ok=True)
        env = {**self._env, "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache")}
        ceiling = to_bytes(self._memory_limit) if self._memory_limit else None
        with (logs / f"{name}.log").open("ab") as output:
            process = await asyncio.create_subprocess_exec(
                *self._command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=output,
                cwd=home,
                env=env,
                preexec_fn=lambda: _child_setup(ceiling),
                start_new_session=True,
            )
        return _Worker(process)

    async def _hand(self, worker: _Worker, folder: Path, assignment: Path, memory: int) -> AttemptOutcome:
        """Give the attempt to the worker and wait for its answer, or for its end."""
        process = worker.process
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(ProcessLookupError):
            _, ceiling = resource.prlimit(process.pid, resource.RLIMIT_AS)
            limit = memory if ceiling == resource.RLIM_INFINITY else min(memory, ceiling)
            resource.prlimit(process.pid, resource.RLIMIT_AS, (limit, ceiling))
        env = {
            ASSIGNMENT_FILE_ENV: str(assignment),
            "XDG_DATA_HOME": str(folder / "data"),
            "XDG_CACHE_HOME": str(folder / "cache"),
        }
        worker.attempts += 1
        with contextlib.suppress(ConnectionError):
            process.stdin.write(order(folder, env))
            await process.stdin.drain()
        while line := await process.stdout.readline():
            answer = json.loads(line)
            if STATUS in answer:
                return _ended(int(answer[STATUS]))
        return _ended(await process.wait())

    async def _release(self, worker: _Worker) -> None:
        """Back to the idle workers; replaced when it died, was stopped or ran its share of attempts."""
        if worker.alive and worker.attempts < self._max_jobs and not self._closed:
            self._idle.append(worker)
        else:
            await self._stop(worker)
        await self._top_up()

    async def _top_up(self) -> None:
        """Start workers until the pool has `max_concurrency` live ones, idle or busy."""
        async with self._spawning:
            self._idle = [worker for worker in self._idle if worker.alive]
            while not self._closed and len(self._idle) + len(self._busy) < self._max_concurrency:
                self._idle.append(await self._spawn())

    async def _stop(self, worker: _Worker) -> None:
        """SIGTERM the worker's process group, SIGKILL after the grace period."""
        process = worker.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self._kill_grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if process.stdin is not None:
            process.stdin.close()
