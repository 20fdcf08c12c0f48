"""Events as the services publish them, for tests to start from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from preflight.intake.v1 import events_pb2 as intake_events
from preflight.intake.v1 import submission_pb2

from preflight_testkit.clock import ts


def submission_received(
    submission_id: str, organisation: str, window: tuple[datetime, datetime], **fields: Any
) -> intake_events.SubmissionReceived:
    """A SubmissionReceived of `organisation`'s model frontier 1.0 behind an endpoint, open for
    `window` (start, end); `fields` sets any other field of the event."""
    start, end = window
    return intake_events.SubmissionReceived(
        submission_id=submission_id,
        organisation=organisation,
        model=submission_pb2.ModelIdentity(developer=organisation, name="frontier", version="1.0"),
        access=submission_pb2.ModelAccess(
            endpoint=submission_pb2.EndpointAccess(base_url="https://model.example/v1", model_name="frontier")
        ),
        access_window=submission_pb2.AccessWindow(start=ts(start), end=ts(end)),
        **fields,
    )
