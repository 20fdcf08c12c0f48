"""Interfaces the service's core uses and adapters implement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import AttemptOutcome


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
    # Handed over by a previous dispatcher (a restart, a new leader) rather than started now.
    resumed: bool = False


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
