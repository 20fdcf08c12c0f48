"""Domain events → CloudEvents records for the outbox.

ReviewReportReady goes to the reviews topic keyed by submission id, with the
event id `report/<report id>`; FindingPublished / FindingUpdated go to the
findings topic keyed by finding id, with the event id
`finding/<finding id>/<revision>`; AuditCheckpoint goes to the audit
checkpoints topic, all keyed `audit-log` (one partition holds them in order),
with the event id `audit-checkpoint/<sequence>/<time>`. Ids are deterministic,
so a re-enqueued event keeps its id and consumers apply it once. Records carry
the current trace context (`traceparent`).
"""

from __future__ import annotations

from preflight.clearinghouse.v1 import events_pb2 as events
from preflight_common.config import Topics
from preflight_common.envelope import KafkaRecord, encode_event
from preflight_common.telemetry import inject_headers

from preflight_clearinghouse.adapters.codec import checkpoint_to_proto, notice_to_proto, report_ready
from preflight_clearinghouse.domain.events import (
    CheckpointSigned,
    DomainEvent,
    FindingNoticeEvent,
    ReportIssued,
)

CHECKPOINT_KEY = "audit-log"


class EventEncoder:
    """Encodes the clearinghouse's domain events for the configured topics."""

    def __init__(self, topics: Topics, source: str) -> None:
        self._topics = topics
        self._source = source

    def __call__(self, event: DomainEvent) -> tuple[str, KafkaRecord]:
        if isinstance(event, ReportIssued):
            report = event.report
            return self._topics.reviews, encode_event(
                report_ready(report),
                source=self._source,
                subject=report.submission_id,
                event_id=f"report/{report.report_id}",
                time=report.issued_at,
                trace_headers=inject_headers(),
            )
        if isinstance(event, CheckpointSigned):
            checkpoint = event.signed.checkpoint
            return self._topics.audit_checkpoints, encode_event(
                checkpoint_to_proto(event.signed),
                source=self._source,
                subject=CHECKPOINT_KEY,
                event_id=f"audit-checkpoint/{checkpoint.seq}/{checkpoint.at.isoformat()}",
                time=checkpoint.at,
                trace_headers=inject_headers(),
            )
        return self._topics.findings, self._finding(event)

    def _finding(self, event: FindingNoticeEvent) -> KafkaRecord:
        notice = notice_to_proto(event.notice)
        payload = (
            events.FindingPublished(finding=notice)
            if event.published
            else events.FindingUpdated(finding=notice)
        )
        return encode_event(
            payload,
            source=self._source,
            subject=event.notice.finding_id,
            event_id=f"finding/{event.notice.finding_id}/{event.notice.revision}",
            time=event.notice.updated_at,
            trace_headers=inject_headers(),
        )
