"""The blocking Preflight client.

    with Client("preflight.example.gov:443", token=token, tls=True) as client:
        submission = client.submit(request).submission
        for change in client.watch(submission.submission_id):
            print(change.status)

Every method has a default deadline (`timeout`, 10 s), is retried by gRPC on
UNAVAILABLE, and raises a `preflight.sdk.errors.PreflightError` subclass on
failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc
from preflight.sdk import _common
from preflight.sdk._common import TLS
from preflight.sdk.errors import from_rpc_error

M = TypeVar("M", bound=Message)


class Client:
    """A connection to Preflight's intake (and identity) service.

    `target` is `host:port`; `token` the caller's bearer token; `tls` False for
    plaintext (loopback and tests), True for TLS with the system's roots, or a
    `TLS` for a private CA and client certificates (mTLS).
    """

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
            grpc.secure_channel(target, credentials, options)
            if credentials
            else grpc.insecure_channel(target, options)
        )
        self._intake = intake_pb2_grpc.IntakeServiceStub(self._channel)
        self._identity = identity_pb2_grpc.IdentityServiceStub(self._channel)
        self._metadata = _common.metadata(token)
        self._timeout = timeout

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Callable[..., Any], request: Any, timeout: float | None, response: type[M]) -> M:
        """Call `method`; the result is the RPC's `response` message (named for the type checker)."""
        try:
            result: M = method(request, metadata=self._metadata, timeout=timeout or self._timeout)
            return result
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    def submit(
        self, request: intake_pb2.SubmitModelRequest, *, timeout: float | None = None
    ) -> intake_pb2.SubmitModelResponse:
        """Submit a model version. Without `idempotency_key` the client sets a random one, so its own
        retries never create a second submission; give your own key to make retries across runs safe."""
        return self._call(
            self._intake.SubmitModel, _common.submit_request(request), timeout, intake_pb2.SubmitModelResponse
        )

    def get_submission(self, submission_id: str, *, timeout: float | None = None) -> intake_pb2.Submission:
        """One submission (NotFound if it does not exist or is not yours)."""
        request = intake_pb2.GetSubmissionRequest(submission_id=submission_id)
        return self._call(
            self._intake.GetSubmission, request, timeout, intake_pb2.GetSubmissionResponse
        ).submission

    def list_submissions(
        self,
        *,
        statuses: Iterable[intake_pb2.SubmissionStatus.ValueType] = (),
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> intake_pb2.ListSubmissionsResponse:
        """One page of the submissions you may see, newest first."""
        request = _common.list_request(statuses, page_size, page_token)
        return self._call(self._intake.ListSubmissions, request, timeout, intake_pb2.ListSubmissionsResponse)

    def iter_submissions(
        self, *, statuses: Iterable[intake_pb2.SubmissionStatus.ValueType] = (), page_size: int = 0
    ) -> Iterator[intake_pb2.Submission]:
        """Every submission you may see, newest first, fetching pages as needed."""
        wanted = list(statuses)
        token = ""
        while True:
            page = self.list_submissions(statuses=wanted, page_size=page_size, page_token=token)
            yield from page.submissions
            token = page.next_page_token
            if not token:
                return

    def update_release_plan(
        self,
        submission_id: str,
        planned_release: datetime,
        *,
        access_window: tuple[datetime, datetime] | None = None,
        reason: str = "",
        timeout: float | None = None,
    ) -> intake_pb2.Submission:
        """Move the planned release (the review deadline), and the access window if given."""
        request = _common.release_plan_request(submission_id, planned_release, access_window, reason)
        return self._call(
            self._intake.UpdateReleasePlan, request, timeout, intake_pb2.UpdateReleasePlanResponse
        ).submission

    def withdraw(
        self, submission_id: str, *, reason: str = "", timeout: float | None = None
    ) -> intake_pb2.Submission:
        """Withdraw a submission that is not yet closed."""
        request = intake_pb2.WithdrawSubmissionRequest(submission_id=submission_id, reason=reason)
        return self._call(
            self._intake.WithdrawSubmission, request, timeout, intake_pb2.WithdrawSubmissionResponse
        ).submission

    def watch(
        self, submission_id: str, *, timeout: float | None = None
    ) -> Iterator[intake_pb2.WatchSubmissionResponse]:
        """The submission's current status, then each change, until a terminal status.

        If the service restarts meanwhile, the watch reconnects (up to 5 times in a
        row without news) and skips what it already yielded. `timeout` bounds the
        whole watch (default: none).
        """
        request = intake_pb2.WatchSubmissionRequest(submission_id=submission_id)
        seen = 0
        failures = 0
        while True:
            stream = self._intake.WatchSubmission(request, metadata=self._metadata, timeout=timeout)
            try:
                for change in stream:
                    failures = 0
                    if change.sequence > seen:
                        seen = change.sequence
                        yield change
                return
            except grpc.RpcError as exc:
                failures += 1
                if exc.code() != grpc.StatusCode.UNAVAILABLE or failures > _common.WATCH_RECONNECTS:
                    raise from_rpc_error(exc) from exc
                time.sleep(min(5.0, 0.2 * 2**failures))
            finally:
                # A plain call has cancel(); an instrumented one (OpenTelemetry) is a generator.
                getattr(stream, "cancel", getattr(stream, "close", lambda: None))()

    def resolve_credential(self, credential_ref: str, job_id: str, *, timeout: float | None = None) -> str:
        """The endpoint credential behind a reference (service principals only; audit-logged)."""
        request = intake_pb2.ResolveCredentialRequest(credential_ref=credential_ref, job_id=job_id)
        return self._call(
            self._intake.ResolveCredential, request, timeout, intake_pb2.ResolveCredentialResponse
        ).credential

    def create_token(
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
        """Issue a bearer token (admin only); the token is in the response and nowhere else."""
        request = _common.create_token_request(
            principal_id=principal_id,
            role=role,
            organisation=organisation,
            sectors=sectors,
            expires_at=expires_at,
            description=description,
        )
        return self._call(self._identity.CreateToken, request, timeout, identity_pb2.CreateTokenResponse)

    def revoke_token(self, token_id: str, *, timeout: float | None = None) -> None:
        """Revoke a token by its id (admin only)."""
        request = identity_pb2.RevokeTokenRequest(token_id=token_id)
        self._call(self._identity.RevokeToken, request, timeout, identity_pb2.RevokeTokenResponse)
