"""What each page reads and does through the APIs, as the signed-in user.

Every function takes the user's session and calls the APIs (`domain.ports.ServiceApis`) with its
token; a refusal propagates (`preflight.sdk.errors.PreflightError`) for the web layer to answer
with the matching status.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from preflight.benchmark.v1 import benchmark_pb2
from preflight.clearinghouse.v1 import clearinghouse_pb2, events_pb2
from preflight.common.v1 import common_pb2
from preflight.intake.v1 import intake_pb2
from preflight.notifier.v1 import notifier_pb2
from preflight.sdk import Assessment, Transition
from preflight.sdk.aio import AsyncClearinghouseClient
from preflight.sdk.errors import NotFound, PermissionDenied, Unauthenticated
from preflight.sdk.reports import verify_signature
from preflight_common.auth import Principal

from preflight_console.domain.ports import ServiceApis
from preflight_console.domain.sessions import CONSOLE_ROLES, Session

PAGE_SIZE = 200
SUMMARY_BATCH = 200
"""Submissions one `SummarizeJobs` call may name."""
OPEN_STATUSES = (
    intake_pb2.SUBMISSION_STATUS_RECEIVED,
    intake_pb2.SUBMISSION_STATUS_BENCHMARKING,
    intake_pb2.SUBMISSION_STATUS_UNDER_REVIEW,
    intake_pb2.SUBMISSION_STATUS_REPORT_READY,
)


class NotSignedIn(Exception):
    """The token is not (or no longer) accepted, or its role has no console."""


async def who_is(apis: ServiceApis, token: str) -> Principal:
    """The principal `token` belongs to, asked of the identity service with that token itself."""
    try:
        answer = await apis.introspect(token)
    except (Unauthenticated, PermissionDenied):
        raise NotSignedIn("this token is not accepted") from None
    if not answer.active or answer.principal.role not in {r.to_proto() for r in CONSOLE_ROLES}:
        raise NotSignedIn("the console serves labs, reviewers and operators")
    return Principal.from_proto(answer.principal)


async def end_sign_in(apis: ServiceApis, session: Session) -> None:
    """Revoke the token the console's sign-in had issued for `session`, asking with that token
    itself (a principal may revoke the token it presents); a token the user brought is left alone.
    A token that no longer works needs nothing; another refusal propagates."""
    if not session.issued_token_id:
        return
    with contextlib.suppress(Unauthenticated, NotFound):
        await apis.intake(session.token).revoke_token(session.issued_token_id)


def _clearinghouse(apis: ServiceApis, session: Session) -> AsyncClearinghouseClient:
    return apis.clearinghouse(session.token)


async def open_submissions(apis: ServiceApis, session: Session) -> list[intake_pb2.Submission]:
    """Every open submission the user may see, soonest review deadline first."""
    found = [
        s
        async for s in apis.intake(session.token).iter_submissions(
            statuses=OPEN_STATUSES, page_size=PAGE_SIZE
        )
    ]
    return sorted(found, key=lambda s: (s.review_deadline.seconds, s.review_deadline.nanos, s.submission_id))


async def job_summaries(
    apis: ServiceApis, session: Session, submission_ids: list[str]
) -> dict[str, benchmark_pb2.JobSummary]:
    """Each submission's jobs counted by status, by submission id (one without jobs the user may
    see is absent): one `SummarizeJobs` call per `SUMMARY_BATCH` submissions, all at once."""
    client = apis.benchmark(session.token)
    batches = await asyncio.gather(
        *(
            client.summarize_jobs(submission_ids[start : start + SUMMARY_BATCH])
            for start in range(0, len(submission_ids), SUMMARY_BATCH)
        )
    )
    return {summary.submission_id: summary for batch in batches for summary in batch}


async def submissions(apis: ServiceApis, session: Session) -> list[intake_pb2.Submission]:
    """Every submission the user may see (a lab: its own), newest first."""
    found = [s async for s in apis.intake(session.token).iter_submissions(page_size=PAGE_SIZE)]
    return sorted(found, key=lambda s: (s.received_at.seconds, s.received_at.nanos), reverse=True)


async def submission(apis: ServiceApis, session: Session, submission_id: str) -> intake_pb2.Submission:
    """One submission."""
    return await apis.intake(session.token).get_submission(submission_id)


async def jobs(apis: ServiceApis, session: Session, submission_id: str) -> list[benchmark_pb2.Job]:
    """The benchmark jobs of a submission."""
    client = apis.benchmark(session.token)
    return [j async for j in client.iter_jobs(submission_id=submission_id, page_size=PAGE_SIZE)]


async def eval_log(
    apis: ServiceApis, session: Session, job_id: str, index: int
) -> benchmark_pb2.GetEvalLogResponse:
    """What the job's `index`-th eval log says, as the benchmark service reads it for the user."""
    return await apis.benchmark(session.token).get_eval_log(job_id, index)


@dataclass(frozen=True)
class LogBytes:
    """Bytes of an eval log as the benchmark service hands them on: the file's name and size, and
    the bytes asked for."""

    name: str
    size: int
    chunks: AsyncIterator[bytes]


async def eval_log_bytes(
    apis: ServiceApis, session: Session, job_id: str, index: int, offset: int = 0, length: int = 0
) -> LogBytes:
    """The job's `index`-th eval log from `offset`, `length` bytes of it (0: to the end). The first
    chunk is read here, so a refusal is raised before any byte is handed on."""
    chunks = apis.benchmark(session.token).read_eval_log(job_id, index, offset=offset, length=length)
    first = await anext(chunks)

    async def rest() -> AsyncIterator[bytes]:
        yield first.data
        async for chunk in chunks:
            yield chunk.data

    return LogBytes(first.name, first.size, rest())


async def report(
    apis: ServiceApis, session: Session, submission_id: str
) -> clearinghouse_pb2.ReviewReport | None:
    """The current report of a submission, or None while there is none."""
    try:
        return await _clearinghouse(apis, session).get_report(submission_id=submission_id)
    except NotFound:
        return None


@dataclass(frozen=True)
class Verification:
    """Whether a report's signature verifies under the key the clearinghouse publishes."""

    ok: bool
    key_id: str
    algorithm: str


async def verify(apis: ServiceApis, session: Session, found: clearinghouse_pb2.ReviewReport) -> Verification:
    """Check `found`'s signature against its signing key, fetched from the clearinghouse."""
    key = await _clearinghouse(apis, session).get_signing_key(found.signing_key_id)
    ok = verify_signature(key.public_key, found.body, found.signature)
    return Verification(ok, key.key_id, key.algorithm)


async def sign_off(apis: ServiceApis, session: Session, report_id: str, comment: str) -> None:
    """Sign a report off as the user."""
    await _clearinghouse(apis, session).sign_off_report(report_id, comment=comment)


async def add_note(apis: ServiceApis, session: Session, report_id: str, text: str) -> None:
    """Add a note to a report as the user."""
    await _clearinghouse(apis, session).add_report_note(report_id, text)


async def reissue(apis: ServiceApis, session: Session, submission_id: str, reason: str) -> int:
    """Recompute a submission's report with the current policy as a new version; its number."""
    return (await _clearinghouse(apis, session).reissue_report(submission_id, reason=reason)).version


async def verify_audit_log(apis: ServiceApis, session: Session) -> clearinghouse_pb2.VerifyAuditLogResponse:
    """The clearinghouse's check of its audit log's hash chain, from the first entry to the head."""
    return await _clearinghouse(apis, session).verify_audit_log()


async def findings(apis: ServiceApis, session: Session) -> list[clearinghouse_pb2.Finding]:
    """Every finding the user may see, most recently updated first."""
    found = [f async for f in _clearinghouse(apis, session).iter_findings(page_size=PAGE_SIZE)]
    return sorted(found, key=lambda f: (f.updated_at.seconds, f.updated_at.nanos), reverse=True)


async def finding(
    apis: ServiceApis, session: Session, finding_id: str
) -> clearinghouse_pb2.GetFindingResponse:
    """One finding, as the user may see it, with the states the workflow lets the user move it to."""
    return await apis.finding(session.token, finding_id)


def state_name(state: events_pb2.FindingState.ValueType) -> str:
    """A finding state's short name (VALIDATED)."""
    return events_pb2.FindingState.Name(state).removeprefix("FINDING_STATE_")


async def preview_sharing(
    apis: ServiceApis,
    session: Session,
    finding_id: str,
    tlp: common_pb2.Tlp.ValueType,
    audience: common_pb2.Audience,
) -> list[str]:
    """The registered organisations the clearinghouse says this label and audience would reach."""
    answer = await _clearinghouse(apis, session).preview_sharing(finding_id, tlp, audience)
    return list(answer.organisations)


async def transition(
    apis: ServiceApis, session: Session, finding_id: str, target: str, reason: str, revision: int
) -> None:
    """Move a finding to `target` (a short state name), guarded by the revision the user saw."""
    state = events_pb2.FindingState.Value(f"FINDING_STATE_{target}")
    await _clearinghouse(apis, session).transition_finding(
        finding_id, Transition(state=state), reason=reason, expected_revision=revision
    )


async def share(
    apis: ServiceApis,
    session: Session,
    finding_id: str,
    tlp: common_pb2.Tlp.ValueType,
    audience: common_pb2.Audience,
    reason: str,
    revision: int,
) -> None:
    """Set a finding's TLP label and audience, guarded by the revision the user saw."""
    await _clearinghouse(apis, session).set_finding_sharing(
        finding_id, tlp, audience, reason=reason, expected_revision=revision
    )


async def assess(
    apis: ServiceApis, session: Session, finding_id: str, v3: str, v4: str, reason: str, revision: int
) -> None:
    """Set a finding's CVSS vectors (the clearinghouse scores them), guarded by the revision seen."""
    await _clearinghouse(apis, session).update_finding_assessment(
        finding_id,
        Assessment(cvss_v3_vector=v3, cvss_v4_vector=v4),
        reason=reason,
        expected_revision=revision,
    )


async def set_patch_status(
    apis: ServiceApis,
    session: Session,
    finding_id: str,
    status: clearinghouse_pb2.PatchStatus.ValueType,
    note: str,
) -> None:
    """Report the operator's organisation's patch status for a finding shared with it."""
    await _clearinghouse(apis, session).set_patch_status(finding_id, status, note=note)


async def alerts(apis: ServiceApis, session: Session) -> list[notifier_pb2.AlertRecord]:
    """The newest alerts the user may see (one page of `PAGE_SIZE`), newest first."""
    answer = await apis.notifier(session.token).list_alerts(page_size=PAGE_SIZE)
    return list(answer.alerts)


async def acknowledge(apis: ServiceApis, session: Session, alert_id: str, comment: str) -> None:
    """Record that the user's organisation has seen an alert."""
    await apis.notifier(session.token).acknowledge_alert(alert_id, comment=comment)


async def export(
    apis: ServiceApis, session: Session, finding_id: str, fmt: clearinghouse_pb2.ExportFormat.ValueType
) -> clearinghouse_pb2.ExportFindingResponse:
    """A finding exported as the user may receive it (CSAF, OSV or STIX)."""
    return await _clearinghouse(apis, session).export_finding(finding_id, fmt)


def when(value: Any) -> datetime | None:
    """A protobuf Timestamp as an aware datetime; None when unset."""
    if not value.seconds and not value.nanos:
        return None
    moment: datetime = value.ToDatetime(tzinfo=UTC)
    return moment
