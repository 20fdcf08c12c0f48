"""Webhook deliveries: a signed JSON POST over aiohttp.

Headers: `Content-Type: application/json`, `Preflight-Delivery-Id` (stable
across retries: deduplicate on it), `Preflight-Attempt`, and
`Preflight-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
(see `preflight_notifier.domain.delivery` for verification). Redirects are
not followed. Errors are recorded without the URL (it may hold a token).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import aiohttp
from preflight_common.clock import Clock

from preflight_notifier.adapters.secrets import read_secret
from preflight_notifier.domain.delivery import (
    SIGNATURE_HEADER,
    ClaimedDelivery,
    Outcome,
    Result,
    classify_http,
    sign,
)
from preflight_notifier.domain.routing import Receiver, WebhookChannel

USER_AGENT = "preflight-notifier/1"


def _retry_after(value: str | None, now: datetime) -> timedelta | None:
    if not value:
        return None
    if value.strip().isdigit():
        return timedelta(seconds=int(value.strip()))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - now)


class WebhookSender:
    """Sends webhook deliveries. Create it inside the event loop that uses it; `close()` when done."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        return self._session

    async def send(self, receiver: Receiver, delivery: ClaimedDelivery) -> Outcome:
        channel = receiver.channel
        assert isinstance(channel, WebhookChannel)
        secret = read_secret(channel.secret_file)
        if secret is None:
            # Retried: fixing the deployment's secret within the retry window still delivers.
            return Outcome(Result.RETRY, error=f"receiver {receiver.name}: webhook secret is not configured")
        body = delivery.body.encode()
        now = self._clock()
        headers = {
            "Content-Type": "application/json",
            "Preflight-Delivery-Id": delivery.delivery_id,
            "Preflight-Attempt": str(delivery.attempt),
            SIGNATURE_HEADER: sign(secret, int(now.timestamp()), body),
        }
        try:
            async with self._client().post(
                channel.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=channel.timeout.total_seconds()),
            ) as response:
                await response.read()
                return classify_http(response.status, _retry_after(response.headers.get("Retry-After"), now))
        except TimeoutError:
            return Outcome(Result.RETRY, error=f"timed out after {channel.timeout.total_seconds():g}s")
        except aiohttp.ClientError as exc:
            return Outcome(Result.RETRY, error=f"connection failed: {type(exc).__name__}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
