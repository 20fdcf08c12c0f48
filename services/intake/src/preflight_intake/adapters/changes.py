"""In-process notice of status changes, pushed from the commit that made them to open watches.

The unit of work (`IntakeStore.transaction`) calls `StatusFeed.notify` with the submissions whose
status history it appended, after its commit, from whatever thread ran it: a principal's call or
the agents applying other services' events. A `WatchSubmission` stream `subscribe`s to its
submission before it first reads the history and re-reads it only when told, so an idle watch
costs no database work. A change committed by another process sharing the database is not
notified here: `StatusFeed.resync` (the server runs it on a slow timer) reads the latest sequence of
every watched submission in one query and rings each watch whose submission went past what it read.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress


class Subscription:
    """One watch's doorbell, awaited on the event loop that subscribed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._rung = asyncio.Event()
        # The last sequence of the submission's history the watch has read (`StatusFeed.resync`).
        self.seen = 0

    def ring(self) -> None:
        """Wake the watch (from any thread)."""
        # A closed loop means the watch has ended with it.
        with suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._rung.set)

    async def wait(self) -> None:
        """Return once rung, re-armed.

        Re-armed before returning, so a change committed after this returns rings again: read
        the history after calling this, never before.
        """
        await self._rung.wait()
        self._rung.clear()


class StatusFeed:
    """Who watches which submission in this process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: dict[str, set[Subscription]] = {}

    @contextmanager
    def subscribe(self, submission_id: str) -> Iterator[Subscription]:
        """A subscription to `submission_id`'s changes for the duration of the block (call it on
        the event loop that will await it)."""
        subscription = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._watchers.setdefault(submission_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                watchers = self._watchers[submission_id]
                watchers.discard(subscription)
                if not watchers:
                    del self._watchers[submission_id]

    def notify(self, submission_ids: Iterable[str]) -> None:
        """Ring every watch of these submissions (call it after the commit that changed them)."""
        with self._lock:
            rung = [s for submission_id in submission_ids for s in self._watchers.get(submission_id, ())]
        for subscription in rung:
            subscription.ring()

    def resync(self, latest: Callable[[Collection[str]], Mapping[str, int]]) -> None:
        """Ring every watch whose submission's stored history goes past what the watch has read
        (`Subscription.seen`): changes committed by another process, which `notify` never hears
        of. `latest` answers the last sequence of each of the submissions it is given that has a
        history; it is called once for all watches, and not at all while nobody watches."""
        with self._lock:
            watched = {submission_id: list(subs) for submission_id, subs in self._watchers.items()}
        if not watched:
            return
        sequences = latest(watched.keys())
        for submission_id, subscriptions in watched.items():
            for subscription in subscriptions:
                if subscription.seen < sequences.get(submission_id, 0):
                    subscription.ring()
