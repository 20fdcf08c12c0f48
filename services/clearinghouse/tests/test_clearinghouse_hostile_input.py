"""The clearinghouse API against hostile input over real gRPC: timestamps out of range, forged or
edited page tokens and audience names outside the shared grammar are INVALID_ARGUMENT naming
the field, never UNKNOWN with an exception's text."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import events_pb2 as ch_events
from preflight.common.v1 import common_pb2
from preflight_common.auth import Principal, Role
from preflight_testkit.clearinghouse import Api
from preflight_testkit.rpc import field_violations

from .test_clearinghouse_grpc import valid_request

REVIEWER = Principal("rev-1", Role.REVIEWER, "agency")
OP_A = Principal("op-a-user", Role.OPERATOR, "op-a", frozenset({"energy"}))
LAB_X = Principal("lab-x-user", Role.LAB, "lab-xq7")

NEGATIVE_NANOS = Timestamp(seconds=0, nanos=-1)
PAST_9999 = Timestamp(seconds=253402300800)


def _report_with_due(stamp: Timestamp) -> pb.ReportFindingRequest:
    request = valid_request()
    request.remediation_due.CopyFrom(stamp)
    return request


Call = Callable[[Api, Timestamp], Any]

TIMESTAMP_CASES: list[tuple[str, Call, str]] = [
    (
        "ReportFinding",
        lambda api, t: api.stub.ReportFinding(_report_with_due(t), metadata=api.as_(OP_A)),
        "remediation_due",
    ),
    (
        "UpdateFindingAssessment",
        lambda api, t: api.stub.UpdateFindingAssessment(
            pb.UpdateFindingAssessmentRequest(finding_id="f-1", remediation_due=t), metadata=api.as_(REVIEWER)
        ),
        "remediation_due",
    ),
    (
        "TransitionFinding",
        lambda api, t: api.stub.TransitionFinding(
            pb.TransitionFindingRequest(
                finding_id="f-1", state=ch_events.FINDING_STATE_TRIAGED, embargo_end=t
            ),
            metadata=api.as_(REVIEWER),
        ),
        "embargo_end",
    ),
    (
        "ListFindings",
        lambda api, t: api.stub.ListFindings(
            pb.ListFindingsRequest(filter=pb.FindingFilter(since=t)), metadata=api.as_(OP_A)
        ),
        "filter.since",
    ),
    (
        "StreamFindings",
        lambda api, t: next(
            api.stub.StreamFindings(
                pb.StreamFindingsRequest(filter=pb.FindingFilter(since=t)), metadata=api.as_(OP_A), timeout=30
            )
        ),
        "filter.since",
    ),
]


@pytest.mark.parametrize(("rpc", "call", "field"), TIMESTAMP_CASES, ids=[c[0] for c in TIMESTAMP_CASES])
def test_an_out_of_range_timestamp_is_invalid_argument_naming_the_field(
    api: Api, rpc: str, call: Call, field: str
) -> None:
    for stamp in (NEGATIVE_NANOS, PAST_9999):
        with pytest.raises(grpc.RpcError) as caught:
            call(api, stamp)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (rpc, caught.value.details())
        assert set(field_violations(caught.value)) == {field}
        assert "ValueError" not in (caught.value.details() or "")


def test_report_page_tokens_cannot_be_forged(api: Api) -> None:
    for bad in ("9" * 40, "5", "0", "not a token"):
        with pytest.raises(grpc.RpcError) as caught:
            api.stub.ListReports(pb.ListReportsRequest(page_token=bad), metadata=api.as_(REVIEWER))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert set(field_violations(caught.value)) == {"page_token"}


def test_finding_page_tokens_are_sealed_and_page_through(api: Api) -> None:
    ids = {
        api.stub.ReportFinding(valid_request(), metadata=api.as_(REVIEWER)).finding.finding_id for _ in "ab"
    }
    first = api.stub.ListFindings(pb.ListFindingsRequest(page_size=1), metadata=api.as_(REVIEWER))
    assert first.next_page_token
    rest = api.stub.ListFindings(
        pb.ListFindingsRequest(page_size=5, page_token=first.next_page_token), metadata=api.as_(REVIEWER)
    )
    assert {f.finding_id for f in [*first.findings, *rest.findings]} == ids
    readable = base64.urlsafe_b64encode(b"f1:0").decode()
    report_token = api.stub.ListReports(pb.ListReportsRequest(), metadata=api.as_(REVIEWER)).next_page_token
    for bad in (readable, "9" * 40, first.next_page_token[:-3], report_token or "x"):
        with pytest.raises(grpc.RpcError) as caught:
            api.stub.ListFindings(pb.ListFindingsRequest(page_token=bad), metadata=api.as_(REVIEWER))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert set(field_violations(caught.value)) == {"page_token"}


@pytest.mark.parametrize("organisation", ["Op A", "https://op-a.example/", "\n" * 40, "op_a", "-op"])
def test_an_audience_organisation_outside_the_name_grammar_is_refused(api: Api, organisation: str) -> None:
    request = valid_request()
    request.audience.CopyFrom(common_pb2.Audience(organisations=["op-a", organisation]))
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.ReportFinding(request, metadata=api.as_(LAB_X))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {"audience.organisations[1]"}
