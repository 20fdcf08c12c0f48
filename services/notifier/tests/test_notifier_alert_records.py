"""The records a fired alert becomes: one per registered recipient, on its own topic, naming it alone;
and over gRPC an operator learns no other recipient either."""

from __future__ import annotations

from datetime import timedelta

import pytest
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.notifier.v1 import events_pb2, notifier_pb2
from preflight_common.bus import Organisation, Participants
from preflight_common.config import Topics
from preflight_common.envelope import EventRegistry, decode_record
from preflight_notifier.adapters.codec import alert_record
from preflight_notifier.adapters.routing_file import default_routing_path, load_routing
from preflight_notifier.bootstrap import Components
from preflight_notifier.domain.alerts import Alert
from preflight_notifier.domain.model import AlertKind, Audience, Contact, Severity, Tlp
from preflight_notifier.service_layer.alerting import AlertSink
from preflight_testkit.notifier import START, Api, ManualClock, apply, finding_notice

TOPICS = Topics(alerts_prefix="alerts")
PARTICIPANTS = Participants(
    (
        Organisation("bank-a", ("finance",)),
        Organisation("bank-b", ("finance",)),
        Organisation("aqua-co", ("water",)),
    )
)
REGISTRY = EventRegistry([events_pb2.Alert])


def sink(participants: Participants = PARTICIPANTS) -> AlertSink:
    routing = load_routing(default_routing_path())
    return AlertSink(routing, TOPICS, "preflight.notifier", participants, alert_record)


def alert(
    tlp: Tlp,
    organisations: tuple[str, ...] = (),
    sectors: tuple[str, ...] = (),
    kind: AlertKind = AlertKind.EMBARGO_END,
) -> Alert:
    return Alert(
        alert_id="a-1",
        kind=kind,
        subject_id="f-1",
        threshold="T-1d",
        deadline_at=START + timedelta(days=1),
        due_at=START,
        fired_at=START,
        late=False,
        deadline_version=1,
        severity=Severity.WARNING,
        title="Embargo end in 1 day: Heap overflow in libexample",
        summary="The embargo ends 2026-07-02 09:00 UTC.",
        audience=Audience(
            organisations=frozenset(organisations),
            sectors=frozenset(sectors),
            lab_organisation="lab-a" if kind.is_review else "",
            contacts=(Contact("Ada", "ada@lab-a.example"),) if kind.is_review else (),
        ),
        tlp=tlp,
    )


def published(a: Alert, participants: Participants = PARTICIPANTS) -> dict[str, events_pb2.Alert]:
    """Topic → the decoded Alert the notifier puts there."""
    out: dict[str, events_pb2.Alert] = {}
    for topic, record in sink(participants).records(a):
        _, payload = decode_record(record.headers, record.value, REGISTRY)
        assert isinstance(payload, events_pb2.Alert)
        assert topic not in out
        out[topic] = payload
    return out


@pytest.mark.parametrize("tlp", [Tlp.RED, Tlp.AMBER_STRICT, Tlp.UNSPECIFIED])
def test_no_sector_record_when_the_tlp_reaches_named_organisations_only(tlp: Tlp) -> None:
    records = published(alert(tlp, organisations=("bank-a",), sectors=("finance", "water")))
    assert list(records) == ["alerts.org.bank-a"]


@pytest.mark.parametrize("tlp", [Tlp.CLEAR, Tlp.GREEN, Tlp.AMBER])
def test_a_sector_record_when_the_tlp_allows_sector_wide_sharing(tlp: Tlp) -> None:
    records = published(alert(tlp, organisations=("bank-a",), sectors=("finance", "water")))
    assert sorted(records) == ["alerts.org.bank-a", "alerts.sector.finance", "alerts.sector.water"]


def test_an_unregistered_audience_gets_no_record() -> None:
    records = published(alert(Tlp.GREEN, organisations=("bank-a", "unknown-org"), sectors=("energy",)))
    assert list(records) == ["alerts.org.bank-a"]
    assert published(alert(Tlp.GREEN, organisations=("bank-a",)), Participants()) == {}


def test_a_record_never_names_another_recipient() -> None:
    a = alert(Tlp.AMBER, organisations=("bank-a", "bank-b", "aqua-co"), sectors=("finance", "water"))
    records = sink().records(a)
    assert len(records) == 5
    for topic, record in records:
        recipient = topic.rsplit(".", 1)[1]
        others = {"bank-a", "bank-b", "aqua-co", "finance", "water"} - {recipient}
        headers = {key: value for key, value in record.headers}
        assert "ce_audience" not in headers
        for name in others:
            assert name.encode() not in record.value, (topic, name)
            assert all(name.encode() not in value for value in headers.values()), (topic, name)
        _, payload = decode_record(record.headers, record.value, REGISTRY)
        assert isinstance(payload, events_pb2.Alert)
        operators = payload.audience.operators
        assert [*operators.organisations, *operators.sectors] == [recipient]
        assert payload.alert_id == "a-1"


def test_record_ids_differ_per_topic_and_repeat_for_the_same_alert() -> None:
    a = alert(Tlp.GREEN, organisations=("bank-a",), sectors=("finance",))
    first = {topic: r.attributes.id for topic, r in sink().records(a) if r.attributes}
    again = {topic: r.attributes.id for topic, r in sink().records(a) if r.attributes}
    assert first == again
    assert len(set(first.values())) == 2


def test_review_alerts_stay_on_the_review_alerts_topic() -> None:
    review = alert(Tlp.UNSPECIFIED, organisations=("bank-a",), kind=AlertKind.REVIEW_DEADLINE)
    records = sink().records(review)
    assert [topic for topic, _ in records] == [TOPICS.review_alerts]
    assert b"ada@lab-a.example" not in records[0][1].value


async def test_over_grpc_an_operator_learns_only_how_an_alert_reaches_it(
    notifier: Components, clock: ManualClock, api: Api
) -> None:
    notice = finding_notice(
        "f-1",
        embargo_end=START + 4 * timedelta(days=1),
        organisations=("bank-a", "bank-b"),
        sectors=("finance", "water"),
    )
    apply(notifier, clearinghouse_events.FindingPublished(finding=notice))
    clock.set(START + timedelta(days=1))
    notifier.scheduler.run_pass()

    async def audience(who: str) -> tuple[list[str], list[str]]:
        listed = await api.stub.ListAlerts(notifier_pb2.ListAlertsRequest(), metadata=api.auth(who))
        (record,) = listed.alerts
        operators = record.alert.audience.operators
        return list(operators.organisations), list(operators.sectors)

    assert await audience("bank-a") == (["bank-a"], ["finance"])
    assert await audience("water") == ([], ["water"])
    assert await audience("reviewer") == (["bank-a", "bank-b"], ["finance", "water"])
