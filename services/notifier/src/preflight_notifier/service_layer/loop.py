"""Running a unit of work over and over, as the background parts of the notifier do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from preflight_common.liveness import Liveness

log = logging.getLogger(__name__)


async def repeat(
    name: str, step: Callable[[], Awaitable[int]], stop: asyncio.Event, interval: float, liveness: Liveness
) -> None:
    """Await `step` until `stop` is set: again at once while it reports work (> 0), else after `interval` s.

    A failing step is logged and retried after `interval`; it never ends the loop. Each round
    beats `liveness` as `name`.
    """
    while not stop.is_set():
        liveness.beat(name, interval)
        try:
            done = await step()
        except Exception:
            log.exception("%s failed; retrying in %.1fs", name, interval)
            done = 0
        if done:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
    liveness.end(name)
