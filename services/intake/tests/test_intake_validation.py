"""Malformed requests get INVALID_ARGUMENT naming the field (google.rpc.BadRequest), and leave no
row and no event behind. Through the SDK against a real intake server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.common.v1 import common_pb2
from preflight.intake.v1 import intake_pb2, submission_pb2
from preflight.sdk import Client, InvalidArgument
from preflight_intake.adapters import tables

Mutation = Callable[[intake_pb2.SubmitModelRequest], None]


def days(n: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(days=n))
    return stamp


def weights(**fields: str) -> Mutation:
    def mutate(r: intake_pb2.SubmitModelRequest) -> None:
        spec = {
            "artifact_uri": "s3://models/frontier/",
            "sha256": "a" * 64,
            "format": "safetensors",
            **fields,
        }
        r.access.weights.CopyFrom(submission_pb2.WeightsAccess(**spec))

    return mutate


def endpoint(**fields: str) -> Mutation:
    def mutate(r: intake_pb2.SubmitModelRequest) -> None:
        for name, value in fields.items():
            setattr(r.access.endpoint, name, value)

    return mutate


def window(start: float | None, end: float | None, release: float = 20) -> Mutation:
    def mutate(r: intake_pb2.SubmitModelRequest) -> None:
        r.planned_release.CopyFrom(days(release))
        r.access_window.Clear()
        if start is not None:
            r.access_window.start.CopyFrom(days(start))
        if end is not None:
            r.access_window.end.CopyFrom(days(end))

    return mutate


def setting(path: str, value: Any) -> Mutation:
    def mutate(r: intake_pb2.SubmitModelRequest) -> None:
        *parents, leaf = path.split(".")
        target: Any = r
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, leaf, value)

    return mutate


def clearing(path: str) -> Mutation:
    def mutate(r: intake_pb2.SubmitModelRequest) -> None:
        *parents, leaf = path.split(".")
        target: Any = r
        for parent in parents:
            target = getattr(target, parent)
        target.ClearField(leaf)

    return mutate


def contacts(*entries: tuple[str, str]) -> Mutation:
    def mutate(r: intake_pb2.SubmitModelRequest) -> None:
        del r.contacts[:]
        r.contacts.extend(common_pb2.Contact(name=n, email=e) for n, e in entries)

    return mutate


def capabilities(*names: str) -> Mutation:
    def mutate(r: intake_pb2.SubmitModelRequest) -> None:
        del r.declared_capabilities[:]
        r.declared_capabilities.extend(names)

    return mutate


MALFORMED: list[tuple[str, Mutation, str]] = [
    ("developer missing", setting("model.developer", ""), "model.developer"),
    ("developer is another lab", setting("model.developer", "lab-b"), "model.developer"),
    ("model name missing", setting("model.name", ""), "model.name"),
    ("model name too long", setting("model.name", "m" * 201), "model.name"),
    ("version with a control character", setting("model.version", "1.0\n"), "model.version"),
    ("release missing", clearing("planned_release"), "planned_release"),
    ("release in the past", window(-3, -2, release=-1), "planned_release"),
    ("release not a valid timestamp", setting("planned_release.seconds", 10**12), "planned_release"),
    ("release nanos out of range", setting("planned_release.nanos", 1_500_000_000), "planned_release"),
    ("access missing", clearing("access"), "access"),
    ("endpoint over ftp", endpoint(base_url="ftp://api.lab.example/v1"), "access.endpoint.base_url"),
    (
        "endpoint over http off loopback",
        endpoint(base_url="http://api.lab.example/v1"),
        "access.endpoint.base_url",
    ),
    (
        "endpoint url with credentials",
        endpoint(base_url="https://u:p@api.lab.example/v1"),
        "access.endpoint.base_url",
    ),
    ("endpoint url missing", endpoint(base_url=""), "access.endpoint.base_url"),
    ("endpoint url not a url", endpoint(base_url="https://[not-a-host/v1"), "access.endpoint.base_url"),
    ("endpoint model name missing", endpoint(model_name=""), "access.endpoint.model_name"),
    ("credential missing", endpoint(credential=""), "access.endpoint.credential"),
    ("credential with spaces", endpoint(credential="sk live key"), "access.endpoint.credential"),
    ("digest upper-case", weights(sha256="A" * 64), "access.weights.sha256"),
    ("digest too short", weights(sha256="ab" * 16), "access.weights.sha256"),
    ("unknown weights format", weights(format="zip"), "access.weights.format"),
    ("weights on a file url", weights(artifact_uri="file:///models/frontier"), "access.weights.artifact_uri"),
    ("window missing", clearing("access_window"), "access_window"),
    ("window start missing", window(None, 5), "access_window.start"),
    ("window ends before it starts", window(5, 4), "access_window.end"),
    ("window ends after the release", window(0, 21, release=20), "access_window.end"),
    ("window already over", window(-10, -1, release=20), "access_window.end"),
    ("window longer than 30 days", window(0, 35, release=40), "access_window"),
    ("no contact", contacts(), "contacts"),
    ("contact e-mail invalid", contacts(("Ada", "ada-at-lab.example")), "contacts[0].email"),
    (
        "second contact unnamed",
        contacts(("Ada", "ada@lab.example"), ("", "bob@lab.example")),
        "contacts[1].name",
    ),
    ("too many contacts", contacts(*[("Ada", "ada@lab.example")] * 21), "contacts"),
    ("capability not an identifier", capabilities("Code Generation"), "declared_capabilities[0]"),
    ("capability repeated", capabilities("tool_use", "tool_use"), "declared_capabilities[1]"),
    ("intended use too long", setting("intended_use", "x" * 10_001), "intended_use"),
    ("idempotency key too long", setting("idempotency_key", "k" * 129), "idempotency_key"),
    ("idempotency key with a space", setting("idempotency_key", "my key"), "idempotency_key"),
]


@pytest.fixture(scope="module")
def lab_client(intake: Any) -> Iterator[Client]:
    with Client(intake.target, token=intake.token("alice", organisation="lab-a")) as client:
        yield client


def test_the_table_is_large_enough() -> None:
    assert len(MALFORMED) >= 25


@pytest.mark.parametrize(("case", "mutate", "field"), MALFORMED, ids=[case for case, _, _ in MALFORMED])
def test_malformed_submission_is_refused_naming_the_field_and_leaves_nothing(
    intake: Any,
    lab_client: Client,
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
    case: str,
    mutate: Mutation,
    field: str,
) -> None:
    rows, events = intake.count(tables.submissions), intake.count(tables.outbox)
    request = make_request("lab-a")
    mutate(request)
    with pytest.raises(InvalidArgument) as error:
        lab_client.submit(request)
    assert field in [v.field for v in error.value.field_violations], error.value.field_violations
    assert field in error.value.message
    assert (intake.count(tables.submissions), intake.count(tables.outbox)) == (rows, events)
    assert intake.count(tables.credentials) == rows


def test_the_unmodified_request_is_accepted(
    lab_client: Client, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    # Guards the table: each case differs from an accepted request only by its mutation.
    assert lab_client.submit(make_request("lab-a")).submission.status == intake_pb2.SUBMISSION_STATUS_RECEIVED


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.get_submission("not-an-id"), "submission_id"),
        (lambda c: c.list_submissions(page_size=-1), "page_size"),
        (lambda c: c.list_submissions(page_size=201), "page_size"),
        (lambda c: c.list_submissions(page_token="garbage!"), "page_token"),
        (lambda c: c.list_submissions(statuses=[0]), "statuses[0]"),
        (lambda c: c.list_submissions(statuses=[1, 99]), "statuses[1]"),
        (lambda c: c.withdraw("00000000-0000-4000-8000-000000000001x"), "submission_id"),
        (lambda c: c.resolve_credential("", "job-1"), "credential_ref"),
    ],
)
def test_malformed_reads_name_the_field(
    lab_client: Client, call: Callable[[Client], Any], field: str
) -> None:
    with pytest.raises(InvalidArgument) as error:
        call(lab_client)
    assert [v.field for v in error.value.field_violations] == [field]


def test_malformed_release_plan_changes_name_the_field_and_change_nothing(
    intake: Any, lab_client: Client, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    submission = lab_client.submit(make_request("lab-a")).submission
    now = datetime.now(UTC)
    events = intake.count(tables.outbox)
    cases = [
        (now - timedelta(days=1), None, "x", "planned_release"),
        (now + timedelta(days=5), None, "x", "planned_release"),  # before the current window ends
        (now + timedelta(days=20), (now, now + timedelta(days=25)), "x", "access_window.end"),
        (now + timedelta(days=20), None, "r" * 1001, "reason"),
    ]
    for release, new_window, reason, field in cases:
        with pytest.raises(InvalidArgument) as error:
            lab_client.update_release_plan(
                submission.submission_id, release, access_window=new_window, reason=reason
            )
        assert field in [v.field for v in error.value.field_violations]
    assert lab_client.get_submission(submission.submission_id).deadline_version == 1
    assert intake.count(tables.outbox) == events
