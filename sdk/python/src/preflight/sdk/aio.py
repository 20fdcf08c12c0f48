"""The asyncio Preflight client: the same methods as `Client`, awaitable (grpc.aio), and the
asyncio twin of `preflight.sdk.alerts.subscribe_alerts`.

async with AsyncClient("localhost:50051", token=token) as client:
    response = await client.submit(request)
    async for change in client.watch(response.submission.submission_id):
        ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc
from preflight.sdk import _common
from preflight.sdk._common import TLS
from preflight.sdk.alerts import AlertSubscription, ReceivedAlert, stream_alerts
from preflight.sdk.errors import from_rpc_error

M = TypeVar("M", bound=Message)


class AsyncClient:
    """Asyncio twin of `preflight.sdk.Client` (see it for the arguments and each method's contract)."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: bool | TLS = False,
        timeout: float = _common.DEFAULT_TIMEOUT,
    ) -> None:
        credentials = _common.channel_credentials(tls)
        options = list(_common.CHANNEL_OPTIONS)
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options)
            if credentials
            else grpc.aio.insecure_channel(target, options)
        )
        self._intake = intake_pb2_grpc.IntakeServiceStub(self._channel)
        self._identity = identity_pb2_grpc.IdentityServiceStub(self._channel)
        self._metadata = _common.metadata(token)
        self._timeout = timeout

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(
        self, method: Callable[..., Awaitable[Any]], request: Any, timeout: float | None, response: type[M]
    ) -> M:
        try:
            result: M = await method(request, metadata=self._metadata, timeout=timeout or self._timeout)
            return result
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    async def submit(
        self, request: intake_pb2.SubmitModelRequest, *, timeout: float | None = None
    ) -> intake_pb2.SubmitModelResponse:
        return await self._call(
            self._intake.SubmitModel, _common.submit_request(request), timeout, intake_pb2.SubmitModelResponse
        )

    async def get_submission(
        self, submission_id: str, *, timeout: float | None = None
    ) -> intake_pb2.Submission:
        request = intake_pb2.GetSubmissionRequest(submission_id=submission_id)
        return (
            await self._call(self._intake.GetSubmission, request, timeout, intake_pb2.GetSubmissionResponse)
        ).submission

    async def list_submissions(
        self,
        *,
        statuses: Iterable[intake_pb2.SubmissionStatus.ValueType] = (),
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> intake_pb2.ListSubmissionsResponse:
        request = _common.list_request(statuses, page_size, page_token)
        return await self._call(
            self._intake.ListSubmissions, request, timeout, intake_pb2.ListSubmissionsResponse
        )

    async def update_release_plan(
        self,
        submission_id: str,
        planned_release: datetime,
        *,
        access_window: tuple[datetime, datetime] | None = None,
        reason: str = "",
        timeout: float | None = None,
    ) -> intake_pb2.Submission:
        request = _common.release_plan_request(submission_id, planned_release, access_window, reason)
        return (
            await self._call(
                self._intake.UpdateReleasePlan, request, timeout, intake_pb2.UpdateReleasePlanResponse
            )
        ).submission

    async def withdraw(
        self, submission_id: str, *, reason: str = "", timeout: float | None = None
    ) -> intake_pb2.Submission:
        request = intake_pb2.WithdrawSubmissionRequest(submission_id=submission_id, reason=reason)
        return (
            await self._call(
                self._intake.WithdrawSubmission, request, timeout, intake_pb2.WithdrawSubmissionResponse
            )
        ).submission

    async def watch(
        self, submission_id: str, *, timeout: float | None = None
    ) -> AsyncIterator[intake_pb2.WatchSubmissionResponse]:
        request = intake_pb2.WatchSubmissionRequest(submission_id=submission_id)
        seen = 0
        failures = 0
        while True:
            stream = self._intake.WatchSubmission(request, metadata=self._metadata, timeout=timeout)
            try:
                async for change in stream:
                    failures = 0
                    if change.sequence > seen:
                        seen = change.sequence
                        yield change
                return
            except grpc.RpcError as exc:
                failures += 1
                if exc.code() != grpc.StatusCode.UNAVAILABLE or failures > _common.WATCH_RECONNECTS:
                    raise from_rpc_error(exc) from exc
                await asyncio.sleep(min(5.0, 0.2 * 2**failures))
            finally:
                stream.cancel()

    async def resolve_credential(
        self, credential_ref: str, job_id: str, *, timeout: float | None = None
    ) -> str:
        request = intake_pb2.ResolveCredentialRequest(credential_ref=credential_ref, job_id=job_id)
        return (
            await self._call(
                self._intake.ResolveCredential, request, timeout, intake_pb2.ResolveCredentialResponse
            )
        ).credential

    async def create_token(
        self,
        *,
        principal_id: str,
        role: identity_pb2.Role.ValueType,
        organisation: str,
        sectors: Iterable[str] = (),
        expires_at: datetime | None = None,
        description: str = "",
        timeout: float | None = None,
    ) -> identity_pb2.CreateTokenResponse:
        request = _common.create_token_request(
            principal_id=principal_id,
            role=role,
            organisation=organisation,
            sectors=sectors,
            expires_at=expires_at,
            description=description,
        )
        return await self._call(
            self._identity.CreateToken, request, timeout, identity_pb2.CreateTokenResponse
        )

    async def revoke_token(self, token_id: str, *, timeout: float | None = None) -> None:
        request = identity_pb2.RevokeTokenRequest(token_id=token_id)
        await self._call(self._identity.RevokeToken, request, timeout, identity_pb2.RevokeTokenResponse)


def subscribe_alerts(
    subscription: AlertSubscription, *, poll_timeout: float = 1.0
) -> AsyncGenerator[ReceivedAlert, None]:
    """Asyncio twin of `preflight.sdk.alerts.subscribe_alerts` (same contract): `async for` over it."""
    return stream_alerts(subscription, poll_timeout=poll_timeout)
