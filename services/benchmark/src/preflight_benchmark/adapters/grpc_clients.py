"""Clients of other Preflight services: intake's ResolveCredential and the benchmark service's
ReportJobResult (the worker, with its job token), intake's GetSubmission and the identity
service's IssueJobToken (the dispatcher, with the service token) — over TLS when given
channel credentials: `preflight_common.channels`."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import grpc
from preflight.benchmark.v1 import benchmark_pb2, benchmark_pb2_grpc
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc
from preflight_common.channels import aio_channel
from preflight_common.fields import timestamp

from preflight_benchmark.domain.ports import (
    JOB_TOKEN_MARGIN,
    Attempt,
    CredentialError,
    JobTokenError,
    SubmissionStatusUnknown,
)

log = logging.getLogger(__name__)

TRANSIENT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


def _metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class GrpcCredentialResolver:
    """Resolves credential references at intake (with the job's `worker` token), retrying transient
    errors."""

    def __init__(
        self,
        target: str,
        token: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        attempts: int = 4,
        timeout: float = 10.0,
    ) -> None:
        self._target = target
        self._token = token
        self._credentials = credentials
        self._attempts = attempts
        self._timeout = timeout

    async def resolve(self, credential_ref: str, job_id: str) -> str:
        request = intake_pb2.ResolveCredentialRequest(credential_ref=credential_ref, job_id=job_id)
        delay = 0.5
        async with aio_channel(self._target, self._credentials) as channel:
            stub = intake_pb2_grpc.IntakeServiceStub(channel)
            for attempt in range(1, self._attempts + 1):
                try:
                    response = await stub.ResolveCredential(
                        request, metadata=_metadata(self._token), timeout=self._timeout
                    )
                    return str(response.credential)
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                    if code not in TRANSIENT:
                        raise CredentialError(
                            f"intake refused the credential reference: {code.name}", retryable=False
                        ) from None
                    if attempt == self._attempts:
                        raise CredentialError(f"intake unreachable: {code.name}", retryable=True) from None
                    log.warning("intake unavailable (%s); retrying in %.1fs", code.name, delay)
                    await asyncio.sleep(delay)
                    delay *= 2
        raise AssertionError("unreachable")


class GrpcSubmissionStatuses:
    """Asks intake (`GetSubmission`, as a `service` principal) whether a submission was withdrawn."""

    def __init__(
        self,
        target: str,
        service_token: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 5.0,
    ) -> None:
        self._target = target
        self._token = service_token
        self._credentials = credentials
        self._timeout = timeout
        self._channel: grpc.aio.Channel | None = None

    async def withdrawn(self, submission_id: str) -> bool:
        if self._channel is None:
            self._channel = aio_channel(self._target, self._credentials)
        stub = intake_pb2_grpc.IntakeServiceStub(self._channel)
        try:
            response = await stub.GetSubmission(
                intake_pb2.GetSubmissionRequest(submission_id=submission_id),
                metadata=_metadata(self._token),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise SubmissionStatusUnknown(f"intake did not answer: {exc.code().name}") from None
        return bool(response.submission.status == intake_pb2.SUBMISSION_STATUS_WITHDRAWN)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


class GrpcJobTokens:
    """Issues job tokens at the identity service (`IssueJobToken`, as the benchmark's `service`
    principal)."""

    def __init__(
        self,
        target: str,
        service_token: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._target = target
        self._token = service_token
        self._credentials = credentials
        self._timeout = timeout

    async def issue(self, attempt: Attempt) -> str:
        job_id = attempt.job_id
        expiry = timestamp(datetime.now(UTC) + attempt.timeout + JOB_TOKEN_MARGIN)
        request = identity_pb2.IssueJobTokenRequest(job_id=job_id, expires_at=expiry)
        async with aio_channel(self._target, self._credentials) as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            try:
                response = await stub.IssueJobToken(
                    request, metadata=_metadata(self._token), timeout=self._timeout
                )
            except grpc.aio.AioRpcError as exc:
                raise JobTokenError(f"no job token for {job_id}: {exc.code().name}") from None
        return str(response.token)


class ReportRejected(Exception):
    """The benchmark service refused the report (the attempt is no longer running)."""


class GrpcResultReporter:
    """Hands a worker's outcome to the benchmark service (with the job's `worker` token), retrying
    while it is unreachable."""

    def __init__(
        self,
        target: str,
        token: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        deadline: float = 120.0,
        timeout: float = 15.0,
    ) -> None:
        self._target = target
        self._token = token
        self._credentials = credentials
        self._deadline = deadline
        self._timeout = timeout

    async def report(
        self, request: benchmark_pb2.ReportJobResultRequest
    ) -> benchmark_pb2.ReportJobResultResponse:
        """The service's answer; raises ReportRejected, or the RPC error when it stayed unreachable."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._deadline
        delay = 0.5
        async with aio_channel(self._target, self._credentials) as channel:
            stub = benchmark_pb2_grpc.BenchmarkServiceStub(channel)
            while True:
                try:
                    response: benchmark_pb2.ReportJobResultResponse = await stub.ReportJobResult(
                        request, metadata=_metadata(self._token), timeout=self._timeout
                    )
                    return response
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in TRANSIENT:
                        raise ReportRejected(f"{exc.code().name}: {exc.details()}") from None
                    if loop.time() + delay > give_up:
                        raise
                    log.warning(
                        "benchmark service unavailable (%s); retrying in %.1fs", exc.code().name, delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
