"""Deadlines against a real database (SQLite and PostgreSQL) with a controlled clock: every threshold
fires once at its instant, catches up after downtime, follows moved deadlines, and stops when met."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.intake.v1 import events_pb2 as intake_events
from preflight.notifier.v1 import events_pb2 as notifier_events
from preflight_notifier.adapters import store
from preflight_notifier.adapters.codec import alert_from_bytes
from preflight_notifier.bootstrap import Components
from preflight_notifier.domain.alerts import Alert
from preflight_notifier.domain.model import AlertKind, BadEvent
from preflight_notifier.domain.schedule import alert_id
from preflight_testkit.notifier import (
    START,
    ManualClock,
    apply,
    finding_notice,
    release_moved,
    rows,
    submission_received,
)
from sqlalchemy import event

DAY = timedelta(days=1)


def fired(components: Components) -> list[Alert]:
    return [
        alert_from_bytes(r.payload) for r in rows(components, "SELECT payload FROM alerts ORDER BY sequence")
    ]


def thresholds(components: Components, kind: AlertKind = AlertKind.REVIEW_DEADLINE) -> list[str]:
    return [a.threshold for a in fired(components) if a.kind is kind]


def reminder_statuses(components: Components, deadline_id: str) -> dict[str, str]:
    found = rows(
        components,
        "SELECT threshold, version, status FROM reminders WHERE deadline_id = :d ORDER BY id",
        d=deadline_id,
    )
    return {f"{r.threshold}@v{r.version}": r.status for r in found}


def walk(components: Components, clock: ManualClock, *offsets: timedelta) -> dict[timedelta, list[str]]:
    """Run a scheduler pass just before and at each offset from START; what fired at each instant."""
    seen: dict[timedelta, list[str]] = {}
    for offset in sorted(offsets):
        clock.set(START + offset - timedelta(seconds=1))
        before = len(fired(components))
        components.scheduler.run_pass()
        assert len(fired(components)) == before, f"something fired before {offset}"
        clock.set(START + offset)
        components.scheduler.run_pass()
        seen[offset] = [a.threshold for a in fired(components)[before:]]
    return seen


def test_release_eight_days_away_gets_each_threshold_once_at_its_instant(
    notifier: Components, clock: ManualClock
) -> None:
    apply(notifier, submission_received("sub-1", START + 8 * DAY))
    seen = walk(notifier, clock, 1 * DAY, 5 * DAY, 7 * DAY, 8 * DAY, 8 * DAY + 12 * timedelta(hours=1))
    assert seen == {
        1 * DAY: ["T-7d"],
        5 * DAY: ["T-3d"],
        7 * DAY: ["T-1d"],
        8 * DAY: ["T-0"],
        8 * DAY + timedelta(hours=12): [],
    }
    alerts = fired(notifier)
    assert [a.due_at for a in alerts] == [START + d * DAY for d in (1, 5, 7, 8)]
    assert [a.fired_at for a in alerts] == [a.due_at for a in alerts]
    assert not any(a.late for a in alerts)
    assert [a.alert_id for a in alerts] == [
        alert_id("review/sub-1", t, 1) for t in ("T-7d", "T-3d", "T-1d", "T-0")
    ]
    assert (
        alerts[-1].severity.value == "critical"
        and alerts[-1].title == "Review deadline reached: submission sub-1"
    )


def test_report_ready_before_t1d_stops_the_rest(notifier: Components, clock: ManualClock) -> None:
    apply(notifier, submission_received("sub-1", START + 8 * DAY))
    walk(notifier, clock, 1 * DAY, 5 * DAY)
    clock.set(START + 6 * DAY)
    apply(notifier, clearinghouse_events.ReviewReportReady(report_id="r1", submission_id="sub-1", version=1))
    walk(notifier, clock, 7 * DAY, 8 * DAY, 9 * DAY, 30 * DAY)
    assert thresholds(notifier) == ["T-7d", "T-3d"]
    assert [a.kind for a in fired(notifier)][-1] is AlertKind.REVIEW_MET
    assert reminder_statuses(notifier, "review/sub-1") == {
        "T-7d@v1": "fired",
        "T-3d@v1": "fired",
        "T-1d@v1": "cancelled",
        "T-0@v1": "cancelled",
        "overdue+1d@v1": "cancelled",
    }
    # A re-issued report (a new event) changes nothing more.
    apply(notifier, clearinghouse_events.ReviewReportReady(report_id="r1", submission_id="sub-1", version=2))
    assert len(fired(notifier)) == 3


def test_notifier_down_across_t3d_fires_it_once_late_on_start_and_restarts_do_not_duplicate(
    make_notifier: object, clock: ManualClock
) -> None:
    make = make_notifier  # type: ignore[assignment]
    first: Components = make()  # type: ignore[operator]
    received = submission_received("sub-1", START + 8 * DAY)
    apply(first, received, event_id="ev-received")
    walk(first, clock, 1 * DAY)
    first.engine.dispose()  # stopped before T-3d (START + 5d) ...
    clock.set(START + 5 * DAY + timedelta(hours=6))  # ... started again six hours after it
    second: Components = make()  # type: ignore[operator]
    report = second.scheduler.catch_up()
    assert (report.fired, report.superseded) == (1, 0)
    late = fired(second)[-1]
    assert (late.threshold, late.late, late.due_at, late.fired_at) == (
        "T-3d",
        True,
        START + 5 * DAY,
        START + 5 * DAY + timedelta(hours=6),
    )
    for restart in range(3):
        clock.advance(minutes=10)
        again: Components = make()  # type: ignore[operator]
        assert again.scheduler.catch_up().handled == 0
        # The consumer's redelivery of the same event, and intake republishing it, change nothing.
        assert apply(again, received, event_id="ev-received") is False
        assert apply(again, received, event_id=f"ev-republished-{restart}") is True
    assert thresholds(again) == ["T-7d", "T-3d"]
    outbox = rows(again, "SELECT event_id FROM outbox ORDER BY id")
    assert [r.event_id for r in outbox] == [a.alert_id for a in fired(again)]


def test_release_moved_later_old_reminders_never_fire_and_new_ones_do(
    notifier: Components, clock: ManualClock
) -> None:
    apply(notifier, submission_received("sub-1", START + 8 * DAY))
    walk(notifier, clock, 1 * DAY)
    clock.set(START + 2 * DAY)
    apply(notifier, release_moved("sub-1", START + 20 * DAY, version=2))
    seen = walk(notifier, clock, 5 * DAY, 7 * DAY, 8 * DAY, 13 * DAY, 17 * DAY, 19 * DAY, 20 * DAY)
    assert seen == {
        5 * DAY: [],
        7 * DAY: [],
        8 * DAY: [],
        13 * DAY: ["T-7d"],
        17 * DAY: ["T-3d"],
        19 * DAY: ["T-1d"],
        20 * DAY: ["T-0"],
    }
    assert [a.deadline_version for a in fired(notifier)] == [1, 2, 2, 2, 2]
    statuses = reminder_statuses(notifier, "review/sub-1")
    assert {k: v for k, v in statuses.items() if k.endswith("@v1")} == {
        "T-7d@v1": "fired",
        "T-3d@v1": "cancelled",
        "T-1d@v1": "cancelled",
        "T-0@v1": "cancelled",
        "overdue+1d@v1": "cancelled",
    }


def test_an_older_release_plan_arriving_late_is_ignored(notifier: Components, clock: ManualClock) -> None:
    apply(notifier, submission_received("sub-1", START + 8 * DAY))
    apply(notifier, release_moved("sub-1", START + 10 * DAY, version=3))
    apply(notifier, release_moved("sub-1", START + 9 * DAY, version=2))
    seen = walk(notifier, clock, 1 * DAY, 2 * DAY, 3 * DAY)
    assert seen == {1 * DAY: [], 2 * DAY: [], 3 * DAY: ["T-7d"]}
    assert fired(notifier)[0].deadline_at == START + 10 * DAY


def test_withdrawal_cancels_every_reminder(notifier: Components, clock: ManualClock) -> None:
    apply(notifier, submission_received("sub-1", START + 8 * DAY))
    clock.set(START + timedelta(hours=12))
    apply(
        notifier,
        intake_events.SubmissionWithdrawn(submission_id="sub-1", organisation="lab-a", reason="postponed"),
    )
    walk(notifier, clock, 1 * DAY, 5 * DAY, 7 * DAY, 8 * DAY, 9 * DAY, 40 * DAY)
    assert fired(notifier) == []
    assert set(reminder_statuses(notifier, "review/sub-1").values()) == {"cancelled"}
    apply(notifier, release_moved("sub-1", START + 9 * DAY, version=2))
    assert set(reminder_statuses(notifier, "review/sub-1").values()) == {"cancelled"}


def test_several_missed_thresholds_fire_only_the_latest_and_due_or_overdue_are_never_dropped(
    notifier: Components, clock: ManualClock
) -> None:
    apply(notifier, submission_received("sub-1", START + 8 * DAY))
    clock.set(START + 7 * DAY + timedelta(hours=1))  # T-7d, T-3d and T-1d all passed while down
    report = notifier.scheduler.catch_up()
    assert (report.fired, report.superseded) == (1, 2)
    assert [(a.threshold, a.late) for a in fired(notifier)] == [("T-1d", True)]
    # A late reminder tells the time left when it is sent, and that it is late.
    [late] = fired(notifier)
    assert late.title == "Review deadline in 23 hours: submission sub-1"
    assert f"Sent late: the T-1d reminder was due {START + 7 * DAY:%Y-%m-%d %H:%M} UTC." in late.summary
    clock.set(START + 10 * DAY + timedelta(hours=1))  # T-0 and the first overdue passed while down
    notifier.scheduler.catch_up()
    assert [(a.threshold, a.late) for a in fired(notifier)][1:] == [("T-0", True), ("overdue+1d", True)]
    assert {a.title for a in fired(notifier)[1:]} == {"Review deadline passed 2 days ago: submission sub-1"}
    statuses = reminder_statuses(notifier, "review/sub-1")
    assert (statuses["T-7d@v1"], statuses["T-3d@v1"]) == ("superseded", "superseded")
    # No flood of the overdue repeats missed meanwhile: the next one is the next instant to come.
    pending = rows(notifier, "SELECT threshold, due_at FROM reminders WHERE status = 'pending'")
    assert [r.threshold for r in pending] == ["overdue+3d"]


def test_overdue_repeats_every_day_until_the_review_is_met(notifier: Components, clock: ManualClock) -> None:
    apply(notifier, submission_received("sub-1", START + 2 * DAY))
    clock.set(START)
    notifier.scheduler.catch_up()  # T-7d and T-3d already passed at submission: T-3d fires once
    seen = walk(notifier, clock, 1 * DAY, 2 * DAY, 3 * DAY, 4 * DAY, 5 * DAY)
    assert thresholds(notifier) == ["T-3d", "T-1d", "T-0", "overdue+1d", "overdue+2d", "overdue+3d"]
    assert seen[5 * DAY] == ["overdue+3d"]
    clock.set(START + 5 * DAY + timedelta(hours=2))
    apply(notifier, clearinghouse_events.ReviewReportReady(report_id="r", submission_id="sub-1", version=1))
    walk(notifier, clock, 6 * DAY, 7 * DAY)
    assert thresholds(notifier)[-1] == "overdue+3d"


def test_a_report_before_the_submission_event_prevents_any_reminder(
    notifier: Components, clock: ManualClock
) -> None:
    apply(notifier, clearinghouse_events.ReviewReportReady(report_id="r", submission_id="sub-1", version=1))
    apply(notifier, submission_received("sub-1", START + 8 * DAY))
    walk(notifier, clock, 1 * DAY, 8 * DAY)
    assert fired(notifier) == []
    assert reminder_statuses(notifier, "review/sub-1") == {}


def test_finding_embargo_and_remediation_thresholds_follow_the_notice(
    notifier: Components, clock: ManualClock
) -> None:
    notice = finding_notice("f-1", embargo_end=START + 4 * DAY, remediation_due=START + 10 * DAY)
    apply(notifier, clearinghouse_events.FindingPublished(finding=notice))
    walk(notifier, clock, 1 * DAY, 3 * DAY)
    assert thresholds(notifier, AlertKind.EMBARGO_END) == ["T-3d", "T-1d"]
    assert thresholds(notifier, AlertKind.REMEDIATION_DUE) == ["T-7d"]
    alert = fired(notifier)[0]
    assert alert.title == "Embargo end in 3 days: Heap overflow in libexample"
    assert "CVSS 8.1" in alert.summary and "pkg:generic/libexample@1.2.3" in alert.summary
    assert alert.audience.organisations == frozenset({"bank-a"}) and alert.tlp.value == "amber"
    for text in (alert.title, alert.summary):
        assert "Secret Lab" not in text and "secret-model" not in text and "sub-secret" not in text
    patched = finding_notice(
        "f-1",
        embargo_end=START + 4 * DAY,
        remediation_due=START + 10 * DAY,
        revision=2,
        state=clearinghouse_events.FINDING_STATE_PATCH_AVAILABLE,
    )
    apply(notifier, clearinghouse_events.FindingUpdated(finding=patched))
    closed = finding_notice(
        "f-1", embargo_end=START + 4 * DAY, revision=3, state=clearinghouse_events.FINDING_STATE_CLOSED
    )
    apply(notifier, clearinghouse_events.FindingUpdated(finding=closed))
    walk(notifier, clock, 4 * DAY, 10 * DAY)
    assert len(fired(notifier)) == 3
    assert set(reminder_statuses(notifier, "embargo_end/f-1").values()) == {"fired", "cancelled"}
    assert set(reminder_statuses(notifier, "remediation_due/f-1").values()) == {"fired", "cancelled"}


def test_a_submissions_organisation_and_contacts_are_set_once_and_a_closed_review_stays_closed(
    notifier: Components, clock: ManualClock
) -> None:
    apply(notifier, submission_received("sub-1", START + 8 * DAY))
    before = rows(notifier, "SELECT audience, state, due_at FROM deadlines")
    rival = submission_received("sub-1", START + 8 * DAY, version=2, organisation="lab-rival")
    with pytest.raises(BadEvent, match="belongs to another organisation than lab-rival"):
        apply(notifier, rival)
    other_contacts = submission_received("sub-1", START + 9 * DAY, version=2)
    other_contacts.contacts[0].email = "someone@rival.example"
    with pytest.raises(BadEvent, match="contacts are set once"):
        apply(notifier, other_contacts)
    for forged in (
        release_moved("sub-1", START + 20 * DAY, version=3, organisation="lab-rival"),
        intake_events.SubmissionWithdrawn(submission_id="sub-1", organisation="lab-rival"),
    ):
        with pytest.raises(BadEvent, match="belongs to another organisation"):
            apply(notifier, forged)
    assert rows(notifier, "SELECT audience, state, due_at FROM deadlines") == before
    apply(notifier, intake_events.SubmissionWithdrawn(submission_id="sub-1", organisation="lab-a"))
    with pytest.raises(BadEvent, match="is cancelled: it is not received again"):
        apply(notifier, submission_received("sub-1", START + 9 * DAY, version=3))


def test_a_finding_is_published_once(notifier: Components) -> None:
    notice = finding_notice("f-1", embargo_end=START + 3 * DAY)
    apply(notifier, clearinghouse_events.FindingPublished(finding=notice))
    notice.revision, notice.audience.organisations[:] = 2, ["bank-a", "bank-b"]
    with pytest.raises(BadEvent, match="finding f-1 is already published"):
        apply(notifier, clearinghouse_events.FindingPublished(finding=notice))
    apply(notifier, clearinghouse_events.FindingUpdated(finding=notice))  # changes come as updates


def test_an_event_that_can_never_apply_writes_nothing(notifier: Components) -> None:
    with pytest.raises(BadEvent, match="submission_id"):
        apply(notifier, submission_received("", START + 8 * DAY), event_id="ev-bad")
    with pytest.raises(BadEvent, match="review_deadline"):
        apply(notifier, intake_events.SubmissionReceived(submission_id="s", organisation="lab-a"))
    assert rows(notifier, "SELECT * FROM processed_events") == []
    assert rows(notifier, "SELECT * FROM deadlines") == []


def test_the_topic_record_is_the_alert_keyed_by_subject_with_its_id_and_audience_but_no_contacts(
    notifier: Components, clock: ManualClock
) -> None:
    apply(notifier, submission_received("sub-1", START + 8 * DAY))
    walk(notifier, clock, 1 * DAY)
    record = rows(notifier, "SELECT topic, event_id, event_type, key, value, headers FROM outbox")[0]
    alert = fired(notifier)[0]
    headers = dict(json.loads(record.headers))
    assert (record.topic, record.event_id, record.event_type) == (
        "preflight.review-alerts.v1",
        alert.alert_id,
        "preflight.notifier.v1.Alert",
    )
    assert bytes(record.key) == b"sub-1"
    assert headers["ce_id"] == alert.alert_id and headers["ce_subject"] == "sub-1"
    assert "ce_audience" not in headers  # the audience is the payload's, not a header
    published = notifier_events.Alert.FromString(bytes(record.value))
    assert published.audience.lab_organisation == "lab-a" and published.threshold == "T-7d"
    assert list(published.audience.contacts) == []
    assert b"ada@lab-a.example" not in bytes(record.value)
    assert alert.audience.contacts[0].email == "ada@lab-a.example"  # kept for e-mail, never published


def test_concurrent_schedulers_fire_each_reminder_exactly_once(
    make_notifier: object, clock: ManualClock
) -> None:
    make = make_notifier  # type: ignore[assignment]
    setup: Components = make()  # type: ignore[operator]
    for index in range(60):
        apply(setup, submission_received(f"sub-{index}", START + 5 * DAY + (index % 9) * timedelta(hours=1)))
    clock.set(START + 4 * DAY + timedelta(hours=12))  # T-7d, T-3d and T-1d of every submission are due
    workers = [make() for _ in range(4)]  # type: ignore[operator]
    errors: list[BaseException] = []

    def run(components: Components) -> None:
        try:
            for _ in range(10):
                components.scheduler.run_pass()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    alerts = fired(setup)
    assert sorted(a.subject_id for a in alerts) == sorted(f"sub-{i}" for i in range(60))
    assert {a.threshold for a in alerts} == {"T-1d"}
    counts = rows(setup, "SELECT status, COUNT(*) AS n FROM reminders GROUP BY status ORDER BY status")
    assert [(r.status, r.n) for r in counts] == [("fired", 60), ("pending", 120), ("superseded", 120)]
    with store.reading(setup.engine) as stored:
        assert stored.due_deadline_ids(clock(), 10) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's plan; the bench measures the cost
def test_the_scheduler_pass_reads_only_the_index_of_pending_due_reminders(
    notifier: Components, clock: ManualClock
) -> None:
    apply(notifier, submission_received("sub-1", START + 8 * DAY))
    captured: list[tuple[str, object]] = []

    def capture(
        conn: object, cursor: object, statement: str, parameters: object, context: object, many: bool
    ) -> None:
        if (
            "FROM reminders" in statement
            and "ORDER BY reminders.due_at" in statement
            and "deadline_id IN" not in statement
        ):
            captured.append((statement, parameters))

    event.listen(notifier.engine, "before_cursor_execute", capture)
    clock.set(START + DAY)
    notifier.scheduler.run_pass()
    event.remove(notifier.engine, "before_cursor_execute", capture)
    statement, parameters = captured[0]
    with notifier.engine.connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()  # type: ignore[arg-type]
    details = " ".join(str(row[-1]) for row in plan)
    assert "ix_reminders_pending_due" in details, details
    assert "TEMP B-TREE" not in details, details  # ordered by the index itself: no sort of all pending rows


def test_event_ids_are_claimed_once_per_event(notifier: Components) -> None:
    event_id = str(uuid.uuid4())
    assert apply(notifier, submission_received("sub-1", START + 8 * DAY), event_id=event_id) is True
    assert apply(notifier, submission_received("sub-1", START + 8 * DAY), event_id=event_id) is False
    assert len(rows(notifier, "SELECT * FROM reminders")) == 5
