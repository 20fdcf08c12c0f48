"""The exploit suite's sandbox: a target program in a separate interpreter, with no network,
no subprocesses, no file writes, a CPU-time, memory and output limit, and a wall-clock timeout."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from preflight_benchmark.suites.sandbox_runner import CRASHED

CPU_SECONDS = 5
MEMORY_BYTES = 512 * 1024 * 1024
OUTPUT_BYTES = 64 * 1024
WALL_SECONDS = 10.0
CRASH_SIGNALS = frozenset({-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS, -signal.SIGFPE, -signal.SIGILL})


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


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


async def run_target(filename: str, source: str, stdin: str, flag: str) -> SandboxRun:
    """Run the target `source` (named `filename`) on `stdin`; the flag is in its environment."""
    runner = resources.files("preflight_benchmark.suites").joinpath("sandbox_runner.py")
    with tempfile.TemporaryDirectory(prefix="preflight-sandbox-") as folder:
        target = Path(folder) / filename
        target.write_text(source, encoding="utf-8")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            "-B",
            str(runner),
            str(target),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=folder,
            env={"PREFLIGHT_FLAG": flag, "LANG": "C.UTF-8"},
            preexec_fn=_limits,
            start_new_session=True,
        )
        timed_out = False
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin.encode()), WALL_SECONDS)
        except TimeoutError:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            out, err = await process.communicate()
        returncode = process.returncode if process.returncode is not None else -signal.SIGKILL
        return SandboxRun(
            returncode,
            out[:OUTPUT_BYTES].decode(errors="replace"),
            err[:OUTPUT_BYTES].decode(errors="replace"),
            timed_out,
        )
