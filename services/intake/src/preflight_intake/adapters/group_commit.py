"""Group commit: concurrent writes queued to one writer thread, which commits them a batch per
transaction.

`GroupCommit.submit(item)`, called on an event loop, queues an item and returns a future of that
loop; the writer takes everything queued (up to `max_batch` items), writes it in one transaction
with `write(connection, items)` and, once the commit has returned, resolves the futures with their
results: all of a batch's futures of one loop in one callback, so a batch wakes its loop once, not
once per caller. While it commits, new items
queue up for the next batch: at concurrency 1 a batch is one item, under load one transaction and
one commit (one log flush) serve many callers, and the database's write lock is taken once per
batch instead of once per call.

A failure never spreads to items it does not concern, and never leaves part of a batch written:
the batch's transaction rolls back whole, and its items are retried in two halves, each in its own
transaction, down to the item at fault, whose future gets the exception. An operational error
(the database locked beyond its busy timeout, unreachable, full) is no item's fault: every item of
the batch gets it at once. An item whose caller cancelled its future before the writer took it is
dropped unwritten.

The writer keeps one connection of the engine's pool for as long as it runs, instead of checking
one out (and, on PostgreSQL, pinging the server) for every batch. A batch whose connection the
database dropped (a restart, an idle timeout) is written again once, on a new connection: its
transaction was rolled back (should the drop have come after the commit went through, the second
write meets what the first stored, for `write` to tell apart, as intake's unique idempotency keys do).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class _Queued(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    loop: asyncio.AbstractEventLoop


@dataclass(frozen=True)
class _Outcome(Generic[T, R]):
    """What the writer tells one item's caller: its result, or the error that refused it."""

    queued: _Queued[T, R]
    result: R | None = None
    error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """One writer thread committing queued items in batches (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        write: Callable[[Connection, Sequence[T]], list[R]],
        *,
        begin: str | None,
        name: str,
        max_batch: int = 256,
    ) -> None:
        """`write(connection, items)` writes the items in the open transaction and returns one result
        per item, in order; `begin` (SQLite's `BEGIN IMMEDIATE`) is issued first in each transaction."""
        self._engine = engine
        self._write = write
        self._begin = begin
        self._max_batch = max_batch
        # None asks the writer to stop.
        self._queue: SimpleQueue[_Queued[T, R] | None] = SimpleQueue()
        self._writer = threading.Thread(target=self._run, name=name, daemon=True)
        self._lock = threading.Lock()
        self._closed = False
        # The writer's connection, used by the writer thread only (None until its first batch,
        # or after the database dropped it).
        self._conn: Connection | None = None

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue `item`; its future (of the running event loop) resolves once the transaction that
        wrote it has committed. Raises RuntimeError once closed, or outside an event loop."""
        loop = asyncio.get_running_loop()
        queued: _Queued[T, R] = _Queued(item, loop.create_future(), loop)
        # Checked and queued under the lock `close` takes: an item is never queued behind the stop
        # request, where no writer would ever resolve its future.
        with self._lock:
            if self._closed:
                raise RuntimeError("the writer is closed")
            self._queue.put(queued)
            if self._writer.ident is None:
                self._writer.start()
        return queued.future

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread for good."""
        with self._lock:
            self._closed = True
            started = self._writer.ident is not None
            if started:
                self._queue.put(None)
        if started:
            self._writer.join()

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            if self._conn is not None:
                self._conn.close()

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            taken = [self._queue.get()]
            with contextlib.suppress(Empty):
                while len(taken) < self._max_batch:
                    taken.append(self._queue.get_nowait())
            stopping = any(queued is None for queued in taken)
            # A caller that cancels from here on finds its item written (and its answer dropped).
            batch = [q for q in taken if q is not None and not q.future.cancelled()]
            if not batch:
                continue
            outcomes: list[_Outcome[T, R]] = []
            try:
                self._commit(batch, outcomes)
            except Exception as exc:
                # A fault of the writer itself: its callers hear of it rather than wait forever.
                told = {id(outcome.queued) for outcome in outcomes}
                outcomes += [_Outcome(queued, error=exc) for queued in batch if id(queued) not in told]
            _tell(outcomes)

    def _transaction(self, items: list[T]) -> list[R]:
        """Write `items` in one transaction on the writer's connection; once more, on a new
        connection, when the database had dropped it."""
        try:
            return self._write_once(items)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        return self._write_once(items)

    def _write_once(self, items: list[T]) -> list[R]:
        if self._conn is None:
            self._conn = self._engine.connect()
        try:
            with self._conn.begin():
                if self._begin is not None:
                    self._conn.exec_driver_sql(self._begin)
                return self._write(self._conn, items)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                self._conn.close()
                self._conn = None
            raise

    def _commit(self, batch: Sequence[_Queued[T, R]], outcomes: list[_Outcome[T, R]]) -> None:
        """Write `batch`, adding each item's outcome to `outcomes`."""
        try:
            results = self._transaction([queued.item for queued in batch])
        except OperationalError as exc:
            outcomes += [_Outcome(queued, error=exc) for queued in batch]
            return
        except Exception as exc:
            if len(batch) == 1:
                outcomes.append(_Outcome(batch[0], error=exc))
                return
            # Rolled back whole: find the item at fault by halves, each half its own transaction.
            half = len(batch) // 2
            self._commit(batch[:half], outcomes)
            self._commit(batch[half:], outcomes)
            return
        outcomes += [_Outcome(queued, result) for queued, result in zip(batch, results, strict=True)]


def _tell(outcomes: Sequence[_Outcome[T, R]]) -> None:
    """Resolve the futures of `outcomes` (writer thread): one callback per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome[T, R]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome.queued.loop, []).append(outcome)
    for loop, told in by_loop.items():
        # A loop closed since its callers queued has no caller left to tell.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, told)


def _resolve(outcomes: Sequence[_Outcome[T, R]]) -> None:
    """(On the futures' loop.) Each future its result or error, unless its caller cancelled it."""
    for outcome in outcomes:
        future = outcome.queued.future
        if future.done():
            continue
        if outcome.error is not None:
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome.result)  # type: ignore[arg-type]  # R, set by _commit
