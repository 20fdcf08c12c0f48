"""Consumers: the notifier learns deadlines from the submissions, reviews and findings topics.

- `preflight.submissions.v1`: SubmissionReceived (schedule the review deadline),
  ReleasePlanChanged (reschedule it), SubmissionWithdrawn (cancel it);
- `preflight.reviews.v1`: ReviewReportReady (the review deadline is met);
- `preflight.findings.v1`: FindingPublished, FindingUpdated (embargo end, remediation due).

Each event is applied once (its `ce_id` is claimed in the transaction that
applies it) and its offset is committed only after that transaction (see
`preflight_common.consumer`). An event that can never be applied goes to the
topic's `.dlq` twin.
"""

from __future__ import annotations

import asyncio

from google.protobuf.message import Message
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.intake.v1 import events_pb2 as intake_events
from preflight_common.consumer import EventHandler, PoisonEvent, Route
from preflight_common.envelope import EventAttributes, EventRegistry

from preflight_notifier.config import NotifierSettings
from preflight_notifier.domain.model import BadEvent
from preflight_notifier.service_layer.deadlines import DeadlineKeeper

SUBMISSIONS = EventRegistry(
    [intake_events.SubmissionReceived, intake_events.ReleasePlanChanged, intake_events.SubmissionWithdrawn]
)
REVIEWS = EventRegistry([clearinghouse_events.ReviewReportReady])
FINDINGS = EventRegistry([clearinghouse_events.FindingPublished, clearinghouse_events.FindingUpdated])


def handler_for(keeper: DeadlineKeeper) -> EventHandler:
    """The event handler: applies the event in a worker thread; a malformed one is poison (DLQ)."""

    async def handle(attributes: EventAttributes, payload: Message) -> None:
        try:
            await asyncio.to_thread(keeper.apply, attributes.id, payload)
        except BadEvent as exc:
            raise PoisonEvent(str(exc)) from exc

    return handle


def routes(settings: NotifierSettings, keeper: DeadlineKeeper) -> list[Route]:
    """The notifier's three consumed topics, all applied by the deadline keeper."""
    handle = handler_for(keeper)
    return [
        Route(settings.topics.submissions, SUBMISSIONS, handle),
        Route(settings.topics.reviews, REVIEWS, handle),
        Route(settings.topics.findings, FINDINGS, handle),
    ]
