"""Who owns, writes and reads what on the bus: topic names, audiences and least-privilege grants."""

from __future__ import annotations

import pytest
from preflight_common import bus
from preflight_common.bus import Grant, Operation, Pattern, ResourceType
from preflight_common.config import Topics

TOPICS = Topics()
PARTICIPANTS = bus.Participants(
    (bus.Organisation("bank-a", ("finance",)), bus.Organisation("grid-b", ("energy", "finance")))
)


def topic_rights(grants: list[Grant]) -> dict[str, set[Operation]]:
    """Operations per literal topic name (prefixed grants are keyed `prefix*`)."""
    rights: dict[str, set[Operation]] = {}
    for grant in grants:
        if grant.resource_type is ResourceType.TOPIC:
            key = grant.name if grant.pattern is Pattern.LITERAL else f"{grant.name}*"
            rights.setdefault(key, set()).add(grant.operation)
    return rights


@pytest.mark.parametrize("prefix", ["has space", "slash/topic", "ü", "x" * 239])
def test_an_alert_topic_kafka_would_refuse_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="not a legal Kafka topic name"):
        bus.org_alert_topic(Topics(alerts_prefix=prefix), "bank-a")


def test_an_alert_topic_of_the_longest_legal_name_passes() -> None:
    topic = bus.org_alert_topic(Topics(alerts_prefix="x" * 238), "bank-a")
    assert len(topic) == 249


def test_audience_topics_are_named_after_a_valid_audience_only() -> None:
    assert bus.org_alert_topic(TOPICS, "bank-a") == "preflight.alerts.v1.org.bank-a"
    assert bus.sector_alert_topic(TOPICS, "finance") == "preflight.alerts.v1.sector.finance"
    for name in ("Bank-A", "bank.a", "-bank", "bank_a", "a" * 64, "../x"):
        with pytest.raises(ValueError, match="organisation"):
            bus.org_alert_topic(TOPICS, name)
        with pytest.raises(ValueError, match="sector"):
            bus.sector_alert_topic(TOPICS, name)


def test_only_registered_audiences_have_alert_topics() -> None:
    assert bus.alert_topics(TOPICS, PARTICIPANTS) == [
        "preflight.alerts.v1.org.bank-a",
        "preflight.alerts.v1.org.grid-b",
        "preflight.alerts.v1.sector.energy",
        "preflight.alerts.v1.sector.finance",
    ]
    assert PARTICIPANTS.organisation("bank-z") is None
    assert bus.alert_topics(TOPICS, bus.Participants()) == []


def test_participants_files_are_checked() -> None:
    parsed = bus.Participants.parse({"organisations": [{"name": "bank-a", "sectors": ["finance"]}]})
    assert parsed.organisation("bank-a") == bus.Organisation("bank-a", ("finance",))
    assert bus.Participants.parse(None) == bus.Participants()
    for bad in (
        {"organisations": [{"name": "bank-a"}, {"name": "bank-a"}]},
        {"organisations": [{"name": "Bank A"}]},
        {"organisations": [{"name": "bank-a", "sectors": "finance"}]},
        {"organisations": [{"sectors": ["finance"]}]},
        {"organisations": "bank-a"},
        {"operators": []},
    ):
        with pytest.raises(ValueError):
            bus.Participants.parse(bad)


def test_each_topic_has_one_owner_and_alert_topics_are_the_notifiers() -> None:
    assert bus.owner_of(TOPICS, TOPICS.submissions) == "intake"
    assert bus.owner_of(TOPICS, TOPICS.benchmark_results) == "benchmark"
    assert bus.owner_of(TOPICS, TOPICS.findings) == "clearinghouse"
    assert bus.owner_of(TOPICS, TOPICS.review_alerts) == "notifier"
    assert bus.owner_of(TOPICS, "preflight.alerts.v1.org.bank-a") == "notifier"
    assert bus.owner_of(TOPICS, "preflight.alerts.v1.org.bank-a.dlq") is None
    assert bus.owner_of(TOPICS, Topics.dlq(TOPICS.submissions)) is None
    assert bus.owner_of(TOPICS, "somebody.elses.topic") is None


def test_a_service_writes_what_it_owns_and_the_dlqs_of_what_it_reads() -> None:
    grants = bus.service_grants("intake", TOPICS)
    assert {g.principal for g in grants} == {"User:preflight-intake"}
    rights = topic_rights(grants)
    assert rights == {
        TOPICS.submissions: {Operation.WRITE, Operation.DESCRIBE},
        TOPICS.benchmark_jobs: {Operation.READ, Operation.DESCRIBE},
        TOPICS.benchmark_results: {Operation.READ, Operation.DESCRIBE},
        TOPICS.reviews: {Operation.READ, Operation.DESCRIBE},
        Topics.dlq(TOPICS.benchmark_jobs): {Operation.WRITE, Operation.DESCRIBE},
        Topics.dlq(TOPICS.benchmark_results): {Operation.WRITE, Operation.DESCRIBE},
        Topics.dlq(TOPICS.reviews): {Operation.WRITE, Operation.DESCRIBE},
    }
    groups = [g for g in grants if g.resource_type is ResourceType.GROUP]
    assert groups == [
        Grant(
            "User:preflight-intake", ResourceType.GROUP, "preflight-intake", Pattern.PREFIXED, Operation.READ
        )
    ]


@pytest.mark.parametrize("service", bus.SERVICES)
def test_no_service_may_write_a_topic_another_service_owns(service: str) -> None:
    rights = topic_rights(bus.service_grants(service, TOPICS))
    for field, owner in bus.OWNERS.items():
        topic = getattr(TOPICS, field)
        assert (Operation.WRITE in rights.get(topic, set())) == (owner == service), topic
        assert (Operation.READ in rights.get(topic, set())) == (field in bus.CONSUMES[service]), topic
    assert (f"{TOPICS.alerts_prefix}.*" in rights) == (service == "notifier")


def test_an_operator_reads_its_own_and_its_sectors_alerts_and_writes_nothing() -> None:
    grid = PARTICIPANTS.organisation("grid-b")
    assert grid is not None
    grants = bus.operator_grants(grid, TOPICS)
    assert {g.principal for g in grants} == {"User:operator-grid-b"}
    assert topic_rights(grants) == {
        "preflight.alerts.v1.org.grid-b": {Operation.READ, Operation.DESCRIBE},
        "preflight.alerts.v1.sector.energy": {Operation.READ, Operation.DESCRIBE},
        "preflight.alerts.v1.sector.finance": {Operation.READ, Operation.DESCRIBE},
    }
    groups = [g for g in grants if g.resource_type is ResourceType.GROUP]
    assert [(g.name, g.pattern) for g in groups] == [("operator-grid-b.", Pattern.PREFIXED)]


def test_the_deployment_grants_are_every_principals_and_no_more() -> None:
    grants = bus.grants(TOPICS, PARTICIPANTS)
    assert grants == sorted(set(grants))
    assert {g.principal for g in grants} == {
        *(f"User:preflight-{service}" for service in bus.SERVICES),
        "User:operator-bank-a",
        "User:operator-grid-b",
    }
    readers_of_findings = {
        g.principal for g in grants if g.name == TOPICS.findings and g.operation is Operation.READ
    }
    assert readers_of_findings == {"User:preflight-notifier"}
    readers_of_review_alerts = {
        g.principal for g in grants if g.name == TOPICS.review_alerts and g.operation is Operation.READ
    }
    assert readers_of_review_alerts == set()


def test_principal_names() -> None:
    assert bus.service_principal("benchmark") == "preflight-benchmark"
    assert bus.operator_principal("bank-a") == "operator-bank-a"
    with pytest.raises(ValueError):
        bus.service_principal("mailer")
    with pytest.raises(ValueError):
        bus.operator_principal("Bank A")
