"""Domain events as CloudEvents records for `preflight.submissions.v1`.

Payloads carry a credential reference, never the credential. Event ids are
derived from the submission and the change (UUIDv5), so the same change always
has the same `ce_id`. The trace context current when the change is made is
stored with the record, so the relay's later publication continues the
submitter's trace.
"""

from __future__ import annotations

import uuid

from google.protobuf.message import Message
from preflight.intake.v1 import events_pb2
from preflight_common.envelope import KafkaRecord, encode_event
from preflight_common.fields import timestamp
from preflight_common.telemetry import inject_headers

from preflight_intake.adapters.codec import submission_to_proto, window_to_proto
from preflight_intake.domain.events import Event, ReleasePlanChanged, SubmissionReceived, SubmissionWithdrawn

_NAMESPACE = uuid.UUID("6f3b1c1e-63a4-4a53-9d0c-6b8f6f1f2a10")


class SubmissionEventEncoder:
    """Turns a domain event into (topic, record)."""

    def __init__(self, *, source: str, topic: str) -> None:
        self._source = source
        self._topic = topic

    def __call__(self, event: Event) -> tuple[str, KafkaRecord]:
        payload, change = _payload(event)
        submission_id = event.submission.submission_id
        record = encode_event(
            payload,
            source=self._source,
            subject=submission_id,
            event_id=str(uuid.uuid5(_NAMESPACE, f"{submission_id}/{change}")),
            time=event.submission.updated_at,
            trace_headers=inject_headers(),
        )
        return self._topic, record


def _payload(event: Event) -> tuple[Message, str]:
    submission = event.submission
    match event:
        case SubmissionReceived():
            view = submission_to_proto(submission)
            return (
                events_pb2.SubmissionReceived(
                    submission_id=submission.submission_id,
                    organisation=submission.organisation,
                    model=view.model,
                    planned_release=view.planned_release,
                    review_deadline=view.review_deadline,
                    access=view.access,
                    access_window=view.access_window,
                    contacts=view.contacts,
                    declared_capabilities=view.declared_capabilities,
                    intended_use=view.intended_use,
                    consent=view.consent,
                    flags=view.flags,
                    received_at=view.received_at,
                    deadline_version=submission.deadline_version,
                ),
                "received",
            )
        case ReleasePlanChanged():
            return (
                events_pb2.ReleasePlanChanged(
                    submission_id=submission.submission_id,
                    planned_release=timestamp(submission.planned_release),
                    previous_planned_release=timestamp(event.previous_planned_release),
                    review_deadline=timestamp(submission.review_deadline),
                    access_window=window_to_proto(submission.access_window),
                    deadline_version=submission.deadline_version,
                    reason=event.reason,
                    organisation=submission.organisation,
                ),
                f"release-plan/{submission.deadline_version}",
            )
        case SubmissionWithdrawn():
            return (
                events_pb2.SubmissionWithdrawn(
                    submission_id=submission.submission_id,
                    reason=event.reason,
                    withdrawn_at=timestamp(submission.updated_at),
                    organisation=submission.organisation,
                ),
                "withdrawn",
            )
