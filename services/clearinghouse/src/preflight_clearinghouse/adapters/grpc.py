"""`preflight.clearinghouse.v1.ClearinghouseService` over the review and registry use cases.

Thin: convert the request, run the use case in a worker thread as the
authenticated principal, convert the answer. Domain errors map to status
codes: InvalidInput → INVALID_ARGUMENT (with `google.rpc.BadRequest` field
violations), NotFound → NOT_FOUND, PermissionDenied → PERMISSION_DENIED,
PreconditionFailed → FAILED_PRECONDITION, QuotaExceeded → RESOURCE_EXHAUSTED,
RevisionConflict → ABORTED.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import grpc
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import clearinghouse_pb2_grpc as pb_grpc
from preflight.clearinghouse.v1 import events_pb2
from preflight_common.auth import Principal, current_principal
from preflight_common.fields import timestamp_field
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
from preflight_clearinghouse.domain.findings.finding import Finding
from preflight_clearinghouse.domain.findings.queries import FindingQuery
from preflight_clearinghouse.domain.findings.workflow import REPORT_TRANSITIONS
from preflight_clearinghouse.domain.sharing import PRIVILEGED, Role, Viewer
from preflight_clearinghouse.service_layer.findings import FindingRegistry
from preflight_clearinghouse.service_layer.reviews import AuditCheckpoints, ReviewService

T = TypeVar("T")


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


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext) -> None:
    if isinstance(exc, InvalidInput):
        await invalid_argument(context, [(v.field, v.description) for v in exc.violations])
    codes: list[tuple[type[Exception], grpc.StatusCode]] = [
        (NotFound, grpc.StatusCode.NOT_FOUND),
        (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
        (PreconditionFailed, grpc.StatusCode.FAILED_PRECONDITION),
        (QuotaExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (RevisionConflict, grpc.StatusCode.ABORTED),
    ]
    for kind, code in codes:
        if isinstance(exc, kind):
            await context.abort(code, str(exc))
    raise exc


class ClearinghouseServicer(pb_grpc.ClearinghouseServiceServicer):
    """The gRPC API of the clearinghouse."""

    def __init__(
        self,
        reviews: ReviewService,
        registry: FindingRegistry,
        checkpoints: AuditCheckpoints,
        *,
        stream_poll_interval: float = 0.5,
    ) -> None:
        self._reviews = reviews
        self._registry = registry
        self._checkpoints = checkpoints
        self._poll = stream_poll_interval

    async def _run(self, context: grpc.aio.ServicerContext, work: Callable[[Viewer], T]) -> T:
        viewer = viewer_of(current_principal())
        try:
            return await asyncio.to_thread(work, viewer)
        except (
            InvalidInput,
            NotFound,
            PermissionDenied,
            PreconditionFailed,
            QuotaExceeded,
            RevisionConflict,
        ) as exc:
            await _abort_for(exc, context)
            raise  # unreachable: abort raises

    # --- reports ----------------------------------------------------------------

    async def GetReport(
        self, request: pb.GetReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetReportResponse:
        view = await self._run(
            context,
            lambda v: self._reviews.get_report(v, request.report_id, request.submission_id, request.version),
        )
        return pb.GetReportResponse(report=codec.report_to_proto(view))

    async def ListReports(
        self, request: pb.ListReportsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListReportsResponse:
        views, token = await self._run(
            context,
            lambda v: self._reviews.list_reports(
                v, request.page_size, request.page_token, request.all_versions
            ),
        )
        return pb.ListReportsResponse(
            reports=[codec.report_to_proto(r) for r in views], next_page_token=token
        )

    async def AddReportNote(
        self, request: pb.AddReportNoteRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddReportNoteResponse:
        note = await self._run(
            context,
            lambda v: self._reviews.add_note(v, required_id(request.report_id, "report_id"), request.text),
        )
        return pb.AddReportNoteResponse(
            note=pb.ReportNote(
                note_id=note.note_id,
                author_id=note.author_id,
                text=note.text,
                created_at=codec.timestamp(note.created_at),
            )
        )

    async def SignOffReport(
        self, request: pb.SignOffReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.SignOffReportResponse:
        sign_off = await self._run(
            context,
            lambda v: self._reviews.sign_off(v, required_id(request.report_id, "report_id"), request.comment),
        )
        return pb.SignOffReportResponse(
            sign_off=pb.ReportSignOff(
                reviewer_id=sign_off.reviewer_id,
                signed_off_at=codec.timestamp(sign_off.signed_off_at),
                comment=sign_off.comment,
            )
        )

    async def ReissueReport(
        self, request: pb.ReissueReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReissueReportResponse:
        view = await self._run(
            context, lambda v: self._reviews.reissue(v, request.submission_id, request.reason)
        )
        return pb.ReissueReportResponse(report=codec.report_to_proto(view))

    async def GetSigningKey(
        self, request: pb.GetSigningKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSigningKeyResponse:
        key_id, public_key = await self._run(context, lambda _v: self._reviews.signing_key(request.key_id))
        return pb.GetSigningKeyResponse(
            key_id=key_id,
            algorithm=ALGORITHM,
            public_key=public_key,
            public_key_pem=public_key_pem(public_key),
        )

    # --- findings ---------------------------------------------------------------

    async def ReportFinding(
        self, request: pb.ReportFindingRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReportFindingResponse:
        finding, duplicate = await self._run(
            context, lambda v: self._registry.report(v, codec.finding_input(request))
        )
        return pb.ReportFindingResponse(finding=codec.finding_to_proto(finding), duplicate=duplicate)

    async def GetFinding(
        self, request: pb.GetFindingRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetFindingResponse:
        viewer = viewer_of(current_principal())
        finding = await self._run(
            context, lambda v: self._registry.get(v, required_id(request.finding_id, "finding_id"))
        )
        nexts = REPORT_TRANSITIONS[finding.state] if viewer.role in PRIVILEGED else frozenset()
        names = sorted(state.name for state in nexts)
        return pb.GetFindingResponse(
            finding=codec.finding_to_proto(finding),
            next_states=[events_pb2.FindingState.Value(f"FINDING_STATE_{name}") for name in names],
        )

    async def ListFindings(
        self, request: pb.ListFindingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFindingsResponse:
        findings, token = await self._run(
            context,
            lambda v: self._registry.list_visible(
                v, codec.finding_query(request.filter), request.page_size, request.page_token
            ),
        )
        return pb.ListFindingsResponse(
            findings=[codec.finding_to_proto(f) for f in findings], next_page_token=token
        )

    async def ListFindingHistory(
        self, request: pb.ListFindingHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFindingHistoryResponse:
        entries, token = await self._run(
            context,
            lambda v: self._registry.history(
                v, required_id(request.finding_id, "finding_id"), request.page_size, request.page_token
            ),
        )
        return pb.ListFindingHistoryResponse(
            entries=[codec.history_entry_to_proto(e) for e in entries], next_page_token=token
        )

    async def ListFindingComments(
        self, request: pb.ListFindingCommentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFindingCommentsResponse:
        comments, token = await self._run(
            context,
            lambda v: self._registry.comments(
                v, required_id(request.finding_id, "finding_id"), request.page_size, request.page_token
            ),
        )
        return pb.ListFindingCommentsResponse(
            comments=[codec.comment_to_proto(c) for c in comments], next_page_token=token
        )

    async def AddFindingComment(
        self, request: pb.AddFindingCommentRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddFindingCommentResponse:
        comment = await self._run(
            context,
            lambda v: self._registry.add_comment(
                v,
                required_id(request.finding_id, "finding_id"),
                request.body,
                codec.comment_visibility_from_proto(request.visibility),
            ),
        )
        return pb.AddFindingCommentResponse(comment=codec.comment_to_proto(comment))

    async def EditFindingComment(
        self, request: pb.EditFindingCommentRequest, context: grpc.aio.ServicerContext
    ) -> pb.EditFindingCommentResponse:
        comment = await self._run(
            context,
            lambda v: self._registry.edit_comment(
                v,
                required_id(request.finding_id, "finding_id"),
                required_id(request.comment_id, "comment_id"),
                request.body,
                request.expected_revision,
            ),
        )
        return pb.EditFindingCommentResponse(comment=codec.comment_to_proto(comment))

    async def AddFindingAttachment(
        self, request: pb.AddFindingAttachmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddFindingAttachmentResponse:
        attachment = await self._run(
            context,
            lambda v: self._registry.add_attachment(
                v,
                required_id(request.finding_id, "finding_id"),
                request.name,
                request.content_type,
                request.content,
                codec.comment_visibility_from_proto(request.visibility),
            ),
        )
        return pb.AddFindingAttachmentResponse(attachment=codec.attachment_to_proto(attachment))

    async def ListFindingAttachments(
        self, request: pb.ListFindingAttachmentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFindingAttachmentsResponse:
        attachments, token = await self._run(
            context,
            lambda v: self._registry.attachments(
                v, required_id(request.finding_id, "finding_id"), request.page_size, request.page_token
            ),
        )
        return pb.ListFindingAttachmentsResponse(
            attachments=[codec.attachment_to_proto(a) for a in attachments], next_page_token=token
        )

    async def GetFindingAttachment(
        self, request: pb.GetFindingAttachmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetFindingAttachmentResponse:
        attachment, content = await self._run(
            context,
            lambda v: self._registry.attachment(
                v,
                required_id(request.finding_id, "finding_id"),
                required_id(request.attachment_id, "attachment_id"),
            ),
        )
        return pb.GetFindingAttachmentResponse(
            attachment=codec.attachment_to_proto(attachment), content=content
        )

    async def _changed(
        self, context: grpc.aio.ServicerContext, work: Callable[[Viewer], Finding]
    ) -> pb.Finding:
        return codec.finding_to_proto(await self._run(context, work))

    async def TransitionFinding(
        self, request: pb.TransitionFindingRequest, context: grpc.aio.ServicerContext
    ) -> pb.TransitionFindingResponse:
        finding = await self._changed(
            context,
            lambda v: self._registry.transition(
                v,
                required_id(request.finding_id, "finding_id"),
                codec.transition_target(request),
                timestamp_field(request, "embargo_end"),
                request.reason,
                request.expected_revision,
            ),
        )
        return pb.TransitionFindingResponse(finding=finding)

    async def UpdateFindingAssessment(
        self, request: pb.UpdateFindingAssessmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateFindingAssessmentResponse:
        finding = await self._changed(
            context,
            lambda v: self._registry.update_assessment(
                v,
                required_id(request.finding_id, "finding_id"),
                cvss_v3_vector=request.cvss_v3_vector,
                cvss_v4_vector=request.cvss_v4_vector,
                cwe_ids=list(request.cwe_ids),
                remediation_due=timestamp_field(request, "remediation_due"),
                reason=request.reason,
                expected_revision=request.expected_revision,
            ),
        )
        return pb.UpdateFindingAssessmentResponse(finding=finding)

    async def PreviewSharing(
        self, request: pb.PreviewSharingRequest, context: grpc.aio.ServicerContext
    ) -> pb.PreviewSharingResponse:
        reached = await self._run(
            context,
            lambda v: self._registry.preview_sharing(
                v,
                required_id(request.finding_id, "finding_id"),
                codec.tlp_from_proto(request.tlp),
                list(request.audience.organisations),
                list(request.audience.sectors),
            ),
        )
        return pb.PreviewSharingResponse(organisations=reached)

    async def SetFindingSharing(
        self, request: pb.SetFindingSharingRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetFindingSharingResponse:
        finding = await self._changed(
            context,
            lambda v: self._registry.set_sharing(
                v,
                required_id(request.finding_id, "finding_id"),
                codec.tlp_from_proto(request.tlp),
                list(request.audience.organisations),
                list(request.audience.sectors),
                request.reason,
                request.expected_revision,
            ),
        )
        return pb.SetFindingSharingResponse(finding=finding)

    async def SetFindingAliases(
        self, request: pb.SetFindingAliasesRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetFindingAliasesResponse:
        finding = await self._changed(
            context,
            lambda v: self._registry.set_aliases(
                v,
                required_id(request.finding_id, "finding_id"),
                list(request.aliases),
                request.reason,
                request.expected_revision,
            ),
        )
        return pb.SetFindingAliasesResponse(finding=finding)

    async def SetFindingReferences(
        self, request: pb.SetFindingReferencesRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetFindingReferencesResponse:
        finding = await self._changed(
            context,
            lambda v: self._registry.set_references(
                v,
                required_id(request.finding_id, "finding_id"),
                codec.references_from_proto(request.references),
                request.reason,
                request.expected_revision,
            ),
        )
        return pb.SetFindingReferencesResponse(finding=finding)

    async def SetFindingCredits(
        self, request: pb.SetFindingCreditsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetFindingCreditsResponse:
        finding = await self._changed(
            context,
            lambda v: self._registry.set_credits(
                v,
                required_id(request.finding_id, "finding_id"),
                codec.credits_from_proto(request.credits),
                request.reason,
                request.expected_revision,
            ),
        )
        return pb.SetFindingCreditsResponse(finding=finding)

    async def AssignFinding(
        self, request: pb.AssignFindingRequest, context: grpc.aio.ServicerContext
    ) -> pb.AssignFindingResponse:
        finding = await self._changed(
            context,
            lambda v: self._registry.assign(
                v,
                required_id(request.finding_id, "finding_id"),
                request.assignee,
                request.reason,
                request.expected_revision,
            ),
        )
        return pb.AssignFindingResponse(finding=finding)

    async def SetFindingSsvc(
        self, request: pb.SetFindingSsvcRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetFindingSsvcResponse:
        finding = await self._changed(
            context,
            lambda v: self._registry.decide_ssvc(
                v,
                required_id(request.finding_id, "finding_id"),
                codec.ssvc_points_from_proto(request),
                request.reason,
                request.expected_revision,
            ),
        )
        return pb.SetFindingSsvcResponse(finding=finding)

    async def LinkFinding(
        self, request: pb.LinkFindingRequest, context: grpc.aio.ServicerContext
    ) -> pb.LinkFindingResponse:
        def work(v: Viewer) -> Finding:
            kind = codec.link_kind_from_proto(request.kind)
            if kind is None:
                raise InvalidInput(
                    [FieldViolation("kind", "choose DUPLICATE_OF, SUBSUMED_BY or MERGED_INTO")]
                )
            return self._registry.link(
                v,
                required_id(request.finding_id, "finding_id"),
                kind,
                required_id(request.target_finding_id, "target_finding_id"),
                request.reason,
            )

        return pb.LinkFindingResponse(finding=await self._changed(context, work))

    async def SetPatchStatus(
        self, request: pb.SetPatchStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetPatchStatusResponse:
        finding = await self._changed(
            context,
            lambda v: self._registry.set_patch_status(
                v,
                required_id(request.finding_id, "finding_id"),
                codec.patch_status_from_proto(request.status),
                request.note,
                codec.justification_from_proto(request.justification),
            ),
        )
        return pb.SetPatchStatusResponse(finding=finding)

    async def ExportFinding(
        self, request: pb.ExportFindingRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExportFindingResponse:
        def work(v: Viewer) -> tuple[ExportFormat | None, ExportDocument]:
            export_format = codec.export_format_from_proto(request.format)
            finding_id = required_id(request.finding_id, "finding_id")
            return export_format, self._registry.export(v, finding_id, export_format)

        export_format, document = await self._run(context, work)
        assert export_format is not None
        return pb.ExportFindingResponse(
            format=codec.export_format_to_proto(export_format),
            media_type=document.media_type,
            filename=document.filename,
            document=document.document,
        )

    async def ImportFinding(
        self, request: pb.ImportFindingRequest, context: grpc.aio.ServicerContext
    ) -> pb.ImportFindingResponse:
        def work(v: Viewer) -> tuple[Finding, bool]:
            document_format = codec.export_format_from_proto(request.format)
            return self._registry.import_document(v, request.document, document_format)

        finding, duplicate = await self._run(context, work)
        return pb.ImportFindingResponse(finding=codec.finding_to_proto(finding), duplicate=duplicate)

    async def StreamFindings(
        self, request: pb.StreamFindingsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamFindingsResponse]:
        query = await self._run(context, lambda _v: codec.finding_query(request.filter))
        cursor = await self._run(context, lambda _v: self._registry.stream_cursor())
        token = ""
        while request.include_existing:
            page, token = await self._run(
                context, functools.partial(self._list_page, query=query, token=token)
            )
            for finding in page:
                yield pb.StreamFindingsResponse(finding=codec.finding_to_proto(finding))
            if not token:
                break
        while True:
            after = cursor
            changed, cursor = await self._run(
                context, functools.partial(self._changes, query=query, cursor=after)
            )
            for finding in changed:
                yield pb.StreamFindingsResponse(finding=codec.finding_to_proto(finding))
            if cursor == after:
                await asyncio.sleep(self._poll)

    def _list_page(self, viewer: Viewer, *, query: FindingQuery, token: str) -> tuple[list[Finding], str]:
        return self._registry.list_visible(viewer, query, MAX_PAGE, token)

    def _changes(self, viewer: Viewer, *, query: FindingQuery, cursor: int) -> tuple[list[Finding], int]:
        return self._registry.changes(viewer, query, cursor)

    async def QueryFindings(
        self, request: pb.QueryFindingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.QueryFindingsResponse:
        findings = await self._run(
            context, lambda v: self._registry.affecting(v, request.purl.strip(), request.version.strip())
        )
        return pb.QueryFindingsResponse(findings=[codec.finding_to_proto(f) for f in findings])

    async def VerifyAuditLog(
        self, request: pb.VerifyAuditLogRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyAuditLogResponse:
        verdict = await self._run(
            context,
            lambda v: self._checkpoints.verify(v, request.checkpoint_body, request.checkpoint_signature),
        )
        return pb.VerifyAuditLogResponse(
            ok=verdict.ok,
            entries=verdict.entries,
            first_bad_sequence=verdict.first_bad_seq,
            problem=verdict.problem,
            checkpoint_sequence=verdict.checkpoint_seq,
        )
