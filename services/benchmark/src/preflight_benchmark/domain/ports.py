"""Interfaces the service's core uses and adapters implement."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp
from preflight.benchmark.v1 import events_pb2
from preflight.intake.v1 import events_pb2 as intake_events
from preflight_common.envelope import KafkaRecord

from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import AttemptOutcome, FailureReason, JobStatus, PlannedJob
from preflight_benchmark.domain.records import EndingFor, JobRecord, NewJob


class Jobs(Protocol):
    """The job table, its outbox and the consumed-event record (`adapters.store.JobStore`).

    Each method is one transaction: when it returns, the change and the events it enqueued are
    durable together; when it raises, neither is.
    """

    def plan(
        self,
        event_id: str,
        submission_id: str,
        organisation: str,
        executor: str,
        planned: Sequence[NewJob],
        now: datetime,
    ) -> bool:
        """Store the submission, its jobs and their BenchmarkJobRequested events; False if the event
        was already applied or the submission is known. Raises `Refused` (nothing written) for a
        submission recorded under another organisation or model, or withdrawn."""
        ...

    def withdraw(
        self, event_id: str, submission_id: str, organisation: str, now: datetime, ending: EndingFor
    ) -> list[JobRecord]:
        """Mark the submission withdrawn and end its active jobs; the jobs ended (none when already
        applied). Raises `Refused` for a submission recorded under another organisation."""
        ...

    def change_window(
        self,
        event_id: str,
        submission_id: str,
        organisation: str,
        window: tuple[datetime, datetime],
        now: datetime,
    ) -> int:
        """Move the access window of the submission's active jobs; how many moved. Raises `Refused`
        for a submission recorded under another organisation."""
        ...

    def due(self, now: datetime, per_organisation: int) -> list[JobRecord]:
        """Pending jobs whose window is open, earliest deadline first, at most `per_organisation` of
        each organisation."""
        ...

    def count_due(self, now: datetime) -> int:
        """How many pending jobs wait with their window open."""
        ...

    def in_status(self, *statuses: JobStatus) -> list[JobRecord]:
        """The jobs in these statuses, oldest first."""
        ...

    def expired(self, now: datetime) -> list[JobRecord]:
        """Active jobs whose window has closed."""
        ...

    def start_attempt(self, job: JobRecord, now: datetime) -> JobRecord | None:
        """PENDING → RUNNING with the next attempt number; None if the job changed meanwhile."""
        ...

    def requeue(self, job_id: str, attempt: int, message: str, now: datetime) -> bool:
        """RUNNING (this attempt) → PENDING for another attempt; False if it was not running it."""
        ...

    def end(
        self, job_id: str, ending: EndingFor, now: datetime, attempt: int | None = None
    ) -> JobRecord | None:
        """End an active job (of `attempt`, if given) with its terminal event (and the plan's end
        after its last job); None if it was not active."""
        ...

    def get(self, job_id: str) -> JobRecord | None:
        """The job, None when unknown."""
        ...


class JobEvents(Protocol):
    """The service's events and the worker's input, encoded (`adapters.events`)."""

    def job_requested(
        self,
        planned: PlannedJob,
        planned_jobs: int,
        submission: intake_events.SubmissionReceived,
        now: datetime,
    ) -> events_pb2.BenchmarkJobRequested:
        """The BenchmarkJobRequested of one of a plan's `planned_jobs` jobs."""
        ...

    def requested_record(self, message: events_pb2.BenchmarkJobRequested) -> KafkaRecord:
        """The outbox record of a BenchmarkJobRequested (event id `<job id>/requested`)."""
        ...

    def failed(
        self, reason: FailureReason, message: str, *, retryable: bool, now: datetime, eval_log_uri: str = ""
    ) -> EndingFor:
        """The ending of a job that failed for `reason` (published as BenchmarkFailed)."""
        ...

    def completed(self, report: events_pb2.BenchmarkCompleted, now: datetime) -> EndingFor:
        """The ending of a job whose worker reported `report` (published as BenchmarkCompleted)."""
        ...

    def assignment_json(self, job: JobRecord, log_dir: str) -> str:
        """The worker's input for the job's current attempt, as JSON."""
        ...

    def from_timestamp(self, ts: Timestamp) -> datetime:
        """A protobuf timestamp as an aware UTC datetime."""
        ...

    def reason_from_proto(self, value: events_pb2.FailureReason.ValueType) -> FailureReason:
        """A failure reason of the API; ValueError when unspecified."""
        ...


class JobSpans(Protocol):
    """Opens the span of one job's work in its submission's trace (`adapters.tracing.job_span`)."""

    def __call__(
        self,
        name: str,
        *,
        submission_id: str,
        job_id: str,
        suite_id: str,
        attempt: int = 0,
        traceparent: str | None = None,
    ) -> AbstractContextManager[object]:
        """The current span `<name> <suite>`, a child of `traceparent` (else of the current span)."""
        ...


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job, as an executor needs it.

    `assignment` is the worker's input (a serialized WorkerAssignment, JSON): it
    holds references only, never a secret, so executors may pass it in files,
    environment variables or Kubernetes manifests.
    """

    job_id: str
    submission_id: str
    suite_id: str
    attempt: int
    access_kind: str
    resources: Resources
    timeout: timedelta
    assignment: str
    # The suite's sandbox from the catalog ("bwrap"; "" or "none": it runs no model-written code).
    sandbox: str = ""
    # Handed over by a previous dispatcher (a restart, a new leader) rather than started now.
    resumed: bool = False

    @property
    def sandboxed(self) -> bool:
        """Whether the suite runs model-written code, in a sandbox."""
        return self.sandbox not in ("", "none")


class Executor(Protocol):
    """Runs workers. `run` returns when the attempt ended; it never raises for a failed attempt."""

    name: str

    async def run(self, attempt: Attempt) -> AttemptOutcome:
        """Run the attempt to its end (idempotent: running an attempt that already runs re-attaches).

        An executor whose workers outlive the dispatcher ends a `resumed` attempt whose
        worker is gone (deleted meanwhile) as INFRASTRUCTURE rather than starting it again.
        """
        ...

    async def cancel(self, job_id: str, attempt: int) -> None:
        """Stop the attempt if it runs (its `run` then returns CANCELLED); harmless for unknown attempts."""
        ...

    async def close(self) -> None:
        """Release what the executor holds, once the dispatcher has stopped (the service's shutdown)."""
        ...


class Leadership(Protocol):
    """Whether this replica is the one that adopts running attempts and starts new ones."""

    def leading(self) -> bool:
        """True while this replica leads; it may change at any moment."""
        ...


JOB_TOKEN_MARGIN = timedelta(minutes=5)
"""How long a job token outlives its attempt's deadline: the time to end the attempt and report."""


class JobTokens(Protocol):
    """Issues the short-lived token an attempt's worker uses instead of the service's own token."""

    async def issue(self, attempt: Attempt) -> str:
        """A bearer token valid for the attempt's job only, expiring `JOB_TOKEN_MARGIN` after the
        attempt's deadline (its timeout from now); raises JobTokenError."""
        ...


class JobTokenError(Exception):
    """No job token could be issued (the identity service refused or stayed unreachable)."""


class CredentialError(Exception):
    """The credential could not be resolved; `retryable` when trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class CredentialResolver(Protocol):
    """Turns a credential reference into the endpoint credential, at run time only."""

    async def resolve(self, credential_ref: str, job_id: str) -> str:
        """The credential in clear; raises CredentialError. Callers must never log or persist it."""
        ...


class SubmissionStatusUnknown(Exception):
    """Intake could not say what became of a submission (unreachable, or it refused to answer)."""


class SubmissionStatuses(Protocol):
    """What intake, the source of truth, says of a submission right now."""

    async def withdrawn(self, submission_id: str) -> bool:
        """True when the submission was withdrawn; raises SubmissionStatusUnknown when intake cannot tell."""
        ...
