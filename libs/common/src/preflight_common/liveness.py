"""Liveness: is every loop of this process still making progress?

Each background loop of a service (the outbox relay thread, the event consumer, the scheduler
loops) calls `beat(name, interval)` once per round. A loop that has not beaten for its
interval plus the slack (`SLACK`, 120 s: room for one slow round, e.g. a publish waiting
out an unreachable broker) is stale. `watch()` publishes the verdict on the gRPC health
service under `LIVENESS_SERVICE` ("preflight.liveness"): SERVING while no loop is stale,
NOT_SERVING once one is. The event loop shows its own liveness by answering at all: a
process whose event loop (or the whole process) is stuck does not answer the check, which
a supervisor counts as a failure too. Supervisors (the embedded stack, the Helm chart's
livenessProbe) restart a process that fails the check for longer than their budget.

A consumer that keeps retrying a record (its handler failing, or the dead-letter publish
refused) reports it with `retrying(key, reason)` until `recovered(key)`. The process is then
degraded, not dead (a restart would not make a failing database or broker work):
`CONSUMERS_SERVICE` ("preflight.consumers") is NOT_SERVING while any consumer retries.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from grpc_health.v1 import health, health_pb2

log = logging.getLogger(__name__)

LIVENESS_SERVICE = "preflight.liveness"
CONSUMERS_SERVICE = "preflight.consumers"
SLACK = 120.0

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Liveness:
    """The heartbeats and retrying consumers of one process (thread-safe)."""

    def __init__(self, *, slack: float = SLACK, clock: Callable[[], float] = time.monotonic) -> None:
        self._slack = slack
        self._clock = clock
        self._lock = threading.Lock()
        self._deadlines: dict[str, float] = {}
        self._retrying: dict[str, str] = {}

    def beat(self, name: str, interval: float) -> None:
        """Loop `name` made progress; it beats again within `interval` seconds when healthy."""
        with self._lock:
            self._deadlines[name] = self._clock() + interval + self._slack

    def end(self, name: str) -> None:
        """Loop `name` ended on purpose (the process is stopping): it is no longer expected to beat."""
        with self._lock:
            self._deadlines.pop(name, None)

    def stale(self) -> list[str]:
        """The loops whose last beat is older than their interval plus the slack."""
        now = self._clock()
        with self._lock:
            return sorted(name for name, deadline in self._deadlines.items() if now > deadline)

    def retrying(self, key: str, reason: str) -> None:
        """A consumer is retrying (e.g. `topic[partition]@offset`): the process is degraded until
        `recovered(key)`."""
        with self._lock:
            self._retrying[key] = reason

    def recovered(self, key: str) -> None:
        """The consumer retrying `key` went on."""
        with self._lock:
            self._retrying.pop(key, None)

    def degraded(self) -> dict[str, str]:
        """The consumers retrying now, with the reason of their last failure."""
        with self._lock:
            return dict(self._retrying)

    async def watch(self, health_servicer: health.aio.HealthServicer, interval: float = 1.0) -> None:
        """Publish `LIVENESS_SERVICE` and `CONSUMERS_SERVICE` every `interval` seconds until cancelled;
        a change is logged once."""
        published: dict[str, int] = {}
        while True:
            stale = self.stale()
            degraded = self.degraded()
            verdicts = {
                LIVENESS_SERVICE: (_NOT_SERVING if stale else _SERVING, f"loops not progressing: {stale}"),
                CONSUMERS_SERVICE: (
                    _NOT_SERVING if degraded else _SERVING,
                    f"consumers retrying: {degraded}",
                ),
            }
            for service, (status, problem) in verdicts.items():
                if published.get(service) == status:
                    continue
                if status == _NOT_SERVING:
                    log.error("%s NOT_SERVING: %s", service, problem)
                elif service in published:
                    log.info("%s SERVING again", service)
                await health_servicer.set(service, status)
                published[service] = status
            await asyncio.sleep(interval)
