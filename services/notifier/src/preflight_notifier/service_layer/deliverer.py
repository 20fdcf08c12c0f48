"""The deliverer: makes delivery attempts, logs each one before and after, retries transient failures.

Per attempt:

1. **log start** — one transaction counts the attempt, leases the delivery
   (its next attempt moves to now + lease) and writes the attempt's log row
   as `started`; it commits BEFORE anything is sent;
2. **send** — through the receiver's channel (webhook or e-mail);
3. **log result** — one transaction records the outcome on the log row and
   moves the delivery on: `delivered`, `failed` (permanent error, or the last
   allowed attempt), or pending again after an exponential backoff with jitter.

A crash between 2 and 3 leaves a `started` row and a leased delivery: once
the lease ends the delivery is attempted again — at worst one duplicate, never
a loss. Deliveries are rows, so pending work survives restarts.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from preflight_common.clock import Clock

from preflight_notifier.domain.delivery import ClaimedDelivery, Outcome, Result, settle
from preflight_notifier.domain.ports import Sender, UnitOfWork
from preflight_notifier.domain.routing import Receiver, RoutingConfig, WebhookChannel


@dataclass(frozen=True)
class Senders:
    webhook: Sender
    email: Sender

    def for_receiver(self, receiver: Receiver) -> Sender:
        return self.webhook if isinstance(receiver.channel, WebhookChannel) else self.email


class Deliverer:
    """Makes due delivery attempts (module docstring)."""

    def __init__(
        self,
        transaction: UnitOfWork,
        routing: RoutingConfig,
        senders: Senders,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        lease: timedelta = timedelta(minutes=5),
        batch_size: int = 50,
    ) -> None:
        self._transaction = transaction
        self._routing = routing
        self._senders = senders
        self._clock = clock
        self._rng = rng or random.Random()
        self._lease = lease
        self._batch_size = batch_size

    def claim(self) -> list[ClaimedDelivery]:
        """Step 1 for the due deliveries (at most `batch_size`): committed when it returns."""
        with self._transaction() as store:
            return store.claim_deliveries(self._clock(), self._lease, self._batch_size)

    async def attempt(self, claimed: ClaimedDelivery) -> Outcome:
        """Steps 2 and 3 for a claimed delivery; returns the outcome as recorded."""
        receiver = self._routing.receivers.get(claimed.receiver)
        if receiver is None or receiver.channel is None:
            outcome = Outcome(Result.FAILED, error=f"receiver {claimed.receiver!r} is no longer configured")
        else:
            outcome = await self._senders.for_receiver(receiver).send(receiver, claimed)
            outcome = settle(outcome, claimed.attempt, receiver.retry)
        finished = self._clock()
        next_at: datetime | None = None
        if outcome.result is Result.RETRY and receiver is not None:
            next_at = finished + receiver.retry.delay(claimed.attempt, self._rng, outcome.retry_after)
        await asyncio.to_thread(self._record, claimed, outcome, finished, next_at)
        return outcome

    def _record(
        self, claimed: ClaimedDelivery, outcome: Outcome, now: datetime, next_at: datetime | None
    ) -> None:
        with self._transaction() as store:
            store.record_attempt(
                claimed,
                result=outcome.result.value,
                status_code=outcome.status_code,
                error=outcome.error,
                now=now,
                next_attempt_at=next_at,
            )

    async def run_pass(self) -> int:
        """Claim the due deliveries and attempt them concurrently; return how many were attempted."""
        claimed = await asyncio.to_thread(self.claim)
        await asyncio.gather(*(self.attempt(c) for c in claimed))
        return len(claimed)
