"""A warm worker: one long-lived process that runs attempts one after another.

The local executor starts it with its standard error on the worker's own log and
talks to it over its standard input and output, one JSON object a line:

- the worker first answers ``{"ready": <pid>}`` once `preload` (Inspect and the
  suites) is done;
- for each ``{"folder": <attempt folder>, "env": {...}}`` it reads, it runs the
  attempt with that folder as working directory and its ``worker.log`` as
  standard output and error, the base environment plus ``env`` (references
  only: the assignment file, Inspect's data and cache folders), and answers
  ``{"status": <exit status>}`` (0, or the configuration-error status);
- at the end of its input it exits with status 0.

Nothing secret crosses the pipe: an attempt resolves its credential itself, as a
one-shot worker does. An exception (or `SystemExit`) escaping an attempt ends the
process at once with its status (1 for an exception, whose traceback is in the
attempt's log): a worker in an unknown state is not reused, and the executor
sees the attempt end without a result, as it would for a one-shot worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

READY = "ready"
STATUS = "status"


def order(folder: Path, env: dict[str, str]) -> bytes:
    """The line that hands an attempt to a warm worker."""
    return (json.dumps({"folder": str(folder), "env": env}) + "\n").encode()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def _output_to(path: Path, idle: int) -> Iterator[None]:
    """Standard output and error on `path` for the block, back on `idle` after it."""
    _flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    try:
        yield
    finally:
        _flush()
        os.dup2(idle, 1)
        os.dup2(idle, 2)


def _answer(replies: TextIO, message: dict[str, Any]) -> None:
    replies.write(json.dumps(message) + "\n")
    replies.flush()


def serve(run_attempt: Callable[[], int], preload: Callable[[], None] = lambda: None) -> int:
    """Run attempts read from standard input until it ends; returns the exit status (0)."""
    # The pipes move to descriptors no child inherits: what an attempt starts (a suite's sandbox)
    # can neither read the next order nor write an answer. Its standard input is /dev/null.
    orders = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    idle = os.dup(2)
    os.dup2(idle, 1)  # stray output between attempts goes to the worker's own log, not the pipe
    preload()
    _answer(replies, {READY: os.getpid()})
    base_env = dict(os.environ)
    while line := orders.readline():
        request = json.loads(line)
        folder = Path(request["folder"])
        os.environ.clear()
        os.environ.update(base_env)
        os.environ.update(request["env"])
        os.chdir(folder)
        with _output_to(folder / "worker.log", idle):
            try:
                status = run_attempt()
            except SystemExit as exc:
                _flush()
                os._exit(exc.code if isinstance(exc.code, int) else 1)
            except BaseException:
                traceback.print_exc()
                _flush()
                os._exit(1)
        _answer(replies, {STATUS: status})
    return 0
