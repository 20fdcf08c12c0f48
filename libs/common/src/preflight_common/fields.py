"""What every Preflight gRPC request is held to, and the field checks handlers share.

`build_server` checks every request before its handler runs: each string (and bytes)
field, however deeply nested or repeated, is at most `DEFAULT_STRING_LIMIT` characters
unless `STRING_LIMITS` names a larger bound for it (by the field's full proto name). A
longer field ends the call with INVALID_ARGUMENT naming the field
(`matchers[0].value`), before the service spends any work on it. The limits are
backstops: a service may hold a field to a tighter rule of its own.

A client building a request from text it does not control fits it with `clip_strings`.

A handler raises `InvalidArgument` to refuse fields from wherever it detects them
(timestamps, page tokens); the server answers INVALID_ARGUMENT with one
`google.rpc.BadRequest` field violation per entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp


class InvalidArgument(Exception):
    """A request the server refuses with INVALID_ARGUMENT: `(field, description)` pairs."""

    def __init__(self, violations: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {description}" for name, description in violations))
        self.violations = tuple(violations)


DEFAULT_STRING_LIMIT: Final = 256
"""Characters of any string field (bytes of a bytes field) that `STRING_LIMITS` does not name."""

TEXT_LIMIT: Final = 4 * 1024
"""Titles, reasons, comments, notes, credentials, file paths, product identifiers."""

URI_LIMIT: Final = 2048
DOCUMENT_LIMIT: Final = 64 * 1024
"""Descriptions, report notes, error messages, intended use."""

EVIDENCE_LIMIT: Final = 128 * 1024
ATTACHMENT_LIMIT: Final = 3 * 1024 * 1024
"""An evidence file's bytes: with the rest of its message, under gRPC's default 4 MiB message
limit, which Preflight's servers and clients keep."""
IMPORTED_DOCUMENT_LIMIT: Final = 1_000_000
"""A CSAF or OSV document imported as a finding (bytes of UTF-8 JSON)."""
MATCHER_LIMIT: Final = 1024
"""A silence matcher's value (a regular expression for `=~` and `!~`)."""

PAGE_TOKEN_LIMIT: Final = 1024

_TEXT = (
    "preflight.identity.v1.CreateTokenRequest.description",
    "preflight.intake.v1.EndpointAccessSpec.credential",
    "preflight.intake.v1.UpdateReleasePlanRequest.reason",
    "preflight.intake.v1.WithdrawSubmissionRequest.reason",
    "preflight.benchmark.v1.TaskScore.task",
    "preflight.benchmark.v1.CandidateFinding.title",
    "preflight.benchmark.v1.CandidateFinding.affected_product",
    "preflight.benchmark.v1.CandidateFinding.affected_file",
    "preflight.benchmark.v1.CandidateFinding.affected_function",
    "preflight.clearinghouse.v1.ReportFindingRequest.title",
    "preflight.clearinghouse.v1.AffectedProduct.purl",
    "preflight.clearinghouse.v1.AffectedProduct.version_range",
    "preflight.clearinghouse.v1.AffectedProduct.cpe",
    "preflight.clearinghouse.v1.QueryFindingsRequest.purl",
    "preflight.clearinghouse.v1.CodeLocation.file",
    "preflight.clearinghouse.v1.CodeLocation.function",
    "preflight.clearinghouse.v1.TransitionFindingRequest.reason",
    "preflight.clearinghouse.v1.UpdateFindingAssessmentRequest.reason",
    "preflight.clearinghouse.v1.SetFindingSharingRequest.reason",
    "preflight.clearinghouse.v1.SetFindingAliasesRequest.reason",
    "preflight.clearinghouse.v1.SetFindingReferencesRequest.reason",
    "preflight.clearinghouse.v1.SetFindingCreditsRequest.reason",
    "preflight.clearinghouse.v1.LinkFindingRequest.reason",
    "preflight.clearinghouse.v1.AssignFindingRequest.reason",
    "preflight.clearinghouse.v1.SetFindingSsvcRequest.reason",
    "preflight.clearinghouse.v1.SetPatchStatusRequest.note",
    "preflight.notifier.v1.AcknowledgeAlertRequest.comment",
    "preflight.notifier.v1.CreateSilenceRequest.comment",
)
_URI = (
    "preflight.intake.v1.EndpointAccessSpec.base_url",
    "preflight.intake.v1.WeightsAccess.artifact_uri",
    "preflight.clearinghouse.v1.FindingReference.url",
)
_DOCUMENT = (
    # A job's eval logs: one URI per task of the suite, comma-separated.
    "preflight.benchmark.v1.BenchmarkCompleted.eval_log_uri",
    "preflight.benchmark.v1.BenchmarkFailed.eval_log_uri",
    "preflight.intake.v1.SubmitModelRequest.intended_use",
    "preflight.benchmark.v1.CandidateFinding.description",
    "preflight.benchmark.v1.BenchmarkFailed.message",
    "preflight.clearinghouse.v1.ReportFindingRequest.description",
    "preflight.clearinghouse.v1.AddReportNoteRequest.text",
    "preflight.clearinghouse.v1.SignOffReportRequest.comment",
    "preflight.clearinghouse.v1.AddFindingCommentRequest.body",
    "preflight.clearinghouse.v1.EditFindingCommentRequest.body",
    "preflight.clearinghouse.v1.ReissueReportRequest.reason",
    # A signed report body carrying its audit checkpoint, or an AuditCheckpoint's body.
    "preflight.clearinghouse.v1.VerifyAuditLogRequest.checkpoint_body",
    # An OpenID Connect ID token: a signed JWT, larger with every group claim it carries.
    "preflight.intake.v1.ExchangeIdTokenRequest.id_token",
)
_EVIDENCE = (
    "preflight.benchmark.v1.CandidateFinding.evidence",
    "preflight.clearinghouse.v1.ReportFindingRequest.evidence",
)
STRING_LIMITS: Final[Mapping[str, int]] = {
    **dict.fromkeys(_TEXT, TEXT_LIMIT),
    **dict.fromkeys(_URI, URI_LIMIT),
    **dict.fromkeys(_DOCUMENT, DOCUMENT_LIMIT),
    **dict.fromkeys(_EVIDENCE, EVIDENCE_LIMIT),
    "preflight.notifier.v1.Matcher.value": MATCHER_LIMIT,
    "preflight.clearinghouse.v1.ImportFindingRequest.document": IMPORTED_DOCUMENT_LIMIT,
    "preflight.clearinghouse.v1.AddFindingAttachmentRequest.content": ATTACHMENT_LIMIT,
}
"""The string fields of Preflight's requests allowed more than `DEFAULT_STRING_LIMIT`, by full name
(besides every List request's `page_token`, held to `PAGE_TOKEN_LIMIT`)."""

_TEXT_TYPES = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)


def string_violations(message: Message) -> list[tuple[str, str]]:
    """A violation for every string or bytes field of `message` longer than its limit."""
    return [(path, f"at most {limit} characters") for path, limit in _too_long(message, "")]


def clip_strings(message: Message) -> None:
    """Truncate, in place, every string or bytes field of `message` to its limit: for a client
    building a request from text it does not control (e.g. a model's output in a finding)."""
    for field, value in message.ListFields():
        if field.type in _TEXT_TYPES:
            limit = _limit(field)
            if field.is_repeated:
                clipped = [item[:limit] for item in value]
                del value[:]
                value.extend(clipped)
            elif len(value) > limit:
                setattr(message, field.name, value[:limit])
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else [value]:
                clip_strings(item)


def _limit(field: FieldDescriptor) -> int:
    if field.name == "page_token":  # every List RPC's sealed cursor, whichever RPC it belongs to
        return PAGE_TOKEN_LIMIT
    return STRING_LIMITS.get(field.full_name, DEFAULT_STRING_LIMIT)


def _too_long(message: Message, prefix: str) -> Iterator[tuple[str, int]]:
    """(path, limit) of each string or bytes field over its limit. Every request goes through here:
    a field's path is built only when the field is over."""
    for field, value in message.ListFields():
        if field.type in _TEXT_TYPES:
            limit = _limit(field)
            if field.is_repeated:
                yield from (
                    (f"{prefix}{field.name}[{i}]", limit) for i, item in enumerate(value) if len(item) > limit
                )
            elif len(value) > limit:
                yield f"{prefix}{field.name}", limit
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.is_repeated:
                for i, item in enumerate(value):
                    yield from _too_long(item, f"{prefix}{field.name}[{i}].")
            else:
                yield from _too_long(value, f"{prefix}{field.name}.")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(moment: datetime) -> Timestamp:
    """`moment` (a naive one is local time) as a Timestamp, exactly as `Timestamp.FromDatetime`
    makes it (seconds and non-negative nanos), by integer arithmetic: responses and events carry
    several, and `FromDatetime` is pure Python (about three times slower)."""
    since = moment.astimezone(UTC) - _EPOCH
    return Timestamp(seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000)


def timestamp_field(message: Message, field: str, *, name: str | None = None) -> datetime | None:
    """The aware UTC datetime in a Timestamp field, or None when it is not set.

    A timestamp outside 0001-01-01..9999-12-31 or with nanos outside 0..999,999,999 raises
    `InvalidArgument` naming `name` (default: `field`).
    """
    if not message.HasField(field):
        return None
    ts: Timestamp = getattr(message, field)
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(
            [(name or field, "is not a valid timestamp (years 1 to 9999, nanos 0 to 999999999)")]
        ) from None
