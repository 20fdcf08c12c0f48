"""The SDK's asyncio notifier client against the real API on loopback: every method as the role it
is for, and the typed errors of the wrong caller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.common.v1 import common_pb2
from preflight.notifier.v1 import events_pb2 as notifier_events
from preflight.notifier.v1 import notifier_pb2
from preflight.sdk import AsyncPreflight, InvalidArgument, NotFound, PermissionDenied
from preflight.sdk.aio import AsyncNotifierClient
from preflight_notifier.bootstrap import Components
from preflight_testkit.notifier import (
    DAY,
    START,
    Api,
    ManualClock,
    alerts_fired,  # noqa: F401 - a fixture
    apply,
    finding_notice,
    matcher,
    publish_findings,
    sqlite_db_url,  # noqa: F401 - the `db_url` fixture, on SQLite only
)

Connect = Callable[[str], AsyncNotifierClient]


@pytest.fixture
async def connect(api: Api) -> AsyncIterator[Connect]:
    """`connect(who)`: the notifier client of a deployment, as one of the API's principals."""
    opened: list[AsyncPreflight] = []

    def as_(who: str) -> AsyncNotifierClient:
        deployment = AsyncPreflight(targets={"notifier": api.target}, token=api.tokens[who])
        opened.append(deployment)
        return deployment.notifier

    yield as_
    for deployment in opened:
        await deployment.close()


@pytest.mark.usefixtures("alerts_fired")
async def test_alerts_are_listed_paged_and_acknowledged(connect: Connect) -> None:
    bank_a, bank_b = connect("bank-a"), connect("bank-b")
    assert [r.alert.subject_id async for r in bank_a.iter_alerts(page_size=1)] == ["f-3", "f-1"]
    (record,) = (await bank_a.list_alerts(subject_id="f-1")).alerts
    acknowledged = await bank_a.acknowledge_alert(record.alert.alert_id, comment="patched")
    assert acknowledged.acknowledged and acknowledged.acknowledged_by == "ops-a"
    pending = [r.alert.subject_id async for r in bank_a.iter_alerts(unacknowledged_only=True)]
    assert pending == ["f-3"]
    deadlines = await connect("reviewer").list_alerts(kind=notifier_events.ALERT_KIND_REVIEW_DEADLINE)
    assert [r.alert.subject_id for r in deadlines.alerts] == ["sub-1"]
    with pytest.raises(NotFound):
        await bank_b.acknowledge_alert(record.alert.alert_id)
    with pytest.raises(InvalidArgument) as bad:
        await bank_a.list_alerts(page_size=501)
    assert [v.field for v in bad.value.field_violations] == ["page_size"]


async def test_silences_are_created_listed_and_expired_by_their_organisation(
    connect: Connect, clock: ManualClock
) -> None:
    bank_a = connect("bank-a")
    embargoes = matcher("kind", "embargo_end")
    silence = await bank_a.create_silence([embargoes], clock() + 2 * DAY, comment="freeze")
    assert silence.organisation == "bank-a" and silence.state == notifier_pb2.SILENCE_STATE_ACTIVE
    later = await bank_a.create_silence([embargoes], clock() + 2 * DAY, starts_at=clock() + DAY)
    assert later.state == notifier_pb2.SILENCE_STATE_PENDING
    assert {s.silence_id for s in await bank_a.list_silences()} == {silence.silence_id, later.silence_id}
    with pytest.raises(PermissionDenied):
        await connect("admin").create_silence([embargoes], clock() + DAY)
    with pytest.raises(NotFound):
        await connect("bank-b").expire_silence(silence.silence_id)
    expired = await bank_a.expire_silence(silence.silence_id)
    assert expired.state == notifier_pb2.SILENCE_STATE_EXPIRED
    assert [s.silence_id for s in await bank_a.list_silences()] == [later.silence_id]
    assert len(await bank_a.list_silences(include_expired=True)) == 2


async def test_the_alert_subscription_yields_visible_alerts_and_resumes_after_a_sequence(
    connect: Connect, notifier: Components, clock: ManualClock
) -> None:
    publish_findings(notifier)
    clock.set(START + DAY)
    notifier.scheduler.run_pass()
    reviewer = connect("reviewer")
    following = reviewer.subscribe_alerts(after_sequence=0)
    received = [await asyncio.wait_for(anext(following), timeout=10) for _ in range(3)]
    await following.aclose()
    assert [r.alert.subject_id for r in received] == ["f-1", "f-2", "f-3"]
    resumed = reviewer.subscribe_alerts(after_sequence=received[0].sequence)
    again = [(await asyncio.wait_for(anext(resumed), timeout=10)).alert.subject_id for _ in range(2)]
    await resumed.aclose()
    assert again == ["f-2", "f-3"]
    operator = connect("bank-b").subscribe_alerts(
        after_sequence=0, kinds=[notifier_events.ALERT_KIND_EMBARGO_END]
    )
    assert (await asyncio.wait_for(anext(operator), timeout=10)).alert.subject_id == "f-3"
    await operator.aclose()


async def test_a_follow_resumes_across_a_notifier_restart_without_losing_or_repeating_alerts(
    api: Api, connect: Connect, notifier: Components, clock: ManualClock
) -> None:
    publish_findings(notifier)
    clock.set(START + DAY)
    notifier.scheduler.run_pass()
    following = connect("reviewer").subscribe_alerts(after_sequence=0)

    async def next_subject() -> str:
        return (await asyncio.wait_for(anext(following), timeout=60)).alert.subject_id

    assert [await next_subject(), await next_subject()] == ["f-1", "f-2"]
    # The notifier goes away mid-follow (its stream ends UNAVAILABLE), alerts fire while it is
    # down, and another notifier comes up at the same address.
    await api.stop()
    for finding_id in ("f-4", "f-5"):
        notice = finding_notice(finding_id, embargo_end=START + 4 * DAY, tlp=common_pb2.TLP_GREEN)
        apply(notifier, clearinghouse_events.FindingPublished(finding=notice))
    notifier.scheduler.run_pass()
    await api.start()
    assert [await next_subject() for _ in range(3)] == ["f-3", "f-4", "f-5"]
    # Nothing is yielded twice: the next alert to fire is the next one the follow yields.
    apply(
        notifier,
        clearinghouse_events.FindingPublished(finding=finding_notice("f-6", embargo_end=START + 4 * DAY)),
    )
    notifier.scheduler.run_pass()
    assert await next_subject() == "f-6"
    await following.aclose()
