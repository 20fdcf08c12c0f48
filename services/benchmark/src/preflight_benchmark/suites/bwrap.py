"""The ``bwrap`` Inspect sandbox environment: each sample gets a bubblewrap sandbox on this host.

Every command a sample runs (``exec``) starts a fresh ``bwrap`` with:

- no network (its own, empty network namespace), no view of the host's processes (its own PID
  namespace: the worker is not in its ``/proc``), its own IPC, UTS and cgroup namespaces, an
  unprivileged user with no capabilities, and a new session (no terminal to inject into);
- a read-only root built from the system's ``/usr`` (and its ``/bin``, ``/lib`` links), the
  dynamic loader's cache and the Python interpreter's installation, and nothing else of the
  host: not the worker's files, its home, its work directory or its ``/tmp``;
- a private ``/tmp`` (tmpfs) and one writable directory, ``/sandbox``, the sample's own
  (a fresh host directory removed when the sample ends), which is the working directory;
- an empty environment (``--clearenv``; ``bwrap`` itself is started with none, so not even the
  sandbox's PID 1 carries the worker's) plus the variables the caller passes;
- CPU-time, address-space, file-size, open-file and core limits (``prlimit`` inside the
  sandbox) and a wall-clock timeout after which the whole sandbox is killed.

``read_file``/``write_file`` reach only the sample's directory: paths are taken relative to
``/sandbox`` and must stay inside it once symbolic links are resolved, so a link the sample
planted cannot make the scorer read or write a host file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Literal, overload

from inspect_ai.util import (
    ExecResult,
    OutputLimitExceededError,
    SandboxEnvironment,
    SandboxEnvironmentConfigType,
    SandboxEnvironmentLimits,
    sandboxenv,
)

WORKDIR = "/sandbox"
PATH = "/usr/local/bin:/usr/bin:/bin"
CPU_SECONDS = 10
MEMORY_BYTES = 512 * 1024 * 1024
FILE_BYTES = 16 * 1024 * 1024
OPEN_FILES = 64
WALL_SECONDS = 30
SIGNALLED = 128


def interpreter() -> str:
    """The Python interpreter inside the sandbox (the worker's base interpreter, not its venv)."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def bwrap_command(workdir: str, cmd: list[str], env: dict[str, str], cwd: str) -> list[str]:
    """The ``bwrap`` argv that runs `cmd` in a sandbox whose only writable host folder is `workdir`."""
    binary = shutil.which("bwrap")
    if binary is None:
        raise RuntimeError("the bwrap sandbox needs bubblewrap (bwrap) installed")
    argv = [binary, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534"]
    argv += ["--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for link in ("bin", "sbin", "lib", "lib64"):
        target = os.path.join("/", link)
        if os.path.islink(target):
            argv += ["--symlink", os.readlink(target), target]
        elif os.path.isdir(target):
            argv += ["--ro-bind", target, target]
    argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    prefix = os.path.realpath(sys.base_prefix)
    if not prefix.startswith("/usr/"):
        argv += ["--ro-bind", prefix, prefix]
    # The sandbox's own /tmp: an empty tmpfs, not the host's.
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", workdir, WORKDIR]  # noqa: S108
    argv += ["--remount-ro", "/", "--hostname", "sandbox", "--chdir", cwd]
    for name, value in {"PATH": PATH, "HOME": WORKDIR, "LANG": "C.UTF-8", **env}.items():
        argv += ["--setenv", name, value]
    limits = [f"--cpu={CPU_SECONDS}", f"--as={MEMORY_BYTES}", f"--fsize={FILE_BYTES}"]
    limits += [f"--nofile={OPEN_FILES}", "--core=0"]
    return [*argv, "--", "/usr/bin/prlimit", *limits, "--", *cmd]


@sandboxenv(name="bwrap")
class BubblewrapSandboxEnvironment(SandboxEnvironment):
    """A sample's bubblewrap sandbox: one writable folder, commands run as described above."""

    @classmethod
    async def task_init(cls, task_name: str, config: SandboxEnvironmentConfigType | None) -> None:
        """Fail the task at its start if this host cannot build the sandbox (no bwrap, or user
        namespaces not allowed, as in many containers): otherwise every command would fail and
        its samples would be scored as if the model had failed."""
        probe = cls()
        try:
            result = await probe.exec(["/usr/bin/true"])
        finally:
            shutil.rmtree(probe.directory, ignore_errors=True)
        if not result.success:
            raise RuntimeError(f"the bwrap sandbox cannot start on this host: {result.stderr.strip()[:500]}")

    @classmethod
    async def sample_init(
        cls, task_name: str, config: SandboxEnvironmentConfigType | None, metadata: dict[str, str]
    ) -> dict[str, SandboxEnvironment]:
        return {"default": cls()}

    @classmethod
    async def sample_cleanup(
        cls,
        task_name: str,
        config: SandboxEnvironmentConfigType | None,
        environments: dict[str, SandboxEnvironment],
        interrupted: bool,
    ) -> None:
        for environment in environments.values():
            shutil.rmtree(environment.as_type(cls).directory, ignore_errors=True)

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="preflight-bwrap-")

    async def exec(
        self,
        cmd: list[str],
        input: str | bytes | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        timeout: int | None = None,
        timeout_retry: bool = True,
        concurrency: bool = True,
    ) -> ExecResult[str]:
        """Run `cmd` in a fresh sandbox; raises TimeoutError (the sandbox killed) past `timeout`
        seconds or WALL_SECONDS, whichever is shorter. A command killed by signal N returns -N
        (as ``subprocess`` reports it). `user` is not supported (there is one user)."""
        if user is not None:
            raise PermissionError("the bwrap sandbox runs commands as its one unprivileged user")
        inner_cwd = str(Path(WORKDIR, cwd or "."))
        argv = bwrap_command(self.directory, cmd, env or {}, inner_cwd)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={},
            start_new_session=True,
        )
        data = input.encode() if isinstance(input, str) else input
        try:
            out, err = await asyncio.wait_for(
                process.communicate(data), min(timeout or WALL_SECONDS, WALL_SECONDS)
            )
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise
        limit = SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE
        returncode = process.returncode if process.returncode is not None else -signal.SIGKILL
        if returncode > SIGNALLED:
            # bwrap reports a command killed by signal N as 128 + N; say it as subprocess does.
            returncode = SIGNALLED - returncode
        return ExecResult(
            success=returncode == 0,
            returncode=returncode,
            stdout=out[-limit:].decode(errors="replace"),
            stderr=err[-limit:].decode(errors="replace"),
        )

    def _host_path(self, file: str) -> Path:
        relative = os.path.relpath(os.path.join(WORKDIR, file), WORKDIR)
        root = Path(self.directory).resolve()
        path = (root / relative).resolve()
        if relative.startswith("..") or not path.is_relative_to(root):
            raise PermissionError(f"{file}: outside the sandbox's folder {WORKDIR}")
        return path

    async def write_file(self, file: str, contents: str | bytes) -> None:
        path = self._host_path(file)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(contents, str):
            path.write_text(contents, encoding="utf-8")
        else:
            path.write_bytes(contents)

    @overload
    async def read_file(self, file: str, text: Literal[True] = True) -> str: ...

    @overload
    async def read_file(self, file: str, text: Literal[False]) -> bytes: ...

    async def read_file(self, file: str, text: bool = True) -> str | bytes:
        path = self._host_path(file)
        if path.stat().st_size > SandboxEnvironmentLimits.MAX_READ_FILE_SIZE:
            raise OutputLimitExceededError(
                limit_str=SandboxEnvironmentLimits.MAX_READ_FILE_SIZE_STR, truncated_output=None
            )
        data = path.read_bytes()
        return data.decode("utf-8") if text else data
