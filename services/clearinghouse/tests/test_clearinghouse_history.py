"""ListFindingHistory through the SDK against the real API on loopback (SQLite): the finding's
audit entries as the sharing policy lets each caller see them."""

from __future__ import annotations

import pytest
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import events_pb2 as ch_events
from preflight.common.v1 import common_pb2
from preflight.sdk import Assessment, InvalidArgument, NotFound, Preflight, Transition
from preflight.sdk.client import ClearinghouseClient
from preflight_common.auth import Principal
from preflight_testkit.clearinghouse import (
    SUITES,
    Api,
    candidate,
    completed,
    job_requested,
    submission_received,
)

from .test_clearinghouse_grpc import LAB_X, OP_A, OP_B, OP_C, REVIEWER, valid_request
from .test_clearinghouse_store import run_events


def _finding_of_an_unconsenting_lab(api: Api, reviewer: ClearinghouseClient) -> str:
    """A benchmark finding of lab-yz3's submission whose lab becomes known only after it was found
    (so its history holds `finding.source_identified`); the lab did not consent to be named."""
    suite, capability, metric = SUITES[3]
    run_events(
        api.components,
        [
            ("y-req", job_requested("sub-y", suite, capability)),
            ("y-end", completed("sub-y", suite, capability, metric, 0.4, candidates=(candidate(),))),
            ("y-received", submission_received("sub-y", "lab-yz3", consent=False)),
        ],
    )
    (finding,) = reviewer.iter_findings()
    return finding.finding_id


def test_each_caller_sees_the_history_its_view_of_the_finding_allows(api: Api) -> None:
    opened: list[Preflight] = []

    def as_(principal: Principal) -> ClearinghouseClient:
        deployment = Preflight(targets={"clearinghouse": api.target}, token=api.identity.token(principal))
        opened.append(deployment)
        return deployment.clearinghouse

    try:
        reviewer, op_a, op_b = as_(REVIEWER), as_(OP_A), as_(OP_B)
        finding_id = _finding_of_an_unconsenting_lab(api, reviewer)
        reviewer.set_finding_sharing(
            finding_id, common_pb2.TLP_AMBER, common_pb2.Audience(organisations=["op-a", "op-b"])
        )
        for state in (ch_events.FINDING_STATE_TRIAGED, ch_events.FINDING_STATE_VALIDATED):
            reviewer.transition_finding(finding_id, Transition(state=state), reason="review")
        reviewer.update_finding_assessment(finding_id, Assessment(cwe_ids=["CWE-121"]))
        op_a.set_patch_status(finding_id, pb.PATCH_STATUS_PATCHED, note="rolled out")
        op_b.set_patch_status(finding_id, pb.PATCH_STATUS_AFFECTED)

        everything = list(reviewer.iter_finding_history(finding_id))
        assert [e.action for e in everything] == [
            "finding.reported",
            "finding.source_identified",
            "finding.sharing_changed",
            "finding.transitioned",
            "finding.transitioned",
            "finding.assessed",
            "finding.patch_status",
            "finding.patch_status",
        ]
        assert [e.actor_id for e in everything[2:]] == [*["rev-1"] * 4, "op-a-user", "op-b-user"]
        assert list(everything[2].changed) == ["organisations", "sectors", "tlp"]
        assert list(everything[3].changed) == ["state"]

        seen = list(op_a.iter_finding_history(finding_id, page_size=1))
        assert [(e.action, e.actor_role, e.actor_id) for e in seen] == [
            ("finding.sharing_changed", "reviewer", ""),
            ("finding.transitioned", "reviewer", ""),
            ("finding.transitioned", "reviewer", ""),
            ("finding.assessed", "reviewer", ""),
            ("finding.patch_status", "operator", ""),
        ]
        assert seen[-1].time == everything[6].time  # op-a's own patch status, not op-b's
        first = op_a.list_finding_history(finding_id, page_size=2)
        assert len(first.entries) == 2 and first.next_page_token

        for outsider in (as_(OP_C), as_(LAB_X)):
            with pytest.raises(NotFound):
                outsider.list_finding_history(finding_id)
        with pytest.raises(InvalidArgument) as bad_token:
            op_a.list_finding_history(finding_id, page_token="not-a-token")
        with pytest.raises(InvalidArgument) as bad_size:
            op_a.list_finding_history(finding_id, page_size=501)
        other = reviewer.report_finding(valid_request()).finding.finding_id
        with pytest.raises(InvalidArgument) as foreign_token:
            reviewer.list_finding_history(other, page_token=first.next_page_token)
        refusals = (bad_token, bad_size, foreign_token)
        assert [[v.field for v in e.value.field_violations] for e in refusals] == [
            ["page_token"],
            ["page_size"],
            ["page_token"],
        ]
    finally:
        for deployment in opened:
            deployment.close()
