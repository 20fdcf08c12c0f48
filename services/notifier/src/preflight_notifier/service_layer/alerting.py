"""Emitting an alert: record it, queue its records for the alert topics, route it to receivers — one
transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime

from opentelemetry import trace
from preflight_common import bus
from preflight_common.config import Topics
from preflight_common.envelope import KafkaRecord
from preflight_common.telemetry import SUBMISSION_ID, context_of

from preflight_notifier.domain.alerts import Alert
from preflight_notifier.domain.audience import Viewer, ViewerRole, sector_audience
from preflight_notifier.domain.ports import AlertEncoder, Store
from preflight_notifier.domain.routing import RoutingConfig

RECORD_ID_NAMESPACE = uuid.UUID("3d0c6a57-2f4e-5b8a-9c1d-7e6f5a4b3c2d")

tracer = trace.get_tracer(__name__)
log = logging.getLogger(__name__)


def record_id(alert_id: str, topic: str) -> str:
    """The CloudEvents id of an alert's record on one topic: the same on every redelivery."""
    return str(uuid.uuid5(RECORD_ID_NAMESPACE, f"{alert_id}|{topic}"))


@contextmanager
def alert_span(alert: Alert, traceparent: str | None) -> Iterator[trace.Span]:
    """The current span `alert <kind> <threshold>`, a child of `traceparent` (else of the current span)."""
    subject = SUBMISSION_ID if alert.kind.is_review else "preflight.finding_id"
    attributes = {subject: alert.subject_id, "preflight.alert_id": alert.alert_id}
    parent = context_of(traceparent) if traceparent else None
    with tracer.start_as_current_span(
        f"alert {alert.kind.value} {alert.threshold}", context=parent, attributes=attributes
    ) as span:
        yield span


class AlertSink:
    """Where fired alerts go (see `emit`); `encode` makes an alert's record on a topic."""

    def __init__(
        self,
        routing: RoutingConfig,
        topics: Topics,
        source: str,
        participants: bus.Participants,
        encode: AlertEncoder,
    ) -> None:
        self._routing = routing
        self._topics = topics
        self._source = source
        self._encode = encode
        self._participants = participants
        self._sectors = frozenset(participants.sectors())

    def records(self, alert: Alert) -> list[tuple[str, KafkaRecord]]:
        """The records that publish `alert`, each with its topic.

        A review alert names a lab: one record (id = alert id) on the review-alerts topic, never
        on an operator's. A finding alert: one record on the topic of each registered
        organisation in its audience and, when its TLP allows sector-wide sharing, one on the
        topic of each registered sector in its audience; each record's payload names its
        recipient only, and its id is derived from (alert id, topic). An audience nobody
        registered has no topic and gets nothing (deny by default).
        """
        if alert.kind.is_review:
            record = self._encode(alert, source=self._source, event_id=alert.alert_id)
            return [(self._topics.review_alerts, record)]
        addressed: list[tuple[str, Alert]] = []
        for organisation in sorted(alert.audience.organisations):
            if self._participants.organisation(organisation) is None:
                log.info(
                    "alert %s: organisation %r is not registered: no record", alert.alert_id, organisation
                )
                continue
            topic = bus.org_alert_topic(self._topics, organisation)
            addressed.append((topic, alert.seen_by(Viewer(ViewerRole.OPERATOR, organisation))))
        for sector in sorted(sector_audience(alert.audience, alert.tlp)):
            if sector not in self._sectors:
                log.info("alert %s: sector %r is not registered: no record", alert.alert_id, sector)
                continue
            reader = Viewer(ViewerRole.OPERATOR, sectors=frozenset({sector}))
            addressed.append((bus.sector_alert_topic(self._topics, sector), alert.seen_by(reader)))
        return [
            (topic, self._encode(copy, source=self._source, event_id=record_id(alert.alert_id, topic)))
            for topic, copy in addressed
        ]

    def emit(
        self,
        store: Store,
        alerts: Sequence[Alert],
        now: datetime,
        traceparents: Mapping[str, str] | None = None,
    ) -> list[Alert]:
        """In the caller's transaction: record the alerts, put their records (`records`) in the outbox,
        add their notifications.

        Returns the alerts emitted now. An alert whose id was already emitted
        is skipped, writing nothing: the deterministic id makes emitting idempotent.
        Each alert emitted gets its span (`alert_span`), in the trace `traceparents`
        gives for its deadline id, else in the current one.
        """
        fresh = store.insert_alerts(alerts)
        for alert in fresh:
            traceparent = (traceparents or {}).get(alert.kind.deadline_id(alert.subject_id))
            with alert_span(alert, traceparent):
                for topic, record in self.records(alert):
                    store.enqueue(topic, record)
        store.add_notifications([n for a in fresh for n in self._routing.notifications(a)], now)
        return fresh
