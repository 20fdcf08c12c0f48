"""The scheduler: fires due reminders, exactly once each, and catches up after downtime.

A pass is one transaction:

1. read the deadlines of the earliest due pending reminders (the partial
   index on `due_at` over pending reminders: the cost follows what is due,
   not how much is pending);
2. claim those deadlines (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several
   notifier processes share the work; SQLite: the one writer);
3. per deadline, take its due pending reminders: those of an older version,
   or of a deadline no longer active, are cancelled (a stale reminder never
   fires); the rest go through the catch-up rule (`domain.schedule.triage`);
4. each reminder that fires becomes an alert (deterministic id; `late` when
   fired after its instant plus the tolerance) that is recorded, queued in
   the outbox and routed in the same transaction as the reminder is marked
   fired, in the trace of the event that scheduled its deadline. An overdue
   reminder plans the next repetition.

A crash before the commit leaves everything pending, and the next pass (on
start, the catch-up) fires it; after the commit the reminder is no longer
pending. So each threshold fires once, through any number of restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from preflight_common.clock import Clock

from preflight_notifier.domain.alerts import Alert, reminder_alert
from preflight_notifier.domain.model import Deadline, DeadlineState
from preflight_notifier.domain.ports import Store, UnitOfWork
from preflight_notifier.domain.routing import RoutingConfig
from preflight_notifier.domain.schedule import Stage, is_late, next_overdue, triage
from preflight_notifier.service_layer.alerting import AlertSink


@dataclass(frozen=True)
class PassReport:
    """What one pass did."""

    fired: int = 0
    superseded: int = 0
    stale: int = 0

    @property
    def handled(self) -> int:
        return self.fired + self.superseded + self.stale


class Scheduler:
    """Fires due reminders (module docstring)."""

    def __init__(
        self,
        transaction: UnitOfWork,
        routing: RoutingConfig,
        sink: AlertSink,
        clock: Clock,
        batch_size: int = 500,
    ) -> None:
        self._transaction = transaction
        self._routing = routing
        self._sink = sink
        self._clock = clock
        self._batch_size = batch_size

    def run_pass(self) -> PassReport:
        """Handle the reminders due now of at most `batch_size` deadlines; durable when it returns."""
        now = self._clock()
        outcomes: list[tuple[int, str, str | None]] = []
        alerts: list[Alert] = []
        stale = superseded = 0
        with self._transaction() as store:
            deadlines = store.lock_deadlines(store.due_deadline_ids(now, self._batch_size))
            due = store.due_reminders([d.deadline_id for d in deadlines], now)
            for deadline in deadlines:
                live = deadline.state is DeadlineState.ACTIVE and deadline.due_at is not None
                current = [r for r in due[deadline.deadline_id] if live and r.version == deadline.version]
                dropped = [r for r in due[deadline.deadline_id] if r not in current]
                outcomes += [(r.reminder_id, "cancelled", None) for r in dropped]
                stale += len(dropped)
                firing = {r.reminder_id for r in triage([r.due for r in current]).fire}
                for reminder in current:
                    if reminder.reminder_id not in firing:
                        outcomes.append((reminder.reminder_id, "superseded", None))
                        superseded += 1
                        continue
                    late = is_late(reminder.planned.due_at, now, self._routing.late_after)
                    alert = reminder_alert(deadline, reminder.planned, now, late)
                    alerts.append(alert)
                    outcomes.append((reminder.reminder_id, "fired", alert.alert_id))
                    if reminder.planned.stage is Stage.OVERDUE:
                        self._plan_next_overdue(store, deadline, now)
            traceparents = store.deadline_traceparents({a.kind.deadline_id(a.subject_id) for a in alerts})
            self._sink.emit(store, alerts, now, traceparents)
            store.finish_reminders(outcomes, now)
        return PassReport(len(alerts), superseded, stale)

    def _plan_next_overdue(self, store: Store, deadline: Deadline, now: datetime) -> None:
        policy = self._routing.policies.get(deadline.kind)
        assert deadline.due_at is not None
        following = next_overdue(policy, deadline.due_at, now) if policy else None
        if following is not None:
            store.add_reminders(deadline.deadline_id, deadline.version, [following])

    def catch_up(self) -> PassReport:
        """Run passes until nothing is due (what starting the notifier does first)."""
        total = PassReport()
        while True:
            report = self.run_pass()
            total = PassReport(
                total.fired + report.fired, total.superseded + report.superseded, total.stale + report.stale
            )
            if report.handled == 0:
                return total
