"""Evidence files attached to findings: added by whoever may see the finding, internal to reviewers
or shared with the finding's audience, of a declared content type their bytes must match, at most
3 MiB, kept with their SHA-256 (audit-logged, not the bytes), listed as metadata with page tokens
and fetched, bytes and digest, only by the principals the one sharing policy allows."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.sdk import AsyncPreflight, InvalidArgument, NotFound, Preflight
from preflight_clearinghouse.adapters import codec, tables
from preflight_clearinghouse.adapters.signing import ReportSigner
from preflight_clearinghouse.bootstrap import Components
from preflight_clearinghouse.domain.errors import InvalidInput, PermissionDenied, QuotaExceeded
from preflight_clearinghouse.domain.errors import NotFound as NotVisible
from preflight_clearinghouse.domain.findings.attachments import (
    CONTENT_TYPES,
    MAX_ATTACHMENT,
    MAX_BYTES_PER_FINDING,
    MAX_PER_FINDING,
    QUOTA,
    AttachmentQuota,
)
from preflight_clearinghouse.domain.findings.comments import CommentVisibility
from preflight_clearinghouse.domain.sharing import Viewer
from preflight_clearinghouse.service_layer.findings import FindingRegistry
from preflight_common.fields import InvalidArgument as Refused
from preflight_common.fields import string_violations
from preflight_testkit.clearinghouse import (
    ADMIN,
    LAB_X,
    LAB_Y,
    OP_A,
    OP_B,
    REVIEWER,
    SERVICE,
    Api,
    LoopbackServer,
    ManualClock,
    make_components,
    published_to_op_a,
    report_input,
    start_api,
)
from preflight_testkit.rpc import field_violations
from sqlalchemy import select

from .test_clearinghouse_sharing_property import (
    VIEWERS,
    check_authors,
    draw_authored,
    draw_world,
    oracle_reads_authored,
)

INTERNAL, AUDIENCE = CommentVisibility.INTERNAL, CommentVisibility.AUDIENCE


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("poc.py", "print('hello')\n")
    return buffer.getvalue()


# A file of every allowed type, as the tools that write them do.
SAMPLES = {
    "text/plain": "crash at 0x4141414141414141 — reproduced twice\n".encode(),
    "application/json": b'{"sanitizer": "asan", "frames": [1, 2]}',
    "application/pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n",
    "image/png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(17),
    "application/zip": _zip(),
    "application/vnd.tcpdump.pcap": b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(16),
}


def _names(components: Components, viewer: Viewer, finding_id: str) -> list[str]:
    page, token = components.registry.attachments(viewer, finding_id, 0, "")
    assert token == ""
    return [a.name for a in page]


def _add(components: Components, author: Viewer, fid: str, name: str, visibility: CommentVisibility) -> str:
    return components.registry.add_attachment(
        author, fid, name, "text/plain", f"{name}\n".encode(), visibility
    ).attachment_id


def test_attachments_reach_exactly_whom_their_visibility_and_the_finding_allow(
    components: Components,
) -> None:
    registry = components.registry
    fid = published_to_op_a(components).finding_id
    ids = {
        name: _add(components, author, fid, name, visibility)
        for name, author, visibility in [
            ("reviewers.txt", REVIEWER, INTERNAL),
            ("audience.txt", REVIEWER, AUDIENCE),
            ("op-a-internal.txt", OP_A, INTERNAL),
            ("op-b-audience.txt", OP_B, AUDIENCE),  # op-b is in finance
        ]
    }
    for privileged in (REVIEWER, ADMIN):
        assert _names(components, privileged, fid) == list(ids)
    readable = {
        OP_A: ["audience.txt", "op-a-internal.txt", "op-b-audience.txt"],
        OP_B: ["audience.txt", "op-b-audience.txt"],
        REVIEWER: list(ids),
        ADMIN: list(ids),
    }
    for viewer, names in readable.items():
        assert _names(components, viewer, fid) == names
        for name, attachment_id in ids.items():
            if name in names:
                shown, content = registry.attachment(viewer, fid, attachment_id)
                assert content == f"{name}\n".encode()
                assert shown.sha256 == hashlib.sha256(content).hexdigest()
            else:
                with pytest.raises(NotVisible):
                    registry.attachment(viewer, fid, attachment_id)
    for outsider in (LAB_X, LAB_Y, SERVICE):  # AMBER: no other lab sees the finding, nor its files
        with pytest.raises(NotVisible):
            registry.attachments(outsider, fid, 0, "")
        with pytest.raises(NotVisible):
            registry.attachment(outsider, fid, ids["audience.txt"])
    for outsider in (LAB_X, LAB_Y):
        with pytest.raises(NotVisible):
            registry.add_attachment(outsider, fid, "x.txt", "text/plain", b"x", AUDIENCE)
    with pytest.raises(PermissionDenied):
        registry.add_attachment(SERVICE, fid, "x.txt", "text/plain", b"x", AUDIENCE)
    # An attachment is fetched through its own finding only.
    other = registry.report(REVIEWER, report_input(title="elsewhere", cwe_ids=["CWE-79"]))[0]
    with pytest.raises(NotVisible):
        registry.attachment(REVIEWER, other.finding_id, ids["audience.txt"])
    # Authors: the role for everyone; the principal id on one's own; the organisation when one's own.
    seen_by_b = {a.name: a for a in registry.attachments(OP_B, fid, 0, "")[0]}
    assert (seen_by_b["audience.txt"].author_role, seen_by_b["audience.txt"].author_id) == ("reviewer", "")
    assert seen_by_b["audience.txt"].author_organisation == ""
    assert (seen_by_b["op-b-audience.txt"].author_id, seen_by_b["op-b-audience.txt"].author_organisation) == (
        OP_B.principal_id,
        "op-b",
    )


def test_every_allowed_type_round_trips_with_its_digest_and_is_audit_logged_by_digest(
    components: Components,
) -> None:
    registry = components.registry
    fid = published_to_op_a(components).finding_id
    assert set(SAMPLES) == set(CONTENT_TYPES)
    added = {
        kind: registry.add_attachment(OP_A, fid, f" evidence {n} ", kind.upper(), content, AUDIENCE)
        for n, (kind, content) in enumerate(SAMPLES.items())
    }
    for kind, attachment in added.items():
        assert (attachment.content_type, attachment.size) == (kind, len(SAMPLES[kind]))
        assert attachment.name.startswith("evidence ") and attachment.name == attachment.name.strip()
        shown, content = registry.attachment(OP_B, fid, attachment.attachment_id)
        assert content == SAMPLES[kind]
        assert shown.sha256 == attachment.sha256 == hashlib.sha256(SAMPLES[kind]).hexdigest()
    with components.engine.connect() as conn:
        a = tables.audit_log.c
        audited = conn.execute(
            select(a.actor, a.details).where(a.action == "finding.attachment_added").order_by(a.seq)
        ).all()
    assert [row.actor for row in audited] == [OP_A.principal_id] * len(SAMPLES)
    for row, (kind, attachment) in zip(audited, added.items(), strict=True):
        details = row.details if isinstance(row.details, dict) else json.loads(row.details)
        assert (details["sha256"], details["size"], details["content_type"]) == (
            attachment.sha256,
            len(SAMPLES[kind]),
            kind,
        )
        assert SAMPLES[kind].hex() not in json.dumps(details)
    # The history shows operators no attachment activity (an attachment's readers are not the log's).
    entries, _ = registry.history(OP_A, fid, 0, "")
    assert not [e for e in entries if e.action.startswith("finding.attachment_")]


def test_bad_attachments_and_page_tokens_are_refused_naming_the_field(components: Components) -> None:
    registry = components.registry
    fid = published_to_op_a(components).finding_id
    refusals: list[tuple[str, str, bytes, CommentVisibility | None, list[str]]] = [
        ("a.exe", "application/x-msdownload", b"MZ\x90\x00", AUDIENCE, ["content_type"]),
        ("a.txt", "", b"x", AUDIENCE, ["content_type"]),
        ("a.txt", "text/plain", b"", AUDIENCE, ["content"]),
        ("a.txt", "text/plain", b"x" * (MAX_ATTACHMENT + 1), AUDIENCE, ["content"]),
        ("a.txt", "text/plain", b"\xff\xfe binary", AUDIENCE, ["content"]),
        ("a.txt", "text/plain", b"nul\x00", AUDIENCE, ["content"]),
        ("a.txt", "text/plain", b"x", None, ["visibility"]),
        ("", "text/plain", b"x", AUDIENCE, ["name"]),
        ("../etc/passwd", "text/plain", b"x", AUDIENCE, ["name"]),
        ("a\\b.txt", "text/plain", b"x", AUDIENCE, ["name"]),
        ("..", "text/plain", b"x", AUDIENCE, ["name"]),
        ("bell\x07.txt", "text/plain", b"x", AUDIENCE, ["name"]),
        ("n" * 256, "text/plain", b"x", AUDIENCE, ["name"]),
        ("", "", b"", None, ["name", "content_type", "content", "visibility"]),
    ]
    # Each type's bytes declared as every other type: the magic numbers (or syntax) must match.
    for declared in CONTENT_TYPES:
        for actual, content in SAMPLES.items():
            if actual != declared and not (declared == "text/plain" and actual == "application/json"):
                refusals.append(("evidence", declared, content, AUDIENCE, ["content"]))
    for name, kind, content, visibility, fields in refusals:
        with pytest.raises(InvalidInput) as refused:
            registry.add_attachment(REVIEWER, fid, name, kind, content, visibility)
        assert [v.field for v in refused.value.violations] == fields, (name, kind, content[:16])
    assert registry.attachments(REVIEWER, fid, 0, "") == ([], "")
    biggest = registry.add_attachment(REVIEWER, fid, "big.txt", "text/plain", b"x" * MAX_ATTACHMENT, AUDIENCE)
    assert biggest.size == MAX_ATTACHMENT
    for n in range(4):
        _add(components, REVIEWER, fid, f"note{n}.txt", AUDIENCE)
    page, token = registry.attachments(OP_A, fid, 2, "")
    rest, last = registry.attachments(OP_A, fid, 2, token)
    final, end = registry.attachments(OP_A, fid, 2, last)
    assert [a.name for a in (*page, *rest, *final)] == ["big.txt"] + [f"note{n}.txt" for n in range(4)]
    assert end == ""
    for bad in (token + "x", "nonsense"):
        with pytest.raises(Refused) as forged:
            registry.attachments(OP_A, fid, 2, bad)
        assert [name for name, _ in forged.value.violations] == ["page_token"]
    other = registry.report(REVIEWER, report_input(title="elsewhere", cwe_ids=["CWE-79"]))[0]
    with pytest.raises(InvalidInput) as refused:
        registry.attachments(REVIEWER, other.finding_id, 2, token)
    assert [v.field for v in refused.value.violations] == ["page_token"]
    for n in range(2):
        registry.add_comment(REVIEWER, fid, f"comment {n}", AUDIENCE)
    comments_token = registry.comments(REVIEWER, fid, 1, "")[1]
    with pytest.raises(Refused) as forged:  # a token of the comments list is not one of this
        registry.attachments(REVIEWER, fid, 1, comments_token)
    assert [name for name, _ in forged.value.violations] == ["page_token"]
    with pytest.raises(InvalidInput) as refused:
        registry.attachments(REVIEWER, fid, 501, "")
    assert [v.field for v in refused.value.violations] == ["page_size"]


def test_the_request_guard_lets_through_every_attachment_the_registry_accepts_and_no_more() -> None:
    request = pb.AddFindingAttachmentRequest(finding_id="f", name="n" * 255, content=b"x" * MAX_ATTACHMENT)
    assert string_violations(request) == []
    request.content += b"x"
    assert [name for name, _ in string_violations(request)] == ["content"]


def _quota_components(components: Components, clock: ManualClock, quota: AttachmentQuota) -> Components:
    """`components` whose registry bounds a finding's attachments by `quota`."""
    registry = FindingRegistry(components.findings_store, clock, {}, attachment_quota=quota)
    return replace(components, registry=registry)


def _stored(components: Components, fid: str) -> tuple[int, int]:
    """(attachments on `fid`, `finding.attachment_added` audit entries about it) in the database."""
    with components.engine.connect() as conn:
        a, log = tables.finding_attachments.c, tables.audit_log.c
        files = conn.execute(select(a.attachment_id).where(a.finding_id == fid)).all()
        audited = conn.execute(
            select(log.seq).where(log.action == "finding.attachment_added", log.subject_id == fid)
        ).all()
    return len(files), len(audited)


def test_the_shipped_quota_is_50_attachments_and_64_mib_per_finding() -> None:
    shipped = (QUOTA.count, QUOTA.total_bytes)
    assert shipped == (MAX_PER_FINDING, MAX_BYTES_PER_FINDING) == (50, 64 * 1024 * 1024)
    assert MAX_BYTES_PER_FINDING > MAX_ATTACHMENT


def test_a_findings_attachments_are_bounded_in_number_and_bytes_and_a_refusal_writes_nothing(
    components: Components, clock: ManualClock
) -> None:
    bounded = _quota_components(components, clock, AttachmentQuota(count=3, total_bytes=10))
    registry = bounded.registry
    fid, other = (published_to_op_a(bounded).finding_id for _ in range(2))
    registry.add_attachment(OP_A, fid, "a.txt", "text/plain", b"1234", AUDIENCE)
    with pytest.raises(QuotaExceeded, match="at most 10 bytes in all") as too_big:
        registry.add_attachment(REVIEWER, fid, "b.txt", "text/plain", b"1234567", INTERNAL)
    assert "4 used, 7 more" in str(too_big.value)
    assert _stored(bounded, fid) == (1, 1)
    registry.add_attachment(REVIEWER, fid, "b.txt", "text/plain", b"123456", INTERNAL)  # 10 exactly
    with pytest.raises(QuotaExceeded, match="at most 10 bytes"):
        registry.add_attachment(OP_A, fid, "c.txt", "text/plain", b"1", AUDIENCE)
    # The bound is per finding: another one has its own.
    for name in ("a.txt", "b.txt", "c.txt"):
        registry.add_attachment(OP_A, other, name, "text/plain", b"1", AUDIENCE)
    with pytest.raises(QuotaExceeded, match="at most 3 attachments"):
        registry.add_attachment(ADMIN, other, "d.txt", "text/plain", b"1", AUDIENCE)
    assert (_stored(bounded, fid), _stored(bounded, other)) == ((2, 2), (3, 3))
    assert _names(bounded, REVIEWER, other) == ["a.txt", "b.txt", "c.txt"]


def test_concurrent_attachments_cannot_pass_a_findings_bound_together(
    components: Components, clock: ManualClock
) -> None:
    bounded = _quota_components(components, clock, AttachmentQuota(count=2, total_bytes=1000))
    fid = published_to_op_a(bounded).finding_id

    def attach(n: int) -> bool:
        try:
            bounded.registry.add_attachment(OP_A, fid, f"{n}.txt", "text/plain", b"x", AUDIENCE)
        except QuotaExceeded:
            return False
        return True

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(attach, range(6)))
    assert sorted(outcomes) == [False] * 4 + [True] * 2
    assert _stored(bounded, fid) == (2, 2)


def test_a_full_finding_is_resource_exhausted_over_grpc_naming_the_bound(
    loopback: LoopbackServer, tmp_path: Path, sqlite_components: Components, clock: ManualClock
) -> None:
    bounded = _quota_components(sqlite_components, clock, AttachmentQuota(count=1, total_bytes=1000))
    api = start_api(loopback, tmp_path, bounded)
    try:
        fid = published_to_op_a(bounded).finding_id
        request = pb.AddFindingAttachmentRequest(
            finding_id=fid,
            name="a.txt",
            content_type="text/plain",
            content=b"x",
            visibility=pb.COMMENT_VISIBILITY_AUDIENCE,
        )
        api.stub.AddFindingAttachment(request, metadata=api.as_(OP_A))  # type: ignore[arg-type]
        with pytest.raises(grpc.RpcError) as full:
            api.stub.AddFindingAttachment(request, metadata=api.as_(OP_A))  # type: ignore[arg-type]
        assert full.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert full.value.details() == "a finding has at most 1 attachments"
        assert _stored(bounded, fid) == (1, 1)
    finally:
        api.channel.close()


@pytest.mark.slow
def test_no_attachment_reaches_a_principal_the_sharing_policy_does_not_allow(tmp_path: Path) -> None:
    """Property: random findings (labels, audiences, states, embargoes, sources, consents) with
    attachments by random principals who may see them, internal or for the audience; every
    principal of every role lists and fetches exactly the attachments the policy allows it (the
    finding's readers; internal ones only reviewers, admins and their author), and no other
    author's id."""
    clock = ManualClock()
    components = make_components(
        f"sqlite:///{tmp_path / 'attachments.db'}",
        tmp_path,
        ReportSigner(Ed25519PrivateKey.generate()),
        clock,
    )
    registry = components.registry
    checked = 0

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        nonlocal checked
        for spec, readers in draw_world(data, clock, components):
            fid = spec.finding.finding_id
            added: list[tuple[Viewer, CommentVisibility, str, str]] = []
            for author, visibility, marker in draw_authored(data, readers):
                attachment = registry.add_attachment(
                    author, fid, f"{marker}.txt", "text/plain", marker.encode(), visibility
                )
                added.append((author, visibility, marker, attachment.attachment_id))
            for viewer in VIEWERS:
                checked += len(added)
                if viewer not in readers:
                    with pytest.raises(NotVisible):
                        registry.attachments(viewer, fid, 0, "")
                    for *_, attachment_id in added:
                        with pytest.raises(NotVisible):
                            registry.attachment(viewer, fid, attachment_id)
                    continue
                page, _ = registry.attachments(viewer, fid, 500, "")
                wire = b"".join(codec.attachment_to_proto(a).SerializeToString() for a in page)
                for author, visibility, marker, attachment_id in added:
                    allowed = oracle_reads_authored(viewer, author, visibility)
                    assert (marker.encode() in wire) is allowed, (viewer, author, visibility, spec)
                    if allowed:
                        assert registry.attachment(viewer, fid, attachment_id)[1] == marker.encode()
                    else:
                        with pytest.raises(NotVisible):
                            registry.attachment(viewer, fid, attachment_id)
                check_authors(viewer, page)

    example()
    components.engine.dispose()
    print(f"attachment sharing property: {checked} (principal, attachment) pairs")
    assert checked >= 500


def test_attachments_over_grpc_name_bad_fields_and_return_the_same_digest(api: Api) -> None:
    fid = published_to_op_a(api.components).finding_id
    largest = b"%PDF-" + b"x" * (MAX_ATTACHMENT - 5)
    added = api.stub.AddFindingAttachment(
        pb.AddFindingAttachmentRequest(
            finding_id=fid,
            name="report.pdf",
            content_type="application/pdf",
            content=largest,
            visibility=pb.COMMENT_VISIBILITY_AUDIENCE,
        ),
        metadata=api.as_(OP_A),  # type: ignore[arg-type]
    ).attachment
    assert (added.author_id, added.author_role, added.size) == (OP_A.principal_id, "operator", len(largest))
    assert added.sha256 == hashlib.sha256(largest).hexdigest()
    api.stub.AddFindingAttachment(
        pb.AddFindingAttachmentRequest(
            finding_id=fid,
            name="internal.txt",
            content_type="text/plain",
            content=b"reviewers only",
            visibility=pb.COMMENT_VISIBILITY_INTERNAL,
        ),
        metadata=api.as_(REVIEWER),  # type: ignore[arg-type]
    )
    listed = api.stub.ListFindingAttachments(
        pb.ListFindingAttachmentsRequest(finding_id=fid),
        metadata=api.as_(OP_B),  # type: ignore[arg-type]
    ).attachments
    assert [(a.name, a.sha256, a.author_id) for a in listed] == [("report.pdf", added.sha256, "")]
    fetched = api.stub.GetFindingAttachment(
        pb.GetFindingAttachmentRequest(finding_id=fid, attachment_id=added.attachment_id),
        metadata=api.as_(OP_B),  # type: ignore[arg-type]
    )
    assert fetched.content == largest
    assert fetched.attachment.sha256 == hashlib.sha256(fetched.content).hexdigest() == added.sha256

    def add(**fields: object) -> pb.AddFindingAttachmentRequest:
        defaults: dict[str, object] = {
            "finding_id": fid,
            "name": "a.txt",
            "content_type": "text/plain",
            "content": b"x",
            "visibility": pb.COMMENT_VISIBILITY_AUDIENCE,
        }
        return pb.AddFindingAttachmentRequest(**{**defaults, **fields})  # type: ignore[arg-type]

    bad = [
        (api.stub.AddFindingAttachment, add(content_type="application/x-sh"), ["content_type"]),
        (api.stub.AddFindingAttachment, add(content_type="image/png", content=b"%PDF-1.7"), ["content"]),
        (api.stub.AddFindingAttachment, add(content=b"x" * (MAX_ATTACHMENT + 1)), ["content"]),
        (api.stub.AddFindingAttachment, add(name="../x"), ["name"]),
        (api.stub.AddFindingAttachment, add(visibility=0), ["visibility"]),
        (api.stub.AddFindingAttachment, add(finding_id=""), ["finding_id"]),
        (api.stub.GetFindingAttachment, pb.GetFindingAttachmentRequest(finding_id=fid), ["attachment_id"]),
        (
            api.stub.ListFindingAttachments,
            pb.ListFindingAttachmentsRequest(finding_id=fid, page_token="forged"),
            ["page_token"],
        ),
    ]
    for call, message, fields in bad:
        with pytest.raises(grpc.RpcError) as caught:
            call(message, metadata=api.as_(REVIEWER))  # type: ignore[operator, arg-type]
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, message
        assert list(field_violations(caught.value)) == fields
    for outsider in (LAB_X, LAB_Y):
        with pytest.raises(grpc.RpcError) as caught:
            api.stub.GetFindingAttachment(
                pb.GetFindingAttachmentRequest(finding_id=fid, attachment_id=added.attachment_id),
                metadata=api.as_(outsider),  # type: ignore[arg-type]
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_sdk_attaches_lists_and_fetches_with_the_digest_sync_and_async(api: Api) -> None:
    fid = published_to_op_a(api.components).finding_id
    pcap = SAMPLES["application/vnd.tcpdump.pcap"]
    with Preflight(targets={"clearinghouse": api.target}, token=api.identity.token(OP_A)) as op_a:
        added = op_a.clearinghouse.add_finding_attachment(
            fid, "crash.pcap", "application/vnd.tcpdump.pcap", pcap, pb.COMMENT_VISIBILITY_AUDIENCE
        )
        assert added.sha256 == hashlib.sha256(pcap).hexdigest()
        with pytest.raises(InvalidArgument) as refused:
            op_a.clearinghouse.add_finding_attachment(
                fid, "crash.png", "image/png", pcap, pb.COMMENT_VISIBILITY_AUDIENCE
            )
        assert [v.field for v in refused.value.field_violations] == ["content"]
        assert [a.name for a in op_a.clearinghouse.iter_finding_attachments(fid)] == ["crash.pcap"]

    async def scenario() -> bytes:
        async with (
            AsyncPreflight(targets={"clearinghouse": api.target}, token=api.identity.token(OP_B)) as op_b,
            AsyncPreflight(targets={"clearinghouse": api.target}, token=api.identity.token(LAB_X)) as lab,
        ):
            added_b = await op_b.clearinghouse.add_finding_attachment(
                fid, "notes.txt", "text/plain", b"op-b only", pb.COMMENT_VISIBILITY_INTERNAL
            )
            names = [a.name async for a in op_b.clearinghouse.iter_finding_attachments(fid)]
            assert names == ["crash.pcap", "notes.txt"]
            page = await op_b.clearinghouse.list_finding_attachments(fid, page_size=1)
            assert [a.name for a in page.attachments] == ["crash.pcap"] and page.next_page_token
            with pytest.raises(NotFound):
                await lab.clearinghouse.get_finding_attachment(fid, added_b.attachment_id)
            fetched = await op_b.clearinghouse.get_finding_attachment(fid, added.attachment_id)
            assert fetched.attachment.sha256 == added.sha256
            return fetched.content

    assert asyncio.run(scenario()) == pcap


def test_the_cli_attaches_lists_and_fetches_checking_the_digest(api: Api, tmp_path: Path) -> None:
    fid = published_to_op_a(api.components).finding_id
    preflight = api.cli_as(OP_A, tmp_path)  # type: ignore[arg-type]

    evidence = tmp_path / "crash.pcap"
    evidence.write_bytes(SAMPLES["application/vnd.tcpdump.pcap"])
    code, out, err = preflight("--json", "finding", "attach", fid, str(evidence), "--visibility", "audience")
    assert code == 0, err
    attached = json.loads(out)
    assert (attached["name"], attached["content_type"]) == ("crash.pcap", "application/vnd.tcpdump.pcap")
    assert attached["sha256"] == hashlib.sha256(evidence.read_bytes()).hexdigest()
    code, out, err = preflight("finding", "attachments", fid)
    assert code == 0, err
    assert "crash.pcap" in out and "AUDIENCE" in out and "application/vnd.tcpdump.pcap" in out
    fetched = tmp_path / "fetched.pcap"
    code, out, err = preflight("finding", "attachment", fid, attached["attachment_id"], "-o", str(fetched))
    assert code == 0, err
    assert fetched.read_bytes() == evidence.read_bytes() and attached["sha256"] in out
    disguised = tmp_path / "crash.png"
    disguised.write_bytes(SAMPLES["application/pdf"])
    code, _, err = preflight("finding", "attach", fid, str(disguised), "--visibility", "internal")
    assert code == 1 and "content" in err
    unknown = tmp_path / "crash.evidence"
    unknown.write_bytes(b"x")
    code, _, err = preflight("finding", "attach", fid, str(unknown), "--visibility", "internal")
    assert code != 0 and "--content-type" in err
