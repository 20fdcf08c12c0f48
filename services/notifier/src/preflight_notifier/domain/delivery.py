"""Delivery outcomes, retry with exponential backoff and jitter, and webhook signatures.

Webhook signature (verify it on the receiving side): the header
`Preflight-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
HMAC-SHA256(secret, "<t>.<raw body>"). Recompute it over the raw body bytes,
compare in constant time, and reject a `t` more than five minutes from your
clock (replay protection). `verify_signature` does exactly that.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import random
from dataclasses import dataclass
from datetime import timedelta

SIGNATURE_HEADER = "Preflight-Signature"
SIGNATURE_TOLERANCE = timedelta(minutes=5)


class Result(enum.StrEnum):
    """How one attempt ended."""

    DELIVERED = "delivered"
    RETRY = "retry"  # transient: 5xx, 429, timeout, connection failure, SMTP 4xx
    FAILED = "failed"  # permanent: other 4xx, SMTP 5xx, a receiver misconfiguration


@dataclass(frozen=True)
class DueGroup:
    """An alert group whose wait is over: its notifications go to `recipient` through `receiver`."""

    group_key: str
    receiver: str
    recipient: str
    group_labels: dict[str, str]


@dataclass(frozen=True)
class NewDelivery:
    """One message to make for a group's recipient, about `alert_ids`."""

    delivery_id: str
    receiver: str
    recipient: str
    group_key: str
    alert_ids: tuple[str, ...]
    subject: str
    body: str


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery whose attempt number `attempt` was logged as started and may now be made."""

    delivery_id: str
    receiver: str
    recipient: str
    subject: str
    body: str
    attempt: int


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt, with what the log records."""

    result: Result
    status_code: int | None = None
    error: str = ""
    retry_after: timedelta | None = None


def classify_http(status: int, retry_after: timedelta | None = None) -> Outcome:
    """2xx delivered; 5xx and 429 retried (honouring Retry-After); any other status fails for good."""
    if 200 <= status < 300:
        return Outcome(Result.DELIVERED, status)
    if status >= 500 or status == 429:
        return Outcome(Result.RETRY, status, f"HTTP {status}", retry_after)
    return Outcome(Result.FAILED, status, f"HTTP {status}")


def classify_smtp(code: int, message: str) -> Outcome:
    """SMTP 4xx replies are transient (retried); 5xx are permanent."""
    result = Result.RETRY if 400 <= code < 500 else Result.FAILED
    return Outcome(result, code, f"SMTP {code} {message}".strip())


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits about initial·2^(n-1), at most `maximum`."""

    initial: timedelta = timedelta(seconds=10)
    maximum: timedelta = timedelta(minutes=10)
    max_attempts: int = 10

    def __post_init__(self) -> None:
        if self.initial <= timedelta(0) or self.maximum < self.initial:
            raise ValueError("retry: need 0 < initial <= maximum")
        if self.max_attempts < 1:
            raise ValueError("retry: max_attempts must be at least 1")

    def delay(self, attempt: int, rng: random.Random, retry_after: timedelta | None = None) -> timedelta:
        """The wait after failed attempt number `attempt` (1-based): "equal jitter" in [d/2, d].

        A receiver's Retry-After is honoured up to `maximum`.
        """
        ceiling: timedelta = min(self.maximum, self.initial * (2 ** (attempt - 1)))
        wait: timedelta = ceiling / 2 + ceiling / 2 * rng.random()
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.maximum))
        return wait


def settle(outcome: Outcome, attempt: int, policy: RetryPolicy) -> Outcome:
    """The outcome to record: a retryable failure on the last allowed attempt becomes FAILED."""
    if outcome.result is Result.RETRY and attempt >= policy.max_attempts:
        return Outcome(
            Result.FAILED, outcome.status_code, f"gave up after {attempt} attempts: {outcome.error}"
        )
    return outcome


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `Preflight-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: bytes, header: str, body: bytes, now: int, tolerance: timedelta = SIGNATURE_TOLERANCE
) -> bool:
    """Whether `header` signs `body` with `secret` and its timestamp is within `tolerance` of `now`."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance.total_seconds():
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))
