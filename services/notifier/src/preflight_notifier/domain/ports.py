"""What the notifier's use cases need from the outside, and the adapters provide.

`adapters.store` is the store and its transactions, `adapters.codec` the event codec, and
`adapters.webhook` / `adapters.email` the senders; `bootstrap.py` hands them to the use cases.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.intake.v1 import events_pb2 as intake_events
from preflight_common.envelope import KafkaRecord

from preflight_notifier.domain.alerts import Alert
from preflight_notifier.domain.delivery import ClaimedDelivery, DueGroup, NewDelivery, Outcome
from preflight_notifier.domain.model import Contact, Deadline, DeadlineChange, Details
from preflight_notifier.domain.routing import Notification, Receiver
from preflight_notifier.domain.schedule import PlannedReminder, StoredReminder
from preflight_notifier.domain.silences import Silence


class Store(Protocol):
    """Every read and write of the notifier's records, inside one transaction.

    `lock_*` claim rows for the transaction; rows another notifier process holds are skipped,
    so concurrent processes share work without waiting on each other.
    """

    def claim_event(self, consumer: str, event_id: str) -> bool:
        """Record that `consumer` applied the event; False if it already had."""
        ...

    def enqueue(self, topic: str, record: KafkaRecord) -> None:
        """Put a record in the outbox, published after the transaction commits."""
        ...

    def load_deadline(self, deadline_id: str) -> Deadline | None:
        """The deadline, locked for this transaction (waits for a holder)."""
        ...

    def deadline_details(self, deadline_ids: Iterable[str]) -> dict[str, Details]:
        """What alerts about these deadlines may say now, and to whom (unlocked read)."""
        ...

    def save_deadline(self, deadline: Deadline, now: datetime, traceparent: str | None = None) -> None:
        """Insert or update the deadline; `traceparent` (when given) replaces the trace its alerts
        continue."""
        ...

    def deadline_traceparents(self, deadline_ids: Iterable[str]) -> dict[str, str]:
        """Deadline id → the traceparent kept with it, for those that have one."""
        ...

    def cancel_pending_reminders(self, deadline_id: str) -> int:
        """Cancel the deadline's pending reminders; how many."""
        ...

    def add_reminders(self, deadline_id: str, version: int, planned: Iterable[PlannedReminder]) -> None:
        """Add pending reminders of the deadline's `version`."""
        ...

    def due_deadline_ids(self, now: datetime, limit: int) -> list[str]:
        """Deadlines with a pending reminder due at `now`, earliest first."""
        ...

    def lock_deadlines(self, deadline_ids: Sequence[str]) -> list[Deadline]:
        """Claim these deadlines for this transaction; those another process holds are skipped."""
        ...

    def due_reminders(self, deadline_ids: Sequence[str], now: datetime) -> dict[str, list[StoredReminder]]:
        """The pending reminders due at `now` of (claimed) deadlines, earliest first, by deadline."""
        ...

    def finish_reminders(self, outcomes: Sequence[tuple[int, str, str | None]], now: datetime) -> None:
        """Set (reminder id, status, alert id) for each reminder, stamped `now`."""
        ...

    def insert_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Record fired alerts; returns those recorded now (an id already recorded is skipped)."""
        ...

    def alerts_by_id(self, alert_ids: Iterable[str]) -> dict[str, Alert]:
        """The recorded alerts with these ids."""
        ...

    def alerts_of_subjects(self, subject_ids: Iterable[str]) -> list[Alert]:
        """Every recorded alert about these subjects."""
        ...

    def add_notifications(self, notifications: Sequence[Notification], now: datetime) -> None:
        """Put alerts into their groups; a group without a pending flush gets one."""
        ...

    def lock_due_groups(self, now: datetime, limit: int) -> list[DueGroup]:
        """Claim the groups whose flush is due at `now`, earliest first."""
        ...

    def pending_notifications(self, group_key: str) -> list[tuple[int, str]]:
        """(notification id, alert id) of a group's pending notifications, oldest first."""
        ...

    def finish_notifications(self, ids: Sequence[int], status: str, delivery_id: str | None) -> None:
        """Set the notifications' final status (and the delivery that carries them)."""
        ...

    def finish_group(self, group_key: str, now: datetime) -> None:
        """Record the group's flush at `now`; it waits for its next alert."""
        ...

    def silences(self, *, organisation: str | None, unexpired_at: datetime | None) -> list[Silence]:
        """Silences newest first; only one organisation's when given; only unexpired ones at a
        given instant."""
        ...

    def add_delivery(self, delivery: NewDelivery, now: datetime) -> None:
        """Store a delivery, pending from `now`."""
        ...

    def claim_deliveries(self, now: datetime, lease: timedelta, limit: int) -> list[ClaimedDelivery]:
        """Start the next attempt of due deliveries: count it, lease it, and log it as started."""
        ...

    def record_attempt(
        self,
        claimed: ClaimedDelivery,
        *,
        result: str,
        status_code: int | None,
        error: str,
        now: datetime,
        next_attempt_at: datetime | None,
    ) -> None:
        """Log how an attempt ended and move the delivery on (pending again at `next_attempt_at`,
        or final)."""
        ...


class UnitOfWork(Protocol):
    """Opens a transaction that writes: committed when the block ends, rolled back when it raises."""

    def __call__(self) -> AbstractContextManager[Store]: ...


class AlertEncoder(Protocol):
    """An alert as the record that publishes it (`adapters.codec.alert_record`)."""

    def __call__(self, alert: Alert, *, source: str, event_id: str) -> KafkaRecord: ...


class DeadlineEvents(Protocol):
    """What intake's and the clearinghouse's events say of deadlines (`adapters.codec`); each
    raises `BadEvent` for content that can never be applied."""

    def contacts(self, event: intake_events.SubmissionReceived) -> tuple[Contact, ...]:
        """The lab's contacts a submission names."""
        ...

    def review_received(self, event: intake_events.SubmissionReceived) -> DeadlineChange:
        """The review deadline a received submission sets."""
        ...

    def review_moved(self, event: intake_events.ReleasePlanChanged) -> DeadlineChange:
        """The review deadline a changed release plan moves."""
        ...

    def finding_deadlines(self, notice: clearinghouse_events.FindingNotice) -> list[DeadlineChange]:
        """The embargo end and remediation due date a finding notice sets."""
        ...


class Sender(Protocol):
    """Sends one delivery through one kind of channel; never raises for a failed send."""

    async def send(self, receiver: Receiver, delivery: ClaimedDelivery) -> Outcome: ...
