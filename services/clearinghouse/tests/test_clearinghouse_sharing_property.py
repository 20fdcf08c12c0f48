"""Property: no read path ever hands a principal a finding it may not see, or a lab identity without consent.

Hypothesis generates findings with random TLP labels, audiences (including unknown sectors and
empty audiences), states, embargoes, sources with and without consent (or not yet known),
reporters and patch statuses, stores them, and checks every read path for principals of every
role against an oracle written from the documented sharing table:

* in process (the same use cases the gRPC servicer calls): get, list, stream (change feed), the
  CSAF, OSV and STIX exports, and the FindingPublished payload as the outbox encodes it —
  at least 10,000 (principal, finding) pairs, each over all seven paths;
* over a real loopback gRPC server authenticated through a real IdentityService: GetFinding,
  ListFindings, the three ExportFinding formats and StreamFindings, on fewer examples.
"""

from __future__ import annotations

import os
import queue
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import clearinghouse_pb2_grpc
from preflight.clearinghouse.v1 import events_pb2 as ch_events
from preflight_clearinghouse.adapters import codec
from preflight_clearinghouse.adapters.events import EventEncoder
from preflight_clearinghouse.adapters.signing import ReportSigner
from preflight_clearinghouse.bootstrap import Components
from preflight_clearinghouse.domain.errors import NotFound
from preflight_clearinghouse.domain.events import finding_notice
from preflight_clearinghouse.domain.findings.attachments import Attachment
from preflight_clearinghouse.domain.findings.comments import Comment, CommentVisibility
from preflight_clearinghouse.domain.findings.exports import ExportFormat
from preflight_clearinghouse.domain.findings.finding import (
    Finding,
    FindingSource,
    PatchState,
    PatchStatusEntry,
)
from preflight_clearinghouse.domain.findings.queries import FindingQuery
from preflight_clearinghouse.domain.findings.ssvc import (
    Automatable,
    Exploitation,
    MissionWellBeing,
    SsvcDecision,
    TechnicalImpact,
)
from preflight_clearinghouse.domain.findings.workflow import EmbargoState, FindingState
from preflight_clearinghouse.domain.reviews.reports import SubmissionInfo
from preflight_clearinghouse.domain.sharing import Audience, Role, Tlp, Viewer
from preflight_common.auth import Principal
from preflight_common.auth import Role as AuthRole
from preflight_common.bus import KNOWN_SECTORS, SOURCES
from preflight_common.envelope import EventRegistry, decode_record
from preflight_common.fields import timestamp
from preflight_testkit.clearinghouse import (
    LoopbackServer,
    ManualClock,
    make_components,
    make_finding,
    start_api,
    store_finding,
)

LABS = ("lab-xq7", "lab-yz3")
OPERATOR_ORGS = ("op-a", "op-b", "op-c", "op-d")
AUDIENCE_ORGS = (*OPERATOR_ORGS, "unknown-org")
SECTORS = ("energy", "water", "finance", "healthcare", "space")  # "space" is no known sector
VIEWERS = (
    Viewer("rev-1", Role.REVIEWER, "agency"),
    Viewer("adm-1", Role.ADMIN, "platform"),
    Viewer("svc-1", Role.SERVICE, "platform"),
    Viewer("lab-x-user", Role.LAB, "lab-xq7"),
    Viewer("lab-y-user", Role.LAB, "lab-yz3"),
    Viewer("op-a-user", Role.OPERATOR, "op-a", frozenset({"energy"})),
    Viewer("op-b-user", Role.OPERATOR, "op-b", frozenset({"water", "finance"})),
    Viewer("op-c-user", Role.OPERATOR, "op-c"),
    Viewer("op-d-user", Role.OPERATOR, "op-d", frozenset({"space"})),
)
FORMATS = tuple(ExportFormat)
FINDINGS_TOPIC = EventRegistry([ch_events.FindingPublished])
IN_PROCESS_EXAMPLES = int(os.environ.get("CH_PROP_EXAMPLES", "190"))
IN_PROCESS_FINDINGS = 6
GRPC_EXAMPLES = 20
GRPC_FINDINGS = 5
STREAM_WAIT = 60.0  # seconds, generous for a loaded machine: the streams poll every 0.05 s


# --- the oracle: the documented sharing table, written independently ------------------------


@dataclass(frozen=True)
class Spec:
    """What the oracle knows of a generated finding."""

    finding: Finding
    source_org: str  # "" when there is no source or its submission is not known yet
    consent: bool
    marker: str  # the model name and submission id contain it; it must never leak
    # The assignee and the SSVC decider contain it: reviewers and admins alone may receive it.
    reviewer_marker: str = ""


def oracle_may_see(viewer: Viewer, spec: Spec, now: datetime) -> bool:
    f = spec.finding
    if viewer.role in (Role.REVIEWER, Role.ADMIN):
        return True
    if viewer.role not in (Role.LAB, Role.OPERATOR):
        return False
    if viewer.organisation in (spec.source_org, f.reporter_organisation):
        return True
    if f.published_at is None or f.state is FindingState.INVALID:
        return False
    orgs, sectors = f.audience.organisations, f.audience.sectors & KNOWN_SECTORS
    if not orgs and not sectors:
        return False
    in_force = f.embargo_state in (EmbargoState.PROPOSED, EmbargoState.ACTIVE) and (
        f.embargo_end is None or now < f.embargo_end
    )
    tlp = Tlp.AMBER if f.tlp is Tlp.CLEAR and in_force else f.tlp
    if tlp is Tlp.CLEAR:
        return True
    if viewer.role is Role.LAB:
        return False
    if tlp in (Tlp.AMBER_STRICT, Tlp.RED):
        return viewer.organisation in orgs
    return viewer.organisation in orgs or bool(viewer.sectors & sectors)


def oracle_learns_source(viewer: Viewer, spec: Spec) -> bool:
    if viewer.role in (Role.REVIEWER, Role.ADMIN):
        return True
    if viewer.role is Role.LAB:
        return bool(spec.source_org) and viewer.organisation == spec.source_org
    return viewer.role is Role.OPERATOR and spec.consent


def oracle_sees_evidence(viewer: Viewer, spec: Spec) -> bool:
    if viewer.role in (Role.REVIEWER, Role.ADMIN):
        return True
    return viewer.organisation in (spec.source_org, spec.finding.reporter_organisation)


def oracle_reads_authored(viewer: Viewer, author: Viewer, visibility: CommentVisibility) -> bool:
    """Whether a reader of a finding reads a comment or attachment on it: one for the audience,
    an internal one only if a reviewer, an admin or its author."""
    return (
        viewer.role in (Role.REVIEWER, Role.ADMIN)
        or visibility is CommentVisibility.AUDIENCE
        or author.principal_id == viewer.principal_id
    )


def check_authors(viewer: Viewer, page: Sequence[Comment] | Sequence[Attachment]) -> None:
    """Only reviewers and admins learn who wrote another's comment or attachment."""
    if viewer.role not in (Role.REVIEWER, Role.ADMIN):
        assert {item.author_id for item in page} <= {"", viewer.principal_id}
        assert {item.author_organisation for item in page} <= {"", viewer.organisation}


# --- generation ----------------------------------------------------------------------------


@st.composite
def finding_specs(draw: st.DrawFn, now: datetime) -> tuple[Spec, SubmissionInfo | None]:
    marker, reviewer_marker = uuid.uuid4().hex, uuid.uuid4().hex
    state = draw(st.sampled_from(list(FindingState)))
    published = state in (FindingState.VALIDATED, FindingState.PATCH_AVAILABLE, FindingState.DISCLOSED) or (
        state in (FindingState.CLOSED, FindingState.INVALID) and draw(st.booleans())
    )
    embargo = draw(st.sampled_from(list(EmbargoState)))
    embargo_end = None if embargo is EmbargoState.NONE else now + timedelta(hours=draw(st.integers(-48, 48)))
    lab = draw(st.one_of(st.none(), st.sampled_from(LABS)))
    consent = draw(st.sampled_from([True, False, None]))  # None: SubmissionReceived not applied yet
    submission = None
    source = None
    if lab is not None:
        submission_id = f"sub-{marker}"
        source = FindingSource(submission_id)
        if consent is not None:
            submission = SubmissionInfo(submission_id, lab, f"model-{marker}", "1.0", consent, now)
    finding = make_finding(
        finding_id=str(uuid.uuid4()),
        state=state,
        published_at=now - timedelta(hours=1) if published else None,
        embargo_state=embargo,
        embargo_end=embargo_end,
        tlp=draw(st.sampled_from(list(Tlp))),
        audience=Audience(
            draw(st.frozensets(st.sampled_from(AUDIENCE_ORGS), max_size=3)),
            draw(st.frozensets(st.sampled_from(SECTORS), max_size=3)),
        ),
        source=source,
        reporter_organisation=draw(st.sampled_from(["", "agency", "op-a", "lab-yz3"])),
        evidence=f"evidence-{marker}",
        patch_statuses=tuple(
            PatchStatusEntry(org, PatchState.AFFECTED, "", now)
            for org in draw(st.frozensets(st.sampled_from(OPERATOR_ORGS), max_size=2))
        ),
        created_at=now,
        updated_at=now,
        assignee=draw(st.sampled_from(["", f"assignee-{reviewer_marker}"])),
        ssvc=draw(
            st.one_of(
                st.none(),
                st.builds(
                    SsvcDecision,
                    st.sampled_from(list(Exploitation)),
                    st.sampled_from(list(Automatable)),
                    st.sampled_from(list(TechnicalImpact)),
                    st.sampled_from(list(MissionWellBeing)),
                    st.just(f"decider-{reviewer_marker}"),
                    st.just(now),
                ),
            )
        ),
    )
    spec = Spec(
        finding, lab if (lab and consent is not None) else "", consent is True, marker, reviewer_marker
    )
    return spec, submission


def draw_world(
    data: st.DataObject, clock: ManualClock, components: Components
) -> list[tuple[Spec, list[Viewer]]]:
    """Three random findings stored five minutes after the last ones, each with the viewers the
    policy lets see it then."""
    now = clock.advance(timedelta(minutes=5))
    world = [data.draw(finding_specs(now)) for _ in range(3)]
    store_world(components, world)
    return [(spec, [v for v in VIEWERS if oracle_may_see(v, spec, now)]) for spec, _ in world]


def draw_authored(data: st.DataObject, readers: list[Viewer]) -> list[tuple[Viewer, CommentVisibility, str]]:
    """Up to four comments or attachments for one finding: each by one of its `readers`, internal
    or for its audience, with a unique marker to look for."""
    authors = data.draw(st.lists(st.sampled_from(readers), max_size=4)) if readers else []
    return [
        (author, data.draw(st.sampled_from(list(CommentVisibility))), uuid.uuid4().hex) for author in authors
    ]


def store_world(components: Components, world: list[tuple[Spec, SubmissionInfo | None]]) -> None:
    with components.reviews_store.write() as reviews:
        uow = components.findings_store.join(reviews)
        for spec, submission in world:
            if submission is not None:
                reviews.put_submission(submission)
            store_finding(uow, spec.finding)
            for status in spec.finding.patch_statuses:
                uow.set_patch_status(spec.finding.finding_id, status, "test")


# --- checks --------------------------------------------------------------------------------


def check_projection(viewer: Viewer, spec: Spec, shown: Finding, now: datetime) -> None:
    assert shown.finding_id == spec.finding.finding_id
    assert (shown.source is not None and bool(shown.source.organisation)) is (
        oracle_learns_source(viewer, spec) and bool(spec.source_org)
    ), ("source", viewer, spec)
    assert (shown.evidence != "") is oracle_sees_evidence(viewer, spec), ("evidence", viewer, spec)
    assert (shown.ssvc is None) is (spec.finding.ssvc is None), ("ssvc", viewer, spec)
    if viewer.role not in (Role.REVIEWER, Role.ADMIN):
        assert {p.organisation for p in shown.patch_statuses} <= {viewer.organisation}
        assert shown.assignee == "" and (shown.ssvc is None or shown.ssvc.decided_by == "")
        if shown.tlp is Tlp.CLEAR:
            assert not spec.finding.embargo_in_force(now)


def check_wire(viewer: Viewer, spec: Spec, text: bytes) -> None:
    """Serialized output for `viewer`: the model/submission marker only where the source may be
    learnt; reviewer principals (assignee, SSVC decider) only for reviewers and admins."""
    if spec.reviewer_marker and viewer.role not in (Role.REVIEWER, Role.ADMIN):
        assert spec.reviewer_marker.encode() not in text, ("reviewer principal", viewer, spec)
    if not oracle_learns_source(viewer, spec):
        assert spec.marker.encode() not in text.replace(f"evidence-{spec.marker}".encode(), b""), (
            viewer,
            spec,
        )
    if not oracle_sees_evidence(viewer, spec):
        assert f"evidence-{spec.marker}".encode() not in text, (viewer, spec)


def check_export(viewer: Viewer, spec: Spec, document: bytes) -> None:
    """An export for `viewer`: never the evidence; the source exactly where `viewer` may learn it
    (as GetFinding shows it), so never to another lab, consent or not."""
    assert f"evidence-{spec.marker}".encode() not in document
    assert not spec.reviewer_marker or spec.reviewer_marker.encode() not in document
    learns = oracle_learns_source(viewer, spec) and bool(spec.source_org)
    assert (spec.marker.encode() in document) is learns, ("source", viewer, spec)
    if spec.source_org and not learns:
        assert spec.source_org.encode() not in document, ("source", viewer, spec)


def check_event(spec: Spec, now: datetime, components: Components) -> int:
    """The FindingPublished payload as the outbox would carry it; returns the pairs checked."""
    with components.findings_store.read() as reader:
        stored = reader.finding(spec.finding.finding_id)
    assert stored is not None
    encoder = EventEncoder(components.settings.topics, SOURCES["clearinghouse"])
    record = encoder(finding_notice(stored, now, published=True))[1]
    _, payload = decode_record(record.headers, record.value, FINDINGS_TOPIC)
    assert isinstance(payload, ch_events.FindingPublished)
    notice = payload.finding
    assert notice.HasField("source") is (spec.consent and bool(spec.source_org))
    assert spec.marker.encode() not in record.value or spec.consent
    assert f"evidence-{spec.marker}".encode() not in record.value
    assert not spec.reviewer_marker or spec.reviewer_marker.encode() not in record.value
    assert set(notice.audience.organisations) == spec.finding.audience.organisations
    assert set(notice.audience.sectors) == spec.finding.audience.sectors
    # A downstream consumer honouring the notice's audience and TLP never reaches further.
    as_received = replace(
        spec.finding, tlp=codec.tlp_from_proto(notice.tlp) or Tlp.RED, embargo_state=EmbargoState.NONE
    )
    received = Spec(as_received, "", spec.consent, spec.marker)
    for viewer in VIEWERS:
        if viewer.role is Role.OPERATOR and oracle_may_see(viewer, received, now):
            assert oracle_may_see(viewer, replace(spec, source_org=""), now), (viewer, spec)
    return len(VIEWERS)


# --- in process: ≥ 10,000 (principal, finding) pairs ---------------------------------------


@pytest.mark.slow
def test_no_read_path_leaks_in_process(tmp_path: Path) -> None:
    clock = ManualClock()
    components = make_components(
        f"sqlite:///{tmp_path / 'prop.db'}", tmp_path, ReportSigner(Ed25519PrivateKey.generate()), clock
    )
    pairs = 0

    @settings(
        max_examples=IN_PROCESS_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        nonlocal pairs
        now = clock.advance(timedelta(minutes=5))
        world = [data.draw(finding_specs(now)) for _ in range(IN_PROCESS_FINDINGS)]
        cursor = components.registry.stream_cursor()
        store_world(components, world)
        mine = {spec.finding.finding_id: spec for spec, _ in world}
        for viewer in VIEWERS:
            expected = {fid for fid, spec in mine.items() if oracle_may_see(viewer, spec, now)}
            listed, _ = components.registry.list_visible(viewer, FindingQuery(since=now), 500, "")
            assert {f.finding_id for f in listed} == expected, viewer
            changed, _ = components.registry.changes(viewer, FindingQuery(), cursor)
            assert {f.finding_id for f in changed} == expected, viewer
            for shown in (*listed, *changed):
                check_projection(viewer, mine[shown.finding_id], shown, now)
            for finding_id, spec in mine.items():
                pairs += 1
                if finding_id in expected:
                    shown = components.registry.get(viewer, finding_id)
                    check_projection(viewer, spec, shown, now)
                    check_wire(viewer, spec, codec.finding_to_proto(shown).SerializeToString())
                else:
                    with pytest.raises(NotFound):
                        components.registry.get(viewer, finding_id)
                for export_format in FORMATS:
                    if finding_id in expected:
                        check_export(
                            viewer,
                            spec,
                            components.registry.export(viewer, finding_id, export_format).document,
                        )
                    else:
                        with pytest.raises(NotFound):
                            components.registry.export(viewer, finding_id, export_format)
        for spec, _ in world:
            if spec.finding.published_at is not None:
                check_event(spec, now, components)

    example()
    components.engine.dispose()
    print(f"in-process sharing property: {pairs} (principal, finding) pairs, each over 7 read paths")
    assert pairs >= 10_000


def test_a_consented_clear_finding_exported_by_another_lab_does_not_name_its_source(tmp_path: Path) -> None:
    """The case the property must always cover: consent lets operators learn the source, not other labs."""
    clock = ManualClock()
    components = make_components(
        f"sqlite:///{tmp_path / 'export.db'}", tmp_path, ReportSigner(Ed25519PrivateKey.generate()), clock
    )
    now = clock.advance(timedelta(minutes=5))
    marker = uuid.uuid4().hex
    submission = SubmissionInfo(f"sub-{marker}", LABS[0], f"model-{marker}", "1.0", True, now)
    finding = make_finding(
        tlp=Tlp.CLEAR,
        audience=Audience(frozenset(), frozenset({"energy"})),
        source=FindingSource(submission.submission_id),
        reporter_organisation="",
        evidence=f"evidence-{marker}",
        created_at=now,
        updated_at=now,
    )
    spec = Spec(finding, LABS[0], True, marker)
    store_world(components, [(spec, submission)])
    try:
        for viewer in VIEWERS:
            if not oracle_may_see(viewer, spec, now):
                continue
            shown = components.registry.get(viewer, finding.finding_id)
            for export_format in FORMATS:
                document = components.registry.export(viewer, finding.finding_id, export_format).document
                check_export(viewer, spec, document)
                assert (b"Found by" in document) is (shown.source is not None), (viewer, export_format)
    finally:
        components.engine.dispose()


# --- over gRPC ------------------------------------------------------------------------------


def principal_of(viewer: Viewer) -> Principal:
    return Principal(viewer.principal_id, AuthRole(viewer.role.value), viewer.organisation, viewer.sectors)


def sentinel_for(now: datetime) -> Spec:
    """A published TLP:CLEAR finding with an audience: every lab and operator may see it."""
    finding = make_finding(
        finding_id=str(uuid.uuid4()),
        tlp=Tlp.CLEAR,
        audience=Audience(frozenset({"op-a"})),
        reporter_organisation="",
        created_at=now,
        updated_at=now,
    )
    return Spec(finding, "", False, uuid.uuid4().hex)


def _stream_into(
    stub: object, metadata: tuple[tuple[str, str], ...], sink: queue.Queue[pb.Finding], now: datetime
) -> None:
    # include_existing with `since`: whether the first sentinel lands before or after the stream takes
    # its position in the change feed, the stream sends it (possibly twice).
    request = pb.StreamFindingsRequest(filter=pb.FindingFilter(since=timestamp(now)), include_existing=True)
    call = stub.StreamFindings(request, metadata=metadata)  # type: ignore[attr-defined]

    def pump() -> None:
        try:
            for message in call:
                sink.put(message.finding)
        except grpc.RpcError:
            pass

    threading.Thread(target=pump, daemon=True).start()


@pytest.mark.slow
def test_no_read_path_leaks_over_grpc(tmp_path: Path) -> None:
    clock = ManualClock()
    loopback = LoopbackServer()
    components = make_components(
        f"sqlite:///{tmp_path / 'grpc-prop.db'}", tmp_path, ReportSigner(Ed25519PrivateKey.generate()), clock
    )
    api = start_api(loopback, tmp_path, components)
    metadata = {v.principal_id: api.as_(principal_of(v)) for v in VIEWERS}
    pairs = 0

    # No shrinking: a failing stream case would wait out STREAM_WAIT on every shrink step.
    @settings(
        max_examples=GRPC_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        nonlocal pairs
        now = clock.advance(timedelta(minutes=5))
        world = [data.draw(finding_specs(now)) for _ in range(GRPC_FINDINGS)]
        mine = {spec.finding.finding_id: spec for spec, _ in world}
        streamers = [v for v in VIEWERS if v.role is not Role.SERVICE]
        sinks: dict[str, queue.Queue[pb.Finding]] = {v.principal_id: queue.Queue() for v in streamers}
        # The streams get their own channel: closing it ends them (whatever wraps the calls).
        stream_channel = grpc.insecure_channel(api.target)
        stream_stub = clearinghouse_pb2_grpc.ClearinghouseServiceStub(stream_channel)
        for v in streamers:
            _stream_into(stream_stub, metadata[v.principal_id], sinks[v.principal_id], now)
        # A finding every lab and operator may see marks a point in each stream: once the first one
        # arrives, every stream is live; everything a stream sends before the second one is the world.
        opened = sentinel_for(now)
        store_world(components, [(opened, None)])
        for viewer in streamers:
            first_sent = sinks[viewer.principal_id].get(timeout=STREAM_WAIT)
            assert first_sent.finding_id == opened.finding.finding_id, (viewer, first_sent)
        closing = sentinel_for(now)
        sentinel = closing.finding
        store_world(components, [*world, (closing, None)])
        markers = {opened.finding.finding_id, sentinel.finding_id}
        for viewer in VIEWERS:
            md = metadata[viewer.principal_id]
            expected = {fid for fid, spec in mine.items() if oracle_may_see(viewer, spec, now)}
            since = pb.FindingFilter(since=timestamp(now))
            listed = api.stub.ListFindings(
                pb.ListFindingsRequest(filter=since, page_size=500), metadata=md
            ).findings
            assert {f.finding_id for f in listed} - markers == expected, viewer
            for finding_id, spec in mine.items():
                pairs += 1
                if finding_id in expected:
                    shown = api.stub.GetFinding(
                        pb.GetFindingRequest(finding_id=finding_id), metadata=md
                    ).finding
                    check_wire(viewer, spec, shown.SerializeToString())
                else:
                    with pytest.raises(grpc.RpcError) as caught:
                        api.stub.GetFinding(pb.GetFindingRequest(finding_id=finding_id), metadata=md)
                    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
                for export_format in FORMATS:
                    wire_format = pb.ExportFormat.Value(f"EXPORT_FORMAT_{export_format.name}")
                    request = pb.ExportFindingRequest(finding_id=finding_id, format=wire_format)
                    if finding_id in expected:
                        check_export(viewer, spec, api.stub.ExportFinding(request, metadata=md).document)
                    else:
                        with pytest.raises(grpc.RpcError) as caught:
                            api.stub.ExportFinding(request, metadata=md)
                        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            if viewer.role is Role.SERVICE:
                continue
            received: list[pb.Finding] = []
            while not received or received[-1].finding_id != sentinel.finding_id:
                try:
                    received.append(sinks[viewer.principal_id].get(timeout=STREAM_WAIT))
                except queue.Empty:
                    raise AssertionError(
                        f"{viewer}: stream stalled after {[f.finding_id for f in received]}"
                    ) from None
            streamed = [f for f in received if f.finding_id not in markers]
            assert {f.finding_id for f in streamed} == expected, viewer
            for shown in streamed:
                check_wire(viewer, mine[shown.finding_id], shown.SerializeToString())
        stream_channel.close()

    try:
        example()
    finally:
        api.channel.close()
        loopback.close()
        components.engine.dispose()
    print(f"gRPC sharing property: {pairs} (principal, finding) pairs, each over 6 read paths")
    assert pairs >= GRPC_EXAMPLES * GRPC_FINDINGS * len(VIEWERS)
