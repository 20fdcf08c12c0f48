"""LocalExecutor: runs attempts on a pool of warm worker processes of the dispatcher (the embedded default).

A worker (`preflight_benchmark.worker.serve`) is a long-lived child that
imports Inspect and the suites once and then, for each attempt handed to it over
a pipe, forks a fresh child that runs the attempt and exits, so that no attempt
(no lab's credential, model responses, environment, module state or open files)
is in the process the next one starts from. A worker is replaced after
`max_jobs_per_worker` attempts, and whenever it dies, hangs or is stopped. Each attempt gets its own
folder (``<work_root>/<job id>/attempt-<n>/``) holding the assignment file, the
worker's log of that attempt and Inspect's data and cache folders; each worker
logs what it prints between attempts to ``<work_root>/workers/worker-<n>.log``
and has its own data and cache folders beside it for what it does outside attempts.

Limits, enforced from this side: at most `max_concurrency` attempts at once, and
(when configured) only as many as the declared CPU and memory of the running
ones fit in `cpus` and `memory` (an attempt larger than the budget runs alone);
a wall-clock deadline (the suite's timeout), past which the attempt's process
group (its child's session) is killed — SIGTERM, then SIGKILL after the grace
period — while the warm worker stays for the next attempt; an address-space limit
(`RLIMIT_AS`, the suite's memory or the configured override, which is also the
worker's own ceiling) on the attempt's child alone, so each attempt has its own
whatever the previous one declared; no core files. Workers die with the
dispatcher and attempts with their worker (parent-death signals), so a restarted
dispatcher starts the attempt afresh.

Credentials: with `job_tokens`, each attempt gets a token of its own job (issued
when it starts, expiring shortly after its deadline: `JobTokens`) in
``<folder>/job.token`` (mode 0600, named by PREFLIGHT_SERVICE_TOKEN_FILE in the
attempt's environment, deleted once the attempt ended); the workers' own
environment holds no token at all.
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

from preflight_common.config import write_secret_file

from preflight_benchmark.adapters.quantity import to_bytes, to_cpus
from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import CONFIG_ERROR_EXIT, AttemptEnd, AttemptOutcome
from preflight_benchmark.domain.ports import Attempt, JobTokenError, JobTokens
from preflight_benchmark.worker.serve import STARTED, STATUS, order

log = logging.getLogger(__name__)

ASSIGNMENT_FILE_ENV = "PREFLIGHT_WORKER_ASSIGNMENT_FILE"
TOKEN_FILE_ENV = "PREFLIGHT_SERVICE_TOKEN_FILE"  # noqa: S105 - a variable's name, not a secret
PR_SET_PDEATHSIG = 1


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


@dataclass
class _Worker:
    process: asyncio.subprocess.Process
    attempts: int = 0
    child: int | None = None  # the pid (and process group) of the attempt it runs, once forked
    handed: asyncio.Future[AttemptOutcome] | None = None  # the attempt it runs: its outcome

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
        job_tokens: JobTokens | None = None,
    ) -> None:
        self._work_root = work_root
        self._job_tokens = job_tokens
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
        """(job id, attempt) → pid of the child running it (once its worker has forked it)."""
        return {key: worker.child for key, worker in self._busy.items() if worker.child is not None}

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
            worker = await self._worker()
            self._busy[key] = worker
            handed = worker.handed = asyncio.ensure_future(self._hand(worker, attempt, folder, memory))
            try:
                done, _ = await asyncio.wait({handed}, timeout=attempt.timeout.total_seconds())
                if done:
                    outcome = handed.result()
                else:
                    await self._end_attempt(worker, handed)
                    outcome = AttemptOutcome(
                        AttemptEnd.TIMED_OUT, f"suite timeout of {attempt.timeout} passed"
                    )
            except asyncio.CancelledError:
                handed.cancel()
                await self._stop(worker)
                raise
            finally:
                del self._busy[key]
            if key in self._cancelled:
                self._cancelled.discard(key)
                outcome = AttemptOutcome(AttemptEnd.CANCELLED, "cancelled")
            await self._release(worker)
            return outcome

    async def cancel(self, job_id: str, attempt: int) -> None:
        key = (job_id, attempt)
        self._cancelled.add(key)
        worker = self._busy.get(key)
        if worker is not None and worker.handed is not None:
            await self._end_attempt(worker, worker.handed)

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

    async def _worker(self) -> _Worker:
        """An idle live worker, or a new one."""
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
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

    async def _hand(self, worker: _Worker, attempt: Attempt, folder: Path, memory: int) -> AttemptOutcome:
        """Give the attempt to the worker (with its job token) and wait for its child's exit status, or
        for the worker's end; the token file is gone once this returns or is cancelled."""
        env = {
            ASSIGNMENT_FILE_ENV: str(folder / "assignment.json"),
            "XDG_DATA_HOME": str(folder / "data"),
            "XDG_CACHE_HOME": str(folder / "cache"),
        }
        token = folder / "job.token"
        try:
            if self._job_tokens is not None:
                try:
                    secret = await self._job_tokens.issue(attempt)
                except JobTokenError as exc:
                    return AttemptOutcome(AttemptEnd.INFRASTRUCTURE, str(exc))
                env[TOKEN_FILE_ENV] = str(write_secret_file(token, secret))
            return await self._run_in(worker, folder, env, memory)
        finally:
            token.unlink(missing_ok=True)

    async def _run_in(
        self, worker: _Worker, folder: Path, env: dict[str, str], memory: int
    ) -> AttemptOutcome:
        """Hand the order to the worker and wait for its child's exit status, or for the worker's end."""
        process = worker.process
        assert process.stdin is not None and process.stdout is not None
        worker.attempts += 1
        with contextlib.suppress(ConnectionError):
            process.stdin.write(order(folder, env, memory))
            await process.stdin.drain()
        while line := await process.stdout.readline():
            answer = json.loads(line)
            if STARTED in answer:
                worker.child = int(answer[STARTED])
            elif STATUS in answer:
                worker.child = None  # the worker reaped it and killed what it left running
                return _ended(int(answer[STATUS]))
        # The worker died: its child with it (parent-death signal), and here what the child started.
        self._signal_attempt(worker, signal.SIGKILL)
        worker.child = None
        return _ended(await process.wait())

    def _signal_attempt(self, worker: _Worker, sig: signal.Signals) -> None:
        """Send `sig` to the process group of the attempt the worker runs, if it has forked it."""
        if worker.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.child, sig)

    async def _end_attempt(self, worker: _Worker, handed: asyncio.Future[AttemptOutcome]) -> None:
        """End the attempt the worker runs: SIGTERM its process group, SIGKILL after the grace period,
        and stop the worker itself when the attempt has still not ended after another."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            self._signal_attempt(worker, sig)
            done, _ = await asyncio.wait({handed}, timeout=self._kill_grace)
            if done:
                return
        await self._stop(worker)
        await asyncio.wait({handed})

    async def _release(self, worker: _Worker) -> None:
        """Back to the idle workers; replaced when it died, was stopped or ran its share of attempts."""
        worker.handed = None
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
        """SIGKILL the process group of its attempt, SIGTERM the worker's, SIGKILL after the grace period."""
        self._signal_attempt(worker, signal.SIGKILL)
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
