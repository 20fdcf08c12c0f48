"""Applying events to deadlines: one transaction per event, with its id claimed in it.

A deadline (re)scheduled by an event keeps that event's trace context, so the
alerts its reminders fire later belong to the same trace.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.intake.v1 import events_pb2 as intake_events
from preflight_common.clock import Clock
from preflight_common.telemetry import current_traceparent

from preflight_notifier.domain.alerts import met_alert
from preflight_notifier.domain.model import (
    BadEvent,
    DeadlineChange,
    DeadlineKind,
    DeadlineState,
    Decision,
    Effect,
    close,
    decide,
)
from preflight_notifier.domain.ports import DeadlineEvents, Store, UnitOfWork
from preflight_notifier.domain.routing import RoutingConfig
from preflight_notifier.domain.schedule import plan
from preflight_notifier.service_layer.alerting import AlertSink

CONSUMER = "preflight-notifier"


class DeadlineKeeper:
    """Keeps the deadlines of submissions and findings, and their reminders, up to date."""

    def __init__(
        self,
        transaction: UnitOfWork,
        routing: RoutingConfig,
        sink: AlertSink,
        events: DeadlineEvents,
        clock: Clock,
    ) -> None:
        self._transaction = transaction
        self._routing = routing
        self._sink = sink
        self._events = events
        self._clock = clock

    def apply(self, event_id: str, payload: Message) -> bool:
        """Apply one event exactly once (its id is claimed in the same transaction as the effect).

        Returns False for an event already applied. Raises `BadEvent`
        (nothing written) for an event that can never be applied — among them one
        contradicting what is recorded (see `_contradiction`) — and ValueError for a
        payload type this keeper does not handle.
        """
        with self._transaction() as store:
            if not store.claim_event(CONSUMER, event_id):
                return False
            contradiction = _contradiction(store, self._events, payload)
            if contradiction:
                raise BadEvent(contradiction)
            now = self._clock()
            for change in _changes(self._events, payload):
                if isinstance(change, DeadlineChange):
                    current = store.load_deadline(change.deadline_id)
                    self._carry_out(store, decide(current, change), now)
                else:
                    subject_id, state = change
                    current = store.load_deadline(DeadlineKind.REVIEW.deadline_id(subject_id))
                    self._carry_out(store, close(current, DeadlineKind.REVIEW, subject_id, state), now)
            return True

    def _carry_out(self, store: Store, decision: Decision, now: datetime) -> None:
        deadline = decision.deadline
        if decision.effect is Effect.NONE or deadline is None:
            return
        scheduling = decision.effect is Effect.SCHEDULE
        store.save_deadline(deadline, now, current_traceparent() if scheduling else None)
        if decision.effect is Effect.REFRESH:
            return
        store.cancel_pending_reminders(deadline.deadline_id)
        if decision.effect is Effect.SCHEDULE:
            assert deadline.due_at is not None
            policy = self._routing.policies.get(deadline.kind)
            if policy is not None:
                store.add_reminders(deadline.deadline_id, deadline.version, plan(policy, deadline.due_at))
        elif decision.effect is Effect.MET and deadline.due_at is not None:
            self._sink.emit(store, [met_alert(deadline, now)], now)


_SUBMISSION_EVENTS = (
    intake_events.SubmissionReceived,
    intake_events.ReleasePlanChanged,
    intake_events.SubmissionWithdrawn,
)


def _contradiction(store: Store, events: DeadlineEvents, payload: Message) -> str:
    """Why `payload` contradicts what is recorded ("" when it does not).

    A submission's organisation and contacts are set once, and a closed review is not opened
    again: a submission event naming another organisation, and a second SubmissionReceived with
    other contacts or for a closed review, are refused. A finding is published once: a second
    FindingPublished (it could set another audience) is refused; changes come as FindingUpdated.
    """
    if isinstance(payload, _SUBMISSION_EVENTS):
        current = store.load_deadline(DeadlineKind.REVIEW.deadline_id(payload.submission_id))
        audience = current.details.audience if current is not None else None
        if current is None or audience is None or not audience.lab_organisation:
            return ""  # nothing recorded yet (or only that the review closed before it was heard of)
        if payload.organisation != audience.lab_organisation:
            return (
                f"submission {payload.submission_id} belongs to another organisation than "
                f"{payload.organisation}: its organisation is set once"
            )
        if isinstance(payload, intake_events.SubmissionReceived):
            if current.state is not DeadlineState.ACTIVE:
                state = current.state.value
                return f"submission {payload.submission_id} is {state}: it is not received again"
            if events.contacts(payload) != audience.contacts:
                return f"submission {payload.submission_id}: its contacts are set once"
    if isinstance(payload, clearinghouse_events.FindingPublished):
        finding_id = payload.finding.finding_id
        for kind in (DeadlineKind.EMBARGO_END, DeadlineKind.REMEDIATION_DUE):
            if store.load_deadline(kind.deadline_id(finding_id)) is not None:
                return f"finding {finding_id} is already published: it is published once"
    return ""


def _changes(events: DeadlineEvents, payload: Message) -> list[DeadlineChange | tuple[str, DeadlineState]]:
    """What an event says about deadlines: changes, or (submission id, terminal state)."""
    if isinstance(payload, intake_events.SubmissionReceived):
        return [events.review_received(payload)]
    if isinstance(payload, intake_events.ReleasePlanChanged):
        return [events.review_moved(payload)]
    if isinstance(payload, intake_events.SubmissionWithdrawn):
        return [(_submission(payload.submission_id), DeadlineState.CANCELLED)]
    if isinstance(payload, clearinghouse_events.ReviewReportReady):
        return [(_submission(payload.submission_id), DeadlineState.MET)]
    if isinstance(payload, clearinghouse_events.FindingPublished | clearinghouse_events.FindingUpdated):
        return list(events.finding_deadlines(payload.finding))
    raise ValueError(f"no deadline handling for {payload.DESCRIPTOR.full_name}")


def _submission(submission_id: str) -> str:
    if not submission_id:
        raise BadEvent("submission_id is empty")
    return submission_id
