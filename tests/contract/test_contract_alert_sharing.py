"""Property: every finding-alert record the notifier publishes is readable only by principals the
clearinghouse's sharing policy lets see the finding.

Hypothesis generates registered participants (organisations and their sectors) and published findings
(TLP, audiences of organisations and sectors — registered or not —, embargoes, remediation dates,
the lab's consent). Each finding goes the way it goes in production: the clearinghouse's notice event
(`finding_notice`, encoded by its outbox encoder) is decoded by the notifier, which plans the finding's
deadlines and turns every reminder into alert records (`AlertSink.records`). For every record, the
principals that may read its topic are taken from the bus's own grants (`preflight_common.bus.grants`),
and each must pass the clearinghouse's `may_see` — the policy function itself, not a copy. A record's
payload names its recipient only, and never the lab or model without consent.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.notifier.v1 import events_pb2 as notifier_events
from preflight_clearinghouse.adapters.events import EventEncoder
from preflight_clearinghouse.domain import sharing
from preflight_clearinghouse.domain.events import finding_notice
from preflight_clearinghouse.domain.findings.finding import Finding, FindingSource
from preflight_clearinghouse.domain.findings.workflow import EmbargoState, FindingState
from preflight_common import bus
from preflight_common.config import Topics
from preflight_common.envelope import EventRegistry, decode_record
from preflight_notifier.adapters import codec
from preflight_notifier.adapters.routing_file import default_routing_path, load_routing
from preflight_notifier.domain.alerts import Alert, reminder_alert
from preflight_notifier.domain.model import decide
from preflight_notifier.domain.schedule import plan
from preflight_notifier.service_layer.alerting import AlertSink
from preflight_testkit.clearinghouse import START, make_finding

ORGANISATIONS = ("op-a", "op-b", "op-c", "op-d")
SECTORS = ("energy", "water", "finance")
TOPICS = Topics(alerts_prefix="preflight.alerts.v1")
ROUTING = load_routing(default_routing_path())
FINDING_EVENTS = EventRegistry([clearinghouse_events.FindingPublished])
ALERTS = EventRegistry([notifier_events.Alert])
READ_GRANTS = (bus.Operation.READ,)

participants_st = st.lists(
    st.tuples(st.sampled_from(ORGANISATIONS), st.frozensets(st.sampled_from(SECTORS), max_size=2)),
    max_size=4,
    unique_by=lambda entry: entry[0],
).map(lambda entries: bus.Participants(tuple(bus.Organisation(o, tuple(sorted(s))) for o, s in entries)))


@st.composite
def findings(draw: st.DrawFn) -> Finding:
    embargoed = draw(st.booleans())
    consent = draw(st.sampled_from([None, False, True]))
    return make_finding(
        state=draw(st.sampled_from([FindingState.VALIDATED, FindingState.DISCLOSED])),
        embargo_state=EmbargoState.ACTIVE if embargoed else EmbargoState.NONE,
        embargo_end=START + timedelta(days=draw(st.integers(1, 20))) if embargoed else None,
        remediation_due=draw(st.none() | st.integers(1, 60).map(lambda d: START + timedelta(days=d))),
        tlp=draw(st.sampled_from(list(sharing.Tlp))),
        audience=sharing.Audience(
            draw(st.frozensets(st.sampled_from((*ORGANISATIONS, "unregistered-org")), max_size=3)),
            draw(st.frozensets(st.sampled_from((*SECTORS, "healthcare")), max_size=3)),
        ),
        source=None
        if consent is None
        else FindingSource("sub-1", "secret-lab", "secret-model", "1.0", share_identity=consent),
    )


def fired_alerts(finding: Finding) -> list[Alert]:
    """Every alert the notifier would fire for the finding, from the notice the clearinghouse publishes."""
    _, record = EventEncoder(TOPICS, "preflight.clearinghouse")(
        finding_notice(finding, START, published=True)
    )
    _, payload = decode_record(record.headers, record.value, FINDING_EVENTS)
    assert isinstance(payload, clearinghouse_events.FindingPublished)
    alerts = []
    for change in codec.finding_deadlines(payload.finding):
        deadline = decide(None, change).deadline
        policy = ROUTING.policies.get(change.kind)
        if deadline is None or deadline.due_at is None or policy is None:
            continue
        alerts += [reminder_alert(deadline, r, r.due_at, late=False) for r in plan(policy, deadline.due_at)]
    return alerts


def readers(grants: list[bus.Grant], topic: str) -> set[str]:
    """The principals the bus's grants let read `topic`."""
    return {
        g.principal.removeprefix("User:")
        for g in grants
        if g.resource_type is bus.ResourceType.TOPIC
        and g.operation in READ_GRANTS
        and (g.name == topic if g.pattern is bus.Pattern.LITERAL else topic.startswith(g.name))
    }


def viewer_of(principal: str, participants: bus.Participants) -> sharing.Viewer:
    """The clearinghouse's viewer for a bus principal: an operator with its registered sectors, else a
    service."""
    for organisation in participants.organisations:
        if bus.operator_principal(organisation.name) == principal:
            return sharing.Viewer(
                principal, sharing.Role.OPERATOR, organisation.name, frozenset(organisation.sectors)
            )
    return sharing.Viewer(principal, sharing.Role.SERVICE, "preflight")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(participants=participants_st, finding=findings())
def test_every_alert_record_is_readable_only_by_whom_the_sharing_policy_allows(
    participants: bus.Participants, finding: Finding
) -> None:
    sink = AlertSink(ROUTING, TOPICS, bus.SOURCES["notifier"], participants, codec.alert_record)
    grants = bus.grants(TOPICS, participants)
    for alert in fired_alerts(finding):
        for topic, record in sink.records(alert):
            allowed = readers(grants, topic)
            assert allowed, f"nobody may read {topic}"
            _, payload = decode_record(record.headers, record.value, ALERTS)
            assert isinstance(payload, notifier_events.Alert)
            operators = payload.audience.operators
            recipient = [*operators.organisations, *operators.sectors]
            assert len(recipient) == 1 and topic.endswith(f".{recipient[0]}")
            for principal in allowed:
                viewer = viewer_of(principal, participants)
                assert sharing.may_see(viewer, finding, START), (
                    principal,
                    topic,
                    finding.tlp,
                    finding.audience,
                )
                if not sharing.may_learn_source(viewer, finding):
                    assert b"secret-lab" not in record.value and b"secret-model" not in record.value
