"""Runs one exploit target inside the sandbox's interpreter: ``python -I -S -B sandbox_runner.py TARGET``.

An audit hook (which cannot be removed once installed) refuses network,
subprocesses, native code loading and writes to files. Exit status 70 means
the target crashed (an uncaught exception), 71 that it tried something the
sandbox forbids; other statuses are the target's own.
"""

import os
import runpy
import sys
from typing import Any

CRASHED = 70
VIOLATION = 71
FORBIDDEN = (
    "socket.",
    "subprocess.",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.kill",
    "ctypes.",
    "os.remove",
    "os.rename",
    "os.rmdir",
    "shutil.",
)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class SandboxViolation(PermissionError):
    """The target attempted an operation the sandbox forbids."""


def _guard(event: str, args: tuple[Any, ...]) -> None:
    if event.startswith(FORBIDDEN):
        raise SandboxViolation(event)
    if event == "open" and len(args) >= 3:
        mode, flags = args[1], args[2]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS
        ):
            raise SandboxViolation(f"open for writing: {args[0]!r}")


def main() -> None:
    target = sys.argv[1]
    sys.argv = [target]
    sys.addaudithook(_guard)
    try:
        runpy.run_path(target, run_name="__main__")
    except SystemExit:
        raise
    except SandboxViolation as exc:
        print(f"SANDBOX: {exc}", file=sys.stderr)
        sys.exit(VIOLATION)
    except BaseException as exc:
        print(f"CRASH: {type(exc).__name__}", file=sys.stderr)
        sys.exit(CRASHED)


if __name__ == "__main__":
    main()
