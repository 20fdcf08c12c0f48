"""A service process's Kafka side: its publisher, its outbox relay and its faust agents.

A service serves gRPC as soon as its database is ready, whether Kafka is up or not: what it
accepts waits in its outbox. `KafkaSide.run` keeps trying to reach the brokers; once it does,
it starts the relay thread and the faust app, which then ride out later broker outages
themselves.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import faust
from sqlalchemy import Engine, Table

from preflight_common.config import KafkaSettings
from preflight_common.consumer import DeadLetters
from preflight_common.outbox import OutboxRelay
from preflight_common.producer import EventPublisher

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BACKOFF = 10.0

AppFactory = Callable[[DeadLetters], faust.App]
"""Builds the service's faust app (its agents) around the dead-letter publisher."""


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
    """The publisher, the outbox relay (a thread) and the faust app of one service process."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        source: str,
        engine: Engine,
        outbox: Table,
        relay_interval: float,
        build_app: AppFactory,
        agents: str = "agents",
    ) -> None:
        self._kafka = kafka
        self._source = source
        self._engine = engine
        self._outbox = outbox
        self._relay_interval = relay_interval
        self._build_app = build_app
        self._agents = agents
        self._stop = threading.Event()
        self._publisher: EventPublisher | None = None
        self._relay: threading.Thread | None = None
        self._app: faust.App | None = None

    async def run(self) -> None:
        """Start the relay and the agents, retrying whatever fails while Kafka is away.

        Returns once both run (or raises if cancelled first).
        """
        # The publisher connects on its first publish (the relay's), so it is made at once.
        self._publisher = EventPublisher(self._kafka, source=self._source)
        relay = OutboxRelay(self._engine, self._outbox, self._publisher)
        self._relay = threading.Thread(
            target=relay.run_forever,
            args=(self._stop, self._relay_interval),
            name="outbox-relay",
            daemon=True,
        )
        self._relay.start()
        self._app = await _retrying(f"the {self._agents}", self._started_app)
        log.info("outbox relay and %s running", self._agents)

    async def _started_app(self) -> faust.App:
        assert self._publisher is not None
        # In the event loop's thread: faust binds the app to the running loop.
        app = self._build_app(DeadLetters(self._publisher))
        try:
            await app.start()
        except BaseException:
            await app.stop()
            raise
        return app

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop the agents (committing what they applied), then the relay, then flush the publisher.

        Each step gets `timeout` seconds; one that overruns is logged and left behind, so that
        shutdown always ends (what it did not finish is redelivered or republished later).
        """
        self._stop.set()
        if self._app is not None:
            try:
                await asyncio.wait_for(self._app.stop(), timeout)
            except TimeoutError:
                log.warning("the %s did not stop within %.0fs", self._agents, timeout)
        if self._relay is not None:
            await asyncio.to_thread(self._relay.join, timeout)
            if self._relay.is_alive():
                log.warning("the outbox relay did not stop within %.0fs", timeout)
        if self._publisher is not None:
            await asyncio.to_thread(self._publisher.close, timeout)
