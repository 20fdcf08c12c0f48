"""The new clients' own behaviour against real gRPC servers on loopback whose answers each test
scripts: streams that resume after UNAVAILABLE without a gap or a repeat, and which changes the
channel retries."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import clearinghouse_pb2_grpc
from preflight.notifier.v1 import notifier_pb2, notifier_pb2_grpc
from preflight.sdk import Preflight, Unavailable
from preflight.sdk.deployment import AsyncPreflight


class Scripted(
    notifier_pb2_grpc.NotifierServiceServicer, clearinghouse_pb2_grpc.ClearinghouseServiceServicer
):
    """Streams the next scripted list of items (a status code ends the stream with it); answers
    unary calls with the next scripted step; records every request."""

    def __init__(self) -> None:
        self.streams: list[list[Any]] = []
        self.script: list[Any] = []
        self.requests: list[Any] = []

    def _stream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.requests.append(request)
        for step in self.streams.pop(0):
            if isinstance(step, grpc.StatusCode):
                context.abort(step, "scripted")
            yield step

    def _unary(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        step = self.script.pop(0)
        if isinstance(step, grpc.StatusCode):
            context.abort(step, "scripted")
        return step

    SubscribeAlerts = StreamFindings = _stream
    AddReportNote = ListAlerts = GetFinding = _unary


@pytest.fixture
def server() -> Iterator[tuple[Scripted, str]]:
    servicer = Scripted()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    notifier_pb2_grpc.add_NotifierServiceServicer_to_server(servicer, grpc_server)
    clearinghouse_pb2_grpc.add_ClearinghouseServiceServicer_to_server(servicer, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield servicer, f"127.0.0.1:{port}"
    grpc_server.stop(None)


def alert(sequence: int) -> notifier_pb2.SubscribeAlertsResponse:
    return notifier_pb2.SubscribeAlertsResponse(alert=notifier_pb2.AlertRecord(sequence=sequence))


def finding(finding_id: str, revision: int) -> pb.StreamFindingsResponse:
    return pb.StreamFindingsResponse(finding=pb.Finding(finding_id=finding_id, revision=revision))


def test_the_alert_subscription_resumes_after_the_last_alert_it_yielded(server: tuple[Scripted, str]) -> None:
    servicer, target = server
    servicer.streams = [
        [alert(1), alert(2), grpc.StatusCode.UNAVAILABLE],
        [alert(2), alert(3)],  # a server that repeats itself is not believed
    ]
    with Preflight(target) as preflight:
        sequences = [r.sequence for r in preflight.notifier.subscribe_alerts()]
    assert sequences == [1, 2, 3]
    first, resumed = servicer.requests
    assert not first.HasField("after_sequence") and resumed.after_sequence == 2


def test_the_findings_stream_reconnects_for_what_changed_meanwhile_and_skips_what_it_yielded(
    server: tuple[Scripted, str],
) -> None:
    servicer, target = server
    servicer.streams = [
        [finding("f-1", 1), grpc.StatusCode.UNAVAILABLE],
        [finding("f-1", 1), finding("f-2", 1), finding("f-1", 2)],
    ]
    wanted = pb.FindingFilter(sector="energy")

    async def follow() -> list[tuple[str, int]]:
        async with AsyncPreflight(target) as preflight:
            return [(f.finding_id, f.revision) async for f in preflight.clearinghouse.stream_findings(wanted)]

    assert asyncio.run(follow()) == [("f-1", 1), ("f-2", 1), ("f-1", 2)]
    first, resumed = servicer.requests
    assert not first.include_existing and not first.filter.HasField("since")
    assert resumed.include_existing and resumed.filter.sector == "energy"
    assert resumed.filter.since.ToSeconds() > Timestamp(seconds=0).ToSeconds()


def test_reads_are_retried_on_unavailable_but_a_note_is_never_added_twice(
    server: tuple[Scripted, str],
) -> None:
    servicer, target = server
    servicer.script = [
        grpc.StatusCode.UNAVAILABLE,
        notifier_pb2.ListAlertsResponse(),
        grpc.StatusCode.UNAVAILABLE,
        pb.GetFindingResponse(finding=pb.Finding(finding_id="f-1")),
        grpc.StatusCode.UNAVAILABLE,
    ]
    with Preflight(target) as preflight:
        preflight.notifier.list_alerts()
        assert preflight.clearinghouse.get_finding("f-1").finding_id == "f-1"
        with pytest.raises(Unavailable):
            preflight.clearinghouse.add_report_note("r-1", "once")
    assert len(servicer.requests) == 5 and servicer.script == []
