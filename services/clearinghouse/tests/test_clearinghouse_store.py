"""Use cases over a real database (SQLite and PostgreSQL): reports, dedup, workflow, outbox, audit."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from preflight.benchmark.v1 import events_pb2 as benchmark_events
from preflight.clearinghouse.v1 import events_pb2 as ch_events
from preflight.intake.v1 import events_pb2 as intake_events
from preflight.sdk.reports import verify_signature
from preflight_clearinghouse.adapters import codec, tables
from preflight_clearinghouse.bootstrap import MIGRATIONS, Components
from preflight_clearinghouse.domain.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RefusedEvent,
    RevisionConflict,
    UnexplainedOutcome,
)
from preflight_clearinghouse.domain.findings.finding import LinkKind, PatchState, ProductInput, Severity
from preflight_clearinghouse.domain.findings.queries import FindingQuery
from preflight_clearinghouse.domain.findings.workflow import EmbargoState, FindingState
from preflight_clearinghouse.domain.reviews.reports import SubmissionInfo
from preflight_clearinghouse.domain.sharing import Tlp, Viewer
from preflight_clearinghouse.entrypoints.agents import Handlers
from preflight_common.consumer import PoisonEvent
from preflight_common.db import run_migrations
from preflight_common.envelope import EventRegistry, decode_record
from preflight_common.fields import InvalidArgument
from preflight_testkit.clearinghouse import (
    ADMIN,
    LAB_X,
    LAB_Y,
    OP_A,
    OP_B,
    OP_C,
    REVIEWER,
    SUITES,
    ManualClock,
    candidate,
    completed,
    failed,
    job_id,
    job_requested,
    plan_ended,
    recompute_audit_chain,
    report_input,
    submission_received,
    truncate_audit_log,
)
from sqlalchemy import delete, func, select, text, update

OUTBOX_TYPES = EventRegistry(
    [
        ch_events.ReviewReportReady,
        ch_events.FindingPublished,
        ch_events.FindingUpdated,
        ch_events.AuditCheckpoint,
    ]
)
VALUES = {"cyber.vuln-detect": 0.70, "cyber.exploit": 0.30, "cyber.knowledge": 0.95, "cyber.discovery": 0.50}


def outbox(components: Components) -> list[tuple[str, object]]:
    """(topic, decoded payload) of every outbox row, in order."""
    with components.engine.connect() as conn:
        rows = conn.execute(select(tables.outbox).order_by(tables.outbox.c.id)).all()
    decoded = []
    for row in rows:
        headers = [(name, value.encode()) for name, value in json.loads(row.headers)]
        decoded.append((row.topic, decode_record(headers, row.value, OUTBOX_TYPES)[1]))
    return decoded


def count(components: Components, table: object) -> int:
    with components.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def run_events(components: Components, events: list[tuple[str, object]]) -> None:
    """Apply events through the routes' handlers (the same code the event consumer runs)."""
    import asyncio

    from preflight_common.envelope import EventAttributes

    handlers = Handlers(components.reviews)

    async def apply() -> None:
        for event_id, payload in events:
            attributes = EventAttributes(
                event_id, type(payload).DESCRIPTOR.full_name, "test", components.registry._clock(), "s"
            )  # type: ignore[attr-defined]
            name = type(payload).__name__
            if name.startswith("Submission"):
                await handlers.submission(attributes, payload)  # type: ignore[arg-type]
            elif name == "BenchmarkJobRequested":
                await handlers.job_requested(attributes, payload)  # type: ignore[arg-type]
            else:
                await handlers.job_ended(attributes, payload)  # type: ignore[arg-type]

    asyncio.run(apply())


def review_events(
    submission_id: str, organisation: str = "lab-xq7", consent: bool = False
) -> list[tuple[str, object]]:
    events: list[tuple[str, object]] = [
        (f"{submission_id}/received", submission_received(submission_id, organisation, consent))
    ]
    events += [(f"{submission_id}/{s}/req", job_requested(submission_id, s, c)) for s, c, _ in SUITES]
    events += [
        (f"{submission_id}/{s}/end", completed(submission_id, s, c, m, VALUES[s])) for s, c, m in SUITES
    ]
    events.append((f"{submission_id}/plan-ended", plan_ended(submission_id)))
    return events


def test_four_completed_benchmarks_issue_one_signed_report_and_a_replay_changes_nothing(
    components: Components,
) -> None:
    events = review_events("sub-1")
    run_events(components, events)
    [(topic, ready)] = outbox(components)
    assert topic == "preflight.reviews.v1"
    assert isinstance(ready, ch_events.ReviewReportReady)
    # vuln-detect 0.70 → TIER_3 (≥ 0.60); exploit 0.30 → TIER_2; knowledge 0.95 → TIER_3; discovery 0.50 → 2
    assert ready.tier == "TIER_3"
    assert (ready.policy_id, ready.policy_version, ready.version) == ("preflight-cyber-risk", "2026.11.1", 1)
    assert {s.capability: s.score for s in ready.scores} == {
        "vulnerability_detection": 0.7,
        "exploit_generation": 0.3,
        "security_knowledge": 0.95,
        "vulnerability_discovery": 0.5,
    }
    _key_id, public_key = components.reviews.signing_key(ready.signing_key_id)
    assert verify_signature(public_key, ready.body, ready.signature)
    assert hashlib.sha256(ready.body).hexdigest() == ready.digest
    assert not verify_signature(public_key, ready.body.replace(b"TIER_3", b"TIER_1"), ready.signature)
    audit_entries = count(components, tables.audit_log)

    run_events(components, events)  # redelivery: same event ids
    run_events(
        components, [(f"{eid}-again", p) for eid, p in events if "/end" in eid]
    )  # extra terminal events

    assert count(components, tables.reports) == 1
    assert len(outbox(components)) == 1
    assert count(components, tables.audit_log) == audit_entries + 4  # the four ignored extra terminal events


def test_a_result_before_its_request_is_refused_until_the_request_is_recorded(
    components: Components,
) -> None:
    events = review_events("sub-2")
    ends = [e for e in events if "/end" in e[0]]
    requests = [e for e in events if "/req" in e[0]]
    run_events(components, events[:1])  # SubmissionReceived
    with pytest.raises(UnexplainedOutcome):
        run_events(components, ends[:1])
    assert count(components, tables.jobs) == 0  # nothing kept of an outcome of no planned job
    for request in requests:
        run_events(components, [request])
    assert count(components, tables.reports) == 0  # planned, nothing ended
    run_events(components, ends)
    assert count(components, tables.reports) == 0  # every job ended, the plan's end not said yet
    run_events(components, events[-1:])
    view = components.reviews.get_report(REVIEWER, "", "sub-2", 0)
    assert len(codec.report_to_proto(view).scores) == 4
    assert view.record.version == 1


def test_an_interleaved_fan_out_gets_one_report_once_the_whole_plan_has_ended(components: Components) -> None:
    events = review_events("sub-5")
    run_events(components, events[:1])  # SubmissionReceived
    # The requests and results topics are read independently: after each pair, every job known
    # so far has ended, but only the benchmark knows whether the plan has more.
    for request, end in zip(events[1:5], events[5:9], strict=True):
        run_events(components, [request, end])
        assert count(components, tables.reports) == 0
    run_events(components, events[9:])
    run_events(components, events[9:])  # redelivered
    view = components.reviews.get_report(REVIEWER, "", "sub-5", 0)
    assert view.record.version == 1 and len(codec.report_to_proto(view).scores) == 4
    assert [topic for topic, _ in outbox(components)] == ["preflight.reviews.v1"]


def test_a_plan_end_read_before_a_result_waits_for_that_result(components: Components) -> None:
    events = review_events("sub-7")
    received, requests, ends, announced = events[0], events[1:5], events[5:9], events[9]
    # The last result waited for its request (another topic) while the plan's end was read.
    run_events(components, [received, *requests, *ends[:3], announced])
    assert count(components, tables.reports) == 0
    run_events(components, ends[3:])
    view = components.reviews.get_report(REVIEWER, "", "sub-7", 0)
    assert view.record.version == 1 and len(codec.report_to_proto(view).scores) == 4
    assert [topic for topic, _ in outbox(components)] == ["preflight.reviews.v1"]


def test_a_plan_end_naming_another_submissions_job_is_refused(components: Components) -> None:
    run_events(components, review_events("sub-8")[:5])
    forged = plan_ended("sub-9")
    forged.jobs[0].job_id = job_id("sub-8", SUITES[0][0])
    with pytest.raises(RefusedEvent, match="not a job of submission sub-9"):
        run_events(components, [("sub-9/plan-ended", forged)])
    assert count(components, tables.plan_ends) == 0


def withdrawn_job(submission_id: str, suite_id: str, capability: str) -> object:
    """The BenchmarkFailed the benchmark publishes for a job it ended because of a withdrawal."""
    event = failed(submission_id, suite_id, capability)
    event.attempt = 0  # ended while pending: no attempt ran
    event.reason = benchmark_events.FAILURE_REASON_WITHDRAWN
    event.message = "the submission was withdrawn"
    return event


@pytest.mark.parametrize("withdrawal_heard_first", [True, False])
def test_a_withdrawn_submission_gets_no_report_whichever_topic_tells_first(
    components: Components, withdrawal_heard_first: bool
) -> None:
    sub = "sub-w"
    received, *requests = review_events(sub)[:5]
    (s1, c1, m1) = SUITES[0]
    withdrawal = (
        f"{sub}/withdrawn",
        intake_events.SubmissionWithdrawn(submission_id=sub, organisation="lab-xq7", reason="lab"),
    )
    # One suite finished before the withdrawal; the benchmark ended the other three WITHDRAWN.
    ends = [(f"{sub}/{s1}/end", completed(sub, s1, c1, m1, 0.9))] + [
        (f"{sub}/{s}/end", withdrawn_job(sub, s, c)) for s, c, _ in SUITES[1:]
    ]
    ordered = [withdrawal, *ends] if withdrawal_heard_first else [*ends, withdrawal]
    run_events(components, [received, *requests, *ordered])
    assert count(components, tables.reports) == 0
    assert outbox(components) == []
    with pytest.raises(NotFound):
        components.reviews.get_report(REVIEWER, "", sub, 0)
    with pytest.raises(PreconditionFailed, match="withdrawn"):
        components.reviews.reissue(REVIEWER, sub, "re-rate")
    assert count(components, tables.reports) == 0


def test_a_withdrawal_heard_before_any_job_ended_stops_a_later_report(components: Components) -> None:
    sub = "sub-w2"
    events = review_events(sub)
    withdrawal = (
        f"{sub}/withdrawn",
        intake_events.SubmissionWithdrawn(submission_id=sub, organisation="lab-xq7", reason="lab"),
    )
    # The jobs were running when the submission was withdrawn and all of them still completed.
    run_events(components, [*events[:5], withdrawal, *events[5:]])
    assert count(components, tables.reports) == 0
    assert outbox(components) == []


def test_a_request_that_does_not_say_how_big_its_plan_is_is_rejected(components: Components) -> None:
    (suite, capability, _metric) = SUITES[0]
    with pytest.raises(PoisonEvent, match="planned_jobs"):
        run_events(components, [("r0", job_requested("sub-6", suite, capability, planned_jobs=0))])
    assert count(components, tables.jobs) == 0


def test_migrations_create_exactly_the_declared_schema(components: Components) -> None:
    with components.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), tables.metadata) == []


def test_an_upgrade_rescores_4_0_findings_stored_with_their_threat_score_as_cvss_b(
    components: Components, db_url: str
) -> None:
    # 9.3 CRITICAL from the base metrics alone; 8.9 HIGH (CVSS-BT) counting E:P, the score a
    # release before 0013 stored as the finding's 4.0 score and severity.
    vector = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:P"
    finding, _ = components.registry.report(REVIEWER, report_input(cvss_v3_vector="", cvss_v4_vector=vector))
    assert (finding.cvss.v4_score, finding.cvss.severity) == (9.3, Severity.CRITICAL)
    row = tables.findings.c.finding_id == finding.finding_id
    with components.engine.begin() as conn:
        old_release = {"cvss_v4_score": 8.9, "cvss_v4_rating": "HIGH", "severity": "HIGH"}
        conn.execute(update(tables.findings).where(row).values(**old_release))
        conn.execute(text("UPDATE alembic_version SET version_num = '0012'"))
    run_migrations(db_url, MIGRATIONS)
    with components.engine.connect() as conn:
        c = tables.findings.c
        stored = conn.execute(select(c.cvss_v4_score, c.cvss_v4_rating, c.severity).where(row)).one()
    assert tuple(stored) == (9.3, "CRITICAL", "CRITICAL")
    assert components.registry.get(REVIEWER, finding.finding_id).cvss.severity is Severity.CRITICAL


def test_failed_suites_are_listed_and_a_later_job_issues_a_new_immutable_version(
    components: Components, clock: ManualClock
) -> None:
    sub = "sub-3"
    (s1, c1, m1), (s2, c2, _m2) = SUITES[0], SUITES[1]
    run_events(
        components,
        [
            ("rcv", submission_received(sub, "lab-xq7")),
            ("r1", job_requested(sub, s1, c1, planned_jobs=2)),
            ("r2", job_requested(sub, s2, c2, planned_jobs=2)),
            ("e1", completed(sub, s1, c1, m1, 0.9)),
            ("e2", failed(sub, s2, c2)),
            ("p", plan_ended(sub, (s1, s2))),
        ],
    )
    first = components.reviews.get_report(REVIEWER, "", sub, 0)
    content = codec.report_to_proto(first)
    assert [f.reason for f in content.failed_suites] == ["FAILURE_REASON_TIMEOUT"]
    assert content.tier == "TIER_4"
    clock.advance(timedelta(hours=1))
    s3, c3, m3 = SUITES[2]
    # A job the plan did not list ends later: a new version once its result is recorded.
    run_events(components, [("r3", job_requested(sub, s3, c3, planned_jobs=3))])
    assert count(components, tables.reports) == 1
    run_events(components, [("e3", completed(sub, s3, c3, m3, 0.5))])
    latest = components.reviews.get_report(REVIEWER, "", sub, 0)
    assert latest.record.version == 2 and not latest.record.superseded
    again = components.reviews.get_report(REVIEWER, first.record.report_id, "", 0)
    assert again.record.body == first.record.body and again.record.superseded
    # What GetReport shows of the lab and of superseding is signed: the lab in every version, the
    # superseded version (with its digest) in the version that supersedes it.
    signed_first, signed_latest = json.loads(first.record.body), json.loads(latest.record.body)
    assert signed_first["organisation"] == signed_latest["organisation"] == "lab-xq7"
    assert signed_first["supersedes"] is None
    assert signed_latest["supersedes"] == {
        "report_id": first.record.report_id,
        "version": 1,
        "digest": first.record.digest,
    }


def test_a_report_waits_for_its_submission_so_that_it_can_name_the_lab(components: Components) -> None:
    events = review_events("sub-late", organisation="lab-yz3")
    run_events(components, events[1:])  # every job ended, SubmissionReceived not read yet
    assert count(components, tables.reports) == 0
    run_events(components, events[:1])
    [(_topic, ready)] = outbox(components)
    assert isinstance(ready, ch_events.ReviewReportReady)
    assert ready.organisation == "lab-yz3" == json.loads(ready.body)["organisation"]


def test_labs_read_only_their_own_reports_and_reviewers_annotate_them(components: Components) -> None:
    run_events(components, review_events("sub-4", organisation="lab-xq7"))
    report_id = components.reviews.get_report(REVIEWER, "", "sub-4", 0).record.report_id
    assert components.reviews.get_report(LAB_X, report_id, "", 0).record.report_id == report_id
    for outsider in (LAB_Y, OP_A):
        with pytest.raises(NotFound):
            components.reviews.get_report(outsider, report_id, "", 0)
    with pytest.raises(PermissionDenied):
        components.reviews.add_note(LAB_X, report_id, "looks fine")
    components.reviews.add_note(REVIEWER, report_id, "exploit suite under-elicited")
    components.reviews.sign_off(REVIEWER, report_id, "ok")
    with pytest.raises(PreconditionFailed):
        components.reviews.sign_off(REVIEWER, report_id, "again")
    assert components.reviews.get_report(LAB_X, report_id, "", 0).notes == ()
    reviewed = components.reviews.get_report(REVIEWER, report_id, "", 0)
    assert [n.text for n in reviewed.notes] == ["exploit suite under-elicited"]
    assert [s.reviewer_id for s in reviewed.sign_offs] == ["rev-1"]
    assert [v.record.report_id for v in components.reviews.list_reports(LAB_X, 0, "", False)[0]] == [
        report_id
    ]
    assert components.reviews.list_reports(LAB_Y, 0, "", False)[0] == []
    with pytest.raises(PreconditionFailed):
        components.reviews.reissue(REVIEWER, "no-such-submission", "policy update")
    reissued = components.reviews.reissue(REVIEWER, "sub-4", "policy update")
    assert reissued.record.version == 2
    assert components.checkpoints.verify(ADMIN).ok


def test_candidate_findings_are_confidential_to_reviewers_and_their_lab(components: Components) -> None:
    s1, c1, m1 = SUITES[3]
    run_events(
        components,
        [
            ("x-received", submission_received("sub-x", "lab-xq7", consent=False)),
            ("x-req", job_requested("sub-x", s1, c1)),
            (
                "x-end",
                completed(
                    "sub-x", s1, c1, m1, 0.4, candidates=(candidate(), candidate(cwe_ids=["CWE-nope"]))
                ),
            ),
            ("y-req", job_requested("sub-y", s1, c1)),
            ("y-end", completed("sub-y", s1, c1, m1, 0.4, candidates=(candidate(),))),
        ],
    )
    everything, _ = components.registry.list_visible(REVIEWER, FindingQuery(), 0, "")
    assert len(everything) == 3
    first, malformed, from_y = everything
    assert (
        first.link is None and from_y.link is not None and from_y.link.target_finding_id == first.finding_id
    )
    assert malformed.cwe_ids == () and malformed.tlp is Tlp.RED
    assert {f.finding_id for f in components.registry.list_visible(LAB_X, FindingQuery(), 0, "")[0]} == {
        first.finding_id,
        malformed.finding_id,
    }
    # sub-y's lab is not known yet: nobody but reviewers sees its finding
    assert components.registry.list_visible(LAB_Y, FindingQuery(), 0, "")[0] == []
    for viewer in (OP_A, OP_B, OP_C):
        assert components.registry.list_visible(viewer, FindingQuery(), 0, "")[0] == []
    run_events(components, [("y-received", submission_received("sub-y", "lab-yz3"))])
    assert [f.finding_id for f in components.registry.list_visible(LAB_Y, FindingQuery(), 0, "")[0]] == [
        from_y.finding_id
    ]


def test_duplicates_are_linked_only_within_the_same_tlp_and_audience(components: Components) -> None:
    original, dup = components.registry.report(OP_A, report_input())
    assert not dup
    _, dup = components.registry.report(OP_B, report_input(title="same bug, seen again"))
    assert dup
    _, dup = components.registry.report(OP_B, report_input(tlp=Tlp.RED))
    assert not dup
    _, dup = components.registry.report(OP_B, report_input(audience_organisations=["op-b"]))
    assert not dup
    duplicates = [
        f for f in components.registry.list_visible(REVIEWER, FindingQuery(), 0, "")[0] if f.link is not None
    ]
    assert len(duplicates) == 1
    components.registry.set_sharing(REVIEWER, original.finding_id, Tlp.RED, ["op-a"], [], "narrow", 0)
    unlinked = components.registry.get(REVIEWER, duplicates[0].finding_id)
    assert unlinked.link is None


def test_a_retried_report_with_the_same_request_id_returns_the_first_finding(components: Components) -> None:
    first, _ = components.registry.report(OP_A, report_input(request_id="req-1"))
    again, _ = components.registry.report(OP_A, report_input(request_id="req-1", title="changed"))
    assert again.finding_id == first.finding_id
    assert len(components.registry.list_visible(REVIEWER, FindingQuery(), 0, "")[0]) == 1


def publish(components: Components, finding_id: str) -> None:
    components.registry.transition(REVIEWER, finding_id, FindingState.TRIAGED, None, "", 0)
    components.registry.transition(REVIEWER, finding_id, FindingState.VALIDATED, None, "confirmed", 0)


def test_validation_publishes_to_the_audience_and_later_changes_are_updates(components: Components) -> None:
    finding, _ = components.registry.report(REVIEWER, report_input())
    assert not components.registry.list_visible(OP_A, FindingQuery(), 0, "")[0]
    assert outbox(components) == []
    publish(components, finding.finding_id)
    components.registry.update_assessment(
        REVIEWER,
        finding.finding_id,
        cvss_v3_vector="",
        cvss_v4_vector="",
        cwe_ids=[],
        remediation_due=components.registry._clock() + timedelta(days=14),  # type: ignore[attr-defined]
        reason="set a date",
        expected_revision=0,
    )
    [(topic, published), (_, updated)] = outbox(components)
    assert topic == "preflight.findings.v1"
    assert isinstance(published, ch_events.FindingPublished) and isinstance(updated, ch_events.FindingUpdated)
    notice = published.finding
    assert list(notice.audience.organisations) == ["op-a"] and list(notice.audience.sectors) == ["finance"]
    assert notice.tlp == codec.tlp_to_proto(Tlp.AMBER)
    assert not notice.HasField("source") and notice.severity == "CRITICAL"
    assert updated.finding.HasField("remediation_due") and updated.finding.revision == 4
    assert [f.finding_id for f in components.registry.list_visible(OP_B, FindingQuery(), 0, "")[0]] == [
        finding.finding_id
    ]
    assert components.registry.list_visible(OP_C, FindingQuery(), 0, "")[0] == []


def test_an_illegal_transition_is_rejected_and_leaves_no_trace(components: Components) -> None:
    finding, _ = components.registry.report(REVIEWER, report_input())
    audit_before, outbox_before = count(components, tables.audit_log), count(components, tables.outbox)
    for target in (FindingState.VALIDATED, FindingState.DISCLOSED, FindingState.CLOSED, EmbargoState.EXITED):
        with pytest.raises(PreconditionFailed):
            components.registry.transition(REVIEWER, finding.finding_id, target, None, "", 0)
    with pytest.raises(PermissionDenied):
        components.registry.transition(OP_A, finding.finding_id, FindingState.TRIAGED, None, "", 0)
    with pytest.raises(RevisionConflict):
        components.registry.transition(REVIEWER, finding.finding_id, FindingState.TRIAGED, None, "", 7)
    with pytest.raises(InvalidInput):
        components.registry.transition(REVIEWER, finding.finding_id, EmbargoState.PROPOSED, None, "", 0)
    assert (count(components, tables.audit_log), count(components, tables.outbox)) == (
        audit_before,
        outbox_before,
    )
    assert components.registry.get(REVIEWER, finding.finding_id).revision == 1


def test_links_and_merges_follow_the_rules(components: Components) -> None:
    a, _ = components.registry.report(REVIEWER, report_input())
    b, _ = components.registry.report(REVIEWER, report_input(cwe_ids=["CWE-20"]))
    c, _ = components.registry.report(REVIEWER, report_input(cwe_ids=["CWE-125"], tlp=Tlp.RED))
    with pytest.raises(PreconditionFailed):
        components.registry.link(REVIEWER, b.finding_id, LinkKind.MERGED_INTO, c.finding_id, "")
    with pytest.raises(InvalidInput):
        components.registry.link(REVIEWER, b.finding_id, LinkKind.MERGED_INTO, b.finding_id, "")
    components.registry.link(REVIEWER, b.finding_id, LinkKind.MERGED_INTO, a.finding_id, "same root cause")
    listed = {f.finding_id for f in components.registry.list_visible(REVIEWER, FindingQuery(), 0, "")[0]}
    assert listed == {a.finding_id, c.finding_id}
    with pytest.raises(PreconditionFailed):
        components.registry.link(REVIEWER, a.finding_id, LinkKind.SUBSUMED_BY, b.finding_id, "")


def test_operators_report_their_own_patch_status(components: Components) -> None:
    finding, _ = components.registry.report(REVIEWER, report_input(audience_organisations=["op-a", "op-b"]))
    with pytest.raises(NotFound):
        components.registry.set_patch_status(OP_A, finding.finding_id, PatchState.PATCHED, "")
    publish(components, finding.finding_id)
    components.registry.set_patch_status(OP_A, finding.finding_id, PatchState.PATCHED, "rolled out")
    seen = components.registry.set_patch_status(OP_B, finding.finding_id, PatchState.AFFECTED, "")
    assert [(p.organisation, p.status) for p in seen.patch_statuses] == [("op-b", PatchState.AFFECTED)]
    with pytest.raises(NotFound):
        components.registry.set_patch_status(OP_C, finding.finding_id, PatchState.PATCHED, "")
    assert len(components.registry.get(REVIEWER, finding.finding_id).patch_statuses) == 2


def test_a_lapsed_embargo_ends_and_the_audience_is_told(components: Components, clock: ManualClock) -> None:
    finding, _ = components.registry.report(REVIEWER, report_input(tlp=Tlp.CLEAR))
    publish(components, finding.finding_id)
    end = clock.now + timedelta(days=3)
    components.registry.transition(REVIEWER, finding.finding_id, EmbargoState.PROPOSED, end, "", 0)
    components.registry.transition(REVIEWER, finding.finding_id, EmbargoState.ACTIVE, None, "", 0)
    assert components.registry.list_visible(OP_C, FindingQuery(), 0, "")[0] == []
    assert components.registry.get(OP_A, finding.finding_id).tlp is Tlp.AMBER
    assert components.registry.end_lapsed_embargoes() == 0
    clock.advance(timedelta(days=4))
    assert components.registry.end_lapsed_embargoes() == 1
    assert components.registry.get(OP_C, finding.finding_id).tlp is Tlp.CLEAR
    _last_topic, last = outbox(components)[-1]
    assert isinstance(last, ch_events.FindingUpdated) and last.finding.tlp == codec.tlp_to_proto(Tlp.CLEAR)


def test_pages_cover_every_visible_finding_once(components: Components) -> None:
    ids = set()
    for i in range(7):
        finding, _ = components.registry.report(
            REVIEWER,
            report_input(
                cwe_ids=["CWE-787"],
                title=f"bug {i}",
                location=replace(report_input().location, function=f"f{i}"),
            ),
        )
        ids.add(finding.finding_id)
    seen, token = [], ""
    while True:
        page, token = components.registry.list_visible(REVIEWER, FindingQuery(), 3, token)
        seen += [f.finding_id for f in page]
        if not token:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 7
    with pytest.raises(InvalidArgument, match="page_token"):
        components.registry.list_visible(REVIEWER, FindingQuery(), 3, "garbage!")
    with pytest.raises(InvalidInput, match="page_size"):
        components.registry.list_visible(REVIEWER, FindingQuery(), 501, "")


def test_altering_or_deleting_one_audit_row_is_detected(components: Components) -> None:
    for i in range(3):
        components.registry.report(REVIEWER, report_input(title=f"t{i}"))
    assert components.checkpoints.verify(REVIEWER).ok
    log = tables.audit_log
    with components.engine.begin() as conn:
        conn.execute(update(log).where(log.c.seq == 2).values(actor="someone-else"))
    verdict = components.checkpoints.verify(REVIEWER)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 2)
    with components.engine.begin() as conn:
        conn.execute(update(log).where(log.c.seq == 2).values(actor=REVIEWER.principal_id))
    assert components.checkpoints.verify(REVIEWER).ok
    with components.engine.begin() as conn:
        conn.execute(delete(log).where(log.c.seq == 3))
    assert not components.checkpoints.verify(REVIEWER).ok
    with pytest.raises(PermissionDenied):
        components.checkpoints.verify(OP_A)


def published_checkpoint(components: Components) -> ch_events.AuditCheckpoint:
    """The last AuditCheckpoint the outbox holds."""
    checkpoints = [p for _t, p in outbox(components) if isinstance(p, ch_events.AuditCheckpoint)]
    assert checkpoints, "no checkpoint in the outbox"
    return checkpoints[-1]


def test_a_signed_checkpoint_detects_truncation_and_a_recomputed_chain_the_chain_alone_calls_intact(
    components: Components, clock: ManualClock
) -> None:
    for i in range(4):
        components.registry.report(REVIEWER, report_input(title=f"t{i}"))
    signed = components.checkpoints.publish_if_due()
    assert signed is not None and components.checkpoints.publish_if_due() is None  # nothing moved
    event = published_checkpoint(components)
    assert (event.sequence, event.body, event.signature) == (4, signed.body, signed.signature)
    intact = components.checkpoints.verify(REVIEWER, event.body, event.signature)
    assert (intact.ok, intact.checkpoint_seq) == (True, 4)
    # A checkpoint signed by another key, or that is no checkpoint, is refused naming the field.
    with pytest.raises(InvalidInput, match="checkpoint_signature"):
        components.checkpoints.verify(REVIEWER, event.body, bytes(64))
    log = tables.audit_log

    # Truncation: the last entry deleted and the head moved back.
    truncate_audit_log(components.engine, keep=3)
    assert components.checkpoints.verify(REVIEWER).ok
    truncated = components.checkpoints.verify(REVIEWER, event.body, event.signature)
    assert (truncated.ok, truncated.first_bad_seq) == (False, 4) and "truncated" in truncated.problem

    # Rewriting: an entry altered, the chain and head recomputed, the length made up again.
    components.registry.report(REVIEWER, report_input(title="filler"))
    with components.engine.begin() as conn:
        conn.execute(update(log).where(log.c.seq == 2).values(actor="someone-else"))
    recompute_audit_chain(components.engine)
    assert components.checkpoints.verify(REVIEWER).ok
    rewritten = components.checkpoints.verify(REVIEWER, event.body, event.signature)
    assert (rewritten.ok, rewritten.first_bad_seq) == (False, 4) and "rewritten" in rewritten.problem

    # The checkpoint each signed report carries serves the same way.
    clock.advance(timedelta(minutes=1))
    run_events(components, review_events("sub-cp"))
    ready = next(p for _t, p in outbox(components) if isinstance(p, ch_events.ReviewReportReady))
    assert components.checkpoints.verify(REVIEWER, ready.body, ready.signature).checkpoint_seq >= 5


def test_the_submission_events_record_consent(components: Components) -> None:
    info = SubmissionInfo("sub-z", "lab-xq7", "frontier", "1.0", True, components.registry._clock())  # type: ignore[attr-defined]
    assert components.reviews.submission_received("evt-1", info)
    assert not components.reviews.submission_received("evt-1", info)
    with components.engine.connect() as conn:
        assert conn.execute(text("select share_identity from submissions")).scalar_one()


def test_a_package_version_query_finds_what_affects_it_in_the_callers_view_only(
    components: Components,
) -> None:
    flask = [ProductInput(purl="pkg:pypi/flask", version_range="vers:pypi/>=2.0|<2.3.3")]
    in_range, _ = components.registry.report(REVIEWER, report_input(affected_products=flask))
    exact, _ = components.registry.report(
        REVIEWER, report_input(title="exact", affected_products=[ProductInput(purl="pkg:pypi/flask@2.3.1")])
    )
    fixed, _ = components.registry.report(
        REVIEWER,
        report_input(
            title="fixed before",
            affected_products=[ProductInput(purl="pkg:pypi/Flask", version_range="vers:pypi/<2.2")],
        ),
    )
    other_package, _ = components.registry.report(
        REVIEWER, report_input(title="werkzeug", affected_products=[ProductInput(purl="pkg:pypi/werkzeug")])
    )
    op_b_only, _ = components.registry.report(
        REVIEWER,
        report_input(
            title="b", affected_products=flask, audience_organisations=["op-b"], audience_sectors=[]
        ),
    )
    for finding in (in_range, exact, fixed, other_package, op_b_only):
        publish(components, finding.finding_id)  # rewrites each finding's row and its packages

    def ids(viewer: Viewer, purl: str, version: str = "") -> list[str]:
        return [f.finding_id for f in components.registry.affecting(viewer, purl, version)]

    assert ids(REVIEWER, "pkg:pypi/flask@2.3.1") == [
        in_range.finding_id,
        exact.finding_id,
        op_b_only.finding_id,
    ]
    assert ids(REVIEWER, "pkg:pypi/flask", "2.3.1") == ids(REVIEWER, "pkg:pypi/flask@2.3.1")
    assert ids(REVIEWER, "pkg:pypi/flask@2.1") == [
        in_range.finding_id,
        fixed.finding_id,
        op_b_only.finding_id,
    ]
    assert ids(REVIEWER, "pkg:pypi/flask@2.3.3") == []
    # An operator sees only what its TLP and audience allow, as everywhere.
    assert ids(OP_A, "pkg:pypi/flask@2.3.1") == [in_range.finding_id, exact.finding_id]
    assert ids(LAB_Y, "pkg:pypi/flask@2.3.1") == []
    for purl, version, field in (
        ("flask", "", "purl"),
        ("pkg:pypi/flask", "", "version"),
        ("pkg:pypi/flask@1", "2", "version"),
    ):
        with pytest.raises(InvalidInput) as refused:
            components.registry.affecting(REVIEWER, purl, version)
        assert [v.field for v in refused.value.violations] == [field]


def test_aliases_are_normalised_held_by_one_finding_only_and_shown_with_it(components: Components) -> None:
    first, _ = components.registry.report(REVIEWER, report_input())
    second, _ = components.registry.report(REVIEWER, report_input(title="another"))
    aliased = components.registry.set_aliases(
        REVIEWER, first.finding_id, ["cve-2024-12345", "GHSA-2XQM-7RF3-H4CV", "RHSA-2024:1234"], "assigned", 0
    )
    assert aliased.aliases == ("CVE-2024-12345", "GHSA-2xqm-7rf3-h4cv", "RHSA-2024:1234")
    assert components.registry.get(REVIEWER, first.finding_id).aliases == aliased.aliases
    with pytest.raises(InvalidInput) as taken:
        components.registry.set_aliases(REVIEWER, second.finding_id, ["CVE-2024-12345"], "", 0)
    assert [v.field for v in taken.value.violations] == ["aliases"]
    assert first.finding_id in taken.value.violations[0].description
    for bad in (
        ["CVE-24-1"],
        ["GHSA-0000-0000-0000"],
        ["not an id"],
        [f"CVE-2024-{n:05}" for n in range(21)],
    ):
        with pytest.raises(InvalidInput, match="aliases"):
            components.registry.set_aliases(REVIEWER, second.finding_id, bad, "", 0)
    with pytest.raises(PermissionDenied):
        components.registry.set_aliases(OP_A, first.finding_id, ["CVE-2024-1111"], "", 0)
    # Released by its holder, the alias may go to another finding; every change is audit-logged.
    components.registry.set_aliases(REVIEWER, first.finding_id, [], "moved", 0)
    moved = components.registry.set_aliases(REVIEWER, second.finding_id, ["CVE-2024-12345"], "moved", 0)
    assert moved.aliases == ("CVE-2024-12345",)
    assert components.registry.get(REVIEWER, first.finding_id).aliases == ()
    with components.engine.connect() as conn:
        actions = conn.execute(
            select(tables.audit_log.c.action).where(tables.audit_log.c.action == "finding.aliases_set")
        ).all()
    assert len(actions) == 3
