"""Consumers: the clearinghouse learns submissions, planned jobs and results from three topics.

- `preflight.submissions.v1`: SubmissionReceived (lab, model, sharing consent), SubmissionWithdrawn,
  ReleasePlanChanged (when the jobs' access window opens; deadlines are the notifier's);
- `preflight.benchmark.jobs.v1`: BenchmarkJobRequested (a planned job);
- `preflight.benchmark.results.v1`: BenchmarkCompleted (scores, candidate findings), BenchmarkFailed,
  BenchmarkPlanEnded (every job of the plan ended: the report is issued once each listed job's
  result is recorded).

Each event is applied once: its `ce_source`/`ce_id` is claimed in the transaction that
applies it, and its offset is committed only afterwards (see
`preflight_common.consumer`). An event is dead-lettered when it lacks a required field, comes from
another service than the topic's owner, names another organisation, model or consent for a recorded
submission (they are set once), or is an outcome of another submission's or suite's job; an outcome
of a job whose BenchmarkJobRequested is not recorded waits for it at most
`PREFLIGHT_CLEARINGHOUSE_PLAN_WAIT` seconds, then is dead-lettered too.
"""

from __future__ import annotations

import asyncio

from google.protobuf.message import Message
from preflight.benchmark.v1 import events_pb2 as benchmark_events
from preflight.intake.v1 import events_pb2 as intake_events
from preflight_common.consumer import AwaitingCause, EventHandler, PoisonEvent, Route
from preflight_common.envelope import EventAttributes, EventRegistry
from preflight_common.fields import InvalidArgument, timestamp_field

from preflight_clearinghouse.adapters import codec
from preflight_clearinghouse.config import ClearinghouseSettings
from preflight_clearinghouse.domain.errors import RefusedEvent, UnexplainedOutcome
from preflight_clearinghouse.domain.reviews.reports import SubmissionInfo
from preflight_clearinghouse.service_layer.reviews import ReviewService

SUBMISSIONS = EventRegistry(
    [intake_events.SubmissionReceived, intake_events.ReleasePlanChanged, intake_events.SubmissionWithdrawn]
)
JOBS = EventRegistry([benchmark_events.BenchmarkJobRequested])
RESULTS = EventRegistry(
    [
        benchmark_events.BenchmarkCompleted,
        benchmark_events.BenchmarkFailed,
        benchmark_events.BenchmarkPlanEnded,
    ]
)


def _event_key(attributes: EventAttributes) -> str:
    """What identifies an event for the idempotent consumer: CloudEvents ids are unique per source."""
    return f"{attributes.source}/{attributes.id}"


class Handlers:
    """The event handlers; each runs its unit of work in a worker thread."""

    def __init__(self, reviews: ReviewService) -> None:
        self._reviews = reviews

    async def submission(self, attributes: EventAttributes, payload: Message) -> None:
        if isinstance(payload, intake_events.SubmissionReceived):
            info = SubmissionInfo(
                submission_id=payload.submission_id,
                organisation=payload.organisation,
                model_name=payload.model.name,
                model_version=payload.model.version,
                share_identity=payload.consent.share_identity_with_operators,
                received_at=timestamp_field(payload, "received_at") or attributes.time,
            )
            await asyncio.to_thread(self._reviews.submission_received, _event_key(attributes), info)
        elif isinstance(payload, intake_events.ReleasePlanChanged):
            await asyncio.to_thread(
                self._reviews.plan_changed,
                _event_key(attributes),
                payload.submission_id,
                payload.organisation,
                timestamp_field(payload.access_window, "start"),
            )
        elif isinstance(payload, intake_events.SubmissionWithdrawn):
            await asyncio.to_thread(
                self._reviews.submission_withdrawn,
                _event_key(attributes),
                payload.submission_id,
                payload.organisation,
                payload.reason,
            )

    async def job_requested(self, attributes: EventAttributes, payload: Message) -> None:
        assert isinstance(payload, benchmark_events.BenchmarkJobRequested)
        if payload.planned_jobs < 1:
            raise PoisonEvent("planned_jobs must be at least 1")
        await asyncio.to_thread(
            self._reviews.job_requested,
            _event_key(attributes),
            payload.submission_id,
            codec.planned_job(payload),
        )

    async def job_ended(self, attributes: EventAttributes, payload: Message) -> None:
        if isinstance(payload, benchmark_events.BenchmarkPlanEnded):
            job_ids = [job.job_id for job in payload.jobs]
            await asyncio.to_thread(
                self._reviews.plan_ended, _event_key(attributes), payload.submission_id, job_ids
            )
            return
        assert isinstance(payload, benchmark_events.BenchmarkCompleted | benchmark_events.BenchmarkFailed)
        submission_id = payload.submission_id
        if isinstance(payload, benchmark_events.BenchmarkCompleted):
            job, candidates = codec.completed_job(payload)
            await asyncio.to_thread(
                self._reviews.job_ended, _event_key(attributes), submission_id, job, candidates
            )
        else:
            await asyncio.to_thread(
                self._reviews.job_ended, _event_key(attributes), submission_id, codec.failed_job(payload)
            )


def routes(settings: ClearinghouseSettings, reviews: ReviewService) -> list[Route]:
    """The clearinghouse's three consumed topics and their handlers."""
    handlers = Handlers(reviews)
    return [
        Route(topic, registry, _refusing(handler, settings.plan_wait))
        for topic, registry, handler in (
            (settings.topics.submissions, SUBMISSIONS, handlers.submission),
            (settings.topics.benchmark_jobs, JOBS, handlers.job_requested),
            (settings.topics.benchmark_results, RESULTS, handlers.job_ended),
        )
    ]


def _refusing(handler: EventHandler, plan_wait: float) -> EventHandler:
    """`handler`, with the review service's refusals made the consumer's: an event contradicting what
    is recorded is poison (DLQ); an outcome of a job not planned yet waits at most `plan_wait` s."""

    async def handle(attributes: EventAttributes, payload: Message) -> None:
        try:
            await handler(attributes, payload)
        except (RefusedEvent, InvalidArgument) as exc:
            raise PoisonEvent(str(exc)) from exc
        except UnexplainedOutcome as exc:
            raise AwaitingCause(str(exc), patience=plan_wait) from exc

    return handle
