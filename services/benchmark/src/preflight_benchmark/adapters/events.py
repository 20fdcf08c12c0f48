"""The service's events as protobuf payloads and outbox records (deterministic event ids).

Records and worker assignments carry the current trace context, so consumers and
workers continue the trace of what caused them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.benchmark.v1 import benchmark_pb2, events_pb2
from preflight.intake.v1 import events_pb2 as intake_events
from preflight_common.bus import SOURCES
from preflight_common.envelope import KafkaRecord, encode_event
from preflight_common.fields import timestamp
from preflight_common.telemetry import current_traceparent, inject_headers

from preflight_benchmark.domain.jobs import FailureReason, JobStatus, PlannedJob
from preflight_benchmark.domain.records import Ending, EndingFor, JobRecord

SOURCE = SOURCES["benchmark"]

STATUS_TO_PROTO = {
    JobStatus.PENDING: benchmark_pb2.JOB_STATUS_PENDING,
    JobStatus.RUNNING: benchmark_pb2.JOB_STATUS_RUNNING,
    JobStatus.COMPLETED: benchmark_pb2.JOB_STATUS_COMPLETED,
    JobStatus.FAILED: benchmark_pb2.JOB_STATUS_FAILED,
}
PROTO_TO_STATUS = {value: key for key, value in STATUS_TO_PROTO.items()}


def from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def reason_to_proto(reason: FailureReason) -> events_pb2.FailureReason.ValueType:
    return events_pb2.FailureReason.Value(f"FAILURE_REASON_{reason.value}")


def reason_from_proto(value: events_pb2.FailureReason.ValueType) -> FailureReason:
    name = events_pb2.FailureReason.Name(value).removeprefix("FAILURE_REASON_")
    if name == "UNSPECIFIED":
        raise ValueError("failure reason is unspecified")
    return FailureReason(name)


def job_requested(
    planned: PlannedJob, planned_jobs: int, submission: intake_events.SubmissionReceived, now: datetime
) -> events_pb2.BenchmarkJobRequested:
    """The BenchmarkJobRequested of one of a plan's `planned_jobs` jobs (references only: the
    credential never appears)."""
    suite = planned.suite
    message = events_pb2.BenchmarkJobRequested(
        job_id=planned.job_id,
        submission_id=submission.submission_id,
        suite_id=suite.id,
        suite_version=suite.version,
        capability=suite.capability,
        attempt=1,
        task_ref=suite.task,
        resources=events_pb2.Resources(
            gpu=suite.resources.gpu,
            cpu=suite.resources.cpu,
            memory=suite.resources.memory,
            accelerator=suite.resources.accelerator,
        ),
        timeout=Duration(seconds=int(suite.timeout.total_seconds())),
        not_before=timestamp(planned.window.start),
        not_after=timestamp(planned.window.end),
        requested_at=timestamp(now),
        max_attempts=planned.max_attempts,
        sample_limit=suite.sample_limit,
        planned_jobs=planned_jobs,
        sandbox=suite.sandbox,
    )
    message.model.CopyFrom(submission.model)
    message.access.CopyFrom(submission.access)
    message.task_args.update(dict(suite.task_args))
    return message


def requested_record(message: events_pb2.BenchmarkJobRequested) -> KafkaRecord:
    return encode_event(
        message,
        source=SOURCE,
        subject=message.submission_id,
        event_id=f"{message.job_id}/requested",
        trace_headers=inject_headers(),
    )


def _terminal_record(
    message: events_pb2.BenchmarkCompleted | events_pb2.BenchmarkFailed, now: datetime
) -> KafkaRecord:
    # One terminal event per job: its id derives from the job alone.
    return encode_event(
        message,
        source=SOURCE,
        subject=message.submission_id,
        event_id=f"{message.job_id}/ended",
        time=now,
        trace_headers=inject_headers(),
    )


def plan_ended(plan: Sequence[JobRecord], now: datetime) -> KafkaRecord:
    """The BenchmarkPlanEnded record of a submission whose jobs (`plan`, all ended) are listed; one
    per plan: its id derives from the submission alone."""
    submission_id = plan[0].submission_id
    payload = events_pb2.BenchmarkPlanEnded(
        submission_id=submission_id,
        jobs=[
            events_pb2.PlannedJobOutcome(
                job_id=job.job_id,
                suite_id=job.suite_id,
                suite_version=job.suite_version,
                outcome=events_pb2.JOB_OUTCOME_COMPLETED
                if job.status == JobStatus.COMPLETED
                else events_pb2.JOB_OUTCOME_FAILED,
                attempts=job.attempt,
                failure_reason=reason_to_proto(job.failure_reason)
                if job.failure_reason
                else events_pb2.FAILURE_REASON_UNSPECIFIED,
            )
            for job in plan
        ],
        ended_at=timestamp(now),
    )
    return encode_event(
        payload,
        source=SOURCE,
        subject=submission_id,
        event_id=f"{submission_id}/plan-ended",
        time=now,
        trace_headers=inject_headers(),
    )


def failed(
    reason: FailureReason, message: str, *, retryable: bool, now: datetime, eval_log_uri: str = ""
) -> EndingFor:
    """The ending of a job that failed for `reason` (published as BenchmarkFailed)."""

    def ending(job: JobRecord) -> Ending:
        payload = events_pb2.BenchmarkFailed(
            job_id=job.job_id,
            submission_id=job.submission_id,
            suite_id=job.suite_id,
            suite_version=job.suite_version,
            capability=job.capability,
            attempt=job.attempt,
            reason=reason_to_proto(reason),
            message=message,
            retryable=retryable,
            failed_at=timestamp(now),
            eval_log_uri=eval_log_uri,
        )
        return Ending(
            JobStatus.FAILED,
            reason,
            message,
            payload.SerializeToString(),
            eval_log_uri,
            _terminal_record(payload, now),
            partial(plan_ended, now=now),
        )

    return ending


def completed(report: events_pb2.BenchmarkCompleted, now: datetime) -> EndingFor:
    """The ending of a job whose worker reported `report` (identity fields are taken from the job)."""

    def ending(job: JobRecord) -> Ending:
        payload = events_pb2.BenchmarkCompleted()
        payload.CopyFrom(report)
        payload.job_id, payload.submission_id = job.job_id, job.submission_id
        payload.suite_id, payload.suite_version = job.suite_id, job.suite_version
        payload.capability, payload.attempt = job.capability, job.attempt
        return Ending(
            JobStatus.COMPLETED,
            None,
            "",
            payload.SerializeToString(),
            payload.eval_log_uri,
            _terminal_record(payload, now),
            partial(plan_ended, now=now),
        )

    return ending


def job_view(job: JobRecord) -> benchmark_pb2.Job:
    """A stored job as BenchmarkService readers see it."""
    view = benchmark_pb2.Job(
        job_id=job.job_id,
        submission_id=job.submission_id,
        organisation=job.organisation,
        suite_id=job.suite_id,
        suite_version=job.suite_version,
        capability=job.capability,
        status=STATUS_TO_PROTO[job.status],
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        not_before=timestamp(job.not_before),
        not_after=timestamp(job.not_after),
        executor=job.executor,
        message=job.message,
        eval_log_uri=job.eval_log_uri,
        created_at=timestamp(job.created_at),
    )
    if job.failure_reason is not None:
        view.failure_reason = reason_to_proto(job.failure_reason)
    if job.started_at is not None:
        view.started_at.CopyFrom(timestamp(job.started_at))
    if job.finished_at is not None:
        view.finished_at.CopyFrom(timestamp(job.finished_at))
    if job.status == JobStatus.COMPLETED and job.result:
        view.scores.extend(events_pb2.BenchmarkCompleted.FromString(job.result).scores)
    return view


def assignment_json(job: JobRecord, log_dir: str) -> str:
    """The worker's input for the job's current attempt, as JSON (with the current trace context)."""
    assignment = benchmark_pb2.WorkerAssignment(
        job=events_pb2.BenchmarkJobRequested.FromString(job.request),
        attempt=job.attempt,
        log_dir=log_dir,
        traceparent=current_traceparent() or "",
    )
    return json_format.MessageToJson(assignment, indent=None)


def parse_assignment(text: str) -> benchmark_pb2.WorkerAssignment:
    return json_format.Parse(text, benchmark_pb2.WorkerAssignment())
