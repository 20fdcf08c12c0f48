"""A service process exits within its shutdown budget after SIGTERM, even when its shutdown hangs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

SERVICE = """
import asyncio
import logging
import threading

from preflight_common.runtime import run_until_signal

logging.basicConfig()


async def serve(stop: asyncio.Event) -> None:
    print("serving", flush=True)
    await stop.wait()
    if {hang}:
        # A stuck dependency: a call in a worker thread that never returns.
        await asyncio.to_thread(threading.Event().wait)


run_until_signal(serve, shutdown_budget={budget})
"""


def _terminated(budget: float, *, hang: bool) -> tuple[int, float, str]:
    """Start a service, SIGTERM it once it serves: its exit status, seconds to exit, and stderr."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVICE.format(budget=budget, hang=hang)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "serving\n"
    process.send_signal(signal.SIGTERM)
    asked = time.monotonic()
    _, err = process.communicate(timeout=60)
    return process.returncode, time.monotonic() - asked, err


def test_a_hung_shutdown_is_abandoned_after_the_budget() -> None:
    status, took, err = _terminated(2.0, hang=True)
    assert status == 1
    assert 2.0 <= took < 10.0
    assert "shutdown did not end within 2s; exiting, abandoning threads" in err


def test_a_clean_shutdown_exits_at_once() -> None:
    status, took, _ = _terminated(30.0, hang=False)
    assert status == 0
    assert took < 10.0
