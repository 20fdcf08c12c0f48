"""Between `preflight.intake.v1` messages and the domain."""

from __future__ import annotations

import hashlib
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from preflight.common.v1 import common_pb2
from preflight.intake.v1 import intake_pb2, submission_pb2
from preflight_common.fields import timestamp
from preflight_common.pagetokens import page_tokens

from preflight_intake.domain.model import (
    AccessWindow,
    Contact,
    EndpointAccess,
    Status,
    StatusChange,
    Submission,
)
from preflight_intake.domain.ports import Cursor
from preflight_intake.domain.validation import (
    EndpointDraft,
    Instant,
    InvalidRequest,
    SubmissionDraft,
    Violation,
    WeightsDraft,
    WindowDraft,
)

_STATUS_PREFIX = "SUBMISSION_STATUS_"


def instant(message: object, field: str) -> Instant | None:
    """The (seconds, nanos) of a Timestamp field, or None when it is not set."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    ts: Timestamp = getattr(message, field)
    return (ts.seconds, ts.nanos)


def window_draft(message: submission_pb2.AccessWindow) -> WindowDraft:
    return WindowDraft(instant(message, "start"), instant(message, "end"))


def submission_draft(request: intake_pb2.SubmitModelRequest) -> SubmissionDraft:
    """The request as the domain validates it."""
    access: EndpointDraft | WeightsDraft | None = None
    match request.access.WhichOneof("kind"):
        case "endpoint":
            e = request.access.endpoint
            access = EndpointDraft(e.base_url, e.model_name, e.credential)
        case "weights":
            w = request.access.weights
            access = WeightsDraft(w.artifact_uri, w.sha256, w.format)
    return SubmissionDraft(
        developer=request.model.developer,
        name=request.model.name,
        version=request.model.version,
        planned_release=instant(request, "planned_release"),
        access=access,
        window=window_draft(request.access_window) if request.HasField("access_window") else None,
        contacts=tuple(Contact(c.name, c.email, c.role) for c in request.contacts),
        declared_capabilities=tuple(request.declared_capabilities),
        intended_use=request.intended_use,
        share_identity_with_operators=request.consent.share_identity_with_operators,
        idempotency_key=request.idempotency_key,
    )


def request_digest(request: intake_pb2.SubmitModelRequest) -> str:
    """SHA-256 of the request's content, without its idempotency key and without the credential.

    The credential is compared separately (decrypted, in constant time) so that
    no hash of a secret is ever stored.
    """
    body = intake_pb2.SubmitModelRequest()
    body.CopyFrom(request)
    body.ClearField("idempotency_key")
    if body.access.WhichOneof("kind") == "endpoint":
        body.access.endpoint.ClearField("credential")
    return hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()


def status_to_proto(status: Status) -> intake_pb2.SubmissionStatus.ValueType:
    return intake_pb2.SubmissionStatus.Value(_STATUS_PREFIX + status.value)


def statuses_from_proto(values: list[int]) -> list[Status]:
    """Decode a status filter; raises InvalidRequest naming each bad entry."""
    statuses: list[Status] = []
    violations: list[Violation] = []
    for i, value in enumerate(values):
        known = value in intake_pb2.SubmissionStatus.values()
        name = intake_pb2.SubmissionStatus.Name(intake_pb2.SubmissionStatus.ValueType(value)) if known else ""
        if not name or name == f"{_STATUS_PREFIX}UNSPECIFIED":
            violations.append(Violation(f"statuses[{i}]", f"{value} is not a submission status"))
        else:
            statuses.append(Status(name.removeprefix(_STATUS_PREFIX)))
    if violations:
        raise InvalidRequest(violations)
    return statuses


def submission_to_proto(submission: Submission) -> intake_pb2.Submission:
    """The submission as readers see it (an endpoint carries a credential reference, never the credential)."""
    access = submission_pb2.ModelAccess()
    if isinstance(submission.access, EndpointAccess):
        access.endpoint.CopyFrom(
            submission_pb2.EndpointAccess(
                base_url=submission.access.base_url,
                model_name=submission.access.model_name,
                credential_ref=submission.access.credential_ref,
            )
        )
    else:
        access.weights.CopyFrom(
            submission_pb2.WeightsAccess(
                artifact_uri=submission.access.artifact_uri,
                sha256=submission.access.sha256,
                format=submission.access.format,
            )
        )
    return intake_pb2.Submission(
        submission_id=submission.submission_id,
        organisation=submission.organisation,
        model=submission_pb2.ModelIdentity(
            developer=submission.model.developer, name=submission.model.name, version=submission.model.version
        ),
        planned_release=timestamp(submission.planned_release),
        review_deadline=timestamp(submission.review_deadline),
        access=access,
        access_window=window_to_proto(submission.access_window),
        contacts=[common_pb2.Contact(name=c.name, email=c.email, role=c.role) for c in submission.contacts],
        declared_capabilities=list(submission.declared_capabilities),
        intended_use=submission.intended_use,
        consent=submission_pb2.SharingConsent(
            share_identity_with_operators=submission.share_identity_with_operators
        ),
        flags=list(submission.flags),
        status=status_to_proto(submission.status),
        deadline_version=submission.deadline_version,
        received_at=timestamp(submission.received_at),
        updated_at=timestamp(submission.updated_at),
        submitted_by=submission.submitted_by,
    )


def window_to_proto(window: AccessWindow) -> submission_pb2.AccessWindow:
    return submission_pb2.AccessWindow(start=timestamp(window.start), end=timestamp(window.end))


def change_to_proto(change: StatusChange) -> intake_pb2.WatchSubmissionResponse:
    return intake_pb2.WatchSubmissionResponse(
        submission_id=change.submission_id,
        status=status_to_proto(change.status),
        previous_status=(
            status_to_proto(change.previous) if change.previous else intake_pb2.SUBMISSION_STATUS_UNSPECIFIED
        ),
        changed_at=timestamp(change.changed_at),
        sequence=change.sequence,
        terminal=change.status.terminal,
    )


_LIST_SCOPE = "preflight.intake.v1.IntakeService/ListSubmissions"


def encode_page_token(cursor: Cursor | None) -> str:
    if cursor is None:
        return ""
    return page_tokens().encode(_LIST_SCOPE, [cursor.received_at.isoformat(), cursor.submission_id])


def decode_page_token(token: str) -> Cursor | None:
    """The cursor in a page token; raises InvalidArgument on a token this server did not issue."""
    decoded = page_tokens().decode(_LIST_SCOPE, token)
    if decoded is None:
        return None
    received_at, submission_id = decoded
    return Cursor(datetime.fromisoformat(str(received_at)), str(submission_id))
