"""LocalExecutor: runs each attempt's worker as a subprocess of the dispatcher (the embedded default).

Each attempt gets its own folder (``<work_root>/<job id>/attempt-<n>/``) holding
the assignment file, the worker's log and Inspect's data and cache folders.
Limits: a wall-clock timeout (the suite's), an address-space limit (the suite's
memory, or the configured override), and at most `max_concurrency` workers at
once. Workers die with the dispatcher (parent-death signal), so a restarted
dispatcher starts the attempt afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import resource
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from preflight_benchmark.adapters.quantity import to_bytes
from preflight_benchmark.domain.jobs import CONFIG_ERROR_EXIT, AttemptEnd, AttemptOutcome
from preflight_benchmark.domain.ports import Attempt

log = logging.getLogger(__name__)

ASSIGNMENT_FILE_ENV = "PREFLIGHT_WORKER_ASSIGNMENT_FILE"
PR_SET_PDEATHSIG = 1


def _child_setup(memory_bytes: int) -> None:
    """Runs in the child between fork and exec: memory limit, die with the parent, no core files."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _describe(returncode: int) -> str:
    if returncode < 0:
        return f"worker killed by {signal.Signals(-returncode).name}"
    return f"worker exited with status {returncode}"


class LocalExecutor:
    """Subprocess workers with a timeout, a memory limit and bounded concurrency."""

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
    ) -> None:
        self._work_root = work_root
        self._command = list(worker_command)
        self._env = dict(worker_env)
        self._slots = asyncio.Semaphore(max_concurrency)
        self._memory_limit = memory_limit
        self._kill_grace = kill_grace
        self._processes: dict[tuple[str, int], asyncio.subprocess.Process] = {}
        self._cancelled: set[tuple[str, int]] = set()

    def folder(self, job_id: str, attempt: int) -> Path:
        """Where the attempt's assignment, log and Inspect data are."""
        return self._work_root / job_id / f"attempt-{attempt}"

    def pids(self) -> dict[tuple[str, int], int]:
        """(job id, attempt) → pid of the running workers."""
        return {key: process.pid for key, process in self._processes.items() if process.returncode is None}

    async def run(self, attempt: Attempt) -> AttemptOutcome:
        key = (attempt.job_id, attempt.attempt)
        async with self._slots:
            if key in self._cancelled:
                return AttemptOutcome(AttemptEnd.CANCELLED, "cancelled before start")
            folder = self.folder(*key)
            folder.mkdir(parents=True, exist_ok=True)
            assignment = folder / "assignment.json"
            assignment.write_text(attempt.assignment, encoding="utf-8")
            memory = to_bytes(self._memory_limit or attempt.resources.memory)
            env = {
                **self._env,
                ASSIGNMENT_FILE_ENV: str(assignment),
                "XDG_DATA_HOME": str(folder / "data"),
                "XDG_CACHE_HOME": str(folder / "cache"),
            }
            with (folder / "worker.log").open("ab") as output:
                process = await asyncio.create_subprocess_exec(
                    *self._command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    cwd=folder,
                    env=env,
                    preexec_fn=lambda: _child_setup(memory),
                    start_new_session=True,
                )
            self._processes[key] = process
            try:
                returncode = await asyncio.wait_for(process.wait(), attempt.timeout.total_seconds())
            except TimeoutError:
                await self._stop(process)
                return AttemptOutcome(AttemptEnd.TIMED_OUT, f"suite timeout of {attempt.timeout} passed")
            except asyncio.CancelledError:
                await self._stop(process)
                raise
            finally:
                self._processes.pop(key, None)
        if key in self._cancelled:
            self._cancelled.discard(key)
            return AttemptOutcome(AttemptEnd.CANCELLED, "cancelled")
        if returncode == 0:
            return AttemptOutcome(AttemptEnd.EXITED, "exit status 0")
        if returncode == CONFIG_ERROR_EXIT:
            return AttemptOutcome(AttemptEnd.CONFIG_ERROR, "worker reported a configuration error")
        return AttemptOutcome(AttemptEnd.CRASHED, _describe(returncode))

    async def cancel(self, job_id: str, attempt: int) -> None:
        key = (job_id, attempt)
        self._cancelled.add(key)
        process = self._processes.get(key)
        if process is not None:
            await self._stop(process)

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        """SIGTERM the worker's process group, SIGKILL after the grace period."""
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), self._kill_grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
