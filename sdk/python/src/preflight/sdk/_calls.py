"""Every RPC the clients make, written once: its method, its request built from typed arguments, and
the part of its response the caller gets. The blocking and the asyncio clients both run these
descriptions, so the two never disagree on what a method sends."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import Message
from preflight.benchmark.v1 import benchmark_pb2
from preflight.clearinghouse.v1 import clearinghouse_pb2, events_pb2
from preflight.common.v1 import common_pb2
from preflight.identity.v1 import identity_pb2
from preflight.intake.v1 import intake_pb2
from preflight.notifier.v1 import events_pb2 as notifier_events_pb2
from preflight.notifier.v1 import notifier_pb2
from preflight.sdk import _common

R = TypeVar("R", bound=Message)
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


def _path(file: FileDescriptor, service: str, method: str) -> str:
    """The gRPC method path (`/package.Service/Method`), checked against the generated descriptor."""
    descriptor = file.services_by_name[service].methods_by_name[method]
    return f"/{descriptor.containing_service.full_name}/{descriptor.name}"


@dataclass(frozen=True)
class Unary(Generic[R, T]):
    """One unary call: where it goes, what it sends, and what of the reply the caller gets."""

    path: str
    request: Message
    response: type[R]
    result: Callable[[R], T]


P = TypeVar("P", bound=Message)


@dataclass(frozen=True)
class Pages(Generic[P, T_co]):
    """A paged list: `page(token)` fetches one page, `items` picks its entries and the next page's token."""

    page: Callable[[str], Unary[P, P]]
    items: Callable[[P], tuple[Sequence[T_co], str]]


@dataclass
class Stream(Generic[R]):
    """A server stream that survives reconnects: `request()` is what to (re)open it with given what
    was already received, `fresh(item)` records an item and says whether it is new to the caller."""

    path: str
    response: type[R]
    request: Callable[[], Message]
    fresh: Callable[[R], bool]


def _unary(path: str, request: Message, response: type[R]) -> Unary[R, R]:
    return Unary(path, request, response, lambda reply: reply)


def idempotency_key() -> str:
    """A fresh random idempotency key: the client's own retries then never do a change twice."""
    return f"sdk-{uuid.uuid4()}"


# --- intake and identity ----------------------------------------------------------------------

_INTAKE = "IntakeService"


def submit(
    request: intake_pb2.SubmitModelRequest,
) -> Unary[intake_pb2.SubmitModelResponse, intake_pb2.SubmitModelResponse]:
    keyed = intake_pb2.SubmitModelRequest()
    keyed.CopyFrom(request)
    keyed.idempotency_key = request.idempotency_key or idempotency_key()
    return _unary(_path(intake_pb2.DESCRIPTOR, _INTAKE, "SubmitModel"), keyed, intake_pb2.SubmitModelResponse)


def get_submission(submission_id: str) -> Unary[intake_pb2.GetSubmissionResponse, intake_pb2.Submission]:
    return Unary(
        _path(intake_pb2.DESCRIPTOR, _INTAKE, "GetSubmission"),
        intake_pb2.GetSubmissionRequest(submission_id=submission_id),
        intake_pb2.GetSubmissionResponse,
        lambda reply: reply.submission,
    )


def submissions(
    statuses: Iterable[intake_pb2.SubmissionStatus.ValueType], page_size: int
) -> Pages[intake_pb2.ListSubmissionsResponse, intake_pb2.Submission]:
    wanted = list(statuses)
    return Pages(
        lambda token: _unary(
            _path(intake_pb2.DESCRIPTOR, _INTAKE, "ListSubmissions"),
            intake_pb2.ListSubmissionsRequest(statuses=wanted, page_size=page_size, page_token=token),
            intake_pb2.ListSubmissionsResponse,
        ),
        lambda page: (page.submissions, page.next_page_token),
    )


def update_release_plan(
    submission_id: str,
    planned_release: datetime,
    access_window: tuple[datetime, datetime] | None,
    reason: str,
) -> Unary[intake_pb2.UpdateReleasePlanResponse, intake_pb2.Submission]:
    request = _common.release_plan_request(submission_id, planned_release, access_window, reason)
    return Unary(
        _path(intake_pb2.DESCRIPTOR, _INTAKE, "UpdateReleasePlan"),
        request,
        intake_pb2.UpdateReleasePlanResponse,
        lambda reply: reply.submission,
    )


def withdraw(
    submission_id: str, reason: str
) -> Unary[intake_pb2.WithdrawSubmissionResponse, intake_pb2.Submission]:
    return Unary(
        _path(intake_pb2.DESCRIPTOR, _INTAKE, "WithdrawSubmission"),
        intake_pb2.WithdrawSubmissionRequest(submission_id=submission_id, reason=reason),
        intake_pb2.WithdrawSubmissionResponse,
        lambda reply: reply.submission,
    )


def watch(submission_id: str) -> Stream[intake_pb2.WatchSubmissionResponse]:
    """Each change once: after a reconnect the service repeats the current state, which is skipped
    when its sequence was already yielded."""
    seen = 0

    def fresh(change: intake_pb2.WatchSubmissionResponse) -> bool:
        nonlocal seen
        if change.sequence <= seen:
            return False
        seen = change.sequence
        return True

    request = intake_pb2.WatchSubmissionRequest(submission_id=submission_id)
    return Stream(
        _path(intake_pb2.DESCRIPTOR, _INTAKE, "WatchSubmission"),
        intake_pb2.WatchSubmissionResponse,
        lambda: request,
        fresh,
    )


def resolve_credential(credential_ref: str, job_id: str) -> Unary[intake_pb2.ResolveCredentialResponse, str]:
    return Unary(
        _path(intake_pb2.DESCRIPTOR, _INTAKE, "ResolveCredential"),
        intake_pb2.ResolveCredentialRequest(credential_ref=credential_ref, job_id=job_id),
        intake_pb2.ResolveCredentialResponse,
        lambda reply: reply.credential,
    )


def create_token(
    request: identity_pb2.CreateTokenRequest,
) -> Unary[identity_pb2.CreateTokenResponse, identity_pb2.CreateTokenResponse]:
    return _unary(
        _path(identity_pb2.DESCRIPTOR, "IdentityService", "CreateToken"),
        request,
        identity_pb2.CreateTokenResponse,
    )


def revoke_token(token_id: str) -> Unary[identity_pb2.RevokeTokenResponse, None]:
    return Unary(
        _path(identity_pb2.DESCRIPTOR, "IdentityService", "RevokeToken"),
        identity_pb2.RevokeTokenRequest(token_id=token_id),
        identity_pb2.RevokeTokenResponse,
        lambda reply: None,
    )


# --- clearinghouse ----------------------------------------------------------------------------

_CLEARINGHOUSE = "ClearinghouseService"


def _clearinghouse(method: str) -> str:
    return _path(clearinghouse_pb2.DESCRIPTOR, _CLEARINGHOUSE, method)


class _FindingReply(Protocol):
    """Every reply that carries one finding."""

    @property
    def finding(self) -> clearinghouse_pb2.Finding: ...


def _finding(reply: _FindingReply) -> clearinghouse_pb2.Finding:
    return reply.finding


def get_report(
    report_id: str, submission_id: str, version: int
) -> Unary[clearinghouse_pb2.GetReportResponse, clearinghouse_pb2.ReviewReport]:
    return Unary(
        _clearinghouse("GetReport"),
        clearinghouse_pb2.GetReportRequest(report_id=report_id, submission_id=submission_id, version=version),
        clearinghouse_pb2.GetReportResponse,
        lambda reply: reply.report,
    )


def reports(
    all_versions: bool, page_size: int
) -> Pages[clearinghouse_pb2.ListReportsResponse, clearinghouse_pb2.ReviewReport]:
    return Pages(
        lambda token: _unary(
            _clearinghouse("ListReports"),
            clearinghouse_pb2.ListReportsRequest(
                all_versions=all_versions, page_size=page_size, page_token=token
            ),
            clearinghouse_pb2.ListReportsResponse,
        ),
        lambda page: (page.reports, page.next_page_token),
    )


def add_report_note(
    report_id: str, text: str
) -> Unary[clearinghouse_pb2.AddReportNoteResponse, clearinghouse_pb2.ReportNote]:
    return Unary(
        _clearinghouse("AddReportNote"),
        clearinghouse_pb2.AddReportNoteRequest(report_id=report_id, text=text),
        clearinghouse_pb2.AddReportNoteResponse,
        lambda reply: reply.note,
    )


def sign_off_report(
    report_id: str, comment: str
) -> Unary[clearinghouse_pb2.SignOffReportResponse, clearinghouse_pb2.ReportSignOff]:
    return Unary(
        _clearinghouse("SignOffReport"),
        clearinghouse_pb2.SignOffReportRequest(report_id=report_id, comment=comment),
        clearinghouse_pb2.SignOffReportResponse,
        lambda reply: reply.sign_off,
    )


def reissue_report(
    submission_id: str, reason: str
) -> Unary[clearinghouse_pb2.ReissueReportResponse, clearinghouse_pb2.ReviewReport]:
    return Unary(
        _clearinghouse("ReissueReport"),
        clearinghouse_pb2.ReissueReportRequest(submission_id=submission_id, reason=reason),
        clearinghouse_pb2.ReissueReportResponse,
        lambda reply: reply.report,
    )


def get_signing_key(
    key_id: str,
) -> Unary[clearinghouse_pb2.GetSigningKeyResponse, clearinghouse_pb2.GetSigningKeyResponse]:
    return _unary(
        _clearinghouse("GetSigningKey"),
        clearinghouse_pb2.GetSigningKeyRequest(key_id=key_id),
        clearinghouse_pb2.GetSigningKeyResponse,
    )


def report_finding(
    request: clearinghouse_pb2.ReportFindingRequest,
) -> Unary[clearinghouse_pb2.ReportFindingResponse, clearinghouse_pb2.ReportFindingResponse]:
    keyed = clearinghouse_pb2.ReportFindingRequest()
    keyed.CopyFrom(request)
    keyed.request_id = request.request_id or idempotency_key()
    return _unary(_clearinghouse("ReportFinding"), keyed, clearinghouse_pb2.ReportFindingResponse)


def get_finding(finding_id: str) -> Unary[clearinghouse_pb2.GetFindingResponse, clearinghouse_pb2.Finding]:
    return Unary(
        _clearinghouse("GetFinding"),
        clearinghouse_pb2.GetFindingRequest(finding_id=finding_id),
        clearinghouse_pb2.GetFindingResponse,
        _finding,
    )


def findings(
    filter: clearinghouse_pb2.FindingFilter | None, page_size: int
) -> Pages[clearinghouse_pb2.ListFindingsResponse, clearinghouse_pb2.Finding]:
    return Pages(
        lambda token: _unary(
            _clearinghouse("ListFindings"),
            clearinghouse_pb2.ListFindingsRequest(filter=filter, page_size=page_size, page_token=token),
            clearinghouse_pb2.ListFindingsResponse,
        ),
        lambda page: (page.findings, page.next_page_token),
    )


def finding_history(
    finding_id: str, page_size: int
) -> Pages[clearinghouse_pb2.ListFindingHistoryResponse, clearinghouse_pb2.FindingHistoryEntry]:
    return Pages(
        lambda token: _unary(
            _clearinghouse("ListFindingHistory"),
            clearinghouse_pb2.ListFindingHistoryRequest(
                finding_id=finding_id, page_size=page_size, page_token=token
            ),
            clearinghouse_pb2.ListFindingHistoryResponse,
        ),
        lambda page: (page.entries, page.next_page_token),
    )


def finding_comments(
    finding_id: str, page_size: int
) -> Pages[clearinghouse_pb2.ListFindingCommentsResponse, clearinghouse_pb2.FindingComment]:
    return Pages(
        lambda token: _unary(
            _clearinghouse("ListFindingComments"),
            clearinghouse_pb2.ListFindingCommentsRequest(
                finding_id=finding_id, page_size=page_size, page_token=token
            ),
            clearinghouse_pb2.ListFindingCommentsResponse,
        ),
        lambda page: (page.comments, page.next_page_token),
    )


def _comment(
    response: clearinghouse_pb2.AddFindingCommentResponse | clearinghouse_pb2.EditFindingCommentResponse,
) -> clearinghouse_pb2.FindingComment:
    return response.comment


def add_finding_comment(
    finding_id: str, body: str, visibility: clearinghouse_pb2.CommentVisibility.ValueType
) -> Unary[clearinghouse_pb2.AddFindingCommentResponse, clearinghouse_pb2.FindingComment]:
    return Unary(
        _clearinghouse("AddFindingComment"),
        clearinghouse_pb2.AddFindingCommentRequest(finding_id=finding_id, body=body, visibility=visibility),
        clearinghouse_pb2.AddFindingCommentResponse,
        _comment,
    )


def edit_finding_comment(
    finding_id: str, comment_id: str, body: str, expected_revision: int
) -> Unary[clearinghouse_pb2.EditFindingCommentResponse, clearinghouse_pb2.FindingComment]:
    return Unary(
        _clearinghouse("EditFindingComment"),
        clearinghouse_pb2.EditFindingCommentRequest(
            finding_id=finding_id, comment_id=comment_id, body=body, expected_revision=expected_revision
        ),
        clearinghouse_pb2.EditFindingCommentResponse,
        _comment,
    )


def finding_attachments(
    finding_id: str, page_size: int
) -> Pages[clearinghouse_pb2.ListFindingAttachmentsResponse, clearinghouse_pb2.FindingAttachment]:
    return Pages(
        lambda token: _unary(
            _clearinghouse("ListFindingAttachments"),
            clearinghouse_pb2.ListFindingAttachmentsRequest(
                finding_id=finding_id, page_size=page_size, page_token=token
            ),
            clearinghouse_pb2.ListFindingAttachmentsResponse,
        ),
        lambda page: (page.attachments, page.next_page_token),
    )


def add_finding_attachment(
    finding_id: str,
    name: str,
    content_type: str,
    content: bytes,
    visibility: clearinghouse_pb2.CommentVisibility.ValueType,
) -> Unary[clearinghouse_pb2.AddFindingAttachmentResponse, clearinghouse_pb2.FindingAttachment]:
    return Unary(
        _clearinghouse("AddFindingAttachment"),
        clearinghouse_pb2.AddFindingAttachmentRequest(
            finding_id=finding_id,
            name=name,
            content_type=content_type,
            content=content,
            visibility=visibility,
        ),
        clearinghouse_pb2.AddFindingAttachmentResponse,
        lambda response: response.attachment,
    )


def get_finding_attachment(
    finding_id: str, attachment_id: str
) -> Unary[clearinghouse_pb2.GetFindingAttachmentResponse, clearinghouse_pb2.GetFindingAttachmentResponse]:
    return _unary(
        _clearinghouse("GetFindingAttachment"),
        clearinghouse_pb2.GetFindingAttachmentRequest(finding_id=finding_id, attachment_id=attachment_id),
        clearinghouse_pb2.GetFindingAttachmentResponse,
    )


def query_findings(
    purl: str, version: str
) -> Unary[clearinghouse_pb2.QueryFindingsResponse, list[clearinghouse_pb2.Finding]]:
    return Unary(
        _clearinghouse("QueryFindings"),
        clearinghouse_pb2.QueryFindingsRequest(purl=purl, version=version),
        clearinghouse_pb2.QueryFindingsResponse,
        lambda reply: list(reply.findings),
    )


@dataclass(frozen=True)
class Transition:
    """A finding's target state: a disclosure `state` or an `embargo_state` (exactly one), with the
    embargo's end when proposing or revising one."""

    state: events_pb2.FindingState.ValueType = events_pb2.FINDING_STATE_UNSPECIFIED
    embargo_state: events_pb2.EmbargoState.ValueType = events_pb2.EMBARGO_STATE_UNSPECIFIED
    embargo_end: datetime | None = None


def transition_finding(
    finding_id: str, target: Transition, reason: str, expected_revision: int
) -> Unary[clearinghouse_pb2.TransitionFindingResponse, clearinghouse_pb2.Finding]:
    request = clearinghouse_pb2.TransitionFindingRequest(
        finding_id=finding_id, reason=reason, expected_revision=expected_revision
    )
    if target.state:
        request.state = target.state
    if target.embargo_state:
        request.embargo_state = target.embargo_state
    if target.embargo_end is not None:
        request.embargo_end.CopyFrom(_common.timestamp(target.embargo_end))
    return Unary(
        _clearinghouse("TransitionFinding"), request, clearinghouse_pb2.TransitionFindingResponse, _finding
    )


@dataclass(frozen=True)
class Assessment:
    """A change of a finding's assessment; what is left empty stays as it is."""

    cvss_v3_vector: str = ""
    cvss_v4_vector: str = ""
    cwe_ids: Sequence[str] = ()
    remediation_due: datetime | None = None


def update_finding_assessment(
    finding_id: str, assessment: Assessment, reason: str, expected_revision: int
) -> Unary[clearinghouse_pb2.UpdateFindingAssessmentResponse, clearinghouse_pb2.Finding]:
    request = clearinghouse_pb2.UpdateFindingAssessmentRequest(
        finding_id=finding_id,
        cvss_v3_vector=assessment.cvss_v3_vector,
        cvss_v4_vector=assessment.cvss_v4_vector,
        cwe_ids=list(assessment.cwe_ids),
        reason=reason,
        expected_revision=expected_revision,
    )
    if assessment.remediation_due is not None:
        request.remediation_due.CopyFrom(_common.timestamp(assessment.remediation_due))
    return Unary(
        _clearinghouse("UpdateFindingAssessment"),
        request,
        clearinghouse_pb2.UpdateFindingAssessmentResponse,
        _finding,
    )


def set_finding_sharing(
    finding_id: str,
    tlp: common_pb2.Tlp.ValueType,
    audience: common_pb2.Audience,
    reason: str,
    expected_revision: int,
) -> Unary[clearinghouse_pb2.SetFindingSharingResponse, clearinghouse_pb2.Finding]:
    return Unary(
        _clearinghouse("SetFindingSharing"),
        clearinghouse_pb2.SetFindingSharingRequest(
            finding_id=finding_id,
            tlp=tlp,
            audience=audience,
            reason=reason,
            expected_revision=expected_revision,
        ),
        clearinghouse_pb2.SetFindingSharingResponse,
        _finding,
    )


def preview_sharing(
    finding_id: str, tlp: common_pb2.Tlp.ValueType, audience: common_pb2.Audience
) -> Unary[clearinghouse_pb2.PreviewSharingResponse, clearinghouse_pb2.PreviewSharingResponse]:
    return _unary(
        _clearinghouse("PreviewSharing"),
        clearinghouse_pb2.PreviewSharingRequest(finding_id=finding_id, tlp=tlp, audience=audience),
        clearinghouse_pb2.PreviewSharingResponse,
    )


def set_finding_aliases(
    finding_id: str, aliases: Iterable[str], reason: str, expected_revision: int
) -> Unary[clearinghouse_pb2.SetFindingAliasesResponse, clearinghouse_pb2.Finding]:
    return Unary(
        _clearinghouse("SetFindingAliases"),
        clearinghouse_pb2.SetFindingAliasesRequest(
            finding_id=finding_id, aliases=list(aliases), reason=reason, expected_revision=expected_revision
        ),
        clearinghouse_pb2.SetFindingAliasesResponse,
        _finding,
    )


def set_finding_references(
    finding_id: str,
    references: Iterable[clearinghouse_pb2.FindingReference],
    reason: str,
    expected_revision: int,
) -> Unary[clearinghouse_pb2.SetFindingReferencesResponse, clearinghouse_pb2.Finding]:
    return Unary(
        _clearinghouse("SetFindingReferences"),
        clearinghouse_pb2.SetFindingReferencesRequest(
            finding_id=finding_id,
            references=list(references),
            reason=reason,
            expected_revision=expected_revision,
        ),
        clearinghouse_pb2.SetFindingReferencesResponse,
        _finding,
    )


def set_finding_credits(
    finding_id: str, credits: Iterable[clearinghouse_pb2.FindingCredit], reason: str, expected_revision: int
) -> Unary[clearinghouse_pb2.SetFindingCreditsResponse, clearinghouse_pb2.Finding]:
    return Unary(
        _clearinghouse("SetFindingCredits"),
        clearinghouse_pb2.SetFindingCreditsRequest(
            finding_id=finding_id, credits=list(credits), reason=reason, expected_revision=expected_revision
        ),
        clearinghouse_pb2.SetFindingCreditsResponse,
        _finding,
    )


def assign_finding(
    finding_id: str, assignee: str, reason: str, expected_revision: int
) -> Unary[clearinghouse_pb2.AssignFindingResponse, clearinghouse_pb2.Finding]:
    return Unary(
        _clearinghouse("AssignFinding"),
        clearinghouse_pb2.AssignFindingRequest(
            finding_id=finding_id, assignee=assignee, reason=reason, expected_revision=expected_revision
        ),
        clearinghouse_pb2.AssignFindingResponse,
        _finding,
    )


def set_finding_ssvc(
    finding_id: str,
    exploitation: clearinghouse_pb2.SsvcExploitation.ValueType,
    automatable: clearinghouse_pb2.SsvcAutomatable.ValueType,
    technical_impact: clearinghouse_pb2.SsvcTechnicalImpact.ValueType,
    mission_well_being: clearinghouse_pb2.SsvcMissionWellBeing.ValueType,
    reason: str,
    expected_revision: int,
) -> Unary[clearinghouse_pb2.SetFindingSsvcResponse, clearinghouse_pb2.Finding]:
    return Unary(
        _clearinghouse("SetFindingSsvc"),
        clearinghouse_pb2.SetFindingSsvcRequest(
            finding_id=finding_id,
            exploitation=exploitation,
            automatable=automatable,
            technical_impact=technical_impact,
            mission_well_being=mission_well_being,
            reason=reason,
            expected_revision=expected_revision,
        ),
        clearinghouse_pb2.SetFindingSsvcResponse,
        _finding,
    )


def link_finding(
    finding_id: str, kind: clearinghouse_pb2.LinkKind.ValueType, target_finding_id: str, reason: str
) -> Unary[clearinghouse_pb2.LinkFindingResponse, clearinghouse_pb2.Finding]:
    return Unary(
        _clearinghouse("LinkFinding"),
        clearinghouse_pb2.LinkFindingRequest(
            finding_id=finding_id, kind=kind, target_finding_id=target_finding_id, reason=reason
        ),
        clearinghouse_pb2.LinkFindingResponse,
        _finding,
    )


def set_patch_status(
    finding_id: str,
    status: clearinghouse_pb2.PatchStatus.ValueType,
    note: str,
    justification: clearinghouse_pb2.VexJustification.ValueType,
) -> Unary[clearinghouse_pb2.SetPatchStatusResponse, clearinghouse_pb2.Finding]:
    return Unary(
        _clearinghouse("SetPatchStatus"),
        clearinghouse_pb2.SetPatchStatusRequest(
            finding_id=finding_id, status=status, note=note, justification=justification
        ),
        clearinghouse_pb2.SetPatchStatusResponse,
        _finding,
    )


def export_finding(
    finding_id: str, format: clearinghouse_pb2.ExportFormat.ValueType
) -> Unary[clearinghouse_pb2.ExportFindingResponse, clearinghouse_pb2.ExportFindingResponse]:
    return _unary(
        _clearinghouse("ExportFinding"),
        clearinghouse_pb2.ExportFindingRequest(finding_id=finding_id, format=format),
        clearinghouse_pb2.ExportFindingResponse,
    )


def import_finding(
    document: bytes, format: clearinghouse_pb2.ExportFormat.ValueType
) -> Unary[clearinghouse_pb2.ImportFindingResponse, clearinghouse_pb2.ImportFindingResponse]:
    return _unary(
        _clearinghouse("ImportFinding"),
        clearinghouse_pb2.ImportFindingRequest(document=document, format=format),
        clearinghouse_pb2.ImportFindingResponse,
    )


def stream_findings(
    filter: clearinghouse_pb2.FindingFilter | None, include_existing: bool
) -> Stream[clearinghouse_pb2.StreamFindingsResponse]:
    """Each finding revision once. A reconnect asks for the current findings changed since the
    stream was first opened (by this machine's clock) and skips the revisions already yielded, so
    nothing that changed while disconnected is missed."""
    wanted = clearinghouse_pb2.FindingFilter()
    if filter is not None:
        wanted.CopyFrom(filter)
    opened = datetime.now(UTC)
    revisions: dict[str, int] = {}
    reopening = False

    def request() -> Message:
        nonlocal reopening
        if not reopening:
            reopening = True
            return clearinghouse_pb2.StreamFindingsRequest(filter=wanted, include_existing=include_existing)
        again = clearinghouse_pb2.FindingFilter()
        again.CopyFrom(wanted)
        if not include_existing and (not wanted.HasField("since") or wanted.since.ToDatetime(UTC) < opened):
            again.since.CopyFrom(_common.timestamp(opened))
        return clearinghouse_pb2.StreamFindingsRequest(filter=again, include_existing=True)

    def fresh(change: clearinghouse_pb2.StreamFindingsResponse) -> bool:
        finding = change.finding
        if finding.revision <= revisions.get(finding.finding_id, 0):
            return False
        revisions[finding.finding_id] = finding.revision
        return True

    return Stream(_clearinghouse("StreamFindings"), clearinghouse_pb2.StreamFindingsResponse, request, fresh)


def verify_audit_log() -> Unary[
    clearinghouse_pb2.VerifyAuditLogResponse, clearinghouse_pb2.VerifyAuditLogResponse
]:
    return _unary(
        _clearinghouse("VerifyAuditLog"),
        clearinghouse_pb2.VerifyAuditLogRequest(),
        clearinghouse_pb2.VerifyAuditLogResponse,
    )


# --- notifier ---------------------------------------------------------------------------------


def _notifier(method: str) -> str:
    return _path(notifier_pb2.DESCRIPTOR, "NotifierService", method)


def alerts(
    kind: notifier_events_pb2.AlertKind.ValueType, subject_id: str, unacknowledged_only: bool, page_size: int
) -> Pages[notifier_pb2.ListAlertsResponse, notifier_pb2.AlertRecord]:
    return Pages(
        lambda token: _unary(
            _notifier("ListAlerts"),
            notifier_pb2.ListAlertsRequest(
                kind=kind,
                subject_id=subject_id,
                unacknowledged_only=unacknowledged_only,
                page_size=page_size,
                page_token=token,
            ),
            notifier_pb2.ListAlertsResponse,
        ),
        lambda page: (page.alerts, page.next_page_token),
    )


def acknowledge_alert(
    alert_id: str, comment: str
) -> Unary[notifier_pb2.AcknowledgeAlertResponse, notifier_pb2.AlertRecord]:
    return Unary(
        _notifier("AcknowledgeAlert"),
        notifier_pb2.AcknowledgeAlertRequest(alert_id=alert_id, comment=comment),
        notifier_pb2.AcknowledgeAlertResponse,
        lambda reply: reply.alert,
    )


def create_silence(
    matchers: Iterable[notifier_pb2.Matcher], ends_at: datetime, starts_at: datetime | None, comment: str
) -> Unary[notifier_pb2.CreateSilenceResponse, notifier_pb2.Silence]:
    request = notifier_pb2.CreateSilenceRequest(
        matchers=list(matchers), ends_at=_common.timestamp(ends_at), comment=comment
    )
    if starts_at is not None:
        request.starts_at.CopyFrom(_common.timestamp(starts_at))
    return Unary(
        _notifier("CreateSilence"), request, notifier_pb2.CreateSilenceResponse, lambda reply: reply.silence
    )


def list_silences(
    include_expired: bool,
) -> Unary[notifier_pb2.ListSilencesResponse, list[notifier_pb2.Silence]]:
    return Unary(
        _notifier("ListSilences"),
        notifier_pb2.ListSilencesRequest(include_expired=include_expired),
        notifier_pb2.ListSilencesResponse,
        lambda reply: list(reply.silences),
    )


def expire_silence(silence_id: str) -> Unary[notifier_pb2.ExpireSilenceResponse, notifier_pb2.Silence]:
    return Unary(
        _notifier("ExpireSilence"),
        notifier_pb2.ExpireSilenceRequest(silence_id=silence_id),
        notifier_pb2.ExpireSilenceResponse,
        lambda reply: reply.silence,
    )


def subscribe_alerts(
    kinds: Iterable[notifier_events_pb2.AlertKind.ValueType], after_sequence: int | None
) -> Stream[notifier_pb2.SubscribeAlertsResponse]:
    """Each alert once: a reconnect resumes strictly after the last sequence yielded."""
    wanted = list(kinds)
    last = after_sequence

    def request() -> Message:
        return notifier_pb2.SubscribeAlertsRequest(kinds=wanted, after_sequence=last)

    def fresh(change: notifier_pb2.SubscribeAlertsResponse) -> bool:
        nonlocal last
        if last is not None and change.alert.sequence <= last:
            return False
        last = change.alert.sequence
        return True

    return Stream(_notifier("SubscribeAlerts"), notifier_pb2.SubscribeAlertsResponse, request, fresh)


# --- benchmark --------------------------------------------------------------------------------


def get_job(job_id: str) -> Unary[benchmark_pb2.GetJobResponse, benchmark_pb2.Job]:
    return Unary(
        _path(benchmark_pb2.DESCRIPTOR, "BenchmarkService", "GetJob"),
        benchmark_pb2.GetJobRequest(job_id=job_id),
        benchmark_pb2.GetJobResponse,
        lambda reply: reply.job,
    )


def summarize_jobs(
    submission_ids: Iterable[str],
) -> Unary[benchmark_pb2.SummarizeJobsResponse, list[benchmark_pb2.JobSummary]]:
    return Unary(
        _path(benchmark_pb2.DESCRIPTOR, "BenchmarkService", "SummarizeJobs"),
        benchmark_pb2.SummarizeJobsRequest(submission_ids=list(submission_ids)),
        benchmark_pb2.SummarizeJobsResponse,
        lambda reply: list(reply.summaries),
    )


def get_eval_log(
    job_id: str, index: int
) -> Unary[benchmark_pb2.GetEvalLogResponse, benchmark_pb2.GetEvalLogResponse]:
    return _unary(
        _path(benchmark_pb2.DESCRIPTOR, "BenchmarkService", "GetEvalLog"),
        benchmark_pb2.GetEvalLogRequest(job_id=job_id, index=index),
        benchmark_pb2.GetEvalLogResponse,
    )


def read_eval_log(
    job_id: str, index: int, offset: int, length: int
) -> Stream[benchmark_pb2.ReadEvalLogResponse]:
    """The log's bytes once each: after a reconnect the read resumes where the last chunk ended (a
    range already whole when the connection broke is asked to the end, and the rest skipped)."""
    received = 0

    def fresh(chunk: benchmark_pb2.ReadEvalLogResponse) -> bool:
        nonlocal received
        if length and received >= length:
            return False
        received += len(chunk.data)
        return True

    return Stream(
        _path(benchmark_pb2.DESCRIPTOR, "BenchmarkService", "ReadEvalLog"),
        benchmark_pb2.ReadEvalLogResponse,
        lambda: benchmark_pb2.ReadEvalLogRequest(
            job_id=job_id, index=index, offset=offset + received, length=max(length - received, 0)
        ),
        fresh,
    )


def jobs(
    submission_id: str, statuses: Iterable[benchmark_pb2.JobStatus.ValueType], page_size: int
) -> Pages[benchmark_pb2.ListJobsResponse, benchmark_pb2.Job]:
    wanted = list(statuses)
    return Pages(
        lambda token: _unary(
            _path(benchmark_pb2.DESCRIPTOR, "BenchmarkService", "ListJobs"),
            benchmark_pb2.ListJobsRequest(
                submission_id=submission_id, statuses=wanted, page_size=page_size, page_token=token
            ),
            benchmark_pb2.ListJobsResponse,
        ),
        lambda page: (page.jobs, page.next_page_token),
    )
