"""Intake's use cases: one method per command or consumed event, each one unit of work.

Every method either completes (its rows, status history and outbox events
committed together) or raises one of the errors below (or the domain's
InvalidRequest) having changed nothing — except ResolveCredential, whose audit
entry is committed whether access is granted or not.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

from preflight_common.clock import Clock, utc_now

from preflight_intake.domain import access
from preflight_intake.domain.access import Caller
from preflight_intake.domain.events import ReleasePlanChanged, SubmissionReceived, SubmissionWithdrawn
from preflight_intake.domain.model import (
    EndpointAccess,
    ModelAccess,
    ModelIdentity,
    Status,
    StatusChange,
    Submission,
    WeightsAccess,
    WindowPolicy,
)
from preflight_intake.domain.ports import (
    ConcurrentUpdate,
    Cursor,
    NewSubmission,
    Page,
    StatusFeed,
    Store,
    Transaction,
)
from preflight_intake.domain.validation import (
    EndpointDraft,
    Instant,
    InvalidRequest,
    SubmissionDraft,
    Violation,
    WeightsDraft,
    WindowDraft,
    validate_idempotency_key,
    validate_identifiers,
    validate_reason,
    validate_release_plan,
    validate_submission,
    validate_submission_id,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
_NOT_FOUND = "submission_id: no submission with this id"


class NotFound(Exception):
    """No such submission — or one the caller may not know about."""


class PermissionDenied(Exception):
    """The caller's role may not do this at all."""


class Conflict(Exception):
    """The idempotency key was used before with a different request."""


class UnplannedJob(LookupError):
    """A job outcome whose BenchmarkJobRequested is not recorded (yet); nothing was applied."""


class RefusedOutcome(ValueError):
    """A job outcome of an attempt the job never had; nothing was applied."""


class FailedPrecondition(Exception):
    """The submission is not in a state that allows this."""


class NotYetKnown(Exception):
    """What the request names is not known here yet (an event about it may still be on its way)."""


class Intake:
    """The intake use cases over a store, a window policy and a clock."""

    def __init__(
        self, store: Store, policy: WindowPolicy, clock: Clock = utc_now, max_attempts: int = 5
    ) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        self._max_attempts = max_attempts

    # --- commands from principals -------------------------------------------------------------

    async def submit(self, caller: Caller, draft: SubmissionDraft, digest: str) -> tuple[Submission, bool]:
        """Store a new submission and queue SubmissionReceived; returns (submission, replayed) once
        committed.

        A replay (same principal, same key, same request) returns the first
        submission with replayed=True; the same key with another request raises Conflict.
        The key is looked up only when the insert meets it (the unique key decides, also
        between racing calls) or when the request no longer passes the rules (a late retry
        of an accepted one is still its replay). The store commits concurrent submissions
        together (`Store.add`); only the lookups run in a worker thread.
        """
        if not access.may_submit(caller):
            raise PermissionDenied("only lab principals submit models")
        validate_idempotency_key(draft.idempotency_key)
        now = self._clock()
        try:
            valid = validate_submission(draft, organisation=caller.organisation, policy=self._policy, now=now)
        except InvalidRequest as invalid:
            return await asyncio.to_thread(self._replay_or_raise, caller, draft, digest, invalid), True
        submission_id = str(uuid.uuid4())
        credential = draft.access.credential if isinstance(draft.access, EndpointDraft) else None
        submission = Submission(
            submission_id=submission_id,
            organisation=caller.organisation,
            submitted_by=caller.principal_id,
            model=ModelIdentity(draft.developer, draft.name, draft.version),
            planned_release=valid.planned_release,
            access=_stored_access(draft.access),
            access_window=valid.window,
            contacts=draft.contacts,
            declared_capabilities=draft.declared_capabilities,
            intended_use=draft.intended_use,
            share_identity_with_operators=draft.share_identity_with_operators,
            flags=self._policy.flags_for(valid.window),
            status=Status.RECEIVED,
            deadline_version=1,
            received_at=now,
            updated_at=now,
        )
        received = StatusChange(
            submission_id, 1, Status.RECEIVED, None, now, f"submitted by {caller.principal_id}"
        )
        new = NewSubmission(
            submission, draft.idempotency_key, digest, credential, received, SubmissionReceived(submission)
        )
        if not await self._store.add(new):
            # The key is taken (by an earlier call, or a concurrent one that won the race).
            taken = Conflict("idempotency_key: already used")
            return await asyncio.to_thread(self._replay_or_raise, caller, draft, digest, taken), True
        log.info(
            "submission %s received from %s (%s)", submission_id, caller.organisation, caller.principal_id
        )
        return submission, False

    def get(self, caller: Caller, submission_id: str) -> Submission:
        """A submission the caller may read; NotFound for one it may not (as for none at all)."""
        self._require_reader(caller)
        validate_submission_id(submission_id)
        submission = self._store.get(submission_id)
        if submission is None or not access.may_read(caller, submission.organisation):
            raise NotFound(_NOT_FOUND)
        return submission

    def list_submissions(
        self, caller: Caller, statuses: Sequence[Status], page_size: int, after: Cursor | None
    ) -> Page:
        """A page of the submissions the caller may read, newest first."""
        self._require_reader(caller)
        if not 0 <= page_size <= 200:
            raise InvalidRequest([Violation("page_size", "must be between 0 and 200 (0: the default, 50)")])
        return self._store.list_submissions(
            organisation=access.listing_scope(caller), statuses=statuses, limit=page_size or 50, after=after
        )

    def update_release_plan(
        self,
        caller: Caller,
        submission_id: str,
        planned_release: Instant | None,
        window: WindowDraft | None,
        reason: str,
    ) -> Submission:
        """Move the planned release (and the window); queue ReleasePlanChanged."""

        def change(tx: Transaction) -> Submission:
            before = self._changeable(tx, caller, submission_id)
            now = self._clock()
            valid = validate_release_plan(
                planned_release=planned_release,
                window=window,
                current_window=before.access_window,
                reason=reason,
                policy=self._policy,
                now=now,
            )
            after = tx.save(
                before, before.change_release_plan(valid.planned_release, valid.window, self._policy, now)
            )
            tx.publish(ReleasePlanChanged(after, before.planned_release, reason))
            return after

        submission = self._retrying(change)
        log.info("submission %s: release plan v%d", submission_id, submission.deadline_version)
        return submission

    def withdraw(self, caller: Caller, submission_id: str, reason: str) -> Submission:
        """Withdraw a non-terminal submission; queue SubmissionWithdrawn."""
        validate_reason(reason)

        def change(tx: Transaction) -> Submission:
            before = self._changeable(tx, caller, submission_id)
            now = self._clock()
            after = tx.save(before, before.transition(Status.WITHDRAWN, now))
            tx.append_status(
                submission_id, Status.WITHDRAWN, before.status, now, f"withdrawn by {caller.principal_id}"
            )
            tx.publish(SubmissionWithdrawn(after, reason))
            return after

        submission = self._retrying(change)
        log.info("submission %s withdrawn by %s", submission_id, caller.principal_id)
        return submission

    @property
    def changes(self) -> StatusFeed:
        """Told after each commit that changed a submission's status (for watches)."""
        return self._store.changes

    def history(self, caller: Caller, submission_id: str, after_sequence: int = 0) -> list[StatusChange]:
        """The status changes after `after_sequence` of a submission the caller may read."""
        self.get(caller, submission_id)
        return self._store.history(submission_id, after_sequence)

    def resolve_credential(self, caller: Caller, credential_ref: str, job_id: str) -> str:
        """Decrypt an endpoint credential for a benchmark job; every attempt is audit-logged.

        Only for a job of the credential's submission that runs: one whose BenchmarkJobRequested
        intake recorded and whose terminal event it has not. An ended job is FailedPrecondition;
        a job id intake does not know for that submission is NotYetKnown (its request may still
        be on the jobs topic: the worker asks again), so a worker token resolves no credential of
        another submission, nor of a job that ended. The caller must be the worker of `job_id`
        (a job token, see `access.may_resolve_credentials`): a job's token opens no other job's
        credential.
        """
        validate_identifiers(credential_ref=credential_ref, job_id=job_id)
        denial: Exception | None = None
        with self._store.transaction() as tx:
            stored = tx.stored_credential(credential_ref)
            if not access.may_resolve_credentials(caller, job_id):
                denial = PermissionDenied("only the worker token of this job resolves its credentials")
            elif stored is None:
                denial = NotFound("credential_ref: no credential with this reference")
            elif stored.status.terminal:
                denial = FailedPrecondition(
                    f"the submission is {stored.status.value}; its credential is retired"
                )
            else:
                running = tx.job_running(stored.submission_id, job_id)
                if running is None:
                    denial = NotYetKnown("job_id: not a benchmark job of this credential's submission (yet)")
                elif not running:
                    denial = FailedPrecondition("job_id: the job has ended; its credential is retired")
            tx.log_credential_access(
                credential_ref=credential_ref,
                submission_id=stored.submission_id if stored else None,
                job_id=job_id,
                principal_id=caller.principal_id,
                organisation=caller.organisation,
                outcome=f"denied: {denial}" if denial else "granted",
                at=self._clock(),
            )
            secret = tx.open(stored) if stored is not None and denial is None else ""
        log.info(
            "credential %s for job %s requested by %s: %s",
            credential_ref,
            job_id,
            caller.principal_id,
            "denied" if denial else "granted",
        )
        if denial is not None:
            raise denial
        return secret

    # --- progress learnt from other services' events ------------------------------------------

    def on_job_requested(
        self,
        consumer: str,
        event_id: str,
        submission_id: str,
        job_id: str,
        *,
        max_attempts: int,
    ) -> None:
        """A job was requested (it may take `max_attempts` attempts): the submission is
        BENCHMARKING (at least)."""
        self._apply_job(consumer, event_id, submission_id, job_id, None, attempts=max_attempts)

    def on_job_ended(
        self, consumer: str, event_id: str, submission_id: str, job_id: str, outcome: str, *, attempt: int
    ) -> None:
        """A job completed or failed at `attempt`: its credential retires; the submission is
        BENCHMARKING (at least) until the benchmark announces the end of the whole plan.

        Only a job whose request is recorded counts (`UnplannedJob` otherwise), and only for one of
        its attempts (`RefusedOutcome` otherwise); nothing is applied when either is raised.
        """
        self._apply_job(consumer, event_id, submission_id, job_id, outcome, attempts=attempt)

    def on_plan_ended(self, consumer: str, event_id: str, submission_id: str) -> None:
        """Every job of the submission's plan ended (BenchmarkPlanEnded): the submission is
        UNDER_REVIEW (at least)."""
        self._advance_on(consumer, event_id, submission_id, Status.UNDER_REVIEW)

    def on_report_ready(self, consumer: str, event_id: str, submission_id: str) -> None:
        """The review report was issued: the submission is REPORT_READY."""
        self._advance_on(consumer, event_id, submission_id, Status.REPORT_READY)

    def close_released(self) -> int:
        """Close every REPORT_READY submission whose planned release has passed; returns how many."""
        now = self._clock()
        closed = 0
        for submission_id in self._store.released_report_ready(now):

            def close(tx: Transaction, submission_id: str = submission_id) -> bool:
                submission = tx.find(submission_id)
                if submission is None or submission.status is not Status.REPORT_READY:
                    return False
                if submission.planned_release > now:
                    return False
                return bool(self._advance(tx, submission, Status.CLOSED, "released"))

            closed += self._retrying(close)
        if closed:
            log.info("closed %d released submission(s)", closed)
        return closed

    # --- helpers ------------------------------------------------------------------------------

    def _advance_on(self, consumer: str, event_id: str, submission_id: str, target: Status) -> None:
        """Apply an event (once) that moves the submission to `target` (at least)."""
        self._on_event(
            consumer,
            event_id,
            submission_id,
            lambda tx, submission: self._advance(tx, submission, target, f"event {event_id}"),
        )

    def _on_event(
        self,
        consumer: str,
        event_id: str,
        submission_id: str,
        apply: Callable[[Transaction, Submission], object],
    ) -> None:
        """Run `apply` on the submission in the transaction that claims `event_id` for `consumer`
        (retried on a concurrent change); nothing when the event was applied before or names a
        submission intake does not know."""

        def claimed(tx: Transaction) -> None:
            if not tx.claim(consumer, event_id):
                return
            submission = tx.find(submission_id)
            if submission is None:
                log.warning("event %s of unknown submission %s ignored", event_id, submission_id)
                return
            apply(tx, submission)

        self._retrying(claimed)

    def _apply_job(
        self,
        consumer: str,
        event_id: str,
        submission_id: str,
        job_id: str,
        ended: str | None,
        *,
        attempts: int,
    ) -> None:
        """Record a job's request (`attempts`: its max_attempts) or its end (`attempts`: the attempt
        that ended it)."""

        def apply(tx: Transaction, submission: Submission) -> None:
            now = self._clock()
            if ended is None:
                tx.record_job(submission_id, job_id, requested_at=now, max_attempts=attempts)
            else:
                bound = tx.job_attempts(submission_id, job_id)
                if bound is None:
                    raise UnplannedJob(f"job {job_id} of submission {submission_id} was never planned")
                # A failure may end a job before any attempt ran (attempt 0); a completion ran one.
                first = 1 if ended == "completed" else 0
                if attempts < first or 0 < bound < attempts:
                    raise RefusedOutcome(f"job {job_id}: attempt {attempts} is not one of its attempts")
                tx.record_job(submission_id, job_id, ended_at=now, outcome=ended)
            self._advance(tx, submission, Status.BENCHMARKING, f"event {event_id}")

        self._on_event(consumer, event_id, submission_id, apply)

    def _advance(self, tx: Transaction, submission: Submission, target: Status, cause: str) -> list[Status]:
        """Walk the legal steps up to `target` (none if already there or beyond); returns the steps taken."""
        steps = submission.steps_to(target)
        if not steps:
            return []
        now = self._clock()
        walked = [submission]
        for step in steps:
            walked.append(walked[-1].transition(step, now))
        # The row first: a concurrent change is detected (and retried) before any history is written.
        tx.save(submission, walked[-1])
        for before, after in itertools.pairwise(walked):
            tx.append_status(submission.submission_id, after.status, before.status, now, cause)
        return steps

    def _replay_or_raise(
        self, caller: Caller, draft: SubmissionDraft, digest: str, otherwise: Exception
    ) -> Submission:
        """The submission this request replays; Conflict for another request under its key;
        raises `otherwise` when the key was never used."""
        with self._store.reading() as tx:
            found = tx.find_by_key(caller.principal_id, draft.idempotency_key)
            if found is None:
                raise otherwise
            submission, first_digest = found
            same = first_digest == digest and (
                not isinstance(draft.access, EndpointDraft)
                or tx.credential_matches(submission.submission_id, draft.access.credential)
            )
        if not same:
            raise Conflict("idempotency_key: already used for a different request")
        return submission

    def _require_reader(self, caller: Caller) -> None:
        if not access.may_read_submissions(caller):
            raise PermissionDenied(f"role {caller.role} may not read submissions")

    def _changeable(self, tx: Transaction, caller: Caller, submission_id: str) -> Submission:
        if caller.role in (access.REVIEWER, access.SERVICE):
            raise PermissionDenied(f"role {caller.role} cannot change submissions")
        self._require_reader(caller)
        validate_submission_id(submission_id)
        submission = tx.find(submission_id)
        if submission is None or not access.may_change(caller, submission.organisation):
            raise NotFound(_NOT_FOUND)
        if submission.status.terminal:
            raise FailedPrecondition(f"the submission is {submission.status.value}")
        return submission

    def _retrying(self, work: Callable[[Transaction], T]) -> T:
        """Run `work` in a transaction, again from scratch when a concurrent change got there first."""
        for attempt in range(1, self._max_attempts + 1):
            try:
                with self._store.transaction() as tx:
                    return work(tx)
            except ConcurrentUpdate:
                if attempt == self._max_attempts:
                    raise
        raise AssertionError("unreachable")


def _stored_access(draft: EndpointDraft | WeightsDraft | None) -> ModelAccess:
    """The access as stored: an endpoint's credential is replaced by a fresh reference."""
    if isinstance(draft, EndpointDraft):
        return EndpointAccess(draft.base_url, draft.model_name, f"cred-{uuid.uuid4().hex}")
    assert draft is not None, "validated: access is required"
    return WeightsAccess(draft.artifact_uri, draft.sha256, draft.format)
