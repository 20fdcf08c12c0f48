"""`preflight.intake.v1.IntakeService` over the intake use cases.

Each method reads the authenticated principal, decodes the request, runs the
use case (in a worker thread when it blocks; SubmitModel's awaits its group commit on the
event loop) and maps its errors to
status codes: InvalidRequest → INVALID_ARGUMENT with `google.rpc.BadRequest`
field violations; NotFound → NOT_FOUND; PermissionDenied → PERMISSION_DENIED;
Conflict → ALREADY_EXISTS; FailedPrecondition → FAILED_PRECONDITION; a change
that kept losing to concurrent ones → ABORTED. Anything else is the server's
(`preflight_common.grpcserver`): a full database → UNAVAILABLE, the rest →
INTERNAL with the details only in the server's log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc
from preflight_common.auth import current_principal
from preflight_common.grpcserver import invalid_argument

from preflight_intake.adapters import codec
from preflight_intake.adapters.crypto import DecryptionError
from preflight_intake.domain.access import Caller
from preflight_intake.domain.ports import ConcurrentUpdate
from preflight_intake.domain.validation import InvalidRequest
from preflight_intake.service_layer.handlers import (
    Conflict,
    FailedPrecondition,
    Intake,
    NotFound,
    NotYetKnown,
    PermissionDenied,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_STATUS_CODES: dict[type[Exception], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Conflict: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    NotYetKnown: grpc.StatusCode.UNAVAILABLE,
}


def caller() -> Caller:
    """The authenticated principal of the running call."""
    principal = current_principal()
    return Caller(principal.principal_id, principal.role.value, principal.organisation)


class IntakeServicer(intake_pb2_grpc.IntakeServiceServicer):
    """The gRPC face of `Intake`.

    A watch re-reads its submission's history only when told of a change (`Intake.changes`):
    by the commit, when this process made it, or by the periodic resync, for one committed by
    another process sharing the database.
    """

    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    async def SubmitModel(
        self, request: intake_pb2.SubmitModelRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.SubmitModelResponse:
        draft = codec.submission_draft(request)
        submission, replayed = await _answer(
            context, self._intake.submit(caller(), draft, codec.request_digest(request))
        )
        return intake_pb2.SubmitModelResponse(
            submission=codec.submission_to_proto(submission), replayed=replayed
        )

    async def GetSubmission(
        self, request: intake_pb2.GetSubmissionRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.GetSubmissionResponse:
        submission = await _run(context, self._intake.get, caller(), request.submission_id)
        return intake_pb2.GetSubmissionResponse(submission=codec.submission_to_proto(submission))

    async def ListSubmissions(
        self, request: intake_pb2.ListSubmissionsRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.ListSubmissionsResponse:
        who = caller()

        def page() -> Any:
            statuses = codec.statuses_from_proto(list(request.statuses))
            return self._intake.list_submissions(
                who, statuses, request.page_size, codec.decode_page_token(request.page_token)
            )

        result = await _run(context, page)
        return intake_pb2.ListSubmissionsResponse(
            submissions=[codec.submission_to_proto(s) for s in result.submissions],
            next_page_token=codec.encode_page_token(result.next_cursor),
        )

    async def UpdateReleasePlan(
        self, request: intake_pb2.UpdateReleasePlanRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.UpdateReleasePlanResponse:
        submission = await _run(
            context,
            self._intake.update_release_plan,
            caller(),
            request.submission_id,
            codec.instant(request, "planned_release"),
            codec.window_draft(request.access_window) if request.HasField("access_window") else None,
            request.reason,
        )
        return intake_pb2.UpdateReleasePlanResponse(submission=codec.submission_to_proto(submission))

    async def WithdrawSubmission(
        self, request: intake_pb2.WithdrawSubmissionRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.WithdrawSubmissionResponse:
        submission = await _run(
            context, self._intake.withdraw, caller(), request.submission_id, request.reason
        )
        return intake_pb2.WithdrawSubmissionResponse(submission=codec.submission_to_proto(submission))

    async def WatchSubmission(
        self, request: intake_pb2.WatchSubmissionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[intake_pb2.WatchSubmissionResponse]:
        who = caller()
        # Subscribed before the first read: a change committed after it rings.
        with self._intake.changes.subscribe(request.submission_id) as changed:
            changes = await _run(context, self._intake.history, who, request.submission_id, 0)
            # The current state first; the history below it is already past.
            latest = changes[-1]
            changed.seen = latest.sequence
            yield codec.change_to_proto(latest)
            while not latest.status.terminal:
                await changed.wait()
                for change in await _run(
                    context, self._intake.history, who, request.submission_id, latest.sequence
                ):
                    latest = change
                    changed.seen = latest.sequence
                    yield codec.change_to_proto(change)

    async def ResolveCredential(
        self, request: intake_pb2.ResolveCredentialRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.ResolveCredentialResponse:
        credential = await _run(
            context, self._intake.resolve_credential, caller(), request.credential_ref, request.job_id
        )
        return intake_pb2.ResolveCredentialResponse(credential=credential)


async def _run(context: grpc.aio.ServicerContext, work: Callable[..., T], *args: Any) -> T:
    """Run a blocking use case in a worker thread (see `_answer`)."""
    return await _answer(context, asyncio.to_thread(work, *args))


async def _answer(context: grpc.aio.ServicerContext, outcome: Awaitable[T]) -> T:
    """The use case's result; its errors end the call with the matching status."""
    try:
        return await outcome
    except InvalidRequest as exc:
        await invalid_argument(context, [(v.field, v.description) for v in exc.violations])
    except tuple(_STATUS_CODES) as exc:
        await context.abort(_STATUS_CODES[type(exc)], str(exc))
    except ConcurrentUpdate:
        await context.abort(grpc.StatusCode.ABORTED, "the submission changed concurrently; retry")
    except DecryptionError:
        log.error("a stored credential does not decrypt with the configured keys")
        await context.abort(
            grpc.StatusCode.INTERNAL, "the credential cannot be decrypted; contact the operators"
        )
    _aborted()


def _aborted() -> NoReturn:
    raise AssertionError("context.abort returned")
