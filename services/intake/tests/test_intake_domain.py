"""The status machine, access rules and validation rules, with nothing but the domain."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from preflight_intake.domain import access
from preflight_intake.domain.access import Caller
from preflight_intake.domain.model import (
    SHORT_ACCESS_WINDOW,
    AccessWindow,
    Contact,
    IllegalTransition,
    ModelIdentity,
    Status,
    Submission,
    WeightsAccess,
    WindowPolicy,
    is_legal,
)
from preflight_intake.domain.validation import (
    EndpointDraft,
    InvalidRequest,
    SubmissionDraft,
    WindowDraft,
    validate_release_plan,
    validate_submission,
    validate_submission_id,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POLICY = WindowPolicy(max_days=30, min_days=7)


def at(days: float) -> tuple[int, int]:
    return (int((NOW + timedelta(days=days)).timestamp()), 0)


def submission(status: Status) -> Submission:
    return Submission(
        submission_id="00000000-0000-4000-8000-000000000001",
        organisation="lab-a",
        submitted_by="alice",
        model=ModelIdentity("lab-a", "m", "1"),
        planned_release=NOW + timedelta(days=20),
        access=WeightsAccess("s3://b/m", "0" * 64, "gguf"),
        access_window=AccessWindow(NOW, NOW + timedelta(days=10)),
        contacts=(Contact("Ada", "ada@lab.example", ""),),
        declared_capabilities=(),
        intended_use="",
        share_identity_with_operators=False,
        flags=(),
        status=status,
        deadline_version=1,
        received_at=NOW,
        updated_at=NOW,
    )


def draft(**changes: object) -> SubmissionDraft:
    fields: dict[str, object] = {
        "developer": "lab-a",
        "name": "m",
        "version": "1",
        "planned_release": at(20),
        "access": EndpointDraft("https://api.lab.example/v1", "m", "sk-1"),
        "window": WindowDraft(at(0), at(10)),
        "contacts": (Contact("Ada", "ada@lab.example", "security"),),
        "declared_capabilities": ("code_generation",),
        "intended_use": "",
        "share_identity_with_operators": False,
        "idempotency_key": "k",
    }
    fields.update(changes)
    return SubmissionDraft(**fields)  # type: ignore[arg-type]


def fields_of(error: pytest.ExceptionInfo[InvalidRequest]) -> list[str]:
    return [v.field for v in error.value.violations]


FORWARD = [Status.RECEIVED, Status.BENCHMARKING, Status.UNDER_REVIEW, Status.REPORT_READY, Status.CLOSED]


@pytest.mark.parametrize(("current", "target"), list(itertools.pairwise(FORWARD)))
def test_each_forward_step_is_legal(current: Status, target: Status) -> None:
    assert submission(current).transition(target, NOW).status is target


@pytest.mark.parametrize("current", FORWARD[:-1])
def test_withdrawal_is_legal_from_every_non_terminal_state(current: Status) -> None:
    assert is_legal(current, Status.WITHDRAWN)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.RECEIVED, Status.UNDER_REVIEW),  # skipping a step
        (Status.UNDER_REVIEW, Status.BENCHMARKING),  # backwards
        (Status.REPORT_READY, Status.REPORT_READY),  # to itself
        (Status.CLOSED, Status.WITHDRAWN),  # out of a terminal state
        (Status.WITHDRAWN, Status.BENCHMARKING),
        (Status.WITHDRAWN, Status.WITHDRAWN),
    ],
)
def test_illegal_transitions_are_rejected(current: Status, target: Status) -> None:
    with pytest.raises(IllegalTransition):
        submission(current).transition(target, NOW)


def test_progress_walks_every_intermediate_step_and_never_backwards() -> None:
    assert submission(Status.RECEIVED).steps_to(Status.REPORT_READY) == [
        Status.BENCHMARKING,
        Status.UNDER_REVIEW,
        Status.REPORT_READY,
    ]
    assert submission(Status.UNDER_REVIEW).steps_to(Status.BENCHMARKING) == []
    assert submission(Status.WITHDRAWN).steps_to(Status.REPORT_READY) == []


def test_release_plan_change_bumps_the_deadline_version_and_reflags_the_window() -> None:
    before = submission(Status.BENCHMARKING)
    short = AccessWindow(NOW, NOW + timedelta(days=3))
    after = before.change_release_plan(NOW + timedelta(days=5), short, POLICY, NOW)
    assert after.deadline_version == 2
    assert after.review_deadline == NOW + timedelta(days=5)
    assert after.flags == (SHORT_ACCESS_WINDOW,)
    with pytest.raises(IllegalTransition):
        submission(Status.CLOSED).change_release_plan(NOW + timedelta(days=5), short, POLICY, NOW)


def test_labs_see_only_their_organisation_and_reviewers_see_all() -> None:
    lab = Caller("alice", "lab", "lab-a")
    reviewer = Caller("rita", "reviewer", "agency")
    operator = Caller("otto", "operator", "lab-a")
    assert access.may_read(lab, "lab-a")
    assert not access.may_read(lab, "lab-b")
    assert access.may_read(reviewer, "lab-b")
    assert not access.may_change(reviewer, "lab-b")
    assert not access.may_read(operator, "lab-a")
    assert not access.may_read(Caller("nobody", "lab", ""), "")
    assert access.listing_scope(lab) == "lab-a"
    assert access.listing_scope(reviewer) is None
    service = Caller("benchmark", "service", "preflight")
    assert access.may_read(service, "lab-b") and not access.may_change(service, "lab-b")
    assert access.listing_scope(service) is None
    with pytest.raises(PermissionError):
        access.listing_scope(operator)


def test_a_valid_draft_passes_and_a_short_window_is_flagged_not_refused() -> None:
    valid = validate_submission(
        draft(window=WindowDraft(at(0), at(3))), organisation="lab-a", policy=POLICY, now=NOW
    )
    assert POLICY.flags_for(valid.window) == (SHORT_ACCESS_WINDOW,)


def test_every_violation_is_reported_at_once() -> None:
    with pytest.raises(InvalidRequest) as error:
        validate_submission(
            draft(name="", planned_release=at(-1), contacts=()), organisation="lab-a", policy=POLICY, now=NOW
        )
    assert fields_of(error) == ["model.name", "planned_release", "contacts"]


@pytest.mark.parametrize(
    ("window", "field"),
    [
        (WindowDraft(at(5), at(4)), "access_window.end"),  # ends before it starts
        (WindowDraft(at(-5), at(-1)), "access_window.end"),  # already over
        (WindowDraft(at(0), at(21)), "access_window.end"),  # after the release
        (WindowDraft(None, at(4)), "access_window.start"),
    ],
)
def test_window_rules_name_the_field(window: WindowDraft, field: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        validate_submission(draft(window=window), organisation="lab-a", policy=POLICY, now=NOW)
    assert fields_of(error) == [field]


def test_window_longer_than_the_policy_maximum_is_refused() -> None:
    policy = WindowPolicy(max_days=5, min_days=1)
    with pytest.raises(InvalidRequest) as error:
        validate_submission(draft(), organisation="lab-a", policy=policy, now=NOW)
    assert fields_of(error) == ["access_window"]


def test_http_is_accepted_only_on_loopback() -> None:
    for url in ("http://127.0.0.1:8800/v1", "http://localhost/v1", "http://[::1]:80/v1"):
        validate_submission(
            draft(access=EndpointDraft(url, "m", "sk")), organisation="lab-a", policy=POLICY, now=NOW
        )
    with pytest.raises(InvalidRequest) as error:
        validate_submission(
            draft(access=EndpointDraft("http://10.0.0.1/v1", "m", "sk")),
            organisation="lab-a",
            policy=POLICY,
            now=NOW,
        )
    assert fields_of(error) == ["access.endpoint.base_url"]


def test_release_plan_without_a_new_window_must_still_cover_the_current_one() -> None:
    current = AccessWindow(NOW, NOW + timedelta(days=10))
    with pytest.raises(InvalidRequest) as error:
        validate_release_plan(
            planned_release=at(8), window=None, current_window=current, reason="", policy=POLICY, now=NOW
        )
    assert fields_of(error) == ["planned_release"]
    moved = validate_release_plan(
        planned_release=at(8),
        window=WindowDraft(at(0), at(7)),
        current_window=current,
        reason="",
        policy=POLICY,
        now=NOW,
    )
    assert moved.window.end == NOW + timedelta(days=7)


@pytest.mark.parametrize(
    "value",
    ["", "not-a-uuid", "00000000-0000-4000-8000-00000000000G", "{00000000-0000-4000-8000-000000000001}"],
)
def test_submission_ids_must_be_canonical_uuids(value: str) -> None:
    with pytest.raises(InvalidRequest):
        validate_submission_id(value)
