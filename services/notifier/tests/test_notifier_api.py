"""The gRPC API on loopback behind real token introspection: what each caller may see, acknowledgements,
silences, the alert stream, and field-naming INVALID_ARGUMENT errors."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from preflight.notifier.v1 import events_pb2 as notifier_events
from preflight.notifier.v1 import notifier_pb2
from preflight_common.fields import timestamp
from preflight_notifier.bootstrap import Components
from preflight_testkit.notifier import (
    DAY,
    START,
    Api,
    ManualClock,
    alerts_fired,  # noqa: F401 - a fixture
    matcher,
    publish_findings,
    rows,
    sqlite_db_url,  # noqa: F401 - the `db_url` fixture, on SQLite only
)
from preflight_testkit.rpc import field_violations


async def visible(api: Api, who: str, **filters: object) -> list[str]:
    response = await api.stub.ListAlerts(notifier_pb2.ListAlertsRequest(**filters), metadata=api.auth(who))  # type: ignore[arg-type]
    return sorted(r.alert.subject_id for r in response.alerts)


async def test_calls_without_valid_credentials_are_refused(api: Api) -> None:
    for metadata in ((), (("authorization", "Bearer pft_nope"),)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await api.stub.ListAlerts(notifier_pb2.ListAlertsRequest(), metadata=metadata)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.usefixtures("alerts_fired")
async def test_each_caller_lists_only_the_alerts_it_may_see(api: Api) -> None:
    assert await visible(api, "reviewer") == ["f-1", "f-2", "f-3", "sub-1"]
    assert await visible(api, "lab-a") == ["sub-1"]
    assert await visible(api, "lab-b") == []
    assert await visible(api, "bank-a") == ["f-1", "f-3"]  # named; sector-wide GREEN; not sector-wide RED
    assert await visible(api, "bank-b") == ["f-3"]
    assert await visible(api, "water") == []
    assert await visible(api, "admin") == []
    assert await visible(api, "reviewer", kind=notifier_events.ALERT_KIND_REVIEW_DEADLINE) == ["sub-1"]
    assert await visible(api, "reviewer", subject_id="f-2") == ["f-2"]


@pytest.mark.usefixtures("alerts_fired")
async def test_a_probe_lists_no_alert_and_may_call_nothing_else(api: Api) -> None:
    probe = api.auth("probe")
    listed = await api.stub.ListAlerts(notifier_pb2.ListAlertsRequest(page_size=1), metadata=probe)
    assert list(listed.alerts) == [] and listed.next_page_token == ""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await api.stub.ListSilences(notifier_pb2.ListSilencesRequest(), metadata=probe)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.usefixtures("alerts_fired")
async def test_pages_cover_every_visible_alert_once(api: Api) -> None:
    seen: list[int] = []
    token = ""
    while True:
        page = await api.stub.ListAlerts(
            notifier_pb2.ListAlertsRequest(page_size=1, page_token=token), metadata=api.auth("bank-a")
        )
        seen += [r.sequence for r in page.alerts]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 2 and seen == sorted(seen, reverse=True)


async def test_bad_list_requests_name_the_field(api: Api) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await api.stub.ListAlerts(
            notifier_pb2.ListAlertsRequest(page_size=501, page_token="abc"), metadata=api.auth("reviewer")
        )
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(bad.value)) == ["page_size", "page_token"]


@pytest.mark.usefixtures("alerts_fired")
async def test_acknowledgements_belong_to_the_callers_organisation(api: Api, notifier: Components) -> None:
    listed = await api.stub.ListAlerts(
        notifier_pb2.ListAlertsRequest(subject_id="f-1"), metadata=api.auth("bank-a")
    )
    alert_id = listed.alerts[0].alert.alert_id
    acked = await api.stub.AcknowledgeAlert(
        notifier_pb2.AcknowledgeAlertRequest(alert_id=alert_id, comment="patched in staging"),
        metadata=api.auth("bank-a"),
    )
    assert acked.alert.acknowledged and acked.alert.acknowledged_by == "ops-a"
    mine = await api.stub.ListAlerts(notifier_pb2.ListAlertsRequest(), metadata=api.auth("bank-a"))
    assert {r.alert.subject_id: r.acknowledged for r in mine.alerts} == {"f-1": True, "f-3": False}
    pending = await visible(api, "bank-a", unacknowledged_only=True)
    assert pending == ["f-3"]
    theirs = await api.stub.ListAlerts(
        notifier_pb2.ListAlertsRequest(subject_id="f-1"), metadata=api.auth("reviewer")
    )
    assert not theirs.alerts[0].acknowledged
    for who, request, code in (
        ("bank-b", notifier_pb2.AcknowledgeAlertRequest(alert_id=alert_id), grpc.StatusCode.NOT_FOUND),
        ("bank-a", notifier_pb2.AcknowledgeAlertRequest(alert_id="no-such"), grpc.StatusCode.NOT_FOUND),
        ("bank-a", notifier_pb2.AcknowledgeAlertRequest(), grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await api.stub.AcknowledgeAlert(request, metadata=api.auth(who))
        assert refused.value.code() is code
    assert len(rows(notifier, "SELECT * FROM acknowledgements")) == 1


async def test_silences_are_scoped_validated_and_suppress_deliveries_until_expired(
    api: Api, notifier: Components, clock: ManualClock
) -> None:
    ends = timestamp(clock() + 2 * DAY)
    created = await api.stub.CreateSilence(
        notifier_pb2.CreateSilenceRequest(
            matchers=[matcher("kind", "embargo_end")], ends_at=ends, comment="freeze"
        ),
        metadata=api.auth("bank-a"),
    )
    silence = created.silence
    assert (silence.organisation, silence.created_by, silence.state) == (
        "bank-a",
        "ops-a",
        notifier_pb2.SILENCE_STATE_ACTIVE,
    )
    reviewers = await api.stub.CreateSilence(
        notifier_pb2.CreateSilenceRequest(
            matchers=[matcher("severity", "info|warning", notifier_pb2.MATCH_OPERATOR_REGEX)],
            starts_at=timestamp(clock() + DAY),
            ends_at=ends,
        ),
        metadata=api.auth("reviewer"),
    )
    assert (
        reviewers.silence.organisation == "" and reviewers.silence.state == notifier_pb2.SILENCE_STATE_PENDING
    )
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await api.stub.CreateSilence(
            notifier_pb2.CreateSilenceRequest(matchers=[matcher("kind", "x")], ends_at=ends),
            metadata=api.auth("admin"),
        )
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await api.stub.CreateSilence(
            notifier_pb2.CreateSilenceRequest(
                matchers=[
                    matcher("colour", "red"),
                    matcher("kind", "(", notifier_pb2.MATCH_OPERATOR_REGEX),
                    notifier_pb2.Matcher(label="kind", value="x"),
                ],
                ends_at=timestamp(clock() - DAY),
                comment="x" * 1001,
            ),
            metadata=api.auth("bank-b"),
        )
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(bad.value)) == [
        "matchers[0]",
        "matchers[1]",
        "matchers[2].operator",
        "ends_at",
        "comment",
    ]
    listed = {
        who: [
            s.silence_id
            for s in (
                await api.stub.ListSilences(notifier_pb2.ListSilencesRequest(), metadata=api.auth(who))
            ).silences
        ]
        for who in ("bank-a", "bank-b", "reviewer")
    }
    assert listed["bank-a"] == [silence.silence_id] and listed["bank-b"] == []
    assert set(listed["reviewer"]) == {silence.silence_id, reviewers.silence.silence_id}

    # The silence suppresses bank-a's delivery of a matching alert.
    publish_findings(notifier)
    clock.set(START + DAY)
    notifier.scheduler.run_pass()
    clock.advance(seconds=30)
    notifier.dispatcher.run_pass()
    statuses = rows(
        notifier,
        "SELECT g.receiver, n.status FROM notifications n JOIN alert_groups g USING (group_key) "
        "WHERE g.receiver = 'bank-a'",
    )
    assert {r.status for r in statuses} == {"silenced"}

    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await api.stub.ExpireSilence(
            notifier_pb2.ExpireSilenceRequest(silence_id=silence.silence_id), metadata=api.auth("bank-b")
        )
    assert foreign.value.code() is grpc.StatusCode.NOT_FOUND
    expired = await api.stub.ExpireSilence(
        notifier_pb2.ExpireSilenceRequest(silence_id=silence.silence_id), metadata=api.auth("bank-a")
    )
    assert expired.silence.state == notifier_pb2.SILENCE_STATE_EXPIRED
    assert (
        await api.stub.ListSilences(notifier_pb2.ListSilencesRequest(), metadata=api.auth("bank-a"))
    ).silences == []
    everything = await api.stub.ListSilences(
        notifier_pb2.ListSilencesRequest(include_expired=True), metadata=api.auth("bank-a")
    )
    assert [s.silence_id for s in everything.silences] == [silence.silence_id]


async def test_the_alert_stream_carries_only_visible_alerts_and_resumes_without_a_gap(
    api: Api, notifier: Components, clock: ManualClock
) -> None:
    from_start = notifier_pb2.SubscribeAlertsRequest(after_sequence=0)
    bank_b = api.stub.SubscribeAlerts(from_start, metadata=api.auth("bank-b"))
    reviewer = api.stub.SubscribeAlerts(from_start, metadata=api.auth("reviewer"))
    publish_findings(notifier)
    clock.set(START + DAY)
    notifier.scheduler.run_pass()
    first_for_b = await asyncio.wait_for(bank_b.read(), timeout=10)
    assert first_for_b.alert.alert.subject_id == "f-3"  # f-1 (bank-a only) and f-2 (RED) never reach bank-b
    received = [(await asyncio.wait_for(reviewer.read(), timeout=10)).alert for _ in range(3)]
    assert [r.alert.subject_id for r in received] == ["f-1", "f-2", "f-3"]
    bank_b.cancel()
    reviewer.cancel()
    resumed = api.stub.SubscribeAlerts(
        notifier_pb2.SubscribeAlertsRequest(
            after_sequence=received[0].sequence, kinds=[notifier_events.ALERT_KIND_EMBARGO_END]
        ),
        metadata=api.auth("reviewer"),
    )
    again = [(await asyncio.wait_for(resumed.read(), timeout=10)).alert.alert.subject_id for _ in range(2)]
    assert again == ["f-2", "f-3"]
    resumed.cancel()
