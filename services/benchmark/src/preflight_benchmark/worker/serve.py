"""A warm worker: a long-lived process that imports Inspect once and forks a fresh child per attempt.

The local executor starts it with its standard error on the worker's own log and
talks to it over its standard input and output, one JSON object a line:

- the worker first answers ``{"ready": <pid>}`` once `preload` (Inspect and the
  suites) is done;
- for each ``{"folder": <attempt folder>, "env": {...}, "memory": <bytes or null>}``
  it reads, it forks a child, answers ``{"started": <child pid>}``, waits for the
  child and answers ``{"status": <exit status>}`` (0, the configuration-error
  status, another status, or minus the signal that killed the child);
- at the end of its input it exits with status 0.

The worker itself (the zygote) never runs an attempt: it resolves no credential,
reads no assignment and holds no model response, so no lab's data is in the
memory a later attempt starts from. The child is the attempt: it leads a new
session (its process group is what the executor kills on timeout or cancellation,
and what the worker kills once the child has ended, so nothing it started
outlives it), dies with the worker (parent-death signal), holds the attempt's
address-space limit (`RLIMIT_AS`, soft and hard, so the attempt cannot raise it),
has neither pipe (it cannot read another attempt's order or answer for one), runs
with the attempt's folder as working directory, its ``worker.log`` as standard
output and error and the worker's environment plus ``env`` (references only: the
assignment file, Inspect's data and cache folders), and ends with `os._exit` once
its output is flushed. Whatever an attempt leaves — environment variables, module
state, open files, threads, a crash — ends with its child.

Nothing secret crosses the pipe: an attempt resolves its credential itself, as a
one-shot worker does. An exception (or `SystemExit`) escaping an attempt is its
exit status (1 for an exception, whose traceback is in the attempt's log).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import resource
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

READY = "ready"
STARTED = "started"
STATUS = "status"
PR_SET_PDEATHSIG = 1


def order(folder: Path, env: dict[str, str], memory: int | None) -> bytes:
    """The line that hands an attempt to a warm worker: its folder, environment and address-space limit."""
    return (json.dumps({"folder": str(folder), "env": env, "memory": memory}) + "\n").encode()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _answer(replies: TextIO, message: dict[str, Any]) -> None:
    replies.write(json.dumps(message) + "\n")
    replies.flush()


def _attempt(request: dict[str, Any], parent: int, run_attempt: Callable[[], int]) -> int:
    """In the forked child: become the attempt (see the module's docstring) and run it; its exit status."""
    os.setsid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the worker died before the parent-death signal was armed
        return 1
    memory = request["memory"]
    if memory is not None:
        _, ceiling = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory if ceiling == resource.RLIM_INFINITY else min(memory, ceiling)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    folder = Path(request["folder"])
    os.environ.update(request["env"])
    os.chdir(folder)
    fd = os.open(folder / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        return run_attempt()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 1


def _fork(request: dict[str, Any], pipes: tuple[TextIO, TextIO], run_attempt: Callable[[], int]) -> int:
    """Fork the attempt's child; returns its pid (the child itself never returns)."""
    parent = os.getpid()
    _flush()
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        for pipe in pipes:
            os.close(pipe.fileno())
        status = _attempt(request, parent, run_attempt)
    finally:
        with contextlib.suppress(BaseException):
            logging.shutdown()
            _flush()
        os._exit(status)


def serve(run_attempt: Callable[[], int], preload: Callable[[], None] = lambda: None) -> int:
    """Run attempts read from standard input, each in a forked child, until it ends; returns 0."""
    # The pipes move to descriptors no child inherits: what an attempt starts (a suite's sandbox)
    # can neither read the next order nor write an answer. Its standard input is /dev/null.
    orders = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)  # stray output goes to the worker's own log, not the pipe
    preload()
    _answer(replies, {READY: os.getpid()})
    while line := orders.readline():
        pid = _fork(json.loads(line), (orders, replies), run_attempt)
        _answer(replies, {STARTED: pid})
        _, wait_status = os.waitpid(pid, 0)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # whatever the attempt started and left running
        _answer(replies, {STATUS: os.waitstatus_to_exitcode(wait_status)})
    return 0
