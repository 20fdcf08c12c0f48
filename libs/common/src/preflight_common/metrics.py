"""Prometheus metrics of a Preflight process, and the consumer lag behind `preflight.consumers`.

`setup_metrics(resource)` serves the process's OpenTelemetry metrics for Prometheus when
`OTEL_METRICS_EXPORTER` names `prometheus`, on `OTEL_EXPORTER_PROMETHEUS_HOST` (default
`localhost`) and `OTEL_EXPORTER_PROMETHEUS_PORT` (default 9464), OpenTelemetry's variables;
`setup_telemetry` calls it.

`watch_consumer_lag(source, liveness)` samples a consumer (`preflight_common.consumer.EventConsumer`)
every `PREFLIGHT_CONSUMER_LAG_INTERVAL` seconds (default 5) in its event loop. The lag of an
assigned partition is the number of records between its high watermark and the group's
committed offset (from the partition's start while the group has committed nothing), published
as the gauge `preflight_consumer_lag{group,topic,partition}`. A partition whose lag is non-zero
and whose committed offset has not moved for longer than `PREFLIGHT_CONSUMER_STALL_BUDGET`
seconds (default 120) is stalled: a warning names the group, topic, partition and lag, and the
partition is reported to the `Liveness` as a retrying consumer, so `preflight.consumers` is
NOT_SERVING until the committed offset moves again (or the lag drains, or the partition is
revoked).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource

from preflight_common.config import env, env_int, env_positive
from preflight_common.liveness import Liveness

log = logging.getLogger(__name__)

LAG_METRIC = "preflight_consumer_lag"
LAG_INTERVAL = 5.0
"""Seconds between two samples of the consumer lag (`PREFLIGHT_CONSUMER_LAG_INTERVAL`)."""
STALL_BUDGET = 120.0
"""Seconds a lagging partition may go without progress (`PREFLIGHT_CONSUMER_STALL_BUDGET`)."""

_setup_lock = threading.Lock()
_served = False
_monitors: dict[str, ConsumerLag] = {}
_gauge_lock = threading.Lock()
_gauge_created = False


def setup_metrics(resource: Resource) -> bool:
    """Serve Prometheus metrics when `OTEL_METRICS_EXPORTER` names `prometheus` (idempotent).

    Returns whether the endpoint is served. A port that cannot be bound stops the process
    (`OSError`): a process that does not serve the metrics it promises fails at startup.
    """
    global _served
    exporters = {name.strip() for name in env("OTEL_METRICS_EXPORTER", "").split(",")}
    if "prometheus" not in exporters:
        return False
    with _setup_lock:
        if not _served:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import start_http_server

            host = env("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
            port = env_int("OTEL_EXPORTER_PROMETHEUS_PORT", 9464)
            start_http_server(port, addr=host)
            metrics.set_meter_provider(
                MeterProvider(resource=resource, metric_readers=[PrometheusMetricReader()])
            )
            log.info("Prometheus metrics served on %s:%d", host, port)
            _served = True
    return True


@dataclass
class _Partition:
    lag: int
    committed: int | None
    progressed: float
    stalled: bool = False


class ConsumerLag:
    """The lag of one consumer group's assigned partitions and its stall detector (thread-safe)."""

    def __init__(
        self,
        group: str,
        liveness: Liveness,
        *,
        budget: float = STALL_BUDGET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group = group
        self._liveness = liveness
        self._budget = budget
        self._clock = clock
        self._lock = threading.Lock()
        self._partitions: dict[tuple[str, int], _Partition] = {}

    def _key(self, topic: str, partition: int) -> str:
        return f"consumer group {self.group} on {topic}[{partition}]"

    def record(self, topic: str, partition: int, highwater: int, committed: int | None) -> None:
        """A sample of an assigned partition: its high watermark and the group's committed offset.

        Progress is a committed offset that moved, or no lag at all.
        """
        now = self._clock()
        lag = max(0, highwater - (committed or 0))
        with self._lock:
            previous = self._partitions.get((topic, partition))
            moved = previous is None or previous.committed != committed or lag == 0
            progressed = now if moved or previous is None else previous.progressed
            state = _Partition(
                lag, committed, progressed, stalled=lag > 0 and now - progressed > self._budget
            )
            self._partitions[(topic, partition)] = state
        key = self._key(topic, partition)
        if state.stalled:
            reason = f"lag {lag}, no progress for {now - progressed:.0f}s"
            if previous is None or not previous.stalled:
                log.warning("%s stalled: %s", key, reason)
            self._liveness.retrying(key, reason)
        elif previous is not None and previous.stalled:
            log.info("%s progressing again (lag %d)", key, lag)
            self._liveness.recovered(key)

    def keep_only(self, assigned: Iterable[tuple[str, int]]) -> None:
        """Forget the partitions no longer assigned (revoked partitions are another member's)."""
        keep = set(assigned)
        with self._lock:
            gone = [tp for tp in self._partitions if tp not in keep]
            for tp in gone:
                del self._partitions[tp]
        for topic, partition in gone:
            self._liveness.recovered(self._key(topic, partition))

    def lags(self) -> dict[tuple[str, int], int]:
        """The last sampled lag of each assigned partition."""
        with self._lock:
            return {tp: state.lag for tp, state in self._partitions.items()}

    def stalled(self) -> list[tuple[str, int]]:
        """The partitions stalled now."""
        with self._lock:
            return sorted(tp for tp, state in self._partitions.items() if state.stalled)


def _observe_lags(options: CallbackOptions) -> Iterable[Observation]:
    for monitor in list(_monitors.values()):
        for (topic, partition), lag in monitor.lags().items():
            yield Observation(lag, {"group": monitor.group, "topic": topic, "partition": str(partition)})


class LagSource(Protocol):
    """What the lag of a consumer group member is read from."""

    group: str

    def assigned(self) -> list[tuple[str, int]]:
        """The (topic, partition)s assigned to the member now."""

    def highwater(self, topic: str, partition: int) -> int | None:
        """The partition's high watermark as last seen (None while unknown)."""

    async def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset of the partition (None while nothing is committed)."""


async def watch_consumer_lag(source: LagSource, liveness: Liveness) -> None:
    """Sample the lag of `source`'s assigned partitions periodically, until cancelled."""
    global _gauge_created
    monitor = ConsumerLag(
        source.group, liveness, budget=env_positive("PREFLIGHT_CONSUMER_STALL_BUDGET", STALL_BUDGET)
    )
    with _gauge_lock:
        # One gauge for the process; a consumer rebuilt after a failed start replaces its group's monitor.
        _monitors[monitor.group] = monitor
        if not _gauge_created:
            metrics.get_meter(__name__).create_observable_gauge(
                LAG_METRIC,
                callbacks=[_observe_lags],
                description="Records between a partition's high watermark and the group's committed offset",
            )
            _gauge_created = True
    interval = env_positive("PREFLIGHT_CONSUMER_LAG_INTERVAL", LAG_INTERVAL)
    while True:
        await asyncio.sleep(interval)
        assigned = source.assigned()
        monitor.keep_only(assigned)
        try:
            for topic, partition in assigned:
                highwater = source.highwater(topic, partition)
                if highwater is not None:  # unknown until the partition's first fetch
                    monitor.record(topic, partition, highwater, await source.committed(topic, partition))
        except Exception as exc:  # the broker away, the partition revoked meanwhile: sampled next time
            log.debug("consumer group %s: lag not sampled: %s", source.group, exc)
