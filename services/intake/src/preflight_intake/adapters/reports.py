"""The clearinghouse's signed review reports, as intake checks them before a submission is REPORT_READY.

The public key comes from the clearinghouse itself (`ClearinghouseService.GetSigningKey`), fetched
once per key id and kept for the life of the process: a key id names one key for good (an unknown
id is asked again each time, never remembered). Intake calls
with a short-lived `service` token it issues to itself. A clearinghouse that cannot be reached is
a transient failure (the consumer retries); one that knows no such key means the report is forged.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
from preflight.clearinghouse.v1 import clearinghouse_pb2, clearinghouse_pb2_grpc
from preflight.clearinghouse.v1 import events_pb2 as review_events
from preflight.sdk.reports import report_refusal
from preflight_common.auth import IssuedToken, Principal, Role, TokenStore
from preflight_common.channels import aio_channel

ALGORITHM = "Ed25519"
CALL_TIMEOUT = 10.0
TOKEN_LIFETIME = timedelta(hours=1)
# Intake's own principal towards the clearinghouse.
PRINCIPAL = Principal("preflight-intake", Role.SERVICE, "preflight")


class ReportVerifier:
    """Verifies ReviewReportReady events with the clearinghouse's published signing keys."""

    def __init__(self, target: str, credentials: grpc.ChannelCredentials | None, tokens: TokenStore) -> None:
        self._target = target
        self._credentials = credentials
        self._tokens = tokens
        self._keys: dict[str, bytes] = {}
        self._token: IssuedToken | None = None

    async def refusal(self, report: review_events.ReviewReportReady) -> str | None:
        """Why `report` is not a genuine signed report of its submission (None when it is).

        Raises `grpc.aio.AioRpcError` while the clearinghouse cannot answer (retry later).
        """
        public_key = await self._public_key(report.signing_key_id)
        if public_key is None:
            return f"the clearinghouse has no signing key {report.signing_key_id!r}"
        return report_refusal(
            public_key,
            report.body,
            report.signature,
            claims={
                "report_id": report.report_id,
                "submission_id": report.submission_id,
                "version": report.version,
                "organisation": report.organisation,
                "signing_key_id": report.signing_key_id,
            },
        )

    async def _public_key(self, key_id: str) -> bytes | None:
        """The published key of that id; only keys found are kept (made-up ids cannot grow the cache)."""
        if key_id in self._keys:
            return self._keys[key_id]
        request = clearinghouse_pb2.GetSigningKeyRequest(key_id=key_id)
        metadata = (("authorization", f"Bearer {await asyncio.to_thread(self._service_token)}"),)
        async with aio_channel(self._target, self._credentials) as channel:
            stub = clearinghouse_pb2_grpc.ClearinghouseServiceStub(channel)
            try:
                key = await stub.GetSigningKey(request, metadata=metadata, timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                if exc.code() is not grpc.StatusCode.NOT_FOUND:
                    raise
                return None
        if key.key_id != key_id or key.algorithm != ALGORITHM:
            return None
        public_key: bytes = key.public_key
        self._keys[key_id] = public_key
        return public_key

    def _service_token(self) -> str:
        now = datetime.now(UTC)
        if self._token is None or self._token.expires_at - now < TOKEN_LIFETIME / 2:
            self._token = self._tokens.create(
                PRINCIPAL, now + TOKEN_LIFETIME, description="intake: report signing keys"
            )
        return self._token.token
