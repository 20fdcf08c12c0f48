"""The dispatcher: flushes alert groups whose wait is over into deliveries.

A flush is one transaction per pass. For each due group (PostgreSQL: claimed
with `FOR UPDATE SKIP LOCKED`) it takes the pending notifications and drops,
in this order: those the audience gate no longer lets through (the routing
file changed, or the source narrowed the deadline's audience or TLP since the
alert fired: a narrowing applies at once, a widening never to alerts already
fired), inhibited ones, silenced ones. The rest become ONE delivery
for the group's recipient (so a burst inside the group wait arrives as one
message), stored as pending work for the deliverer.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import datetime

from preflight_common.clock import Clock

from preflight_notifier.domain.alerts import Alert
from preflight_notifier.domain.delivery import DueGroup, NewDelivery
from preflight_notifier.domain.digest import email_text, webhook_body
from preflight_notifier.domain.model import Details
from preflight_notifier.domain.ports import Store, UnitOfWork
from preflight_notifier.domain.routing import EmailChannel, Receiver, RoutingConfig, WebhookChannel
from preflight_notifier.domain.silences import Silence, silenced

DELIVERY_ID_NAMESPACE = uuid.UUID("1b0d2a8e-6f0c-5b7e-8d2f-3c4a5b6c7d8e")


def delivery_id(group_key: str, alert_ids: list[str]) -> str:
    """Deterministic per (group, alerts): receivers may deduplicate on it."""
    return str(uuid.uuid5(DELIVERY_ID_NAMESPACE, group_key + "|" + ",".join(alert_ids)))


def _allowed(receiver: Receiver, recipient: str, alert: Alert, now: Details | None) -> bool:
    """The recipient may receive the alert as it fired AND under its deadline's audience now."""
    if recipient not in receiver.recipients(alert):
        return False
    return now is None or recipient in receiver.recipients(replace(alert, audience=now.audience, tlp=now.tlp))


def _recipient_organisation(receiver: Receiver, alert: Alert) -> str:
    if receiver.viewer is not None:
        return receiver.viewer.organisation
    return alert.audience.lab_organisation


class Dispatcher:
    """Turns due alert groups into deliveries (module docstring)."""

    def __init__(
        self, transaction: UnitOfWork, routing: RoutingConfig, clock: Clock, batch_size: int = 100
    ) -> None:
        self._transaction = transaction
        self._routing = routing
        self._clock = clock
        self._batch_size = batch_size

    def run_pass(self) -> int:
        """Flush the due groups (at most `batch_size`); return how many were flushed. Durable on return."""
        now = self._clock()
        with self._transaction() as store:
            groups = store.lock_due_groups(now, self._batch_size)
            if not groups:
                return 0
            active_silences = store.silences(organisation=None, unexpired_at=now)
            for group in groups:
                self._flush(store, group, active_silences, now)
        return len(groups)

    def _flush(self, store: Store, group: DueGroup, silences: list[Silence], now: datetime) -> None:
        pending = store.pending_notifications(group.group_key)
        alerts = store.alerts_by_id([alert_id for _, alert_id in pending])
        subjects = store.alerts_of_subjects({a.subject_id for a in alerts.values()})
        current = store.deadline_details({a.kind.deadline_id(a.subject_id) for a in alerts.values()})
        receiver = self._routing.receivers.get(group.receiver)
        verdicts: dict[str, list[int]] = defaultdict(list)
        keep: list[Alert] = []
        for notification_id, alert_id in pending:
            alert = alerts[alert_id]
            verdict = "denied"
            if receiver is not None and _allowed(
                receiver, group.recipient, alert, current.get(alert.kind.deadline_id(alert.subject_id))
            ):
                verdict = "sent"
                if self._routing.inhibited(alert, [s for s in subjects if s.subject_id == alert.subject_id]):
                    verdict = "inhibited"
                elif silenced(silences, alert.labels(), _recipient_organisation(receiver, alert), now):
                    verdict = "silenced"
            if verdict == "sent":
                keep.append(alert)
            verdicts[verdict].append(notification_id)
        new_id = None
        if keep and receiver is not None:
            new_id = delivery_id(group.group_key, [a.alert_id for a in keep])
            store.add_delivery(self._delivery(new_id, receiver, group, keep), now)
        for verdict, ids in verdicts.items():
            store.finish_notifications(ids, verdict, new_id if verdict == "sent" else None)
        store.finish_group(group.group_key, now)

    @staticmethod
    def _delivery(new_id: str, receiver: Receiver, group: DueGroup, alerts: list[Alert]) -> NewDelivery:
        subject, body = "", ""
        if isinstance(receiver.channel, WebhookChannel):
            body = webhook_body(new_id, receiver.name, group.group_labels, alerts)
        elif isinstance(receiver.channel, EmailChannel):
            text = email_text(alerts)
            subject, body = text.subject, text.body
        return NewDelivery(
            new_id,
            receiver.name,
            group.recipient,
            group.group_key,
            tuple(a.alert_id for a in alerts),
            subject,
            body,
        )
