"""Emitting an alert: record it, queue it for the alerts topic, route it to receivers — one transaction."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime

from opentelemetry import trace
from preflight_common.config import Topics
from preflight_common.envelope import KafkaRecord, encode_event
from preflight_common.outbox import enqueue
from preflight_common.telemetry import SUBMISSION_ID, context_of, inject_headers
from sqlalchemy import Connection

from preflight_notifier.adapters import store
from preflight_notifier.adapters import tables as t
from preflight_notifier.adapters.codec import alert_to_proto
from preflight_notifier.domain.alerts import Alert
from preflight_notifier.domain.routing import RoutingConfig

AUDIENCE_HEADER = "ce_audience"

tracer = trace.get_tracer(__name__)


def topic_record(alert: Alert, source: str) -> KafkaRecord:
    """The alert's CloudEvent: id = alert id, key = subject, the lab's contacts left out.

    The `ce_audience` extension attribute lists the audience tokens
    (`org:…`, `sector:…` when the TLP allows, `lab:…`, `reviewers`) separated
    by spaces, so subscribers filter without decoding the payload.
    """
    record = encode_event(
        alert_to_proto(alert, with_contacts=False),
        source=source,
        subject=alert.subject_id,
        event_id=alert.alert_id,
        time=alert.fired_at,
        trace_headers=inject_headers(),
    )
    headers = [*record.headers, (AUDIENCE_HEADER, " ".join(alert.audience_tokens()).encode())]
    return KafkaRecord(record.key, record.value, headers, record.attributes)


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
    """Where fired alerts go (see `emit`)."""

    def __init__(self, routing: RoutingConfig, topics: Topics, source: str) -> None:
        self._routing = routing
        self._topics = topics
        self._source = source

    def topic_of(self, alert: Alert) -> str:
        """Review alerts name a lab, so they never go to the operators' finding-alert topic."""
        return self._topics.review_alerts if alert.kind.is_review else self._topics.alerts

    def emit(
        self,
        conn: Connection,
        alerts: Sequence[Alert],
        now: datetime,
        traceparents: Mapping[str, str] | None = None,
    ) -> list[Alert]:
        """In the caller's transaction: record the alerts, put them in the outbox, add their notifications.

        Returns the alerts emitted now. An alert whose id was already emitted
        is skipped, writing nothing: the deterministic id makes emitting idempotent.
        Each alert emitted gets its span (`alert_span`), in the trace `traceparents`
        gives for its deadline id, else in the current one.
        """
        fresh = store.insert_alerts(conn, alerts)
        for alert in fresh:
            traceparent = (traceparents or {}).get(alert.kind.deadline_id(alert.subject_id))
            with alert_span(alert, traceparent):
                enqueue(conn, t.outbox, self.topic_of(alert), topic_record(alert, self._source))
        store.add_notifications(conn, [n for a in fresh for n in self._routing.notifications(a)], now)
        return fresh
