"""Benchmark jobs: deterministic ids, planning, and what ends or repeats an attempt.

A *job* is one planned run of one suite version for one submission. Its id is
derived from (submission id, suite id, suite version, attempt 1) and stays the
same across every attempt of that planned job: the topic carries exactly one
BenchmarkJobRequested and exactly one terminal event (BenchmarkCompleted or
BenchmarkFailed) per job id; the `attempt` field says which attempt ended it.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime

from preflight_benchmark.domain.catalog import Catalog, Suite

FIRST_ATTEMPT = 1


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED)


class FailureReason(enum.StrEnum):
    """Why a job ended without a result (names match the FailureReason proto enum)."""

    WINDOW_CLOSED = "WINDOW_CLOSED"
    WITHDRAWN = "WITHDRAWN"
    TIMEOUT = "TIMEOUT"
    EVAL_ERROR = "EVAL_ERROR"
    WORKER_CRASHED = "WORKER_CRASHED"
    CONFIG_ERROR = "CONFIG_ERROR"
    MODEL_UNREACHABLE = "MODEL_UNREACHABLE"
    INFRASTRUCTURE = "INFRASTRUCTURE"


def job_id(submission_id: str, suite_id: str, suite_version: str, attempt: int = FIRST_ATTEMPT) -> str:
    """The deterministic id of a planned job ("bj-" and 32 hex digits)."""
    material = "\x1f".join((submission_id, suite_id, suite_version, str(attempt)))
    return "bj-" + hashlib.sha256(material.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class AccessWindow:
    """When reviewers may reach the model: [start, end)."""

    start: datetime
    end: datetime

    def opened(self, now: datetime) -> bool:
        return self.start <= now

    def closed(self, now: datetime) -> bool:
        return now >= self.end


@dataclass(frozen=True)
class PlannedJob:
    job_id: str
    suite: Suite
    window: AccessWindow
    max_attempts: int


def plan(
    submission_id: str, access_kind: str, window: AccessWindow, catalog: Catalog, max_attempts: int
) -> tuple[PlannedJob, ...]:
    """One job per catalog suite that supports the submission's access kind (the fan-out)."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    return tuple(
        PlannedJob(job_id(submission_id, s.id, s.version), s, window, max_attempts)
        for s in catalog.for_access(access_kind)
    )


class AttemptEnd(enum.StrEnum):
    """How an executor saw an attempt end."""

    EXITED = "exited"  # the worker exited normally (it should have reported a result)
    CRASHED = "crashed"  # killed, out of memory, non-zero exit
    TIMED_OUT = "timed_out"  # the suite's timeout or the Job's deadline passed
    CONFIG_ERROR = "config_error"  # the worker exited with the configuration-error status
    INFRASTRUCTURE = "infrastructure"  # the executor could not run it (API errors)
    CANCELLED = "cancelled"  # stopped on purpose (withdrawal, window closed)


@dataclass(frozen=True)
class AttemptOutcome:
    end: AttemptEnd
    detail: str = ""


@dataclass(frozen=True)
class Decision:
    """What follows an attempt: retry (status PENDING) or fail the job."""

    status: JobStatus
    reason: FailureReason | None
    message: str
    retryable: bool = False


RETRYABLE_REASONS = frozenset(
    {FailureReason.WORKER_CRASHED, FailureReason.MODEL_UNREACHABLE, FailureReason.INFRASTRUCTURE}
)


def _retry_or_fail(attempt: int, max_attempts: int, reason: FailureReason, message: str) -> Decision:
    if attempt < max_attempts:
        return Decision(JobStatus.PENDING, None, f"attempt {attempt} failed, retrying: {message}")
    return Decision(
        JobStatus.FAILED, reason, f"{message} (after {attempt} attempts)", reason in RETRYABLE_REASONS
    )


def after_unreported_end(attempt: int, max_attempts: int, outcome: AttemptOutcome) -> Decision | None:
    """The decision for an attempt that ended without the worker reporting a result.

    None for a cancelled attempt (whoever cancelled it already ended the job).
    """
    detail = outcome.detail or outcome.end.value
    match outcome.end:
        case AttemptEnd.CANCELLED:
            return None
        case AttemptEnd.TIMED_OUT:
            return Decision(JobStatus.FAILED, FailureReason.TIMEOUT, detail)
        case AttemptEnd.CONFIG_ERROR:
            return Decision(JobStatus.FAILED, FailureReason.CONFIG_ERROR, detail)
        case AttemptEnd.INFRASTRUCTURE:
            return _retry_or_fail(attempt, max_attempts, FailureReason.INFRASTRUCTURE, detail)
        case AttemptEnd.EXITED:
            # A worker exits 0 only once the service has answered its report, so a
            # success with no result recorded is no accident a retry would cure: the
            # image does not run preflight-worker, or it reports to another service.
            return Decision(
                JobStatus.FAILED,
                FailureReason.CONFIG_ERROR,
                f"the worker ended successfully without reporting a result ({detail}): check that the "
                "worker image runs preflight-worker and reaches this service at PREFLIGHT_BENCHMARK_TARGET",
            )
        case AttemptEnd.CRASHED:
            return _retry_or_fail(attempt, max_attempts, FailureReason.WORKER_CRASHED, detail)


# Reasons the service itself ends a job for while its worker may still run: the
# worker is then stopped. A worker that reported is left to exit by itself.
ENDED_BY_THE_SERVICE = frozenset({FailureReason.WITHDRAWN, FailureReason.WINDOW_CLOSED})


def after_reported_failure(
    attempt: int, max_attempts: int, reason: FailureReason, retryable: bool, message: str
) -> Decision:
    """The decision for a failure the worker reported: retryable ones repeat while attempts remain."""
    if retryable:
        return _retry_or_fail(attempt, max_attempts, reason, message)
    return Decision(JobStatus.FAILED, reason, message, False)


# The worker's exit status for a configuration error (sysexits EX_CONFIG): never retried.
CONFIG_ERROR_EXIT = 78
