"""The asyncio Preflight clients: the same classes and methods as `preflight.sdk.client`, awaitable
(grpc.aio), and the asyncio twin of `preflight.sdk.alerts.subscribe_alerts`.

async with AsyncClient("localhost:50051", token=token) as client:
    response = await client.submit(request)
    async for change in client.watch(response.submission.submission_id):
        ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from preflight.benchmark.v1 import benchmark_pb2
from preflight.clearinghouse.v1 import clearinghouse_pb2
from preflight.common.v1 import common_pb2
from preflight.identity.v1 import identity_pb2
from preflight.intake.v1 import intake_pb2
from preflight.notifier.v1 import events_pb2 as notifier_events_pb2
from preflight.notifier.v1 import notifier_pb2
from preflight.sdk import _calls, _common
from preflight.sdk._calls import Assessment, Pages, Stream, Transition, Unary
from preflight.sdk._common import TLS
from preflight.sdk.alerts import AlertSubscription, ReceivedAlert, stream_alerts
from preflight.sdk.errors import from_rpc_error
from preflight.sdk.reports import verify_report

R = TypeVar("R", bound=Message)
T = TypeVar("T")

_NO_KIND = notifier_events_pb2.ALERT_KIND_UNSPECIFIED


class AsyncServiceClient:
    """Asyncio twin of `preflight.sdk.client.ServiceClient`."""

    def __init__(
        self, channel: grpc.aio.Channel, *, token: str | None = None, timeout: float = _common.DEFAULT_TIMEOUT
    ) -> None:
        self._channel = channel
        self._metadata = _common.metadata(token)
        self._timeout = timeout

    async def _run(self, call: Unary[Any, T], timeout: float | None) -> T:
        method = self._channel.unary_unary(
            call.path, request_serializer=_common.serialize, response_deserializer=call.response.FromString
        )
        try:
            reply = await method(call.request, metadata=self._metadata, timeout=timeout or self._timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return call.result(reply)

    async def _iterate(self, pages: Pages[Any, T]) -> AsyncIterator[T]:
        token = ""
        while True:
            items, token = pages.items(await self._run(pages.page(token), None))
            for item in items:
                yield item
            if not token:
                return

    async def _follow(self, stream: Stream[R], timeout: float | None) -> AsyncIterator[R]:
        method = self._channel.unary_stream(
            stream.path,
            request_serializer=_common.serialize,
            response_deserializer=stream.response.FromString,
        )
        failures = 0
        while True:
            call = method(stream.request(), metadata=self._metadata, timeout=timeout)
            try:
                async for item in call:
                    failures = 0
                    if stream.fresh(item):
                        yield item
                return
            except grpc.RpcError as exc:
                failures += 1
                delay = _common.reconnect_delay(exc, failures)
                if delay is None:
                    raise from_rpc_error(exc) from exc
                await asyncio.sleep(delay)
            finally:
                call.cancel()


class AsyncIntakeClient(AsyncServiceClient):
    """Asyncio twin of `preflight.sdk.IntakeClient` (see it for each method's contract)."""

    async def submit(
        self, request: intake_pb2.SubmitModelRequest, *, timeout: float | None = None
    ) -> intake_pb2.SubmitModelResponse:
        return await self._run(_calls.submit(request), timeout)

    async def get_submission(
        self, submission_id: str, *, timeout: float | None = None
    ) -> intake_pb2.Submission:
        return await self._run(_calls.get_submission(submission_id), timeout)

    async def list_submissions(
        self,
        *,
        statuses: Iterable[intake_pb2.SubmissionStatus.ValueType] = (),
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> intake_pb2.ListSubmissionsResponse:
        return await self._run(_calls.submissions(statuses, page_size).page(page_token), timeout)

    def iter_submissions(
        self, *, statuses: Iterable[intake_pb2.SubmissionStatus.ValueType] = (), page_size: int = 0
    ) -> AsyncIterator[intake_pb2.Submission]:
        return self._iterate(_calls.submissions(statuses, page_size))

    async def update_release_plan(
        self,
        submission_id: str,
        planned_release: datetime,
        *,
        access_window: tuple[datetime, datetime] | None = None,
        reason: str = "",
        timeout: float | None = None,
    ) -> intake_pb2.Submission:
        call = _calls.update_release_plan(submission_id, planned_release, access_window, reason)
        return await self._run(call, timeout)

    async def withdraw(
        self, submission_id: str, *, reason: str = "", timeout: float | None = None
    ) -> intake_pb2.Submission:
        return await self._run(_calls.withdraw(submission_id, reason), timeout)

    def watch(
        self, submission_id: str, *, timeout: float | None = None
    ) -> AsyncIterator[intake_pb2.WatchSubmissionResponse]:
        return self._follow(_calls.watch(submission_id), timeout)

    async def resolve_credential(
        self, credential_ref: str, job_id: str, *, timeout: float | None = None
    ) -> str:
        return await self._run(_calls.resolve_credential(credential_ref, job_id), timeout)

    async def create_token(
        self,
        *,
        principal_id: str,
        role: identity_pb2.Role.ValueType,
        organisation: str,
        sectors: Iterable[str] = (),
        expires_at: datetime | None = None,
        description: str = "",
        timeout: float | None = None,
    ) -> identity_pb2.CreateTokenResponse:
        request = _common.create_token_request(
            principal_id=principal_id,
            role=role,
            organisation=organisation,
            sectors=sectors,
            expires_at=expires_at,
            description=description,
        )
        return await self._run(_calls.create_token(request), timeout)

    async def revoke_token(self, token_id: str, *, timeout: float | None = None) -> None:
        await self._run(_calls.revoke_token(token_id), timeout)


class AsyncClearinghouseClient(AsyncServiceClient):
    """Asyncio twin of `preflight.sdk.ClearinghouseClient` (see it for each method's contract)."""

    async def get_report(
        self, report_id: str = "", *, submission_id: str = "", version: int = 0, timeout: float | None = None
    ) -> clearinghouse_pb2.ReviewReport:
        return await self._run(_calls.get_report(report_id, submission_id, version), timeout)

    async def list_reports(
        self,
        *,
        all_versions: bool = False,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> clearinghouse_pb2.ListReportsResponse:
        return await self._run(_calls.reports(all_versions, page_size).page(page_token), timeout)

    def iter_reports(
        self, *, all_versions: bool = False, page_size: int = 0
    ) -> AsyncIterator[clearinghouse_pb2.ReviewReport]:
        return self._iterate(_calls.reports(all_versions, page_size))

    async def add_report_note(
        self, report_id: str, text: str, *, timeout: float | None = None
    ) -> clearinghouse_pb2.ReportNote:
        return await self._run(_calls.add_report_note(report_id, text), timeout)

    async def sign_off_report(
        self, report_id: str, *, comment: str = "", timeout: float | None = None
    ) -> clearinghouse_pb2.ReportSignOff:
        return await self._run(_calls.sign_off_report(report_id, comment), timeout)

    async def reissue_report(
        self, submission_id: str, *, reason: str = "", timeout: float | None = None
    ) -> clearinghouse_pb2.ReviewReport:
        return await self._run(_calls.reissue_report(submission_id, reason), timeout)

    async def get_signing_key(
        self, key_id: str = "", *, timeout: float | None = None
    ) -> clearinghouse_pb2.GetSigningKeyResponse:
        return await self._run(_calls.get_signing_key(key_id), timeout)

    async def verify_report(
        self, report: clearinghouse_pb2.ReviewReport, *, timeout: float | None = None
    ) -> clearinghouse_pb2.ReviewReport:
        verify_report(report, await self.get_signing_key(report.signing_key_id, timeout=timeout))
        return report

    async def report_finding(
        self, request: clearinghouse_pb2.ReportFindingRequest, *, timeout: float | None = None
    ) -> clearinghouse_pb2.ReportFindingResponse:
        return await self._run(_calls.report_finding(request), timeout)

    async def get_finding(
        self, finding_id: str, *, timeout: float | None = None
    ) -> clearinghouse_pb2.Finding:
        return await self._run(_calls.get_finding(finding_id), timeout)

    async def list_findings(
        self,
        filter: clearinghouse_pb2.FindingFilter | None = None,
        *,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> clearinghouse_pb2.ListFindingsResponse:
        return await self._run(_calls.findings(filter, page_size).page(page_token), timeout)

    def iter_findings(
        self, filter: clearinghouse_pb2.FindingFilter | None = None, *, page_size: int = 0
    ) -> AsyncIterator[clearinghouse_pb2.Finding]:
        return self._iterate(_calls.findings(filter, page_size))

    async def list_finding_history(
        self, finding_id: str, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> clearinghouse_pb2.ListFindingHistoryResponse:
        return await self._run(_calls.finding_history(finding_id, page_size).page(page_token), timeout)

    def iter_finding_history(
        self, finding_id: str, *, page_size: int = 0
    ) -> AsyncIterator[clearinghouse_pb2.FindingHistoryEntry]:
        return self._iterate(_calls.finding_history(finding_id, page_size))

    async def list_finding_comments(
        self, finding_id: str, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> clearinghouse_pb2.ListFindingCommentsResponse:
        return await self._run(_calls.finding_comments(finding_id, page_size).page(page_token), timeout)

    def iter_finding_comments(
        self, finding_id: str, *, page_size: int = 0
    ) -> AsyncIterator[clearinghouse_pb2.FindingComment]:
        return self._iterate(_calls.finding_comments(finding_id, page_size))

    async def add_finding_comment(
        self,
        finding_id: str,
        body: str,
        visibility: clearinghouse_pb2.CommentVisibility.ValueType,
        *,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.FindingComment:
        return await self._run(_calls.add_finding_comment(finding_id, body, visibility), timeout)

    async def edit_finding_comment(
        self,
        finding_id: str,
        comment_id: str,
        body: str,
        *,
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.FindingComment:
        call = _calls.edit_finding_comment(finding_id, comment_id, body, expected_revision)
        return await self._run(call, timeout)

    async def list_finding_attachments(
        self, finding_id: str, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> clearinghouse_pb2.ListFindingAttachmentsResponse:
        return await self._run(_calls.finding_attachments(finding_id, page_size).page(page_token), timeout)

    def iter_finding_attachments(
        self, finding_id: str, *, page_size: int = 0
    ) -> AsyncIterator[clearinghouse_pb2.FindingAttachment]:
        return self._iterate(_calls.finding_attachments(finding_id, page_size))

    async def add_finding_attachment(
        self,
        finding_id: str,
        name: str,
        content_type: str,
        content: bytes,
        visibility: clearinghouse_pb2.CommentVisibility.ValueType,
        *,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.FindingAttachment:
        call = _calls.add_finding_attachment(finding_id, name, content_type, content, visibility)
        return await self._run(call, timeout)

    async def get_finding_attachment(
        self, finding_id: str, attachment_id: str, *, timeout: float | None = None
    ) -> clearinghouse_pb2.GetFindingAttachmentResponse:
        return await self._run(_calls.get_finding_attachment(finding_id, attachment_id), timeout)

    async def query_findings(
        self, purl: str, *, version: str = "", timeout: float | None = None
    ) -> list[clearinghouse_pb2.Finding]:
        return await self._run(_calls.query_findings(purl, version), timeout)

    async def transition_finding(
        self,
        finding_id: str,
        target: Transition,
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        return await self._run(
            _calls.transition_finding(finding_id, target, reason, expected_revision), timeout
        )

    async def update_finding_assessment(
        self,
        finding_id: str,
        assessment: Assessment,
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        call = _calls.update_finding_assessment(finding_id, assessment, reason, expected_revision)
        return await self._run(call, timeout)

    async def preview_sharing(
        self,
        finding_id: str,
        tlp: common_pb2.Tlp.ValueType,
        audience: common_pb2.Audience,
        *,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.PreviewSharingResponse:
        return await self._run(_calls.preview_sharing(finding_id, tlp, audience), timeout)

    async def set_finding_sharing(
        self,
        finding_id: str,
        tlp: common_pb2.Tlp.ValueType,
        audience: common_pb2.Audience,
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        call = _calls.set_finding_sharing(finding_id, tlp, audience, reason, expected_revision)
        return await self._run(call, timeout)

    async def set_finding_aliases(
        self,
        finding_id: str,
        aliases: Iterable[str],
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        call = _calls.set_finding_aliases(finding_id, aliases, reason, expected_revision)
        return await self._run(call, timeout)

    async def set_finding_references(
        self,
        finding_id: str,
        references: Iterable[clearinghouse_pb2.FindingReference],
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        call = _calls.set_finding_references(finding_id, references, reason, expected_revision)
        return await self._run(call, timeout)

    async def set_finding_credits(
        self,
        finding_id: str,
        credits: Iterable[clearinghouse_pb2.FindingCredit],
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        call = _calls.set_finding_credits(finding_id, credits, reason, expected_revision)
        return await self._run(call, timeout)

    async def assign_finding(
        self,
        finding_id: str,
        assignee: str,
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        call = _calls.assign_finding(finding_id, assignee, reason, expected_revision)
        return await self._run(call, timeout)

    async def set_finding_ssvc(
        self,
        finding_id: str,
        *,
        exploitation: clearinghouse_pb2.SsvcExploitation.ValueType,
        automatable: clearinghouse_pb2.SsvcAutomatable.ValueType,
        technical_impact: clearinghouse_pb2.SsvcTechnicalImpact.ValueType,
        mission_well_being: clearinghouse_pb2.SsvcMissionWellBeing.ValueType,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        call = _calls.set_finding_ssvc(
            finding_id,
            exploitation,
            automatable,
            technical_impact,
            mission_well_being,
            reason,
            expected_revision,
        )
        return await self._run(call, timeout)

    async def link_finding(
        self,
        finding_id: str,
        kind: clearinghouse_pb2.LinkKind.ValueType,
        target_finding_id: str,
        *,
        reason: str = "",
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        return await self._run(_calls.link_finding(finding_id, kind, target_finding_id, reason), timeout)

    async def set_patch_status(
        self,
        finding_id: str,
        status: clearinghouse_pb2.PatchStatus.ValueType,
        *,
        note: str = "",
        justification: clearinghouse_pb2.VexJustification.ValueType = (
            clearinghouse_pb2.VEX_JUSTIFICATION_UNSPECIFIED
        ),
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        call = _calls.set_patch_status(finding_id, status, note, justification)
        return await self._run(call, timeout)

    async def export_finding(
        self,
        finding_id: str,
        format: clearinghouse_pb2.ExportFormat.ValueType,
        *,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.ExportFindingResponse:
        return await self._run(_calls.export_finding(finding_id, format), timeout)

    async def import_finding(
        self,
        document: bytes,
        format: clearinghouse_pb2.ExportFormat.ValueType,
        *,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.ImportFindingResponse:
        return await self._run(_calls.import_finding(document, format), timeout)

    async def stream_findings(
        self,
        filter: clearinghouse_pb2.FindingFilter | None = None,
        *,
        include_existing: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[clearinghouse_pb2.Finding]:
        async for change in self._follow(_calls.stream_findings(filter, include_existing), timeout):
            yield change.finding

    async def verify_audit_log(
        self, *, timeout: float | None = None
    ) -> clearinghouse_pb2.VerifyAuditLogResponse:
        return await self._run(_calls.verify_audit_log(), timeout)


class AsyncNotifierClient(AsyncServiceClient):
    """Asyncio twin of `preflight.sdk.NotifierClient` (see it for each method's contract)."""

    async def list_alerts(
        self,
        *,
        kind: notifier_events_pb2.AlertKind.ValueType = _NO_KIND,
        subject_id: str = "",
        unacknowledged_only: bool = False,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> notifier_pb2.ListAlertsResponse:
        pages = _calls.alerts(kind, subject_id, unacknowledged_only, page_size)
        return await self._run(pages.page(page_token), timeout)

    def iter_alerts(
        self,
        *,
        kind: notifier_events_pb2.AlertKind.ValueType = _NO_KIND,
        subject_id: str = "",
        unacknowledged_only: bool = False,
        page_size: int = 0,
    ) -> AsyncIterator[notifier_pb2.AlertRecord]:
        return self._iterate(_calls.alerts(kind, subject_id, unacknowledged_only, page_size))

    async def acknowledge_alert(
        self, alert_id: str, *, comment: str = "", timeout: float | None = None
    ) -> notifier_pb2.AlertRecord:
        return await self._run(_calls.acknowledge_alert(alert_id, comment), timeout)

    async def create_silence(
        self,
        matchers: Iterable[notifier_pb2.Matcher],
        ends_at: datetime,
        *,
        starts_at: datetime | None = None,
        comment: str = "",
        timeout: float | None = None,
    ) -> notifier_pb2.Silence:
        return await self._run(_calls.create_silence(matchers, ends_at, starts_at, comment), timeout)

    async def list_silences(
        self, *, include_expired: bool = False, timeout: float | None = None
    ) -> list[notifier_pb2.Silence]:
        return await self._run(_calls.list_silences(include_expired), timeout)

    async def expire_silence(self, silence_id: str, *, timeout: float | None = None) -> notifier_pb2.Silence:
        return await self._run(_calls.expire_silence(silence_id), timeout)

    async def subscribe_alerts(
        self,
        *,
        kinds: Iterable[notifier_events_pb2.AlertKind.ValueType] = (),
        after_sequence: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[notifier_pb2.AlertRecord]:
        async for change in self._follow(_calls.subscribe_alerts(kinds, after_sequence), timeout):
            yield change.alert


class AsyncBenchmarkClient(AsyncServiceClient):
    """Asyncio twin of `preflight.sdk.BenchmarkClient` (see it for each method's contract)."""

    async def get_job(self, job_id: str, *, timeout: float | None = None) -> benchmark_pb2.Job:
        return await self._run(_calls.get_job(job_id), timeout)

    async def get_eval_log(
        self, job_id: str, index: int = 0, *, timeout: float | None = None
    ) -> benchmark_pb2.GetEvalLogResponse:
        return await self._run(_calls.get_eval_log(job_id, index), timeout)

    def read_eval_log(
        self,
        job_id: str,
        index: int = 0,
        *,
        offset: int = 0,
        length: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[benchmark_pb2.ReadEvalLogResponse]:
        return self._follow(_calls.read_eval_log(job_id, index, offset, length), timeout)

    async def summarize_jobs(
        self, submission_ids: Iterable[str], *, timeout: float | None = None
    ) -> list[benchmark_pb2.JobSummary]:
        return await self._run(_calls.summarize_jobs(submission_ids), timeout)

    async def list_jobs(
        self,
        *,
        submission_id: str = "",
        statuses: Iterable[benchmark_pb2.JobStatus.ValueType] = (),
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> benchmark_pb2.ListJobsResponse:
        return await self._run(_calls.jobs(submission_id, statuses, page_size).page(page_token), timeout)

    def iter_jobs(
        self,
        *,
        submission_id: str = "",
        statuses: Iterable[benchmark_pb2.JobStatus.ValueType] = (),
        page_size: int = 0,
    ) -> AsyncIterator[benchmark_pb2.Job]:
        return self._iterate(_calls.jobs(submission_id, statuses, page_size))


class AsyncClient(AsyncIntakeClient, _common.AsyncClosing):
    """Asyncio twin of `preflight.sdk.Client`: intake over a channel of its own."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: bool | TLS = False,
        timeout: float = _common.DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(_common.open_aio_channel(target, tls), token=token, timeout=timeout)

    async def close(self) -> None:
        await self._channel.close()


def subscribe_alerts(
    subscription: AlertSubscription, *, poll_timeout: float = 1.0
) -> AsyncGenerator[ReceivedAlert, None]:
    """Asyncio twin of `preflight.sdk.alerts.subscribe_alerts` (same contract): `async for` over it."""
    return stream_alerts(subscription, poll_timeout=poll_timeout)
