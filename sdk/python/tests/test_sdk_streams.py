"""The new clients' own behaviour against real gRPC servers on loopback whose answers each test
scripts: streams that resume after UNAVAILABLE without a gap or a repeat, and which changes the
channel retries."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import clearinghouse_pb2_grpc
from preflight.notifier.v1 import notifier_pb2, notifier_pb2_grpc
from preflight.sdk import Preflight, ResourceExhausted, Unavailable
from preflight.sdk._common import SERVICE_CONFIG
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
    AddReportNote = ListAlerts = GetFinding = ListFindingHistory = ListFindingComments = _unary


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


def test_a_findings_history_and_comments_are_retried_on_unavailable(server: tuple[Scripted, str]) -> None:
    servicer, target = server
    servicer.script = [
        grpc.StatusCode.UNAVAILABLE,
        pb.ListFindingHistoryResponse(next_page_token="h"),
        grpc.StatusCode.UNAVAILABLE,
        pb.ListFindingCommentsResponse(next_page_token="c"),
    ]
    with Preflight(target) as preflight:
        assert preflight.clearinghouse.list_finding_history("f-1").next_page_token == "h"
        assert preflight.clearinghouse.list_finding_comments("f-1").next_page_token == "c"
    assert len(servicer.requests) == 4 and servicer.script == []


def test_a_bound_reached_is_resource_exhausted_and_not_retried(server: tuple[Scripted, str]) -> None:
    servicer, target = server
    servicer.script = [grpc.StatusCode.RESOURCE_EXHAUSTED]
    with Preflight(target) as preflight, pytest.raises(ResourceExhausted):
        preflight.clearinghouse.list_finding_history("f-1")
    assert len(servicer.requests) == 1


# What a read RPC's name begins with (Google's API naming), broader than the verbs in use today.
READ_VERBS = {
    "Get", "List", "Query", "Search", "Summarize", "Read", "Verify", "Preview", "Export",
    "Stream", "Subscribe", "Watch", "Describe", "Count",
}  # fmt: skip

# The changes doing twice cannot do twice (an idempotency key, refused once applied, or setting a
# value): retried.
IDEMPOTENT_CHANGES = {
    "ClearinghouseService": {"SignOffReport", "ReportFinding", "SetPatchStatus"},
    "NotifierService": {"AcknowledgeAlert", "ExpireSilence"},
}

# The changes that would be recorded again: never retried. A new RPC that is neither a read nor
# listed here or above fails the test below until someone decides which it is.
RECORDED_AGAIN = {
    "ClearinghouseService": {
        "AddReportNote", "ReissueReport", "TransitionFinding", "UpdateFindingAssessment",
        "SetFindingSharing", "SetFindingAliases", "SetFindingReferences", "SetFindingCredits",
        "AssignFinding", "SetFindingSsvc", "LinkFinding", "ImportFinding", "AddFindingComment",
        "EditFindingComment", "AddFindingAttachment",
    },
    "NotifierService": {"CreateSilence"},
}  # fmt: skip


def test_every_read_rpc_is_retried_and_every_change_is_classified() -> None:
    (config,) = json.loads(SERVICE_CONFIG)["methodConfig"]
    retried = {(name["service"], name.get("method", "")) for name in config["name"]}
    for module in (pb, notifier_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                read = re.findall("[A-Z][a-z]*", method.name)[0] in READ_VERBS
                idempotent = method.name in IDEMPOTENT_CHANGES[service.name]
                assert read or idempotent or method.name in RECORDED_AGAIN[service.name], method.full_name
                assert ((service.full_name, method.name) in retried) == (read or idempotent), method.full_name
