"""BenchmarkService over gRPC: reviewers read jobs; workers report results (service principals only)."""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import AsyncIterator
from datetime import datetime

import grpc
from preflight.benchmark.v1 import benchmark_pb2, benchmark_pb2_grpc
from preflight_common.auth import Principal, Role, require_role
from preflight_common.clock import Clock, utc_now
from preflight_common.fields import InvalidArgument
from preflight_common.grpcserver import invalid_argument
from preflight_common.pagetokens import page_tokens

from preflight_benchmark.adapters import events
from preflight_benchmark.adapters.eval_logs import EvalLogs
from preflight_benchmark.adapters.events import PROTO_TO_STATUS, STATUS_TO_PROTO, job_view
from preflight_benchmark.adapters.store import JobStore
from preflight_benchmark.domain.jobs import JobStatus
from preflight_benchmark.domain.records import JobRecord
from preflight_benchmark.service_layer.results import Verdict, record_result

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_SUMMARIES = 200
"""Submissions one SummarizeJobs call may name."""
READERS = (Role.REVIEWER, Role.SERVICE, Role.LAB)


def _visible_to(principal: Principal, job: JobRecord) -> bool:
    scope = _organisation_scope(principal)
    return scope is None or job.organisation == scope


def _organisation_scope(principal: Principal) -> str | None:
    """The one organisation whose jobs `principal` may read; None for every organisation's.

    A probe's is "", which no job has: its listing runs the query and is always empty."""
    if principal.role is Role.PROBE:
        return ""
    return None if principal.role in (Role.REVIEWER, Role.SERVICE) else principal.organisation


EvalLogRequest = benchmark_pb2.GetEvalLogRequest | benchmark_pb2.ReadEvalLogRequest

_LIST_SCOPE = "preflight.benchmark.v1.BenchmarkService/ListJobs"


def _encode_token(job: JobRecord) -> str:
    return page_tokens().encode(_LIST_SCOPE, [job.created_at.isoformat(), job.job_id])


def _decode_token(token: str) -> tuple[datetime, str] | None:
    """The cursor in a page token; InvalidArgument naming `page_token` if this server did not issue it."""
    cursor = page_tokens().decode(_LIST_SCOPE, token)
    if cursor is None:
        return None
    created, job_id = cursor
    return datetime.fromisoformat(str(created)), str(job_id)


def _summary(submission_id: str, counts: dict[JobStatus, int]) -> benchmark_pb2.JobSummary:
    return benchmark_pb2.JobSummary(
        submission_id=submission_id,
        planned=sum(counts.values()),
        pending=counts.get(JobStatus.PENDING, 0),
        running=counts.get(JobStatus.RUNNING, 0),
        completed=counts.get(JobStatus.COMPLETED, 0),
        failed=counts.get(JobStatus.FAILED, 0),
    )


class BenchmarkServicer(benchmark_pb2_grpc.BenchmarkServiceServicer):
    """Jobs for their readers, eval logs for reviewers (`eval_logs`: none readable when None)."""

    def __init__(self, store: JobStore, clock: Clock = utc_now, *, eval_logs: EvalLogs | None = None) -> None:
        self._store = store
        self._clock = clock
        self._eval_logs = eval_logs

    async def GetJob(
        self, request: benchmark_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> benchmark_pb2.GetJobResponse:
        principal = await require_role(context, *READERS)
        if not request.job_id:
            await invalid_argument(context, [("job_id", "required")])
        job = await asyncio.to_thread(self._store.get, request.job_id)
        if job is None or not _visible_to(principal, job):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job {request.job_id} not found")
        assert job is not None
        return benchmark_pb2.GetJobResponse(job=job_view(job))

    async def ListJobs(
        self, request: benchmark_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> benchmark_pb2.ListJobsResponse:
        principal = await require_role(context, *READERS, Role.PROBE)
        violations = []
        if not 0 <= request.page_size <= MAX_PAGE:
            violations.append(("page_size", f"must be between 0 and {MAX_PAGE}"))
        if any(s not in PROTO_TO_STATUS for s in request.statuses):
            violations.append(("statuses", "JOB_STATUS_UNSPECIFIED or unknown status"))
        after = None
        try:
            after = _decode_token(request.page_token)
        except InvalidArgument as exc:
            violations += exc.violations
        if violations:
            await invalid_argument(context, violations)
        size = request.page_size or DEFAULT_PAGE
        rows = await asyncio.to_thread(
            lambda: self._store.list(
                organisation=_organisation_scope(principal),
                submission_id=request.submission_id or None,
                statuses=[PROTO_TO_STATUS[s] for s in request.statuses],
                after=after,
                limit=size + 1,
            )
        )
        response = benchmark_pb2.ListJobsResponse(jobs=[job_view(job) for job in rows[:size]])
        if len(rows) > size:
            response.next_page_token = _encode_token(rows[size - 1])
        return response

    async def SummarizeJobs(
        self, request: benchmark_pb2.SummarizeJobsRequest, context: grpc.aio.ServicerContext
    ) -> benchmark_pb2.SummarizeJobsResponse:
        principal = await require_role(context, *READERS)
        wanted = list(dict.fromkeys(request.submission_ids))
        if not 1 <= len(request.submission_ids) <= MAX_SUMMARIES:
            await invalid_argument(context, [("submission_ids", f"name 1 to {MAX_SUMMARIES} submissions")])
        if "" in wanted:
            await invalid_argument(context, [("submission_ids", "must not be empty")])
        counts = await asyncio.to_thread(
            self._store.count_by_status, wanted, organisation=_organisation_scope(principal)
        )
        return benchmark_pb2.SummarizeJobsResponse(
            summaries=[
                _summary(submission_id, counts[submission_id])
                for submission_id in wanted
                if submission_id in counts
            ]
        )

    async def _eval_log(self, request: EvalLogRequest, context: grpc.aio.ServicerContext) -> str:
        """Where the asked-for log is, for a reviewer; the call ends otherwise."""
        await require_role(context, Role.REVIEWER)
        violations = []
        if not request.job_id:
            violations.append(("job_id", "required"))
        if request.index < 0:
            violations.append(("index", "must be 0 or more"))
        if isinstance(request, benchmark_pb2.ReadEvalLogRequest):
            violations += [
                (name, "must be 0 or more") for name in ("offset", "length") if getattr(request, name) < 0
            ]
        if violations:
            await invalid_argument(context, violations)
        job = await asyncio.to_thread(self._store.get, request.job_id)
        if job is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job {request.job_id} not found")
        assert job is not None
        location = self._eval_logs.location(job, request.index) if self._eval_logs else None
        if location is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"job {request.job_id} has no eval log {request.index} in the log store",
            )
        assert location is not None
        return location

    async def GetEvalLog(
        self, request: benchmark_pb2.GetEvalLogRequest, context: grpc.aio.ServicerContext
    ) -> benchmark_pb2.GetEvalLogResponse:
        location = await self._eval_log(request, context)
        try:
            return await asyncio.to_thread(EvalLogs.summary, location)
        except (OSError, ValueError):
            # Gone from the store, or not a log Inspect can read.
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the eval log cannot be read")
            raise

    async def ReadEvalLog(
        self, request: benchmark_pb2.ReadEvalLogRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[benchmark_pb2.ReadEvalLogResponse]:
        location = await self._eval_log(request, context)
        name = posixpath.basename(location)
        chunks = EvalLogs.chunks(location, request.offset, request.length)
        try:
            size = await asyncio.to_thread(EvalLogs.size, location)
            first = True
            # The first answer is sent even when empty: it carries the size.
            while (chunk := await asyncio.to_thread(next, chunks, b"")) or first:
                first = False
                yield benchmark_pb2.ReadEvalLogResponse(name=name, data=chunk, size=size)
        except OSError:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the eval log cannot be read")
        finally:
            chunks.close()

    async def ReportJobResult(
        self, request: benchmark_pb2.ReportJobResultRequest, context: grpc.aio.ServicerContext
    ) -> benchmark_pb2.ReportJobResultResponse:
        # Only the attempt's worker reports, with the token of its own job (IssueJobToken).
        worker = await require_role(context, Role.WORKER)
        violations = []
        if not request.job_id:
            violations.append(("job_id", "required"))
        if request.attempt < 1:
            violations.append(("attempt", "must be at least 1"))
        if request.WhichOneof("outcome") is None:
            violations.append(("outcome", "completed or failed required"))
        if violations:
            await invalid_argument(context, violations)
        if worker.principal_id != request.job_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a job token reports for its own job only")
        recorded = await asyncio.to_thread(record_result, self._store, events, request, self._clock)
        match recorded.verdict:
            case Verdict.UNKNOWN_JOB:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"job {request.job_id} not found")
            case Verdict.STALE:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, recorded.detail)
            case Verdict.INVALID:
                field, _, description = recorded.detail.partition(": ")
                await invalid_argument(context, [(field, description)])
        status = STATUS_TO_PROTO[recorded.status] if recorded.status else benchmark_pb2.JOB_STATUS_UNSPECIFIED
        return benchmark_pb2.ReportJobResultResponse(
            accepted=recorded.verdict == Verdict.ACCEPTED, status=status
        )
