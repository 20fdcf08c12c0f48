"""Consumers: intake learns a submission's progress from the benchmark and review topics.

- `preflight.benchmark.jobs.v1` BenchmarkJobRequested → BENCHMARKING;
- `preflight.benchmark.results.v1` BenchmarkCompleted/BenchmarkFailed: a job ended (its
  credential retires); BenchmarkPlanEnded (the benchmark says the whole plan ended) → UNDER_REVIEW;
- `preflight.reviews.v1` ReviewReportReady → REPORT_READY, only for a report whose signature
  verifies with the clearinghouse's published key and whose signed body names that report,
  submission and organisation (`adapters.reports`).

Each event is applied once (its `ce_id` is claimed in the transaction that applies it) and its
offset is committed only after that transaction (see `preflight_common.consumer`). A report that
does not verify is dead-lettered; an outcome of a job whose request is not recorded waits for it
at most `PREFLIGHT_INTAKE_PLAN_WAIT` seconds, then is dead-lettered.
"""

from __future__ import annotations

import asyncio

from google.protobuf.message import Message
from preflight.benchmark.v1 import events_pb2 as benchmark_events
from preflight.clearinghouse.v1 import events_pb2 as review_events
from preflight_common.consumer import AwaitingCause, PoisonEvent, Route
from preflight_common.envelope import EventAttributes, EventRegistry

from preflight_intake.adapters.reports import ReportVerifier
from preflight_intake.config import IntakeSettings
from preflight_intake.service_layer.handlers import Intake, RefusedOutcome, UnplannedJob

CONSUMER = "intake"

JOBS = EventRegistry([benchmark_events.BenchmarkJobRequested])
RESULTS = EventRegistry(
    [
        benchmark_events.BenchmarkCompleted,
        benchmark_events.BenchmarkFailed,
        benchmark_events.BenchmarkPlanEnded,
    ]
)
REVIEWS = EventRegistry([review_events.ReviewReportReady])


class ProgressHandlers:
    """The event handlers (each runs its blocking unit of work in a worker thread)."""

    def __init__(self, intake: Intake, reports: ReportVerifier, plan_wait: float) -> None:
        self._intake = intake
        self._reports = reports
        self._plan_wait = plan_wait

    async def job_requested(self, attributes: EventAttributes, payload: Message) -> None:
        assert isinstance(payload, benchmark_events.BenchmarkJobRequested)
        if payload.planned_jobs < 1:
            raise PoisonEvent("planned_jobs must be at least 1")
        await asyncio.to_thread(
            self._intake.on_job_requested,
            CONSUMER,
            attributes.id,
            payload.submission_id,
            payload.job_id,
            max_attempts=payload.max_attempts,
        )

    async def job_ended(self, attributes: EventAttributes, payload: Message) -> None:
        if isinstance(payload, benchmark_events.BenchmarkPlanEnded):
            await asyncio.to_thread(
                self._intake.on_plan_ended, CONSUMER, attributes.id, payload.submission_id
            )
            return
        assert isinstance(payload, benchmark_events.BenchmarkCompleted | benchmark_events.BenchmarkFailed)
        outcome = "completed" if isinstance(payload, benchmark_events.BenchmarkCompleted) else "failed"
        try:
            await asyncio.to_thread(
                self._intake.on_job_ended,
                CONSUMER,
                attributes.id,
                payload.submission_id,
                payload.job_id,
                outcome,
                attempt=payload.attempt,
            )
        except UnplannedJob as exc:
            raise AwaitingCause(str(exc), patience=self._plan_wait) from exc
        except RefusedOutcome as exc:
            raise PoisonEvent(str(exc)) from exc

    async def report_ready(self, attributes: EventAttributes, payload: Message) -> None:
        assert isinstance(payload, review_events.ReviewReportReady)
        refusal = await self._reports.refusal(payload)
        if refusal is not None:
            raise PoisonEvent(refusal)
        await asyncio.to_thread(self._intake.on_report_ready, CONSUMER, attributes.id, payload.submission_id)


def routes(settings: IntakeSettings, intake: Intake, reports: ReportVerifier) -> list[Route]:
    """Intake's three consumed topics and their handlers."""
    handlers = ProgressHandlers(intake, reports, settings.plan_wait)
    return [
        Route(settings.topics.benchmark_jobs, JOBS, handlers.job_requested),
        Route(settings.topics.benchmark_results, RESULTS, handlers.job_ended),
        Route(settings.topics.reviews, REVIEWS, handlers.report_ready),
    ]
