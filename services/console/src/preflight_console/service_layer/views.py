"""What each page reads and does through the APIs, as the signed-in user.

Every function takes the user's session and calls the APIs with its token; an RPC error
propagates (`grpc.aio.AioRpcError`) for the web layer to answer with the matching status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.message import Message
from preflight.benchmark.v1 import benchmark_pb2
from preflight.clearinghouse.v1 import clearinghouse_pb2, events_pb2
from preflight.common.v1 import common_pb2
from preflight.identity.v1 import identity_pb2
from preflight.intake.v1 import intake_pb2
from preflight.notifier.v1 import notifier_pb2
from preflight_common.signing import verify_signature

from preflight_console.adapters.apis import Apis, credentials
from preflight_console.domain.sessions import Role, Session, Viewer

TIMEOUT = 15.0
PAGE_SIZE = 200
OPEN_STATUSES = (
    intake_pb2.SUBMISSION_STATUS_RECEIVED,
    intake_pb2.SUBMISSION_STATUS_BENCHMARKING,
    intake_pb2.SUBMISSION_STATUS_UNDER_REVIEW,
    intake_pb2.SUBMISSION_STATUS_REPORT_READY,
)
ROLES = {
    identity_pb2.ROLE_LAB: Role.LAB,
    identity_pb2.ROLE_REVIEWER: Role.REVIEWER,
    identity_pb2.ROLE_OPERATOR: Role.OPERATOR,
}


class NotSignedIn(Exception):
    """The token is not (or no longer) accepted, or its role has no console."""


async def who_is(apis: Apis, token: str) -> Viewer:
    """The principal `token` belongs to, asked of the identity service with that token itself."""
    try:
        answer = await apis.identity.IntrospectToken(
            identity_pb2.IntrospectTokenRequest(token=token), metadata=credentials(token), timeout=TIMEOUT
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            raise NotSignedIn("this token is not accepted") from None
        raise
    role = ROLES.get(answer.principal.role)
    if not answer.active or role is None:
        raise NotSignedIn("the console serves labs, reviewers and operators")
    p = answer.principal
    return Viewer(p.principal_id, role, p.organisation, tuple(p.sectors))


async def _all_pages(
    call: Callable[..., Awaitable[Any]], make: Callable[[str], Message], session: Session, field: str
) -> list[Any]:
    items: list[Any] = []
    token = ""
    while True:
        page = await call(make(token), metadata=credentials(session.token), timeout=TIMEOUT)
        items.extend(getattr(page, field))
        token = page.next_page_token
        if not token:
            return items


async def open_submissions(apis: Apis, session: Session) -> list[intake_pb2.Submission]:
    """Every open submission the user may see, soonest review deadline first."""
    found = await _all_pages(
        apis.intake.ListSubmissions,
        lambda t: intake_pb2.ListSubmissionsRequest(
            page_size=PAGE_SIZE, page_token=t, statuses=OPEN_STATUSES
        ),
        session,
        "submissions",
    )
    return sorted(found, key=lambda s: (s.review_deadline.seconds, s.review_deadline.nanos, s.submission_id))


async def submissions(apis: Apis, session: Session) -> list[intake_pb2.Submission]:
    """Every submission the user may see (a lab: its own), newest first."""
    found = await _all_pages(
        apis.intake.ListSubmissions,
        lambda t: intake_pb2.ListSubmissionsRequest(page_size=PAGE_SIZE, page_token=t),
        session,
        "submissions",
    )
    return sorted(found, key=lambda s: (s.received_at.seconds, s.received_at.nanos), reverse=True)


async def submission(apis: Apis, session: Session, submission_id: str) -> intake_pb2.Submission:
    """One submission."""
    answer: intake_pb2.GetSubmissionResponse = await apis.intake.GetSubmission(
        intake_pb2.GetSubmissionRequest(submission_id=submission_id),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )
    return answer.submission


async def jobs(apis: Apis, session: Session, submission_id: str) -> list[benchmark_pb2.Job]:
    """The benchmark jobs of a submission."""
    return await _all_pages(
        apis.benchmark.ListJobs,
        lambda t: benchmark_pb2.ListJobsRequest(
            submission_id=submission_id, page_size=PAGE_SIZE, page_token=t
        ),
        session,
        "jobs",
    )


async def report(apis: Apis, session: Session, submission_id: str) -> clearinghouse_pb2.ReviewReport | None:
    """The current report of a submission, or None while there is none."""
    try:
        answer: clearinghouse_pb2.GetReportResponse = await apis.clearinghouse.GetReport(
            clearinghouse_pb2.GetReportRequest(submission_id=submission_id),
            metadata=credentials(session.token),
            timeout=TIMEOUT,
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return answer.report


@dataclass(frozen=True)
class Verification:
    """Whether a report's signature verifies under the key the clearinghouse publishes."""

    ok: bool
    key_id: str
    algorithm: str


async def verify(apis: Apis, session: Session, found: clearinghouse_pb2.ReviewReport) -> Verification:
    """Check `found`'s signature against its signing key, fetched from the clearinghouse."""
    key = await apis.clearinghouse.GetSigningKey(
        clearinghouse_pb2.GetSigningKeyRequest(key_id=found.signing_key_id),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )
    ok = verify_signature(key.public_key, found.body, found.signature)
    return Verification(ok, key.key_id, key.algorithm)


async def sign_off(apis: Apis, session: Session, report_id: str, comment: str) -> None:
    """Sign a report off as the user."""
    await apis.clearinghouse.SignOffReport(
        clearinghouse_pb2.SignOffReportRequest(report_id=report_id, comment=comment),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )


async def add_note(apis: Apis, session: Session, report_id: str, text: str) -> None:
    """Add a note to a report as the user."""
    await apis.clearinghouse.AddReportNote(
        clearinghouse_pb2.AddReportNoteRequest(report_id=report_id, text=text),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )


async def reissue(apis: Apis, session: Session, submission_id: str, reason: str) -> int:
    """Recompute a submission's report with the current policy as a new version; its number."""
    answer: clearinghouse_pb2.ReissueReportResponse = await apis.clearinghouse.ReissueReport(
        clearinghouse_pb2.ReissueReportRequest(submission_id=submission_id, reason=reason),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )
    return answer.report.version


async def verify_audit_log(apis: Apis, session: Session) -> clearinghouse_pb2.VerifyAuditLogResponse:
    """The clearinghouse's check of its audit log's hash chain, from the first entry to the head."""
    answer: clearinghouse_pb2.VerifyAuditLogResponse = await apis.clearinghouse.VerifyAuditLog(
        clearinghouse_pb2.VerifyAuditLogRequest(), metadata=credentials(session.token), timeout=TIMEOUT
    )
    return answer


async def findings(apis: Apis, session: Session) -> list[clearinghouse_pb2.Finding]:
    """Every finding the user may see, most recently updated first."""
    found = await _all_pages(
        apis.clearinghouse.ListFindings,
        lambda t: clearinghouse_pb2.ListFindingsRequest(page_size=PAGE_SIZE, page_token=t),
        session,
        "findings",
    )
    return sorted(found, key=lambda f: (f.updated_at.seconds, f.updated_at.nanos), reverse=True)


async def finding(apis: Apis, session: Session, finding_id: str) -> clearinghouse_pb2.GetFindingResponse:
    """One finding, as the user may see it, with the states the workflow lets the user move it to."""
    answer: clearinghouse_pb2.GetFindingResponse = await apis.clearinghouse.GetFinding(
        clearinghouse_pb2.GetFindingRequest(finding_id=finding_id),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )
    return answer


def state_name(state: events_pb2.FindingState.ValueType) -> str:
    """A finding state's short name (VALIDATED)."""
    return events_pb2.FindingState.Name(state).removeprefix("FINDING_STATE_")


async def preview_sharing(
    apis: Apis,
    session: Session,
    finding_id: str,
    tlp: common_pb2.Tlp.ValueType,
    audience: common_pb2.Audience,
) -> list[str]:
    """The registered organisations the clearinghouse says this label and audience would reach."""
    answer: clearinghouse_pb2.PreviewSharingResponse = await apis.clearinghouse.PreviewSharing(
        clearinghouse_pb2.PreviewSharingRequest(finding_id=finding_id, tlp=tlp, audience=audience),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )
    return list(answer.organisations)


async def transition(
    apis: Apis, session: Session, finding_id: str, target: str, reason: str, revision: int
) -> None:
    """Move a finding to `target` (a short state name), guarded by the revision the user saw."""
    await apis.clearinghouse.TransitionFinding(
        clearinghouse_pb2.TransitionFindingRequest(
            finding_id=finding_id,
            state=events_pb2.FindingState.Value(f"FINDING_STATE_{target}"),
            reason=reason,
            expected_revision=revision,
        ),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )


async def share(
    apis: Apis,
    session: Session,
    finding_id: str,
    tlp: common_pb2.Tlp.ValueType,
    audience: common_pb2.Audience,
    reason: str,
    revision: int,
) -> None:
    """Set a finding's TLP label and audience, guarded by the revision the user saw."""
    await apis.clearinghouse.SetFindingSharing(
        clearinghouse_pb2.SetFindingSharingRequest(
            finding_id=finding_id,
            tlp=tlp,
            audience=audience,
            reason=reason,
            expected_revision=revision,
        ),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )


async def assess(
    apis: Apis, session: Session, finding_id: str, v3: str, v4: str, reason: str, revision: int
) -> None:
    """Set a finding's CVSS vectors (the clearinghouse scores them), guarded by the revision seen."""
    await apis.clearinghouse.UpdateFindingAssessment(
        clearinghouse_pb2.UpdateFindingAssessmentRequest(
            finding_id=finding_id,
            cvss_v3_vector=v3,
            cvss_v4_vector=v4,
            reason=reason,
            expected_revision=revision,
        ),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )


async def set_patch_status(
    apis: Apis, session: Session, finding_id: str, status: clearinghouse_pb2.PatchStatus.ValueType, note: str
) -> None:
    """Report the operator's organisation's patch status for a finding shared with it."""
    await apis.clearinghouse.SetPatchStatus(
        clearinghouse_pb2.SetPatchStatusRequest(finding_id=finding_id, status=status, note=note),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )


async def alerts(apis: Apis, session: Session) -> list[notifier_pb2.AlertRecord]:
    """The newest alerts the user may see (one page of `PAGE_SIZE`), newest first."""
    answer: notifier_pb2.ListAlertsResponse = await apis.notifier.ListAlerts(
        notifier_pb2.ListAlertsRequest(page_size=PAGE_SIZE),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )
    return list(answer.alerts)


async def acknowledge(apis: Apis, session: Session, alert_id: str, comment: str) -> None:
    """Record that the user's organisation has seen an alert."""
    await apis.notifier.AcknowledgeAlert(
        notifier_pb2.AcknowledgeAlertRequest(alert_id=alert_id, comment=comment),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )


async def export(
    apis: Apis, session: Session, finding_id: str, fmt: clearinghouse_pb2.ExportFormat.ValueType
) -> clearinghouse_pb2.ExportFindingResponse:
    """A finding exported as the user may receive it (CSAF, OSV or STIX)."""
    answer: clearinghouse_pb2.ExportFindingResponse = await apis.clearinghouse.ExportFinding(
        clearinghouse_pb2.ExportFindingRequest(finding_id=finding_id, format=fmt),
        metadata=credentials(session.token),
        timeout=TIMEOUT,
    )
    return answer


def when(value: Any) -> datetime | None:
    """A protobuf Timestamp as an aware datetime; None when unset."""
    if not value.seconds and not value.nanos:
        return None
    moment: datetime = value.ToDatetime(tzinfo=UTC)
    return moment
