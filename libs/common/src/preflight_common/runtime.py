"""A service process's Kafka side: its publisher, its outbox relay and its event consumer.

A service serves gRPC as soon as its database is ready, whether Kafka is up or not: what it
accepts waits in its outbox. `KafkaSide.run` keeps trying to reach the brokers; once it does,
it starts the relay thread and the consumer of the service's routes
(`preflight_common.consumer.EventConsumer`), which then ride out later broker outages
themselves. Both beat the process's `Liveness`; the consumer's lag is sampled into it
(`preflight_common.metrics.watch_consumer_lag`).

`run_until_signal` runs a service's `serve` until SIGTERM or SIGINT and bounds its shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy import Engine, Table

from preflight_common.config import KafkaSettings, Topics
from preflight_common.consumer import DeadLetters, EventConsumer, Route
from preflight_common.liveness import Liveness
from preflight_common.metrics import watch_consumer_lag
from preflight_common.outbox import OutboxRelay
from preflight_common.producer import EventPublisher

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BACKOFF = 10.0
AGENTS_BEAT = 5.0
"""Seconds between two liveness beats of the consumer."""
KAFKA_STOP_TIMEOUT = 15.0
"""Seconds `KafkaSide.stop` takes at most by default."""
SHUTDOWN_SLACK = 20.0
"""Seconds a process gets after its drain grace to stop its Kafka side and exit."""


async def _retrying(what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt()` until it succeeds, with capped backoff (Kafka clients raise many unrelated
    exception types while brokers are away)."""
    backoff = 0.5
    while True:
        try:
            return await attempt()
        except Exception as exc:
            log.warning("%s: Kafka unreachable (%s); retrying in %.1fs", what, exc, backoff)
        await asyncio.sleep(backoff)
        backoff = min(MAX_BACKOFF, backoff * 2)


class KafkaSide:
    """The publisher, the outbox relay (a thread) and the event consumer of one service process."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        source: str,
        engine: Engine,
        outbox: Table,
        relay_interval: float,
        group: str,
        routes: Sequence[Route],
        topics: Topics,
        liveness: Liveness,
        agents: str = "agents",
    ) -> None:
        """`group` is the consumer group that consumes `routes` (its name within the service's
        `preflight-<service>` prefix, which the bus's ACLs grant); `topics` are the deployment's
        topic names (who owns each consumed topic); `agents` names the consumers in logs and in
        the `Liveness`."""
        self._kafka = kafka
        self._source = source
        self._engine = engine
        self._outbox = outbox
        self._relay_interval = relay_interval
        self._group = group
        self._routes = tuple(routes)
        self._topics = topics
        self._liveness = liveness
        self._agents = agents
        self._stop = threading.Event()
        self._publisher: EventPublisher | None = None
        self._relay: threading.Thread | None = None
        self._consumer: EventConsumer | None = None
        self._watchers: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        """Start the relay and the consumer, retrying whatever fails while Kafka is away.

        Returns once both run (or raises if cancelled first).
        """
        # The publisher connects on its first publish (the relay's), so it is made at once.
        self._publisher = EventPublisher(self._kafka, source=self._source)
        relay = OutboxRelay(self._engine, self._outbox, self._publisher)
        self._relay = threading.Thread(
            target=relay.run_forever,
            args=(self._stop, self._relay_interval),
            kwargs={"liveness": self._liveness},
            name="outbox-relay",
            daemon=True,
        )
        self._relay.start()
        consumer = await _retrying(f"the {self._agents}", self._started_consumer)
        self._consumer = consumer
        self._watchers = [
            asyncio.create_task(self._beat(consumer), name="consumer-liveness"),
            asyncio.create_task(watch_consumer_lag(consumer, self._liveness), name="consumer-lag"),
        ]
        log.info("outbox relay and %s running", self._agents)

    async def _started_consumer(self) -> EventConsumer:
        assert self._publisher is not None
        consumer = EventConsumer(
            self._kafka,
            group=self._group,
            routes=self._routes,
            topics=self._topics,
            dead_letters=DeadLetters(self._publisher, liveness=self._liveness),
        )
        try:
            await consumer.start()
        except BaseException:
            deadline = asyncio.get_running_loop().time() + KAFKA_STOP_TIMEOUT
            await _abandon_after(consumer.stop(), deadline, f"the {self._agents} (not started)")
            raise
        return consumer

    async def _beat(self, consumer: EventConsumer) -> None:
        """Beat while the consumer consumes (a consumer that died of a bug stops beating)."""
        while consumer.running:
            self._liveness.beat(self._agents, AGENTS_BEAT)
            await asyncio.sleep(AGENTS_BEAT)

    async def stop(self, timeout: float = KAFKA_STOP_TIMEOUT) -> None:
        """Stop the consumer (committing what it handled), then the relay, then flush the publisher,
        all within `timeout` seconds.

        A step that overruns what is left of the timeout is logged and abandoned (a Kafka client
        that does not answer is left behind, not awaited), so that shutdown always ends; what it
        did not finish is redelivered or republished later.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        self._stop.set()
        self._liveness.end(self._agents)
        for watcher in self._watchers:
            watcher.cancel()
        if self._consumer is not None:
            await _abandon_after(self._consumer.stop(), deadline, f"the {self._agents}")
        if self._relay is not None:
            await _abandon_after(_in_daemon_thread(self._relay.join), deadline, "the outbox relay")
        if self._publisher is not None:
            publisher = self._publisher
            left = max(0.0, deadline - asyncio.get_running_loop().time())
            await _abandon_after(
                _in_daemon_thread(lambda: publisher.close(left)), deadline, "the Kafka publisher"
            )


async def _abandon_after(work: Awaitable[object], deadline: float, what: str) -> None:
    """Await `work` until the loop time `deadline`; past it, log and leave it running unawaited."""
    task = asyncio.ensure_future(work)
    left = max(0.0, deadline - asyncio.get_running_loop().time())
    done, _ = await asyncio.wait({task}, timeout=left)
    if not done:
        log.warning("%s did not stop in time; abandoned", what)
        # Not cancelled: cancelling a task that ignores cancellation would wait on it again. Its
        # late outcome is retrieved so that it is not reported as lost.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _in_daemon_thread(call: Callable[[], object]) -> Awaitable[None]:
    """`call()` in a daemon thread, not the default executor (which the loop joins on exit): a
    call stuck in a Kafka client cannot keep the process alive."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        if not finished.done():
            finished.set_result(None)

    def target() -> None:
        try:
            call()
        finally:
            loop.call_soon_threadsafe(finish)

    threading.Thread(target=target, name="kafka-side-stop", daemon=True).start()
    return finished


def run_until_signal(serve: Callable[[asyncio.Event], Awaitable[None]], *, shutdown_budget: float) -> None:
    """Run `serve(stop)` in this (main) thread; SIGTERM or SIGINT sets `stop`.

    Once `stop` is set (or `serve` ends on its own), the process exits within `shutdown_budget`
    seconds: if `serve` and the interpreter's exit have not finished by then (a thread stuck in
    a Kafka or database client, a task ignoring cancellation), the process logs what it abandons
    and exits with status 1 at once.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        serving = asyncio.ensure_future(serve(stop))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        watchdog = threading.Timer(shutdown_budget, _exit_abandoning, args=(shutdown_budget,))
        watchdog.daemon = True
        watchdog.start()
        await serving

    asyncio.run(main())


def _exit_abandoning(budget: float) -> None:
    names = sorted(t.name for t in threading.enumerate() if t is not threading.current_thread())
    log.error("shutdown did not end within %.0fs; exiting, abandoning threads %s", budget, names)
    logging.shutdown()
    os._exit(1)
