"""What intake's use cases need from storage, as Protocols, and the plain records they exchange.

The use cases (`service_layer`) reach the database only through these: `Store` (reads, the unit of
work and the group-committed `add` of new submissions), the `Transaction` a unit of work yields,
and the `StatusFeed` watches subscribe to. `adapters.store.IntakeStore` and
`adapters.changes.StatusFeed` implement them; `bootstrap` wires them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from preflight_intake.domain.events import Event
from preflight_intake.domain.model import Status, StatusChange, Submission


class ConcurrentUpdate(Exception):
    """The submission changed since it was read; re-read and retry."""


@dataclass(frozen=True)
class Cursor:
    """Where a listing page ends (newest first): the last row's receipt time and id."""

    received_at: datetime
    submission_id: str


@dataclass(frozen=True)
class Page:
    submissions: list[Submission]
    next_cursor: Cursor | None


@dataclass(frozen=True)
class Sealed:
    """A secret as stored: key id, 96-bit nonce and ciphertext (with the GCM tag)."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class StoredCredential:
    """An endpoint credential as stored, with its submission's id and status."""

    submission_id: str
    status: Status
    sealed: Sealed


@dataclass(frozen=True)
class NewSubmission:
    """What accepting a submission stores, all in one transaction: the submission (made under the
    principal's `idempotency_key`, `request_digest` telling a retry from another request), its
    endpoint credential (sealed by the store; None for weights), its first status entry and the
    event announcing it."""

    submission: Submission
    idempotency_key: str
    request_digest: str
    credential: str | None
    received: StatusChange
    event: Event


class Subscription(Protocol):
    """One watch's doorbell (`StatusFeed.subscribe`)."""

    # The last sequence of the submission's history the watch has read.
    seen: int

    async def wait(self) -> None:
        """Return once rung (re-armed: read the history after this returns, never before)."""


class StatusFeed(Protocol):
    """Tells watches of this process that their submission's status history grew."""

    def subscribe(self, submission_id: str) -> AbstractContextManager[Subscription]:
        """A subscription to the submission's changes for the duration of the block (on the event
        loop that will await it)."""


class Transaction(Protocol):
    """One unit of work: everything done through it commits together or not at all."""

    def find(self, submission_id: str) -> Submission | None: ...

    def find_by_key(self, submitted_by: str, idempotency_key: str) -> tuple[Submission, str] | None:
        """The submission made with this key by this principal, and its request digest."""

    def save(self, before: Submission, after: Submission) -> Submission:
        """Store `after` over `before`; raises ConcurrentUpdate if the row changed since `before`
        was read."""

    def append_status(
        self, submission_id: str, status: Status, previous: Status, at: datetime, cause: str
    ) -> StatusChange:
        """Add the next entry of the submission's status history."""

    def publish(self, event: Event) -> None:
        """Queue `event`; it is published once this unit of work commits."""

    def claim(self, consumer: str, event_id: str) -> bool:
        """Record that `consumer` applies `event_id` here; False if it already did."""

    def credential_matches(self, submission_id: str, credential: str) -> bool:
        """Whether the submission's sealed credential equals `credential` (constant-time)."""

    def stored_credential(self, credential_ref: str) -> StoredCredential | None: ...

    def open(self, stored: StoredCredential) -> str:
        """The credential in clear."""

    def log_credential_access(
        self,
        *,
        credential_ref: str,
        submission_id: str | None,
        job_id: str,
        principal_id: str,
        organisation: str,
        outcome: str,
        at: datetime,
    ) -> None: ...

    def record_job(
        self,
        submission_id: str,
        job_id: str,
        *,
        requested_at: datetime | None = None,
        max_attempts: int = 0,
        ended_at: datetime | None = None,
        outcome: str | None = None,
    ) -> None:
        """Note a benchmark job requested (with `max_attempts`) or ended."""

    def job_attempts(self, submission_id: str, job_id: str) -> int | None:
        """The job's `max_attempts` (0: no bound known), or None when its request is not recorded."""

    def job_running(self, submission_id: str, job_id: str) -> bool | None:
        """True from the job's request until its end is recorded, then False; None while unknown."""


class Store(Protocol):
    """Intake's submissions, their history and credentials, and the units of work that change them."""

    @property
    def changes(self) -> StatusFeed:
        """Told after each commit that changed a submission's status."""

    async def add(self, new: NewSubmission) -> bool:
        """Store a new submission (row, credential, first status entry, event) in one transaction,
        returning once it is committed: True, or False — nothing stored — when the principal's
        idempotency key is already taken."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A unit of work: commits when the block ends normally, rolls back if it raises."""

    def reading(self) -> AbstractContextManager[Transaction]:
        """Reads only, outside a unit of work."""

    def get(self, submission_id: str) -> Submission | None: ...

    def list_submissions(
        self, *, organisation: str | None, statuses: Sequence[Status], limit: int, after: Cursor | None
    ) -> Page:
        """One page, newest first, of the submissions of `organisation` (None: all)."""

    def history(self, submission_id: str, after_sequence: int = 0) -> list[StatusChange]:
        """The submission's status changes with a sequence above `after_sequence`, in order."""

    def released_report_ready(self, now: datetime, limit: int = 500) -> list[str]:
        """Ids of REPORT_READY submissions whose planned release is at or before `now`."""
