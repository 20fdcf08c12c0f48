"""Recording what a worker reports about its attempt."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from preflight.benchmark.v1 import benchmark_pb2
from preflight_common.clock import Clock

from preflight_benchmark.domain.jobs import JobStatus, after_reported_failure
from preflight_benchmark.domain.ports import JobEvents, Jobs


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    REPEATED = "repeated"  # the attempt already ended the job: a retried report
    UNKNOWN_JOB = "unknown_job"
    STALE = "stale"  # not the running attempt (it was cancelled, timed out or superseded)
    INVALID = "invalid"


@dataclass(frozen=True)
class Recorded:
    verdict: Verdict
    status: JobStatus | None
    detail: str = ""


def record_result(
    store: Jobs, events: JobEvents, report: benchmark_pb2.ReportJobResultRequest, clock: Clock
) -> Recorded:
    """Apply a worker's report: end the job (Completed, or Failed unless retried) or queue another attempt."""
    job = store.get(report.job_id)
    if job is None:
        return Recorded(Verdict.UNKNOWN_JOB, None)
    if job.status.terminal:
        repeated = job.attempt == report.attempt
        return Recorded(Verdict.REPEATED if repeated else Verdict.STALE, job.status, "job already ended")
    if job.status != JobStatus.RUNNING or job.attempt != report.attempt:
        return Recorded(Verdict.STALE, job.status, f"attempt {report.attempt} is not running")
    now = clock()
    outcome = report.WhichOneof("outcome")
    if outcome == "completed":
        ended = store.end(job.job_id, events.completed(report.completed, now), now, attempt=report.attempt)
    elif outcome == "failed":
        try:
            reason = events.reason_from_proto(report.failed.reason)
        except ValueError:
            return Recorded(Verdict.INVALID, job.status, "failed.reason: required")
        decision = after_reported_failure(
            job.attempt, job.max_attempts, reason, report.failed.retryable, report.failed.message
        )
        if decision.status == JobStatus.PENDING:
            requeued = store.requeue(job.job_id, report.attempt, decision.message, now)
            return Recorded(Verdict.ACCEPTED if requeued else Verdict.STALE, JobStatus.PENDING)
        ending = events.failed(
            reason,
            decision.message,
            retryable=decision.retryable,
            now=now,
            eval_log_uri=report.failed.eval_log_uri,
        )
        ended = store.end(job.job_id, ending, now, attempt=report.attempt)
    else:
        return Recorded(Verdict.INVALID, job.status, "outcome: completed or failed required")
    if ended is None:
        return Recorded(Verdict.STALE, None, "job changed meanwhile")
    return Recorded(Verdict.ACCEPTED, ended.status)
