"""Waiting on a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll `predicate` until it returns something truthy and return that; TimeoutError naming
    `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def until(
    probe: Callable[[], T], what: str = "the condition", timeout: float = 60.0, interval: float = 0.05
) -> T:
    """`wait_until` for a coroutine: await until `probe()` is truthy and return it, letting the
    event loop run in between; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
    return value


def eventually(probe: Callable[[], T], what: str = "the condition", timeout: float = 60.0) -> T:
    """`wait_until` with the deadline last: `eventually(probe, "what", timeout=60)`."""
    return wait_until(probe, timeout, what)


@pytest.fixture(name="eventually")
def eventually_fixture() -> Callable[..., object]:
    """`eventually(probe, what="the condition", timeout=60)`: poll until `probe` holds (see
    `eventually`)."""
    return eventually
