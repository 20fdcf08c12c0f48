"""Intake against hostile input over real gRPC: a full database is a retryable UNAVAILABLE (the same
request succeeds once there is room), page tokens cannot be forged or edited, and the identity
service refuses principals and expiries that break the shared grammar, naming the field."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.identity.v1 import identity_pb2, identity_pb2_grpc
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc
from preflight_common.auth import Role
from preflight_common.config import KafkaSettings
from preflight_intake.adapters import tables
from preflight_testkit.intake import create_topics, make_settings, valid_request
from preflight_testkit.rpc import field_violations
from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection


@pytest.fixture
def intake(intake_factory: Callable[..., Any], tmp_path: Path, kafka_settings: KafkaSettings) -> Any:
    """An intake server of its own, its Kafka clients the broker administrator."""
    settings = make_settings(tmp_path / "hostile", kafka_settings)
    settings = replace(settings, kafka=kafka_settings)
    create_topics(settings, kafka_settings)
    return intake_factory(settings)


@pytest.fixture
def page_limit() -> Iterator[list[int | None]]:
    """`limit[0]`, when set, becomes every SQLite connection's `max_page_count` as each transaction
    begins (the submissions writer keeps its connection across transactions): the database can grow
    no further than that, as on a full disk (SQLITE_FULL)."""
    limit: list[int | None] = [None]

    def on_begin(conn: Connection) -> None:
        dbapi_connection = conn.connection.dbapi_connection
        if limit[0] is not None and type(dbapi_connection).__module__ == "sqlite3":
            dbapi_connection.execute(f"PRAGMA max_page_count = {limit[0]}")

    event.listen(Engine, "begin", on_begin)
    yield limit
    event.remove(Engine, "begin", on_begin)


def test_a_full_database_answers_unavailable_and_the_same_request_succeeds_once_there_is_room(
    intake: Any, page_limit: list[int | None]
) -> None:
    server = intake
    metadata = (("authorization", f"Bearer {server.token('alice', Role.LAB, 'lab-a')}"),)
    request = valid_request("lab-a", intended_use="a model for security teams " * 300)
    with server.engine.connect() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
    with grpc.insecure_channel(server.target) as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        page_limit[0] = pages
        with pytest.raises(grpc.RpcError) as error:
            stub.SubmitModel(request, metadata=metadata, timeout=30)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error.value.details() == "storage is exhausted; retry later"
        assert server.count(tables.submissions) == 0

        page_limit[0] = 1_000_000
        first = stub.SubmitModel(request, metadata=metadata, timeout=30)
        again = stub.SubmitModel(request, metadata=metadata, timeout=30)
    assert not first.replayed and again.replayed
    assert again.submission.submission_id == first.submission.submission_id
    assert server.count(tables.submissions) == 1


def test_page_tokens_are_opaque_and_forged_or_edited_ones_are_invalid_argument(intake: Any) -> None:
    metadata = (("authorization", f"Bearer {intake.token('paula', Role.LAB, 'lab-pages')}"),)
    with grpc.insecure_channel(intake.target) as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        submitted = [stub.SubmitModel(valid_request("lab-pages"), metadata=metadata) for _ in range(3)]
        ids = {s.submission.submission_id for s in submitted}
        first = stub.ListSubmissions(intake_pb2.ListSubmissionsRequest(page_size=1), metadata=metadata)
        token = first.next_page_token
        assert token
        padded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert first.submissions[0].submission_id.encode() not in padded
        second = stub.ListSubmissions(
            intake_pb2.ListSubmissionsRequest(page_size=5, page_token=token), metadata=metadata
        )
        assert {s.submission_id for s in [*first.submissions, *second.submissions]} == ids
        edited = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
        for bad in ("9" * 40, edited, token + "x", "not a token"):
            with pytest.raises(grpc.RpcError) as error:
                stub.ListSubmissions(
                    intake_pb2.ListSubmissionsRequest(page_size=1, page_token=bad), metadata=metadata
                )
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
            assert set(field_violations(error.value)) == {"page_token"}


@pytest.mark.parametrize(
    ("principal", "expires_at", "field"),
    [
        (identity_pb2.Principal(principal_id=" ", organisation="lab-a"), None, "principal.principal_id"),
        (
            identity_pb2.Principal(principal_id="\r\nX-Injected: 1", organisation="lab-a"),
            None,
            "principal.principal_id",
        ),
        (identity_pb2.Principal(principal_id="ada", organisation="\n" * 40), None, "principal.organisation"),
        (
            identity_pb2.Principal(principal_id="ada", organisation="https://evil.example/"),
            None,
            "principal.organisation",
        ),
        (identity_pb2.Principal(principal_id="ada", organisation="Lab A"), None, "principal.organisation"),
        (
            identity_pb2.Principal(principal_id="ada", organisation="bank-a", sectors=["energy", "Fin ance"]),
            None,
            "principal.sectors[1]",
        ),
        (identity_pb2.Principal(principal_id="ada", organisation="lab-a"), Timestamp(nanos=-1), "expires_at"),
        (
            identity_pb2.Principal(principal_id="ada", organisation="lab-a"),
            Timestamp(seconds=253402300800),
            "expires_at",
        ),
    ],
)
def test_create_token_refuses_bad_principals_and_expiries_naming_the_field(
    intake: Any, principal: identity_pb2.Principal, expires_at: Timestamp | None, field: str
) -> None:
    principal.role = identity_pb2.ROLE_OPERATOR
    metadata = (("authorization", f"Bearer {intake.token('root', Role.ADMIN, 'preflight')}"),)
    request = identity_pb2.CreateTokenRequest(principal=principal, expires_at=expires_at)
    with grpc.insecure_channel(intake.target) as channel, pytest.raises(grpc.RpcError) as error:
        identity_pb2_grpc.IdentityServiceStub(channel).CreateToken(request, metadata=metadata, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error.value)) == {field}


def test_create_token_accepts_a_well_formed_principal(intake: Any) -> None:
    metadata = (("authorization", f"Bearer {intake.token('root', Role.ADMIN, 'preflight')}"),)
    principal = identity_pb2.Principal(
        principal_id="ops@bank-a", role=identity_pb2.ROLE_OPERATOR, organisation="bank-a", sectors=["finance"]
    )
    with grpc.insecure_channel(intake.target) as channel:
        response = identity_pb2_grpc.IdentityServiceStub(channel).CreateToken(
            identity_pb2.CreateTokenRequest(principal=principal), metadata=metadata, timeout=30
        )
    assert response.token.startswith("pft_")
