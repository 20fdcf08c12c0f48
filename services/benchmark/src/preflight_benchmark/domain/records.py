"""What the service records of its jobs, and what it writes with them (the events of the outbox)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from preflight_common.envelope import KafkaRecord

from preflight_benchmark.domain.jobs import FailureReason, JobStatus


@dataclass(frozen=True)
class JobRecord:
    """A stored job."""

    job_id: str
    submission_id: str
    organisation: str
    suite_id: str
    suite_version: str
    capability: str
    status: JobStatus
    attempt: int
    max_attempts: int
    not_before: datetime
    not_after: datetime
    executor: str
    failure_reason: FailureReason | None
    message: str
    request: bytes
    result: bytes | None
    eval_log_uri: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    traceparent: str | None = None


@dataclass(frozen=True)
class NewJob:
    """A planned job to store, with its BenchmarkJobRequested record for the outbox."""

    job_id: str
    suite_id: str
    suite_version: str
    capability: str
    max_attempts: int
    not_before: datetime
    not_after: datetime
    request: bytes
    record: KafkaRecord
    traceparent: str | None = None


@dataclass(frozen=True)
class Ending:
    """A terminal state to write, with its terminal event, and the plan's end (`plan_ended`: the
    BenchmarkPlanEnded of a submission whose jobs, given in job id order, have all ended)."""

    status: JobStatus
    failure_reason: FailureReason | None
    message: str
    result: bytes
    eval_log_uri: str
    record: KafkaRecord
    plan_ended: Callable[[Sequence[JobRecord]], KafkaRecord]


EndingFor = Callable[[JobRecord], Ending]


class Refused(Exception):
    """An event that contradicts what is recorded of its submission (the planner dead-letters it)."""
