"""`preflight.clearinghouse.v1.ClearinghouseService` over the review and findings use cases.

Thin and table-driven: `ClearinghouseServicer` lists every unary RPC once (`Unary`: the request
parsed into the use case's arguments, the use case, the answer encoded), and each runs the same
way: as the authenticated principal, parse and use case in a worker thread (`run_as_caller`), the
answer encoded once the use case returned. StreamFindings, the one streaming RPC, runs each of its
reads the same way. Domain errors map to status codes in one place (`STATUS_OF`): InvalidInput →
INVALID_ARGUMENT (with `google.rpc.BadRequest` field violations), NotFound → NOT_FOUND,
PermissionDenied → PERMISSION_DENIED, PreconditionFailed → FAILED_PRECONDITION, QuotaExceeded →
RESOURCE_EXHAUSTED, RevisionConflict → ABORTED; anything else is the server's (libs/common
`grpcserver`: INVALID_ARGUMENT for `fields.InvalidArgument`, UNAVAILABLE, INTERNAL).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, Protocol, TypeVar, TypeVarTuple, overload

import grpc
from google.protobuf.message import Message
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import clearinghouse_pb2_grpc as pb_grpc
from preflight.clearinghouse.v1 import events_pb2
from preflight_common.auth import Principal, current_principal
from preflight_common.fields import timestamp, timestamp_field
from preflight_common.grpcserver import invalid_argument

from preflight_clearinghouse.adapters import codec
from preflight_clearinghouse.adapters.signing import ALGORITHM, public_key_pem
from preflight_clearinghouse.domain.checks import MAX_PAGE
from preflight_clearinghouse.domain.errors import (
    FieldViolation,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    QuotaExceeded,
    RevisionConflict,
)
from preflight_clearinghouse.domain.findings.exports import ExportDocument, ExportFormat
from preflight_clearinghouse.domain.findings.finding import Finding, LinkKind
from preflight_clearinghouse.domain.findings.queries import FindingQuery
from preflight_clearinghouse.domain.findings.workflow import REPORT_TRANSITIONS, FindingState
from preflight_clearinghouse.domain.sharing import PRIVILEGED, Role, Viewer
from preflight_clearinghouse.service_layer.findings import FindingRegistry
from preflight_clearinghouse.service_layer.reviews import AuditCheckpoints, ReviewService

Q = TypeVar("Q", bound=Message)
R = TypeVar("R", bound=Message)
A = TypeVar("A")
T = TypeVar("T")
Args = TypeVarTuple("Args")
Q_contra = TypeVar("Q_contra", bound=Message, contravariant=True)
R_co = TypeVar("R_co", bound=Message, covariant=True)

STATUS_OF: Mapping[type[Exception], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    PreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
    QuotaExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    RevisionConflict: grpc.StatusCode.ABORTED,
}
"""The status code of each domain error but InvalidInput (INVALID_ARGUMENT naming its fields)."""

DOMAIN_ERRORS: tuple[type[Exception], ...] = (InvalidInput, *STATUS_OF)


def viewer_of(principal: Principal) -> Viewer:
    """The sharing policy's view of an authenticated principal."""
    return Viewer(
        principal.principal_id, Role(principal.role.value), principal.organisation, principal.sectors
    )


def required_id(value: str, field: str) -> str:
    """A non-blank identifier; raises InvalidInput naming `field`."""
    if not value.strip():
        raise InvalidInput([FieldViolation(field, "is required")])
    if len(value) > 200:
        raise InvalidInput([FieldViolation(field, "at most 200 characters")])
    return value.strip()


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext) -> NoReturn:
    """End the call with the status code of the domain error `exc` (the one place that maps them)."""
    if isinstance(exc, InvalidInput):
        await invalid_argument(context, [(v.field, v.description) for v in exc.violations])
    for kind, code in STATUS_OF.items():
        if isinstance(exc, kind):
            await context.abort(code, str(exc))
    raise exc


async def run_as_caller(context: grpc.aio.ServicerContext, work: Callable[[Viewer], T]) -> T:
    """`work` as the authenticated caller, in a worker thread; a domain error ends the call with its
    status code."""
    viewer = viewer_of(current_principal())
    try:
        return await asyncio.to_thread(work, viewer)
    except DOMAIN_ERRORS as exc:
        await _abort_for(exc, context)


@dataclass(frozen=True)
class UseCases:
    """The use cases the API serves, as its RPCs call them."""

    reviews: ReviewService
    findings: FindingRegistry
    checkpoints: AuditCheckpoints

    def signing_key(self, _viewer: Viewer, key_id: str) -> tuple[str, bytes]:
        return self.reviews.signing_key(key_id)

    def finding(self, viewer: Viewer, finding_id: str) -> tuple[Finding, frozenset[FindingState]]:
        """The finding as `viewer` sees it, and the states the workflow lets it move to next
        (reviewers and admins only)."""
        finding = self.findings.get(viewer, finding_id)
        return finding, REPORT_TRANSITIONS[finding.state] if viewer.role in PRIVILEGED else frozenset()

    def export(
        self, viewer: Viewer, export_format: ExportFormat | None, finding_id: str
    ) -> tuple[ExportFormat, ExportDocument]:
        document = self.findings.export(viewer, finding_id, export_format)
        assert export_format is not None  # the registry refuses a request without one
        return export_format, document


class Handler(Protocol[Q_contra, R_co]):
    """A unary RPC's handler, as grpc calls it."""

    def __call__(self, request: Q_contra, context: grpc.aio.ServicerContext) -> Awaitable[R_co]: ...


@dataclass(frozen=True)
class Unary(Generic[Q, *Args, A, R]):
    """One unary RPC of `ClearinghouseServicer`: its request type (which types the parser), how a
    request becomes the use case's arguments after the caller (a refusal is InvalidInput or
    `fields.InvalidArgument` naming the field), the use case, and how its answer becomes the
    response. Read on a servicer, it is the RPC's handler."""

    request: type[Q]
    parse: Callable[[Q], tuple[*Args]]
    use: Callable[[UseCases], Callable[[Viewer, *Args], A]]
    encode: Callable[[A], R]

    @overload
    def __get__(self, servicer: None, owner: type) -> Unary[Q, *Args, A, R]: ...

    @overload
    def __get__(self, servicer: ClearinghouseServicer, owner: type | None = None) -> Handler[Q, R]: ...

    def __get__(
        self, servicer: ClearinghouseServicer | None, owner: type | None = None
    ) -> Handler[Q, R] | Unary[Q, *Args, A, R]:
        if servicer is None:
            return self
        use = self.use(servicer.use_cases)

        async def handle(request: Q, context: grpc.aio.ServicerContext) -> R:
            return self.encode(await run_as_caller(context, lambda viewer: use(viewer, *self.parse(request))))

        return handle


def _finding(response: Callable[..., R]) -> Callable[[Finding], R]:
    """The encoder of a response carrying the changed finding."""
    return lambda finding: response(finding=codec.finding_to_proto(finding))


def _stored(response: Callable[..., R]) -> Callable[[tuple[Finding, bool]], R]:
    """The encoder of a response carrying a stored finding and whether it was linked as a duplicate."""
    return lambda stored: response(finding=codec.finding_to_proto(stored[0]), duplicate=stored[1])


def _page(
    response: Callable[..., R], items: str, encode: Callable[[Any], Message]
) -> Callable[[tuple[list[Any], str]], R]:
    """The encoder of a page (items, next page token) whose items go in the field `items`."""
    return lambda page: response(**{items: [encode(item) for item in page[0]]}, next_page_token=page[1])


def _finding_id(request: Any) -> str:
    return required_id(request.finding_id, "finding_id")


def _link_arguments(request: pb.LinkFindingRequest) -> tuple[str, LinkKind, str, str]:
    """(finding id, kind, target finding id, reason); the kind is checked first (InvalidInput naming
    `kind` when the request names none)."""
    kind = codec.link_kind_from_proto(request.kind)
    if kind is None:
        raise InvalidInput([FieldViolation("kind", "choose DUPLICATE_OF, SUBSUMED_BY or MERGED_INTO")])
    return (
        _finding_id(request),
        kind,
        required_id(request.target_finding_id, "target_finding_id"),
        request.reason,
    )


class ClearinghouseServicer(pb_grpc.ClearinghouseServiceServicer):
    """The gRPC API of the clearinghouse: the table of its unary RPCs, and StreamFindings."""

    def __init__(
        self,
        reviews: ReviewService,
        registry: FindingRegistry,
        checkpoints: AuditCheckpoints,
        *,
        stream_poll_interval: float = 0.5,
    ) -> None:
        self.use_cases = UseCases(reviews, registry, checkpoints)
        self._poll = stream_poll_interval

    # --- reports --------------------------------------------------------------------------------

    GetReport = Unary(
        pb.GetReportRequest,
        lambda r: (r.report_id, r.submission_id, r.version),
        lambda u: u.reviews.get_report,
        lambda view: pb.GetReportResponse(report=codec.report_to_proto(view)),
    )
    ListReports = Unary(
        pb.ListReportsRequest,
        lambda r: (r.page_size, r.page_token, r.all_versions),
        lambda u: u.reviews.list_reports,
        _page(pb.ListReportsResponse, "reports", codec.report_to_proto),
    )
    AddReportNote = Unary(
        pb.AddReportNoteRequest,
        lambda r: (required_id(r.report_id, "report_id"), r.text),
        lambda u: u.reviews.add_note,
        lambda note: pb.AddReportNoteResponse(
            note=pb.ReportNote(
                note_id=note.note_id,
                author_id=note.author_id,
                text=note.text,
                created_at=timestamp(note.created_at),
            )
        ),
    )
    SignOffReport = Unary(
        pb.SignOffReportRequest,
        lambda r: (required_id(r.report_id, "report_id"), r.comment),
        lambda u: u.reviews.sign_off,
        lambda sign_off: pb.SignOffReportResponse(
            sign_off=pb.ReportSignOff(
                reviewer_id=sign_off.reviewer_id,
                signed_off_at=timestamp(sign_off.signed_off_at),
                comment=sign_off.comment,
            )
        ),
    )
    ReissueReport = Unary(
        pb.ReissueReportRequest,
        lambda r: (r.submission_id, r.reason),
        lambda u: u.reviews.reissue,
        lambda view: pb.ReissueReportResponse(report=codec.report_to_proto(view)),
    )
    GetSigningKey = Unary(
        pb.GetSigningKeyRequest,
        lambda r: (r.key_id,),
        lambda u: u.signing_key,
        lambda key: pb.GetSigningKeyResponse(
            key_id=key[0], algorithm=ALGORITHM, public_key=key[1], public_key_pem=public_key_pem(key[1])
        ),
    )
    VerifyAuditLog = Unary(
        pb.VerifyAuditLogRequest,
        lambda r: (r.checkpoint_body, r.checkpoint_signature),
        lambda u: u.checkpoints.verify,
        lambda verdict: pb.VerifyAuditLogResponse(
            ok=verdict.ok,
            entries=verdict.entries,
            first_bad_sequence=verdict.first_bad_seq,
            problem=verdict.problem,
            checkpoint_sequence=verdict.checkpoint_seq,
        ),
    )

    # --- findings: intake and reads -------------------------------------------------------------

    ReportFinding = Unary(
        pb.ReportFindingRequest,
        lambda r: (codec.finding_input(r),),
        lambda u: u.findings.report,
        _stored(pb.ReportFindingResponse),
    )
    ImportFinding = Unary(
        pb.ImportFindingRequest,
        lambda r: (r.document, codec.export_format_from_proto(r.format)),
        lambda u: u.findings.import_document,
        _stored(pb.ImportFindingResponse),
    )
    GetFinding = Unary(
        pb.GetFindingRequest,
        lambda r: (_finding_id(r),),
        lambda u: u.finding,
        lambda shown: pb.GetFindingResponse(
            finding=codec.finding_to_proto(shown[0]),
            next_states=[
                events_pb2.FindingState.Value(f"FINDING_STATE_{name}")
                for name in sorted(state.name for state in shown[1])
            ],
        ),
    )
    ListFindings = Unary(
        pb.ListFindingsRequest,
        lambda r: (codec.finding_query(r.filter), r.page_size, r.page_token),
        lambda u: u.findings.list_visible,
        _page(pb.ListFindingsResponse, "findings", codec.finding_to_proto),
    )
    QueryFindings = Unary(
        pb.QueryFindingsRequest,
        lambda r: (r.purl.strip(), r.version.strip()),
        lambda u: u.findings.affecting,
        lambda found: pb.QueryFindingsResponse(findings=[codec.finding_to_proto(f) for f in found]),
    )
    ListFindingHistory = Unary(
        pb.ListFindingHistoryRequest,
        lambda r: (_finding_id(r), r.page_size, r.page_token),
        lambda u: u.findings.history,
        _page(pb.ListFindingHistoryResponse, "entries", codec.history_entry_to_proto),
    )
    ExportFinding = Unary(
        pb.ExportFindingRequest,
        lambda r: (codec.export_format_from_proto(r.format), _finding_id(r)),
        lambda u: u.export,
        lambda exported: pb.ExportFindingResponse(
            format=codec.export_format_to_proto(exported[0]),
            media_type=exported[1].media_type,
            filename=exported[1].filename,
            document=exported[1].document,
        ),
    )
    PreviewSharing = Unary(
        pb.PreviewSharingRequest,
        lambda r: (
            _finding_id(r),
            codec.tlp_from_proto(r.tlp),
            list(r.audience.organisations),
            list(r.audience.sectors),
        ),
        lambda u: u.findings.preview_sharing,
        lambda reached: pb.PreviewSharingResponse(organisations=reached),
    )

    # --- findings: comments and attachments -----------------------------------------------------

    ListFindingComments = Unary(
        pb.ListFindingCommentsRequest,
        lambda r: (_finding_id(r), r.page_size, r.page_token),
        lambda u: u.findings.comments,
        _page(pb.ListFindingCommentsResponse, "comments", codec.comment_to_proto),
    )
    AddFindingComment = Unary(
        pb.AddFindingCommentRequest,
        lambda r: (_finding_id(r), r.body, codec.comment_visibility_from_proto(r.visibility)),
        lambda u: u.findings.add_comment,
        lambda comment: pb.AddFindingCommentResponse(comment=codec.comment_to_proto(comment)),
    )
    EditFindingComment = Unary(
        pb.EditFindingCommentRequest,
        lambda r: (_finding_id(r), required_id(r.comment_id, "comment_id"), r.body, r.expected_revision),
        lambda u: u.findings.edit_comment,
        lambda comment: pb.EditFindingCommentResponse(comment=codec.comment_to_proto(comment)),
    )
    ListFindingAttachments = Unary(
        pb.ListFindingAttachmentsRequest,
        lambda r: (_finding_id(r), r.page_size, r.page_token),
        lambda u: u.findings.attachments,
        _page(pb.ListFindingAttachmentsResponse, "attachments", codec.attachment_to_proto),
    )
    AddFindingAttachment = Unary(
        pb.AddFindingAttachmentRequest,
        lambda r: (
            _finding_id(r),
            r.name,
            r.content_type,
            r.content,
            codec.comment_visibility_from_proto(r.visibility),
        ),
        lambda u: u.findings.add_attachment,
        lambda attachment: pb.AddFindingAttachmentResponse(attachment=codec.attachment_to_proto(attachment)),
    )
    GetFindingAttachment = Unary(
        pb.GetFindingAttachmentRequest,
        lambda r: (_finding_id(r), required_id(r.attachment_id, "attachment_id")),
        lambda u: u.findings.attachment,
        lambda found: pb.GetFindingAttachmentResponse(
            attachment=codec.attachment_to_proto(found[0]), content=found[1]
        ),
    )

    # --- findings: changes ----------------------------------------------------------------------

    TransitionFinding = Unary(
        pb.TransitionFindingRequest,
        lambda r: (
            _finding_id(r),
            codec.transition_target(r),
            timestamp_field(r, "embargo_end"),
            r.reason,
            r.expected_revision,
        ),
        lambda u: u.findings.transition,
        _finding(pb.TransitionFindingResponse),
    )
    UpdateFindingAssessment = Unary(
        pb.UpdateFindingAssessmentRequest,
        lambda r: (
            _finding_id(r),
            r.cvss_v3_vector,
            r.cvss_v4_vector,
            list(r.cwe_ids),
            timestamp_field(r, "remediation_due"),
            r.reason,
            r.expected_revision,
        ),
        lambda u: u.findings.update_assessment,
        _finding(pb.UpdateFindingAssessmentResponse),
    )
    SetFindingSharing = Unary(
        pb.SetFindingSharingRequest,
        lambda r: (
            _finding_id(r),
            codec.tlp_from_proto(r.tlp),
            list(r.audience.organisations),
            list(r.audience.sectors),
            r.reason,
            r.expected_revision,
        ),
        lambda u: u.findings.set_sharing,
        _finding(pb.SetFindingSharingResponse),
    )
    SetFindingAliases = Unary(
        pb.SetFindingAliasesRequest,
        lambda r: (_finding_id(r), list(r.aliases), r.reason, r.expected_revision),
        lambda u: u.findings.set_aliases,
        _finding(pb.SetFindingAliasesResponse),
    )
    SetFindingReferences = Unary(
        pb.SetFindingReferencesRequest,
        lambda r: (_finding_id(r), codec.references_from_proto(r.references), r.reason, r.expected_revision),
        lambda u: u.findings.set_references,
        _finding(pb.SetFindingReferencesResponse),
    )
    SetFindingCredits = Unary(
        pb.SetFindingCreditsRequest,
        lambda r: (_finding_id(r), codec.credits_from_proto(r.credits), r.reason, r.expected_revision),
        lambda u: u.findings.set_credits,
        _finding(pb.SetFindingCreditsResponse),
    )
    AssignFinding = Unary(
        pb.AssignFindingRequest,
        lambda r: (_finding_id(r), r.assignee, r.reason, r.expected_revision),
        lambda u: u.findings.assign,
        _finding(pb.AssignFindingResponse),
    )
    SetFindingSsvc = Unary(
        pb.SetFindingSsvcRequest,
        lambda r: (_finding_id(r), codec.ssvc_points_from_proto(r), r.reason, r.expected_revision),
        lambda u: u.findings.decide_ssvc,
        _finding(pb.SetFindingSsvcResponse),
    )
    LinkFinding = Unary(
        pb.LinkFindingRequest,
        _link_arguments,
        lambda u: u.findings.link,
        _finding(pb.LinkFindingResponse),
    )
    SetPatchStatus = Unary(
        pb.SetPatchStatusRequest,
        lambda r: (
            _finding_id(r),
            codec.patch_status_from_proto(r.status),
            r.note,
            codec.justification_from_proto(r.justification),
        ),
        lambda u: u.findings.set_patch_status,
        _finding(pb.SetPatchStatusResponse),
    )

    # --- the stream -----------------------------------------------------------------------------

    async def StreamFindings(
        self, request: pb.StreamFindingsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamFindingsResponse]:
        query = await run_as_caller(context, lambda _v: codec.finding_query(request.filter))
        cursor = await run_as_caller(context, lambda _v: self.use_cases.findings.stream_cursor())
        token = ""
        while request.include_existing:
            page, token = await run_as_caller(
                context, functools.partial(self._list_page, query=query, token=token)
            )
            for finding in page:
                yield pb.StreamFindingsResponse(finding=codec.finding_to_proto(finding))
            if not token:
                break
        while True:
            after = cursor
            changed, cursor = await run_as_caller(
                context, functools.partial(self._changes, query=query, cursor=after)
            )
            for finding in changed:
                yield pb.StreamFindingsResponse(finding=codec.finding_to_proto(finding))
            if cursor == after:
                await asyncio.sleep(self._poll)

    def _list_page(self, viewer: Viewer, *, query: FindingQuery, token: str) -> tuple[list[Finding], str]:
        return self.use_cases.findings.list_visible(viewer, query, MAX_PAGE, token)

    def _changes(self, viewer: Viewer, *, query: FindingQuery, cursor: int) -> tuple[list[Finding], int]:
        return self.use_cases.findings.changes(viewer, query, cursor)
