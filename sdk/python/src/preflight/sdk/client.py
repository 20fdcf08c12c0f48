# Generated from aio.py by scripts/gen_sdk_client.py (unasync) — do not edit: edit aio.py, then run
# `make sdk-client`; sdk/python/tests/test_sdk_generated.py fails while this file is not what aio.py
# generates. Generated rather than wrapping the asyncio client on an event loop thread of its own: a
# blocking client takes any grpc.Channel (an instrumented or an application's own), is called from
# many threads at once and streams with no event loop, as grpc's blocking API does.
"""The blocking Preflight clients: one per service (`IntakeClient`, `ClearinghouseClient`,
`NotifierClient`, `BenchmarkClient`) over a channel they share, and `Client`, the intake client
with a channel of its own. `preflight.sdk.Preflight` builds the four for a deployment.

    with Client("preflight.example.gov:443", token=token, tls=True) as client:
        submission = client.submit(request).submission
        for change in client.watch(submission.submission_id):
            print(change.status)

Every method has a default deadline (`timeout`, 10 s), is retried by gRPC on
UNAVAILABLE when repeating it cannot change anything twice, and raises a
`preflight.sdk.errors.PreflightError` subclass on failure. Each RPC's request
and result are described once, in `preflight.sdk._calls`, for these clients and
their asyncio twins (`preflight.sdk.aio`), from which they are generated.
`subscribe_alerts` is `preflight.sdk.alerts.subscribe_alerts`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
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
from preflight.sdk.alerts import subscribe_alerts as subscribe_alerts
from preflight.sdk.errors import from_rpc_error
from preflight.sdk.reports import verify_report

__all__ = [
    "BenchmarkClient",
    "ClearinghouseClient",
    "Client",
    "IntakeClient",
    "NotifierClient",
    "ServiceClient",
    "subscribe_alerts",
]

R = TypeVar("R", bound=Message)
T = TypeVar("T")

_NO_KIND = notifier_events_pb2.ALERT_KIND_UNSPECIFIED


class ServiceClient:
    """Calls to one service over a channel it does not own: each with the caller's token, a
    deadline (`timeout`, 10 s unless the call gives its own) and typed errors."""

    def __init__(
        self,
        channel: _common.Channel,
        *,
        token: str | None = None,
        timeout: float = _common.DEFAULT_TIMEOUT,
    ) -> None:
        self._channel = channel
        self._metadata = _common.metadata(token)
        self._timeout = timeout

    def _run(self, call: Unary[Any, T], timeout: float | None) -> T:
        method = self._channel.unary_unary(
            call.path, request_serializer=_common.serialize, response_deserializer=call.response.FromString
        )
        try:
            reply = method(call.request, metadata=self._metadata, timeout=timeout or self._timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return call.result(reply)

    def _iterate(self, pages: Pages[Any, T]) -> Iterator[T]:
        token = ""
        while True:
            items, token = pages.items(self._run(pages.page(token), None))
            for item in items:
                yield item
            if not token:
                return

    def _follow(self, stream: Stream[R], timeout: float | None) -> Iterator[R]:
        """The stream's new items; reopened after UNAVAILABLE (up to 5 times in a row without news)."""
        method = self._channel.unary_stream(
            stream.path,
            request_serializer=_common.serialize,
            response_deserializer=stream.response.FromString,
        )
        failures = 0
        while True:
            call = method(stream.request(), metadata=self._metadata, timeout=timeout)
            try:
                for item in call:
                    failures = 0
                    if stream.fresh(item):
                        yield item
                return
            except grpc.RpcError as exc:
                failures += 1
                delay = _common.reconnect_delay(exc, failures)
                if delay is None:
                    raise from_rpc_error(exc) from exc
                time.sleep(delay)
            finally:
                # A plain call has cancel(); an instrumented blocking one (OpenTelemetry) is a generator.
                getattr(call, "cancel", getattr(call, "close", lambda: None))()


class IntakeClient(ServiceClient):
    """Intake (and identity): submissions, their release plans and status, tokens."""

    def submit(
        self, request: intake_pb2.SubmitModelRequest, *, timeout: float | None = None
    ) -> intake_pb2.SubmitModelResponse:
        """Submit a model version. Without `idempotency_key` the client sets a random one, so its own
        retries never create a second submission; give your own key to make retries across runs safe."""
        return self._run(_calls.submit(request), timeout)

    def get_submission(self, submission_id: str, *, timeout: float | None = None) -> intake_pb2.Submission:
        """One submission (NotFound if it does not exist or is not yours)."""
        return self._run(_calls.get_submission(submission_id), timeout)

    def list_submissions(
        self,
        *,
        statuses: Iterable[intake_pb2.SubmissionStatus.ValueType] = (),
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> intake_pb2.ListSubmissionsResponse:
        """One page of the submissions you may see, newest first."""
        return self._run(_calls.submissions(statuses, page_size).page(page_token), timeout)

    def iter_submissions(
        self, *, statuses: Iterable[intake_pb2.SubmissionStatus.ValueType] = (), page_size: int = 0
    ) -> Iterator[intake_pb2.Submission]:
        """Every submission you may see, newest first, fetching pages as needed."""
        return self._iterate(_calls.submissions(statuses, page_size))

    def update_release_plan(
        self,
        submission_id: str,
        planned_release: datetime,
        *,
        access_window: tuple[datetime, datetime] | None = None,
        reason: str = "",
        timeout: float | None = None,
    ) -> intake_pb2.Submission:
        """Move the planned release (the review deadline), and the access window if given."""
        call = _calls.update_release_plan(submission_id, planned_release, access_window, reason)
        return self._run(call, timeout)

    def withdraw(
        self, submission_id: str, *, reason: str = "", timeout: float | None = None
    ) -> intake_pb2.Submission:
        """Withdraw a submission that is not yet closed."""
        return self._run(_calls.withdraw(submission_id, reason), timeout)

    def watch(
        self, submission_id: str, *, timeout: float | None = None
    ) -> Iterator[intake_pb2.WatchSubmissionResponse]:
        """The submission's current status, then each change, until a terminal status.

        If the service restarts meanwhile, the watch reconnects (up to 5 times in a
        row without news) and skips what it already yielded. `timeout` bounds each
        connection (default: none).
        """
        return self._follow(_calls.watch(submission_id), timeout)

    def resolve_credential(self, credential_ref: str, job_id: str, *, timeout: float | None = None) -> str:
        """The endpoint credential behind a reference (service principals only; audit-logged)."""
        return self._run(_calls.resolve_credential(credential_ref, job_id), timeout)

    def create_token(
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
        """Issue a bearer token (admin only); the token is in the response and nowhere else."""
        request = _common.create_token_request(
            principal_id=principal_id,
            role=role,
            organisation=organisation,
            sectors=sectors,
            expires_at=expires_at,
            description=description,
        )
        return self._run(_calls.create_token(request), timeout)

    def revoke_token(self, token_id: str, *, timeout: float | None = None) -> None:
        """Revoke a token by its id (admins any token; anyone the token it presents)."""
        self._run(_calls.revoke_token(token_id), timeout)


class ClearinghouseClient(ServiceClient):
    """The clearinghouse: signed review reports and the findings registry.

    What the caller may not see answers NotFound (never PermissionDenied), so
    existence does not leak; a role that may not make a change gets PermissionDenied.
    """

    def get_report(
        self, report_id: str = "", *, submission_id: str = "", version: int = 0, timeout: float | None = None
    ) -> clearinghouse_pb2.ReviewReport:
        """One report version: by `report_id`, or the latest (or `version`) of `submission_id`'s."""
        return self._run(_calls.get_report(report_id, submission_id, version), timeout)

    def list_reports(
        self,
        *,
        all_versions: bool = False,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> clearinghouse_pb2.ListReportsResponse:
        """One page of the reports you may see, newest submission first (the latest version of
        each unless `all_versions`)."""
        return self._run(_calls.reports(all_versions, page_size).page(page_token), timeout)

    def iter_reports(
        self, *, all_versions: bool = False, page_size: int = 0
    ) -> Iterator[clearinghouse_pb2.ReviewReport]:
        """Every report you may see, fetching pages as needed."""
        return self._iterate(_calls.reports(all_versions, page_size))

    def add_report_note(
        self, report_id: str, text: str, *, timeout: float | None = None
    ) -> clearinghouse_pb2.ReportNote:
        """Add a reviewer's note to a report version (reviewers; not retried: a note is never added twice)."""
        return self._run(_calls.add_report_note(report_id, text), timeout)

    def sign_off_report(
        self, report_id: str, *, comment: str = "", timeout: float | None = None
    ) -> clearinghouse_pb2.ReportSignOff:
        """Sign off a report version (reviewers; once per reviewer)."""
        return self._run(_calls.sign_off_report(report_id, comment), timeout)

    def reissue_report(
        self, submission_id: str, *, reason: str = "", timeout: float | None = None
    ) -> clearinghouse_pb2.ReviewReport:
        """Recompute a submission's report under the current policy and issue it as a new version
        (reviewers and admins; not retried)."""
        return self._run(_calls.reissue_report(submission_id, reason), timeout)

    def get_signing_key(
        self, key_id: str = "", *, timeout: float | None = None
    ) -> clearinghouse_pb2.GetSigningKeyResponse:
        """The Ed25519 public key with `key_id` (a report's `signing_key_id`), or the current one."""
        return self._run(_calls.get_signing_key(key_id), timeout)

    def verify_report(
        self, report: clearinghouse_pb2.ReviewReport, *, timeout: float | None = None
    ) -> clearinghouse_pb2.ReviewReport:
        """`report` once `preflight.sdk.verify_report` accepts it with the key that signed it
        (fetched by its id); raises `ReportVerificationError` otherwise."""
        verify_report(report, self.get_signing_key(report.signing_key_id, timeout=timeout))
        return report

    def report_finding(
        self, request: clearinghouse_pb2.ReportFindingRequest, *, timeout: float | None = None
    ) -> clearinghouse_pb2.ReportFindingResponse:
        """Report a vulnerability. Without `request_id` the client sets a random one, so its own
        retries never record it twice."""
        return self._run(_calls.report_finding(request), timeout)

    def get_finding(self, finding_id: str, *, timeout: float | None = None) -> clearinghouse_pb2.Finding:
        """One finding as you may see it (NotFound if you may not)."""
        return self._run(_calls.get_finding(finding_id), timeout)

    def list_findings(
        self,
        filter: clearinghouse_pb2.FindingFilter | None = None,
        *,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> clearinghouse_pb2.ListFindingsResponse:
        """One page of the findings you may see, oldest first."""
        return self._run(_calls.findings(filter, page_size).page(page_token), timeout)

    def iter_findings(
        self, filter: clearinghouse_pb2.FindingFilter | None = None, *, page_size: int = 0
    ) -> Iterator[clearinghouse_pb2.Finding]:
        """Every finding you may see that matches `filter`, fetching pages as needed."""
        return self._iterate(_calls.findings(filter, page_size))

    def list_finding_history(
        self, finding_id: str, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> clearinghouse_pb2.ListFindingHistoryResponse:
        """One page of a finding's history, oldest first, as your view of the finding allows:
        reviewers and admins see every entry with its actor's principal id; anyone else sees only
        changes to what its view shows, with the actor's role alone. NotFound when you may not
        see the finding."""
        return self._run(_calls.finding_history(finding_id, page_size).page(page_token), timeout)

    def iter_finding_history(
        self, finding_id: str, *, page_size: int = 0
    ) -> Iterator[clearinghouse_pb2.FindingHistoryEntry]:
        """Every entry of a finding's history you may see, fetching pages as needed."""
        return self._iterate(_calls.finding_history(finding_id, page_size))

    def list_finding_comments(
        self, finding_id: str, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> clearinghouse_pb2.ListFindingCommentsResponse:
        """One page of a finding's comments you may read, in the order written: reviewers and
        admins read all; anyone else who may see the finding reads those shared with its audience
        and its own internal ones. NotFound when you may not see the finding."""
        return self._run(_calls.finding_comments(finding_id, page_size).page(page_token), timeout)

    def iter_finding_comments(
        self, finding_id: str, *, page_size: int = 0
    ) -> Iterator[clearinghouse_pb2.FindingComment]:
        """Every comment on a finding you may read, fetching pages as needed."""
        return self._iterate(_calls.finding_comments(finding_id, page_size))

    def add_finding_comment(
        self,
        finding_id: str,
        body: str,
        visibility: clearinghouse_pb2.CommentVisibility.ValueType,
        *,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.FindingComment:
        """Comment on a finding you may see: internal (reviewers and admins) or shared with its
        audience. Not retried."""
        return self._run(_calls.add_finding_comment(finding_id, body, visibility), timeout)

    def edit_finding_comment(
        self,
        finding_id: str,
        comment_id: str,
        body: str,
        *,
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.FindingComment:
        """A new revision of your own comment (the earlier ones are kept). Not retried."""
        call = _calls.edit_finding_comment(finding_id, comment_id, body, expected_revision)
        return self._run(call, timeout)

    def list_finding_attachments(
        self, finding_id: str, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> clearinghouse_pb2.ListFindingAttachmentsResponse:
        """One page of a finding's attachments you may read (metadata, no bytes), in the order
        added; who reads which is as for comments. NotFound when you may not see the finding."""
        return self._run(_calls.finding_attachments(finding_id, page_size).page(page_token), timeout)

    def iter_finding_attachments(
        self, finding_id: str, *, page_size: int = 0
    ) -> Iterator[clearinghouse_pb2.FindingAttachment]:
        """Every attachment of a finding you may read (metadata), fetching pages as needed."""
        return self._iterate(_calls.finding_attachments(finding_id, page_size))

    def add_finding_attachment(
        self,
        finding_id: str,
        name: str,
        content_type: str,
        content: bytes,
        visibility: clearinghouse_pb2.CommentVisibility.ValueType,
        *,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.FindingAttachment:
        """Attach an evidence file (at most 3 MiB, of an allowed content type its bytes match) to a
        finding you may see: internal (reviewers and admins) or shared with its audience. Returns
        its metadata with the SHA-256 of its bytes. Not retried."""
        call = _calls.add_finding_attachment(finding_id, name, content_type, content, visibility)
        return self._run(call, timeout)

    def get_finding_attachment(
        self, finding_id: str, attachment_id: str, *, timeout: float | None = None
    ) -> clearinghouse_pb2.GetFindingAttachmentResponse:
        """An attachment you may read: its metadata and bytes (`attachment.sha256` is theirs)."""
        return self._run(_calls.get_finding_attachment(finding_id, attachment_id), timeout)

    def query_findings(
        self, purl: str, *, version: str = "", timeout: float | None = None
    ) -> list[clearinghouse_pb2.Finding]:
        """The findings you may see that affect one package version (`pkg:pypi/flask@2.3.1`, or
        the purl without a version and `version`), oldest first; at most 500."""
        return self._run(_calls.query_findings(purl, version), timeout)

    def transition_finding(
        self,
        finding_id: str,
        target: Transition,
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        """Move a finding through the disclosure or the embargo state machine (reviewers and
        admins); an illegal transition raises FailedPrecondition, a finding no longer at
        `expected_revision` Aborted. Not retried."""
        return self._run(_calls.transition_finding(finding_id, target, reason, expected_revision), timeout)

    def update_finding_assessment(
        self,
        finding_id: str,
        assessment: Assessment,
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        """Change a finding's CVSS vectors, CWE ids or remediation date (reviewers and admins).
        Not retried."""
        call = _calls.update_finding_assessment(finding_id, assessment, reason, expected_revision)
        return self._run(call, timeout)

    def preview_sharing(
        self,
        finding_id: str,
        tlp: common_pb2.Tlp.ValueType,
        audience: common_pb2.Audience,
        *,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.PreviewSharingResponse:
        """The registered organisations a finding would reach, once published, with this TLP label and
        audience (reviewers and admins; nothing changes)."""
        return self._run(_calls.preview_sharing(finding_id, tlp, audience), timeout)

    def set_finding_sharing(
        self,
        finding_id: str,
        tlp: common_pb2.Tlp.ValueType,
        audience: common_pb2.Audience,
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        """Set a finding's TLP label and audience (reviewers and admins). Not retried."""
        call = _calls.set_finding_sharing(finding_id, tlp, audience, reason, expected_revision)
        return self._run(call, timeout)

    def set_finding_aliases(
        self,
        finding_id: str,
        aliases: Iterable[str],
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        """Replace a finding's aliases (CVE, GHSA and vendor ids; empty removes them; reviewers and
        admins). An alias another finding holds is InvalidArgument. Not retried."""
        return self._run(_calls.set_finding_aliases(finding_id, aliases, reason, expected_revision), timeout)

    def set_finding_references(
        self,
        finding_id: str,
        references: Iterable[clearinghouse_pb2.FindingReference],
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        """Replace a finding's references (typed URLs; empty removes them; reviewers and admins).
        Not retried."""
        call = _calls.set_finding_references(finding_id, references, reason, expected_revision)
        return self._run(call, timeout)

    def set_finding_credits(
        self,
        finding_id: str,
        credits: Iterable[clearinghouse_pb2.FindingCredit],
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        """Replace a finding's credits (who found, reported or fixed it; empty removes them;
        reviewers and admins). A lab's finding shows them exactly where it shows its source.
        Not retried."""
        return self._run(_calls.set_finding_credits(finding_id, credits, reason, expected_revision), timeout)

    def assign_finding(
        self,
        finding_id: str,
        assignee: str,
        *,
        reason: str = "",
        expected_revision: int = 0,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        """Assign a finding to a reviewer principal ("" unassigns it; reviewers and admins).
        Not retried."""
        return self._run(_calls.assign_finding(finding_id, assignee, reason, expected_revision), timeout)

    def set_finding_ssvc(
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
        """Record an SSVC decision from CISA's four decision points (reviewers and admins); the
        finding comes back with the outcome the clearinghouse computed. Not retried."""
        call = _calls.set_finding_ssvc(
            finding_id,
            exploitation,
            automatable,
            technical_impact,
            mission_well_being,
            reason,
            expected_revision,
        )
        return self._run(call, timeout)

    def link_finding(
        self,
        finding_id: str,
        kind: clearinghouse_pb2.LinkKind.ValueType,
        target_finding_id: str,
        *,
        reason: str = "",
        timeout: float | None = None,
    ) -> clearinghouse_pb2.Finding:
        """Mark a finding a duplicate of, subsumed by or merged into another (reviewers and admins)."""
        return self._run(_calls.link_finding(finding_id, kind, target_finding_id, reason), timeout)

    def set_patch_status(
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
        """Report your organisation's statement for a finding you may see (operators): its status
        and, for NOT_AFFECTED (only), the VEX justification."""
        return self._run(_calls.set_patch_status(finding_id, status, note, justification), timeout)

    def export_finding(
        self,
        finding_id: str,
        format: clearinghouse_pb2.ExportFormat.ValueType,
        *,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.ExportFindingResponse:
        """A finding as a CSAF 2.1 (or 2.0), OSV or STIX 2.1 document, as you may see it."""
        return self._run(_calls.export_finding(finding_id, format), timeout)

    def import_finding(
        self,
        document: bytes,
        format: clearinghouse_pb2.ExportFormat.ValueType,
        *,
        timeout: float | None = None,
    ) -> clearinghouse_pb2.ImportFindingResponse:
        """Store the finding a CSAF 2.1 (EXPORT_FORMAT_CSAF), CSAF 2.0 or OSV document describes
        (reviewers and admins): validated first (InvalidArgument naming its JSON paths), RECEIVED,
        shared with no one yet. The same bytes again return the same finding, so retries are safe."""
        return self._run(_calls.import_finding(document, format), timeout)

    def stream_findings(
        self,
        filter: clearinghouse_pb2.FindingFilter | None = None,
        *,
        include_existing: bool = False,
        timeout: float | None = None,
    ) -> Iterator[clearinghouse_pb2.Finding]:
        """The findings you may see as they change (the current ones first with
        `include_existing`), each revision once, reconnecting after UNAVAILABLE without a gap."""
        for change in self._follow(_calls.stream_findings(filter, include_existing), timeout):
            yield change.finding

    def verify_audit_log(self, *, timeout: float | None = None) -> clearinghouse_pb2.VerifyAuditLogResponse:
        """Check the audit log's hash chain (reviewers and admins)."""
        return self._run(_calls.verify_audit_log(), timeout)


class NotifierClient(ServiceClient):
    """The notifier: alerts you may see, their acknowledgement, silences."""

    def list_alerts(
        self,
        *,
        kind: notifier_events_pb2.AlertKind.ValueType = _NO_KIND,
        subject_id: str = "",
        unacknowledged_only: bool = False,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> notifier_pb2.ListAlertsResponse:
        """One page of the alerts you may see, newest first."""
        pages = _calls.alerts(kind, subject_id, unacknowledged_only, page_size)
        return self._run(pages.page(page_token), timeout)

    def iter_alerts(
        self,
        *,
        kind: notifier_events_pb2.AlertKind.ValueType = _NO_KIND,
        subject_id: str = "",
        unacknowledged_only: bool = False,
        page_size: int = 0,
    ) -> Iterator[notifier_pb2.AlertRecord]:
        """Every alert you may see, newest first, fetching pages as needed."""
        return self._iterate(_calls.alerts(kind, subject_id, unacknowledged_only, page_size))

    def acknowledge_alert(
        self, alert_id: str, *, comment: str = "", timeout: float | None = None
    ) -> notifier_pb2.AlertRecord:
        """Record that your organisation has seen an alert."""
        return self._run(_calls.acknowledge_alert(alert_id, comment), timeout)

    def create_silence(
        self,
        matchers: Iterable[notifier_pb2.Matcher],
        ends_at: datetime,
        *,
        starts_at: datetime | None = None,
        comment: str = "",
        timeout: float | None = None,
    ) -> notifier_pb2.Silence:
        """Suppress deliveries of matching alerts from `starts_at` (default: now) to `ends_at`.
        Not retried."""
        return self._run(_calls.create_silence(matchers, ends_at, starts_at, comment), timeout)

    def list_silences(
        self, *, include_expired: bool = False, timeout: float | None = None
    ) -> list[notifier_pb2.Silence]:
        """The silences you may manage."""
        return self._run(_calls.list_silences(include_expired), timeout)

    def expire_silence(self, silence_id: str, *, timeout: float | None = None) -> notifier_pb2.Silence:
        """End a silence now."""
        return self._run(_calls.expire_silence(silence_id), timeout)

    def subscribe_alerts(
        self,
        *,
        kinds: Iterable[notifier_events_pb2.AlertKind.ValueType] = (),
        after_sequence: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[notifier_pb2.AlertRecord]:
        """The alerts you may see as they fire (from now, or strictly after `after_sequence`: pass
        the last `sequence` you handled to continue without a gap), each once, reconnecting after
        UNAVAILABLE."""
        for change in self._follow(_calls.subscribe_alerts(kinds, after_sequence), timeout):
            yield change.alert


class BenchmarkClient(ServiceClient):
    """Benchmark jobs, read-only: reviewers see every job, a lab its own organisation's."""

    def get_job(self, job_id: str, *, timeout: float | None = None) -> benchmark_pb2.Job:
        """One job (NotFound if you may not see it)."""
        return self._run(_calls.get_job(job_id), timeout)

    def get_eval_log(
        self, job_id: str, index: int = 0, *, timeout: float | None = None
    ) -> benchmark_pb2.GetEvalLogResponse:
        """What the job's `index`-th eval log says: task, model, status, metrics, each sample's
        scores (reviewers only)."""
        return self._run(_calls.get_eval_log(job_id, index), timeout)

    def read_eval_log(
        self,
        job_id: str,
        index: int = 0,
        *,
        offset: int = 0,
        length: int = 0,
        timeout: float | None = None,
    ) -> Iterator[benchmark_pb2.ReadEvalLogResponse]:
        """The bytes of the job's `index`-th eval log from `offset`, `length` of them (0: to the end),
        in chunks of at most 1 MiB, each with the log's size (reviewers only); a broken connection
        resumes where it stopped."""
        return self._follow(_calls.read_eval_log(job_id, index, offset, length), timeout)

    def summarize_jobs(
        self, submission_ids: Iterable[str], *, timeout: float | None = None
    ) -> list[benchmark_pb2.JobSummary]:
        """Each named submission's jobs counted by status (1 to 200 ids, in one call), in the
        order named; a submission with no job you may see is left out."""
        return self._run(_calls.summarize_jobs(submission_ids), timeout)

    def list_jobs(
        self,
        *,
        submission_id: str = "",
        statuses: Iterable[benchmark_pb2.JobStatus.ValueType] = (),
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> benchmark_pb2.ListJobsResponse:
        """One page of the jobs you may see (of one submission if given), oldest first."""
        return self._run(_calls.jobs(submission_id, statuses, page_size).page(page_token), timeout)

    def iter_jobs(
        self,
        *,
        submission_id: str = "",
        statuses: Iterable[benchmark_pb2.JobStatus.ValueType] = (),
        page_size: int = 0,
    ) -> Iterator[benchmark_pb2.Job]:
        """Every job you may see (of one submission if given), fetching pages as needed."""
        return self._iterate(_calls.jobs(submission_id, statuses, page_size))


class Client(IntakeClient, _common.Closing):
    """A connection to Preflight's intake (and identity) service that owns its channel.

    `target` is `host:port`; `token` the caller's bearer token; `tls` False for
    plaintext (loopback and tests), True for TLS with the system's roots, or a
    `TLS` for a private CA and client certificates (mTLS). For every service at
    once, use `preflight.sdk.Preflight` (asyncio: `AsyncPreflight`).
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: bool | TLS = False,
        timeout: float = _common.DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(_common.open_channel(target, tls), token=token, timeout=timeout)

    def close(self) -> None:
        self._channel.close()
