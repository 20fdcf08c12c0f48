"""The clients' own behaviour — retries on UNAVAILABLE, typed errors with field violations, watch
reconnection, automatic idempotency keys — against a real gRPC server on loopback whose answers
each test scripts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc
from preflight.sdk import AsyncClient, Client, InvalidArgument, NotFound, SubmitModelRequest, Unavailable

SID = "00000000-0000-4000-8000-000000000001"


class ScriptedIntake(intake_pb2_grpc.IntakeServiceServicer):
    """Answers each call with the next scripted step: a response, or a status code to fail with."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.watch_script: list[list[Any]] = []
        self.requests: list[Any] = []
        self.metadata: list[dict[str, str]] = []

    def _next(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))
        step = self.script.pop(0)
        if isinstance(step, grpc.StatusCode):
            context.abort(step, f"scripted {step.name}")
        if isinstance(step, status_pb2.Status):
            context.abort_with_status(rpc_status.to_status(step))
        return step

    def SubmitModel(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._next(request, context)

    def GetSubmission(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._next(request, context)

    def WatchSubmission(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        for step in self.watch_script.pop(0):
            if isinstance(step, grpc.StatusCode):
                context.abort(step, "scripted")
            yield step


@pytest.fixture
def server() -> Iterator[tuple[ScriptedIntake, str]]:
    servicer = ScriptedIntake()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(servicer, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield servicer, f"127.0.0.1:{port}"
    grpc_server.stop(None)


def found() -> intake_pb2.GetSubmissionResponse:
    return intake_pb2.GetSubmissionResponse(submission=intake_pb2.Submission(submission_id=SID))


def bad_request(*fields: str) -> status_pb2.Status:
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description="is wrong") for f in fields
            ]
        )
    )
    return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="bad request", details=[detail])


def change(sequence: int, status: int) -> intake_pb2.WatchSubmissionResponse:
    terminal = status == intake_pb2.SUBMISSION_STATUS_WITHDRAWN
    return intake_pb2.WatchSubmissionResponse(
        submission_id=SID, sequence=sequence, status=status, terminal=terminal
    )


def test_unavailable_is_retried_by_the_channel_and_the_token_is_sent(
    server: tuple[ScriptedIntake, str],
) -> None:
    servicer, target = server
    servicer.script = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE, found()]
    with Client(target, token="pft_secret") as client:
        assert client.get_submission(SID).submission_id == SID
    assert len(servicer.requests) == 3
    assert servicer.metadata[-1]["authorization"] == "Bearer pft_secret"


def test_retries_are_bounded_then_unavailable_is_raised(server: tuple[ScriptedIntake, str]) -> None:
    servicer, target = server
    servicer.script = [grpc.StatusCode.UNAVAILABLE] * 5
    with Client(target) as client, pytest.raises(Unavailable):
        client.get_submission(SID)
    assert len(servicer.requests) == 5


def test_other_failures_are_not_retried_and_become_typed_errors(server: tuple[ScriptedIntake, str]) -> None:
    servicer, target = server
    servicer.script = [grpc.StatusCode.NOT_FOUND, bad_request("model.name", "contacts[0].email")]
    with Client(target) as client:
        with pytest.raises(NotFound):
            client.get_submission(SID)
        with pytest.raises(InvalidArgument) as error:
            client.submit(SubmitModelRequest())
    assert [v.field for v in error.value.field_violations] == ["model.name", "contacts[0].email"]
    assert len(servicer.requests) == 2


def test_every_submission_gets_an_idempotency_key_and_retries_reuse_it(
    server: tuple[ScriptedIntake, str],
) -> None:
    servicer, target = server
    ok = intake_pb2.SubmitModelResponse()
    servicer.script = [grpc.StatusCode.UNAVAILABLE, ok, ok, ok]
    with Client(target) as client:
        client.submit(SubmitModelRequest())
        client.submit(SubmitModelRequest())
        client.submit(SubmitModelRequest(idempotency_key="mine"))
    keys = [r.idempotency_key for r in servicer.requests]
    assert keys[0] == keys[1] and keys[0].startswith("sdk-")
    assert keys[2] != keys[1] and keys[3] == "mine"


def test_watch_reconnects_after_unavailable_without_repeating_itself(
    server: tuple[ScriptedIntake, str],
) -> None:
    servicer, target = server
    received, benchmarking, withdrawn = (
        intake_pb2.SUBMISSION_STATUS_RECEIVED,
        intake_pb2.SUBMISSION_STATUS_BENCHMARKING,
        intake_pb2.SUBMISSION_STATUS_WITHDRAWN,
    )
    servicer.watch_script = [
        [change(1, received), grpc.StatusCode.UNAVAILABLE],
        # After a restart the server sends the current state first: already seen, then new ones.
        [change(1, received), change(2, benchmarking), change(3, withdrawn)],
    ]
    with Client(target) as client:
        seen = [(c.sequence, c.status) for c in client.watch(SID, timeout=10)]
    assert seen == [(1, received), (2, benchmarking), (3, withdrawn)]


def test_the_asyncio_client_has_the_same_behaviour(server: tuple[ScriptedIntake, str]) -> None:
    servicer, target = server
    servicer.script = [grpc.StatusCode.UNAVAILABLE, found(), bad_request("planned_release")]
    servicer.watch_script = [[change(1, intake_pb2.SUBMISSION_STATUS_WITHDRAWN)]]

    async def scenario() -> tuple[str, list[str], list[int]]:
        async with AsyncClient(target, token="pft_secret") as client:
            submission = await client.get_submission(SID)
            with pytest.raises(InvalidArgument) as error:
                await client.submit(SubmitModelRequest())
            sequences = [c.sequence async for c in client.watch(SID, timeout=10)]
        return submission.submission_id, [v.field for v in error.value.field_violations], sequences

    assert asyncio.run(scenario()) == (SID, ["planned_release"], [1])
    assert servicer.requests[-1].idempotency_key.startswith("sdk-")
