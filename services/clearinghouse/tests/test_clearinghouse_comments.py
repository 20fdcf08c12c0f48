"""Comments on findings: written by whoever may see the finding, internal to reviewers or shared
with the finding's audience, edited only by their author as new revisions (every revision kept and
audit-logged), listed in order with page tokens, and read through the one sharing policy."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight_clearinghouse.adapters import codec, tables
from preflight_clearinghouse.adapters.signing import ReportSigner
from preflight_clearinghouse.bootstrap import Components
from preflight_clearinghouse.domain.errors import InvalidInput, NotFound, PermissionDenied, RevisionConflict
from preflight_clearinghouse.domain.findings.comments import MAX_COMMENT, CommentVisibility
from preflight_clearinghouse.domain.sharing import Viewer
from preflight_common.fields import InvalidArgument, string_violations
from preflight_testkit.clearinghouse import (
    ADMIN,
    LAB_X,
    LAB_Y,
    OP_A,
    OP_B,
    REVIEWER,
    SERVICE,
    Api,
    ManualClock,
    make_components,
    published_to_op_a,
    report_input,
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


def _bodies(components: Components, viewer: Viewer, finding_id: str) -> list[str]:
    page, token = components.registry.comments(viewer, finding_id, 0, "")
    assert token == ""
    return [c.body for c in page]


def test_comments_reach_exactly_whom_their_visibility_and_the_finding_allow(components: Components) -> None:
    registry = components.registry
    finding = published_to_op_a(components)
    fid = finding.finding_id
    registry.add_comment(REVIEWER, fid, "reviewers only", INTERNAL)
    registry.add_comment(REVIEWER, fid, "to the audience", AUDIENCE)
    mine = registry.add_comment(OP_A, fid, "op-a to reviewers", INTERNAL)
    registry.add_comment(OP_B, fid, "op-b to everyone", AUDIENCE)  # op-b is in finance
    everything = ["reviewers only", "to the audience", "op-a to reviewers", "op-b to everyone"]
    for privileged in (REVIEWER, ADMIN):
        assert _bodies(components, privileged, fid) == everything
    assert _bodies(components, OP_A, fid) == ["to the audience", "op-a to reviewers", "op-b to everyone"]
    assert _bodies(components, OP_B, fid) == ["to the audience", "op-b to everyone"]
    for outsider in (LAB_X, LAB_Y):  # AMBER: no other lab sees the finding, nor its comments
        with pytest.raises(NotFound):
            registry.comments(outsider, fid, 0, "")
        with pytest.raises(NotFound):
            registry.add_comment(outsider, fid, "hello", AUDIENCE)
    with pytest.raises(PermissionDenied):
        registry.add_comment(SERVICE, fid, "x", AUDIENCE)
    with pytest.raises(NotFound):
        registry.comments(SERVICE, fid, 0, "")
    # Authors: the role for everyone; the principal id on one's own; the organisation when one's own.
    seen_by_b = {c.body: c for c in registry.comments(OP_B, fid, 0, "")[0]}
    assert (seen_by_b["to the audience"].author_role, seen_by_b["to the audience"].author_id) == (
        "reviewer",
        "",
    )
    assert seen_by_b["to the audience"].author_organisation == ""
    assert seen_by_b["op-b to everyone"].author_id == OP_B.principal_id
    assert seen_by_b["op-b to everyone"].author_organisation == "op-b"
    seen_by_reviewer = {c.body: c for c in registry.comments(REVIEWER, fid, 0, "")[0]}
    assert seen_by_reviewer["op-a to reviewers"].author_id == OP_A.principal_id
    assert mine.author_organisation == "op-a"


def test_an_edit_is_a_new_revision_by_the_author_alone_and_every_revision_is_kept(
    components: Components, clock: ManualClock
) -> None:
    registry = components.registry
    fid = published_to_op_a(components).finding_id
    first = registry.add_comment(OP_A, fid, "patched in 1.4.2", AUDIENCE)
    clock.advance(timedelta(minutes=5))
    second = registry.edit_comment(OP_A, fid, first.comment_id, "patched in 1.4.3", first.revision)
    assert (second.revision, second.body, second.created_at) == (2, "patched in 1.4.3", first.created_at)
    assert second.updated_at == first.created_at + timedelta(minutes=5)
    with pytest.raises(RevisionConflict):
        registry.edit_comment(OP_A, fid, first.comment_id, "stale", 1)
    for other in (OP_B, REVIEWER):
        with pytest.raises(PermissionDenied):
            registry.edit_comment(other, fid, first.comment_id, "not mine", 0)
    internal = registry.add_comment(REVIEWER, fid, "between us", INTERNAL)
    with pytest.raises(NotFound):  # op-a may not read it, so it is not there for op-a
        registry.edit_comment(OP_A, fid, internal.comment_id, "x", 0)
    other = registry.report(REVIEWER, report_input(title="elsewhere", cwe_ids=["CWE-79"]))[0]
    with pytest.raises(NotFound):
        registry.edit_comment(REVIEWER, other.finding_id, internal.comment_id, "moved", 0)
    (shown,) = [c for c in registry.comments(OP_B, fid, 0, "")[0]]
    assert (shown.body, shown.revision) == ("patched in 1.4.3", 2)
    with components.engine.connect() as conn:
        r = tables.finding_comment_revisions.c
        kept = conn.execute(
            select(r.revision, r.body).where(r.comment_id == first.comment_id).order_by(r.revision)
        ).all()
        a = tables.audit_log.c
        audited = conn.execute(
            select(a.action, a.actor).where(a.action.like("finding.comment_%")).order_by(a.seq)
        ).all()
    assert [tuple(row) for row in kept] == [(1, "patched in 1.4.2"), (2, "patched in 1.4.3")]
    assert [tuple(row) for row in audited] == [
        ("finding.comment_added", OP_A.principal_id),
        ("finding.comment_edited", OP_A.principal_id),
        ("finding.comment_added", REVIEWER.principal_id),
    ]
    # The history shows operators no comment activity (a comment's readers are not the history's).
    entries, _ = registry.history(OP_A, fid, 0, "")
    assert not [e for e in entries if e.action.startswith("finding.comment_")]


def test_bad_comments_and_page_tokens_are_refused_naming_the_field(components: Components) -> None:
    registry = components.registry
    fid = published_to_op_a(components).finding_id
    for body in ("", "   ", "x" * (MAX_COMMENT + 1), "bell \x07"):
        with pytest.raises(InvalidInput) as refused:
            registry.add_comment(REVIEWER, fid, body, AUDIENCE)
        assert [v.field for v in refused.value.violations] == ["body"]
    with pytest.raises(InvalidInput) as refused:
        registry.add_comment(REVIEWER, fid, "fine", None)
    assert [v.field for v in refused.value.violations] == ["visibility"]
    assert (
        registry.add_comment(REVIEWER, fid, "line one\n\tline two", AUDIENCE).body == "line one\n\tline two"
    )
    for n in range(4):
        registry.add_comment(REVIEWER, fid, f"note {n}", AUDIENCE)
    page, token = registry.comments(OP_A, fid, 2, "")
    rest, last = registry.comments(OP_A, fid, 2, token)
    final, end = registry.comments(OP_A, fid, 2, last)
    assert [c.body for c in (*page, *rest, *final)] == ["line one\n\tline two"] + [
        f"note {n}" for n in range(4)
    ]
    assert end == ""
    other = registry.report(REVIEWER, report_input(title="elsewhere", cwe_ids=["CWE-79"]))[0]
    for bad in (token + "x", "nonsense"):
        with pytest.raises(InvalidArgument) as forged:
            registry.comments(OP_A, fid, 2, bad)
        assert [name for name, _ in forged.value.violations] == ["page_token"]
    with pytest.raises(InvalidInput) as refused:
        registry.comments(REVIEWER, other.finding_id, 2, token)
    assert [v.field for v in refused.value.violations] == ["page_token"]
    with pytest.raises(InvalidInput) as refused:
        registry.comments(REVIEWER, fid, 501, "")
    assert [v.field for v in refused.value.violations] == ["page_size"]


def test_the_request_guard_lets_through_every_comment_the_registry_accepts() -> None:
    body = "c" * MAX_COMMENT
    for request in (
        pb.AddFindingCommentRequest(finding_id="f", body=body),
        pb.EditFindingCommentRequest(finding_id="f", comment_id="c", body=body),
    ):
        assert string_violations(request) == [], type(request).__name__


@pytest.mark.slow
def test_no_comment_reaches_a_principal_the_sharing_policy_does_not_allow(tmp_path: Path) -> None:
    """Property: random findings (labels, audiences, states, embargoes, sources, consents) with
    comments by random principals who may see them, internal or for the audience; every principal
    of every role reads exactly the comments the policy allows it (the finding's readers; internal
    ones only reviewers, admins and their author), no more on the wire, and no other author's id."""
    clock = ManualClock()
    components = make_components(
        f"sqlite:///{tmp_path / 'comments.db'}", tmp_path, ReportSigner(Ed25519PrivateKey.generate()), clock
    )
    checked = 0

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        nonlocal checked
        for spec, readers in draw_world(data, clock, components):
            fid = spec.finding.finding_id
            written = draw_authored(data, readers)
            for author, visibility, marker in written:
                components.registry.add_comment(author, fid, f"comment {marker}", visibility)
            for viewer in VIEWERS:
                checked += len(written)
                if viewer not in readers:
                    with pytest.raises(NotFound):
                        components.registry.comments(viewer, fid, 0, "")
                    continue
                page, _ = components.registry.comments(viewer, fid, 500, "")
                wire = b"".join(codec.comment_to_proto(c).SerializeToString() for c in page)
                for author, visibility, marker in written:
                    allowed = oracle_reads_authored(viewer, author, visibility)
                    assert (marker.encode() in wire) is allowed, (viewer, author, visibility, spec)
                check_authors(viewer, page)

    example()
    components.engine.dispose()
    print(f"comment sharing property: {checked} (principal, comment) pairs")
    assert checked >= 1_000


def test_comments_over_grpc_name_bad_fields_and_stay_within_the_view(api: Api) -> None:
    finding = published_to_op_a(api.components)
    fid = finding.finding_id
    added = api.stub.AddFindingComment(
        pb.AddFindingCommentRequest(
            finding_id=fid, body="patched in 1.4.2", visibility=pb.COMMENT_VISIBILITY_AUDIENCE
        ),
        metadata=api.as_(OP_A),  # type: ignore[arg-type]
    ).comment
    assert (added.author_id, added.author_role, added.revision) == (OP_A.principal_id, "operator", 1)
    api.stub.AddFindingComment(
        pb.AddFindingCommentRequest(
            finding_id=fid, body="internal", visibility=pb.COMMENT_VISIBILITY_INTERNAL
        ),
        metadata=api.as_(REVIEWER),  # type: ignore[arg-type]
    )
    edited = api.stub.EditFindingComment(
        pb.EditFindingCommentRequest(finding_id=fid, comment_id=added.comment_id, body="patched in 1.4.3"),
        metadata=api.as_(OP_A),  # type: ignore[arg-type]
    ).comment
    assert (edited.revision, edited.body) == (2, "patched in 1.4.3")
    seen = api.stub.ListFindingComments(
        pb.ListFindingCommentsRequest(finding_id=fid),
        metadata=api.as_(OP_B),  # type: ignore[arg-type]
    ).comments
    assert [(c.body, c.author_id, c.author_organisation) for c in seen] == [("patched in 1.4.3", "", "")]
    bad = [
        (api.stub.AddFindingComment, pb.AddFindingCommentRequest(finding_id=fid, body="x"), ["visibility"]),
        (
            api.stub.AddFindingComment,
            pb.AddFindingCommentRequest(finding_id=fid, visibility=pb.COMMENT_VISIBILITY_AUDIENCE),
            ["body"],
        ),
        (
            api.stub.AddFindingComment,
            pb.AddFindingCommentRequest(finding_id=fid, body="x", visibility=7),  # type: ignore[arg-type]
            ["visibility"],
        ),
        (api.stub.EditFindingComment, pb.EditFindingCommentRequest(finding_id=fid, body="x"), ["comment_id"]),
        (
            api.stub.ListFindingComments,
            pb.ListFindingCommentsRequest(finding_id=fid, page_token="forged"),
            ["page_token"],
        ),
        (api.stub.ListFindingComments, pb.ListFindingCommentsRequest(), ["finding_id"]),
    ]
    for call, message, fields in bad:
        with pytest.raises(grpc.RpcError) as caught:
            call(message, metadata=api.as_(REVIEWER))  # type: ignore[operator, arg-type]
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(caught.value)) == fields
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.EditFindingComment(
            pb.EditFindingCommentRequest(finding_id=fid, comment_id=added.comment_id, body="mine now"),
            metadata=api.as_(OP_B),  # type: ignore[arg-type]
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for outsider in (LAB_X, LAB_Y):
        with pytest.raises(grpc.RpcError) as caught:
            api.stub.ListFindingComments(
                pb.ListFindingCommentsRequest(finding_id=fid),
                metadata=api.as_(outsider),  # type: ignore[arg-type]
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_cli_comments_lists_and_edits(api: Api, tmp_path: Path) -> None:
    fid = published_to_op_a(api.components).finding_id
    preflight = api.cli_as(OP_A, tmp_path)  # type: ignore[arg-type]

    code, out, err = preflight(
        "--json", "finding", "comment", fid, "--visibility", "audience", "--body", "patched in 1.4.2"
    )
    assert code == 0, err
    comment_id = json.loads(out)["comment_id"]
    code, out, err = preflight("finding", "edit-comment", fid, comment_id, "--body", "patched in 1.4.3")
    assert code == 0, err
    assert "revision" in out and "2 (written" in out
    code, out, err = preflight("finding", "comments", fid)
    assert code == 0, err
    assert "patched in 1.4.3" in out and "AUDIENCE" in out
    code, _, err = preflight("finding", "comment", fid, "--visibility", "internal", "--body", " ")
    assert code == 1 and "body" in err
