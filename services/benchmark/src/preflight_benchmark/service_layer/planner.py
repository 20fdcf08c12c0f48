"""The planner: applies intake's submission events (plan, withdraw, move the window) idempotently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from google.protobuf.message import Message
from preflight.intake.v1 import events_pb2 as intake_events
from preflight_common.clock import Clock, utc_now
from preflight_common.consumer import PoisonEvent
from preflight_common.envelope import EventAttributes, EventRegistry
from preflight_common.telemetry import current_traceparent

from preflight_benchmark.domain.catalog import Catalog
from preflight_benchmark.domain.jobs import AccessWindow, FailureReason, plan
from preflight_benchmark.domain.ports import JobEvents, Jobs, JobSpans
from preflight_benchmark.domain.records import NewJob, Refused

log = logging.getLogger(__name__)

REGISTRY = EventRegistry(
    [intake_events.SubmissionReceived, intake_events.SubmissionWithdrawn, intake_events.ReleasePlanChanged]
)


def _window(events: JobEvents, received: intake_events.SubmissionReceived) -> AccessWindow:
    # Present: the consumer holds every event to its type's required fields (preflight_common.contracts).
    window = AccessWindow(
        events.from_timestamp(received.access_window.start), events.from_timestamp(received.access_window.end)
    )
    if window.end <= window.start:
        raise PoisonEvent("access_window: end must be after start")
    return window


class Planner:
    """Handles SubmissionReceived (fan-out), SubmissionWithdrawn (cancel) and ReleasePlanChanged (window)."""

    def __init__(
        self,
        store: Jobs,
        catalog: Catalog,
        events: JobEvents,
        spans: JobSpans,
        *,
        executor: str,
        max_attempts: int,
        clock: Clock = utc_now,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_change` is called (on the event loop of `handle`) once an event changed the jobs:
        the dispatcher is woken to start what became due."""
        self._store = store
        self._catalog = catalog
        self._events = events
        self._spans = spans
        self._executor = executor
        self._max_attempts = max_attempts
        self._clock = clock
        self._on_change = on_change

    async def handle(self, attributes: EventAttributes, payload: Message) -> None:
        """Apply one event; durable when it returns. Raises PoisonEvent for content that can never apply,
        and for an event contradicting what is recorded of its submission (another organisation or
        model, a withdrawn submission received again)."""
        try:
            if isinstance(payload, intake_events.SubmissionReceived):
                await asyncio.to_thread(self.plan, attributes.id, payload)
            elif isinstance(payload, intake_events.SubmissionWithdrawn):
                await asyncio.to_thread(self.withdraw, attributes.id, payload)
            elif isinstance(payload, intake_events.ReleasePlanChanged):
                await asyncio.to_thread(self.change_window, attributes.id, payload)
        except Refused as exc:
            raise PoisonEvent(str(exc)) from exc
        self._on_change()

    def plan(self, event_id: str, received: intake_events.SubmissionReceived) -> int:
        """Store one job per suite and its BenchmarkJobRequested; returns how many jobs were planned."""
        kind = received.access.WhichOneof("kind")
        if kind is None:
            raise PoisonEvent("access: endpoint or weights required")
        now = self._clock()
        window = _window(self._events, received)
        planned = plan(received.submission_id, kind, window, self._catalog, self._max_attempts)
        new_jobs = []
        for job in planned:
            message = self._events.job_requested(job, len(planned), received, now)
            # The job's span: its event, and its attempts later through the kept traceparent, descend from it.
            with self._spans(
                "benchmark job",
                submission_id=received.submission_id,
                job_id=job.job_id,
                suite_id=job.suite.id,
            ):
                new_jobs.append(
                    NewJob(
                        job_id=job.job_id,
                        suite_id=job.suite.id,
                        suite_version=job.suite.version,
                        capability=job.suite.capability,
                        max_attempts=job.max_attempts,
                        not_before=job.window.start,
                        not_after=job.window.end,
                        request=message.SerializeToString(),
                        record=self._events.requested_record(message),
                        traceparent=current_traceparent(),
                    )
                )
        applied = self._store.plan(
            event_id, received.submission_id, received.organisation, self._executor, new_jobs, now
        )
        if not applied:
            log.info("submission %s already planned; nothing new", received.submission_id)
            return 0
        return len(new_jobs)

    def withdraw(self, event_id: str, withdrawn: intake_events.SubmissionWithdrawn) -> int:
        """Fail the submission's pending and running jobs as WITHDRAWN; returns how many ended."""
        now = self._clock()
        ending = self._events.failed(
            FailureReason.WITHDRAWN,
            f"submission withdrawn: {withdrawn.reason}".strip(": "),
            retryable=False,
            now=now,
        )
        return len(
            self._store.withdraw(event_id, withdrawn.submission_id, withdrawn.organisation, now, ending)
        )

    def change_window(self, event_id: str, changed: intake_events.ReleasePlanChanged) -> int:
        """Move the access window of the submission's active jobs (if the event carries one)."""
        if not changed.HasField("access_window"):
            return 0
        start = self._events.from_timestamp(changed.access_window.start)
        end = self._events.from_timestamp(changed.access_window.end)
        if end <= start:
            raise PoisonEvent("access_window: end must be after start")
        return self._store.change_window(
            event_id, changed.submission_id, changed.organisation, (start, end), self._clock()
        )
