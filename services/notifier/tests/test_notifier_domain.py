"""The notifier's rules alone: thresholds, catch-up, versions, audiences, matchers, routing, retries,
signatures."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from preflight_notifier.domain.alerts import reminder_alert
from preflight_notifier.domain.audience import Viewer, ViewerRole, audience_tokens, may_see
from preflight_notifier.domain.delivery import (
    Outcome,
    Result,
    RetryPolicy,
    classify_http,
    classify_smtp,
    settle,
    sign,
    verify_signature,
)
from preflight_notifier.domain.durations import format_duration, parse_duration
from preflight_notifier.domain.matchers import Matcher
from preflight_notifier.domain.model import (
    AlertKind,
    Audience,
    Contact,
    Deadline,
    DeadlineChange,
    DeadlineKind,
    DeadlineState,
    Details,
    Effect,
    Severity,
    Tlp,
    close,
    decide,
)
from preflight_notifier.domain.routing import (
    EmailChannel,
    InhibitRule,
    Receiver,
    Route,
    RoutingConfig,
    WebhookChannel,
    resolve,
)
from preflight_notifier.domain.schedule import (
    DeadlinePolicy,
    DueReminder,
    OverdueRepeat,
    Stage,
    Threshold,
    alert_id,
    next_overdue,
    plan,
    triage,
)
from preflight_notifier.domain.silences import Silence, may_manage, silence_scope

DEADLINE = datetime(2026, 7, 9, 9, 0, tzinfo=UTC)
REVIEW_POLICY = DeadlinePolicy(
    (
        Threshold(timedelta(days=7), Severity.INFO),
        Threshold(timedelta(days=3), Severity.INFO),
        Threshold(timedelta(days=1), Severity.WARNING),
        Threshold(timedelta(0), Severity.CRITICAL),
    ),
    OverdueRepeat(timedelta(days=1)),
)
FINANCE = Audience(organisations=frozenset({"bank-a"}), sectors=frozenset({"finance"}))
BANK_A = Viewer(ViewerRole.OPERATOR, "bank-a", frozenset({"finance"}))
BANK_B = Viewer(ViewerRole.OPERATOR, "bank-b", frozenset({"finance"}))
WATER = Viewer(ViewerRole.OPERATOR, "water-co", frozenset({"water"}))
REVIEWER = Viewer(ViewerRole.REVIEWER, "agency")
LAB_A = Viewer(ViewerRole.LAB, "lab-a")


def test_durations_round_trip_and_reject_nonsense() -> None:
    assert parse_duration("1d12h") == timedelta(days=1, hours=12)
    assert parse_duration("250ms") == timedelta(milliseconds=250)
    assert parse_duration("0") == timedelta(0)
    assert format_duration(timedelta(days=3)) == "3d"
    assert format_duration(timedelta(hours=36)) == "1d12h"
    for bad in ("", "3 days", "-1d", "1x", "d"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_plan_has_one_reminder_per_threshold_and_the_first_overdue() -> None:
    reminders = plan(REVIEW_POLICY, DEADLINE)
    assert [(r.threshold, r.stage, r.due_at) for r in reminders] == [
        ("T-7d", Stage.ADVANCE, DEADLINE - timedelta(days=7)),
        ("T-3d", Stage.ADVANCE, DEADLINE - timedelta(days=3)),
        ("T-1d", Stage.ADVANCE, DEADLINE - timedelta(days=1)),
        ("T-0", Stage.DUE, DEADLINE),
        ("overdue+1d", Stage.OVERDUE, DEADLINE + timedelta(days=1)),
    ]


def test_repeated_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="repeat"):
        DeadlinePolicy(
            (Threshold(timedelta(days=1), Severity.INFO), Threshold(timedelta(hours=24), Severity.INFO))
        )


def test_next_overdue_is_the_first_repetition_after_now_not_every_missed_one() -> None:
    on_time = next_overdue(REVIEW_POLICY, DEADLINE, DEADLINE + timedelta(days=1))
    assert on_time is not None and on_time.threshold == "overdue+2d"
    after_downtime = next_overdue(REVIEW_POLICY, DEADLINE, DEADLINE + timedelta(days=5, hours=3))
    assert after_downtime is not None
    assert (after_downtime.threshold, after_downtime.due_at) == ("overdue+6d", DEADLINE + timedelta(days=6))
    assert next_overdue(DeadlinePolicy(()), DEADLINE, DEADLINE) is None


def test_catch_up_fires_only_the_latest_advance_reminder_but_never_drops_due_or_overdue() -> None:
    t7, t3, t1 = (
        DueReminder(i, name, DEADLINE - timedelta(days=d))
        for i, name, d in ((1, "T-7d", 7), (2, "T-3d", 3), (3, "T-1d", 1))
    )
    t0 = DueReminder(4, "T-0", DEADLINE)
    over = DueReminder(5, "overdue+1d", DEADLINE + timedelta(days=1))
    assert triage([t7, t3]) == triage([t3, t7])
    assert triage([t7, t3]).fire == (t3,)
    assert set(triage([t7, t3]).superseded) == {t7}
    both = triage([t1, t0, over])
    assert set(both.fire) == {t0, over}
    assert both.superseded == (t1,)
    assert triage([t3]).fire == (t3,)
    assert triage([]).fire == ()


def test_alert_ids_are_deterministic_per_deadline_threshold_and_version() -> None:
    first = alert_id("review/s1", "T-3d", 1)
    assert first == alert_id("review/s1", "T-3d", 1)
    assert (
        len(
            {
                first,
                alert_id("review/s1", "T-3d", 2),
                alert_id("review/s1", "T-1d", 1),
                alert_id("review/s2", "T-3d", 1),
            }
        )
        == 4
    )


def _review(due: datetime | None, version: int = 1, state: DeadlineState = DeadlineState.ACTIVE) -> Deadline:
    return Deadline("review/s1", DeadlineKind.REVIEW, "s1", due, version, version, state)


def test_a_moved_deadline_gets_a_new_version_and_a_stale_or_repeated_change_is_ignored() -> None:
    current = _review(DEADLINE, version=2)
    moved = decide(current, DeadlineChange(DeadlineKind.REVIEW, "s1", DEADLINE + timedelta(days=5), 3))
    assert moved.effect is Effect.SCHEDULE
    assert moved.deadline is not None and moved.deadline.version == 3
    assert (
        decide(current, DeadlineChange(DeadlineKind.REVIEW, "s1", DEADLINE + timedelta(days=5), 1)).effect
        is Effect.NONE
    )
    assert (
        decide(current, DeadlineChange(DeadlineKind.REVIEW, "s1", DEADLINE + timedelta(days=5), 2)).effect
        is Effect.NONE
    )


def test_same_instant_refreshes_details_but_keeps_the_reminder_version() -> None:
    current = Deadline(
        "embargo_end/f1",
        DeadlineKind.EMBARGO_END,
        "f1",
        DEADLINE,
        1,
        1,
        DeadlineState.ACTIVE,
        Details(FINANCE),
    )
    narrower = Details(Audience(organisations=frozenset({"bank-a"})), Tlp.RED)
    decision = decide(current, DeadlineChange(DeadlineKind.EMBARGO_END, "f1", DEADLINE, 4, narrower))
    assert decision.effect is Effect.REFRESH
    assert decision.deadline is not None
    assert (decision.deadline.version, decision.deadline.source_version) == (1, 4)
    assert decision.deadline.details == narrower


def test_release_plan_change_keeps_who_hears_about_the_review() -> None:
    audience = Details(Audience(lab_organisation="lab-a"), Tlp.AMBER_STRICT)
    current = Deadline("review/s1", DeadlineKind.REVIEW, "s1", DEADLINE, 1, 1, DeadlineState.ACTIVE, audience)
    decision = decide(current, DeadlineChange(DeadlineKind.REVIEW, "s1", DEADLINE + timedelta(days=1), 2))
    assert decision.deadline is not None and decision.deadline.details == audience


def test_met_and_withdrawn_reviews_are_final_but_a_finding_can_set_a_date_again() -> None:
    met = close(_review(DEADLINE), DeadlineKind.REVIEW, "s1", DeadlineState.MET)
    assert met.effect is Effect.MET
    assert met.deadline is not None
    assert decide(met.deadline, DeadlineChange(DeadlineKind.REVIEW, "s1", DEADLINE, 9)).effect is Effect.NONE
    assert close(met.deadline, DeadlineKind.REVIEW, "s1", DeadlineState.CANCELLED).effect is Effect.NONE
    early = close(None, DeadlineKind.REVIEW, "s9", DeadlineState.MET)
    assert early.deadline is not None and early.deadline.state is DeadlineState.MET
    assert (
        decide(early.deadline, DeadlineChange(DeadlineKind.REVIEW, "s9", DEADLINE, 1)).effect is Effect.NONE
    )
    cleared = decide(None, DeadlineChange(DeadlineKind.EMBARGO_END, "f1", None, 1))
    assert cleared.effect is Effect.CANCEL and cleared.deadline is not None
    again = decide(cleared.deadline, DeadlineChange(DeadlineKind.EMBARGO_END, "f1", DEADLINE, 2))
    assert again.effect is Effect.SCHEDULE


@pytest.mark.parametrize(
    ("viewer", "tlp", "audience", "expected"),
    [
        (BANK_A, Tlp.AMBER, FINANCE, True),  # named organisation
        (BANK_B, Tlp.AMBER, FINANCE, True),  # same sector, TLP allows sector-wide
        (BANK_B, Tlp.RED, FINANCE, False),  # RED: named organisations only
        (BANK_B, Tlp.AMBER_STRICT, FINANCE, False),  # AMBER+STRICT too
        (BANK_A, Tlp.AMBER_STRICT, FINANCE, True),
        (BANK_A, Tlp.RED, FINANCE, True),
        (BANK_B, Tlp.UNSPECIFIED, FINANCE, False),  # unspecified is treated as RED
        (WATER, Tlp.CLEAR, FINANCE, False),  # outside the audience
        (BANK_A, Tlp.CLEAR, Audience(), False),  # empty audience: deny by default
        (REVIEWER, Tlp.RED, Audience(), True),
        (LAB_A, Tlp.AMBER, FINANCE, False),
        (Viewer(ViewerRole.LAB, "bank-a"), Tlp.CLEAR, FINANCE, False),  # labs get no finding alerts
        (Viewer(ViewerRole.OTHER, "agency"), Tlp.CLEAR, FINANCE, False),
        (Viewer(ViewerRole.OPERATOR, "", frozenset({"finance"})), Tlp.CLEAR, FINANCE, False),
    ],
)
def test_finding_alert_visibility(viewer: Viewer, tlp: Tlp, audience: Audience, expected: bool) -> None:
    assert may_see(viewer, AlertKind.EMBARGO_END, audience, tlp) is expected


def test_review_alerts_reach_only_the_labs_own_organisation_and_reviewers() -> None:
    audience = Audience(lab_organisation="lab-a", reviewers=True)
    assert may_see(LAB_A, AlertKind.REVIEW_DEADLINE, audience, Tlp.AMBER_STRICT)
    assert may_see(REVIEWER, AlertKind.REVIEW_DEADLINE, audience, Tlp.AMBER_STRICT)
    assert not may_see(Viewer(ViewerRole.LAB, "lab-b"), AlertKind.REVIEW_DEADLINE, audience, Tlp.AMBER_STRICT)
    assert not may_see(BANK_A, AlertKind.REVIEW_MET, audience, Tlp.CLEAR)


def test_audience_tokens_narrow_sectors_by_tlp() -> None:
    assert audience_tokens(AlertKind.EMBARGO_END, FINANCE, Tlp.GREEN) == (
        "org:bank-a",
        "sector:finance",
        "reviewers",
    )
    assert audience_tokens(AlertKind.EMBARGO_END, FINANCE, Tlp.RED) == ("org:bank-a", "reviewers")
    assert audience_tokens(AlertKind.EMBARGO_END, FINANCE, Tlp.AMBER_STRICT) == ("org:bank-a", "reviewers")
    assert audience_tokens(AlertKind.REVIEW_DEADLINE, Audience(lab_organisation="lab-a"), Tlp.AMBER) == (
        "lab:lab-a",
        "reviewers",
    )


def test_matchers_parse_and_compare_multi_valued_labels() -> None:
    labels = {"kind": ("embargo_end",), "sector": ("energy", "finance"), "severity": ("info",)}
    assert Matcher.parse('kind="embargo_end"').matches(labels)
    assert Matcher.parse('kind=~"embargo_end|remediation_due"').matches(labels)
    assert not Matcher.parse('kind=~"embargo"').matches(labels)  # anchored
    assert Matcher.parse('sector="finance"').matches(labels)
    assert not Matcher.parse('sector!="finance"').matches(labels)
    assert Matcher.parse('sector!~"water|health.*"').matches(labels)
    assert Matcher.parse('threshold=""').matches(labels)  # absent label compares as empty
    assert str(Matcher.parse(r'kind="a\"b"')) == r'kind="a\"b"'
    for bad in ('colour="red"', "kind=review", 'kind=~"("'):
        with pytest.raises(ValueError):
            Matcher.parse(bad)


def _receiver(name: str, viewer: Viewer | None = None, **kwargs: object) -> Receiver:
    channel = kwargs.pop(
        "channel", WebhookChannel(f"https://{name}.example/hook?token=s3cr3t", secret_file="X")
    )
    return Receiver(name, channel, viewer, **kwargs)  # type: ignore[arg-type]


def _config(route: Route, *receivers: Receiver, inhibit: tuple[InhibitRule, ...] = ()) -> RoutingConfig:
    return RoutingConfig({DeadlineKind.REVIEW: REVIEW_POLICY}, route, {r.name: r for r in receivers}, inhibit)


def _alert(kind_deadline: DeadlineKind, threshold: str, audience: Audience, tlp: Tlp = Tlp.AMBER):  # type: ignore[no-untyped-def]
    deadline = Deadline(
        f"{kind_deadline.value}/x1",
        kind_deadline,
        "x1",
        DEADLINE,
        1,
        1,
        DeadlineState.ACTIVE,
        Details(audience, tlp, "Bug"),
    )
    reminder = next(r for r in plan(REVIEW_POLICY, DEADLINE) if r.threshold == threshold)
    return reminder_alert(deadline, reminder, DEADLINE, late=False)


def test_routing_tree_inherits_settings_and_honours_continue() -> None:
    route = Route(
        receiver="reviewers",
        group_wait=timedelta(seconds=10),
        routes=(
            Route(matchers=(Matcher.parse('kind="embargo_end"'),), receiver="bank-a", continue_matching=True),
            Route(matchers=(Matcher.parse('sector="finance"'),), receiver="bank-b", group_by=("kind",)),
            Route(matchers=(Matcher.parse('kind="embargo_end"'),), receiver="never"),
        ),
    )
    targets = resolve(route, {"kind": ("embargo_end",), "sector": ("finance",)})
    assert [(t.receiver, t.group_wait, t.group_by) for t in targets] == [
        ("bank-a", timedelta(seconds=10), ("kind", "subject_id")),
        ("bank-b", timedelta(seconds=10), ("kind",)),
    ]
    assert [t.receiver for t in resolve(route, {"kind": ("review_deadline",)})] == ["reviewers"]


def test_a_route_cannot_widen_the_audience_of_an_alert() -> None:
    everyone = Route(
        receiver="bank-a", routes=(Route(receiver="bank-a", continue_matching=True), Route(receiver="water"))
    )
    config = _config(everyone, _receiver("bank-a", BANK_A), _receiver("water", WATER))
    alert = _alert(DeadlineKind.EMBARGO_END, "T-3d", FINANCE)
    notifications = config.notifications(alert)
    assert [(n.receiver, n.recipient) for n in notifications] == [("bank-a", "https://bank-a.example/hook")]
    red = _alert(DeadlineKind.EMBARGO_END, "T-3d", Audience(sectors=frozenset({"finance"})), Tlp.RED)
    assert config.notifications(red) == []


def test_lab_contacts_receive_only_their_review_alerts() -> None:
    contacts = _receiver("lab", lab_contacts=True, channel=EmailChannel())
    config = _config(Route(receiver="lab"), contacts)
    review = _alert(
        DeadlineKind.REVIEW,
        "T-1d",
        Audience(lab_organisation="lab-a", contacts=(Contact("Ada", "ada@lab-a.example"),)),
    )
    assert [n.recipient for n in config.notifications(review)] == ["ada@lab-a.example"]
    assert config.notifications(_alert(DeadlineKind.EMBARGO_END, "T-1d", FINANCE)) == []
    with pytest.raises(ValueError, match="email"):
        Receiver("lab", WebhookChannel("https://x", secret_file="X"), None, lab_contacts=True)
    with pytest.raises(ValueError, match="exactly one"):
        Receiver("nobody", EmailChannel(("a@b",)), None)


def test_routes_must_name_known_receivers_and_inhibit_rules_compare_one_subject() -> None:
    with pytest.raises(ValueError, match="unknown receivers: ghost"):
        _config(Route(receiver="ghost"))
    with pytest.raises(ValueError, match="subject_id"):
        InhibitRule((), (), equal=("kind",))


def test_a_met_review_inhibits_its_overdue_alerts_only() -> None:
    rule = InhibitRule((Matcher.parse('kind="review_met"'),), (Matcher.parse('stage="overdue"'),))
    config = _config(Route(receiver="r"), _receiver("r", REVIEWER), inhibit=(rule,))
    audience = Audience(lab_organisation="lab-a")
    overdue = _alert(DeadlineKind.REVIEW, "overdue+1d", audience)
    due = _alert(DeadlineKind.REVIEW, "T-0", audience)
    met = replace(due, alert_id="met", kind=AlertKind.REVIEW_MET, threshold="met")
    other_subject = replace(met, subject_id="x2")
    assert config.inhibited(overdue, [met])
    assert not config.inhibited(due, [met])
    assert not config.inhibited(overdue, [other_subject])
    assert not config.inhibited(overdue, [])


def test_silences_are_scoped_to_the_creators_organisation_and_expire() -> None:
    now = DEADLINE
    silence = Silence(
        "s", (Matcher.parse('kind="embargo_end"'),), now, now + timedelta(hours=1), "op", "bank-a", "", now
    )
    labels = {"kind": ("embargo_end",)}
    assert silence.silences(labels, "bank-a", now)
    assert not silence.silences(labels, "bank-b", now)
    assert not silence.silences(labels, "bank-a", now + timedelta(hours=1))
    assert not silence.silences({"kind": ("review_deadline",)}, "bank-a", now)
    assert silence_scope(REVIEWER) == "" and silence_scope(BANK_A) == "bank-a"
    assert silence_scope(Viewer(ViewerRole.OTHER, "root")) is None
    assert may_manage(REVIEWER, silence) and may_manage(BANK_A, silence) and not may_manage(BANK_B, silence)


def test_http_and_smtp_outcomes() -> None:
    assert classify_http(204).result is Result.DELIVERED
    assert classify_http(500).result is Result.RETRY
    assert classify_http(429, timedelta(seconds=30)).retry_after == timedelta(seconds=30)
    assert classify_http(400).result is Result.FAILED
    assert classify_http(301).result is Result.FAILED
    assert classify_smtp(451, "try later").result is Result.RETRY
    assert classify_smtp(550, "no such user").result is Result.FAILED
    policy = RetryPolicy(max_attempts=3)
    assert settle(Outcome(Result.RETRY, 500, "HTTP 500"), 2, policy).result is Result.RETRY
    assert settle(Outcome(Result.RETRY, 500, "HTTP 500"), 3, policy).result is Result.FAILED


def test_backoff_grows_exponentially_with_jitter_up_to_the_maximum() -> None:
    policy = RetryPolicy(initial=timedelta(seconds=10), maximum=timedelta(minutes=2))
    rng = random.Random(1)
    for attempt, ceiling in ((1, 10), (2, 20), (3, 40), (4, 80), (5, 120), (9, 120)):
        delays = {policy.delay(attempt, rng) for _ in range(50)}
        assert all(timedelta(seconds=ceiling / 2) <= d <= timedelta(seconds=ceiling) for d in delays)
        assert len(delays) > 1
    assert policy.delay(1, rng, retry_after=timedelta(seconds=90)) == timedelta(seconds=90)
    assert policy.delay(1, rng, retry_after=timedelta(hours=5)) == timedelta(minutes=2)


def test_signature_verifies_only_for_the_same_secret_body_and_a_fresh_timestamp() -> None:
    body = b'{"alerts":[]}'
    header = sign(b"secret", 1_700_000_000, body)
    assert verify_signature(b"secret", header, body, now=1_700_000_100)
    assert not verify_signature(b"other", header, body, now=1_700_000_100)
    assert not verify_signature(b"secret", header, body + b" ", now=1_700_000_100)
    assert not verify_signature(b"secret", header, body, now=1_700_000_000 + 301)
    assert not verify_signature(b"secret", "v1=abc", body, now=1_700_000_000)


def test_webhook_recipient_is_logged_without_credentials_or_query() -> None:
    channel = WebhookChannel("https://user:pw@hooks.example:8443/p/a?token=s3cr3t#x", secret_file="X")
    assert channel.recipient == "https://hooks.example:8443/p/a"


def test_overdue_alert_text_says_how_long_ago() -> None:
    alert = _alert(DeadlineKind.REVIEW, "overdue+1d", Audience(lab_organisation="lab-a"))
    assert alert.title == "Review deadline passed 1 day ago: submission x1"
    assert alert.stage is Stage.OVERDUE and alert.severity is Severity.CRITICAL
    advance = _alert(DeadlineKind.EMBARGO_END, "T-3d", FINANCE)
    assert advance.title == "Embargo end in 3 days: Bug"
