"""Typed errors raised by the Preflight clients.

Every failed call raises a `PreflightError` subclass chosen by the gRPC status
code. `InvalidArgument` carries the server's field violations
(`google.rpc.BadRequest`), so a caller can show which field to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: its path in the request (e.g. `access_window.end`) and what is wrong."""

    field: str
    description: str


class PreflightError(Exception):
    """A call failed. `code` is the gRPC status code, `message` the server's explanation."""

    def __init__(
        self, code: grpc.StatusCode, message: str, field_violations: tuple[FieldViolation, ...] = ()
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field_violations = field_violations


class InvalidArgument(PreflightError):
    """The request broke a rule; `field_violations` names every field to fix."""


class NotFound(PreflightError):
    """No such submission, or none the caller may see."""


class AlreadyExists(PreflightError):
    """The idempotency key was already used for a different request."""


class PermissionDenied(PreflightError):
    """The caller's role may not do this."""


class Unauthenticated(PreflightError):
    """No token, or a wrong, expired or revoked one."""


class FailedPrecondition(PreflightError):
    """The submission's state does not allow this (e.g. it is already withdrawn)."""


class Aborted(PreflightError):
    """The object changed meanwhile (it is no longer at the `expected_revision` given): read it again."""


class ResourceExhausted(PreflightError):
    """A bound was reached (e.g. a finding already holds as many attachments as it may); the
    message names it. Retrying the same request does not help."""


class Unavailable(PreflightError):
    """The service could not be reached (after the client's retries)."""


class DeadlineExceeded(PreflightError):
    """The call did not finish within its deadline."""


_BY_CODE: dict[grpc.StatusCode, type[PreflightError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def from_rpc_error(error: grpc.RpcError) -> PreflightError:
    """The typed error for a failed call (sync or asyncio), with field violations when present."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or code.name
    violations: tuple[FieldViolation, ...] = ()
    status = _rich_status(error)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations += tuple(
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                )
    return _BY_CODE.get(code, PreflightError)(code, message, violations)


def _rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    """The `google.rpc.Status` the server put in the trailers, if any."""
    trailers = getattr(error, "trailing_metadata", lambda: None)() or ()
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            status = status_pb2.Status()
            status.ParseFromString(value)
            return status
    return None
