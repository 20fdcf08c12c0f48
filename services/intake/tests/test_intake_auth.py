"""Authentication and scope: every call needs a valid token; a lab reaches only its own
organisation's submissions, and another's answer exactly like one that does not exist."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from preflight.identity.v1 import identity_pb2
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc
from preflight.sdk import (
    TLS,
    Client,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from preflight_common.auth import Principal, Role
from preflight_common.grpcserver import ServerTLS
from preflight_intake.adapters import tables
from preflight_testkit.tls import TestAuthority
from sqlalchemy import select

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def clients(intake: Any) -> Iterator[dict[str, Client]]:
    made = {
        "lab_a": Client(intake.target, token=intake.token("alice", Role.LAB, "lab-a")),
        "lab_b": Client(intake.target, token=intake.token("bob", Role.LAB, "lab-b")),
        "reviewer": Client(intake.target, token=intake.token("rita", Role.REVIEWER, "agency")),
        "operator": Client(intake.target, token=intake.token("otto", Role.OPERATOR, "bank")),
        "service": Client(intake.target, token=intake.token("worker", Role.SERVICE, "preflight")),
        "admin": Client(intake.target, token=intake.token("root", Role.ADMIN, "preflight")),
    }
    yield made
    for client in made.values():
        client.close()


@pytest.fixture
def b_submission(
    clients: dict[str, Client], make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> Any:
    return clients["lab_b"].submit(make_request("lab-b")).submission


def future(days: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


ACTIONS: dict[str, Callable[[Client, str], Any]] = {
    "get": lambda c, sid: c.get_submission(sid),
    "watch": lambda c, sid: next(iter(c.watch(sid, timeout=5))),
    "update": lambda c, sid: c.update_release_plan(sid, future(25), reason="mine now"),
    "withdraw": lambda c, sid: c.withdraw(sid, reason="mine now"),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_lab_a_cannot_reach_lab_b_submission_and_learns_nothing(
    clients: dict[str, Client], b_submission: Any, action: str
) -> None:
    with pytest.raises(NotFound) as foreign:
        ACTIONS[action](clients["lab_a"], b_submission.submission_id)
    with pytest.raises(NotFound) as missing:
        ACTIONS[action](clients["lab_a"], UNKNOWN_ID)
    assert foreign.value.message == missing.value.message
    # Lab B's submission is untouched.
    unchanged = clients["lab_b"].get_submission(b_submission.submission_id)
    assert unchanged.status == intake_pb2.SUBMISSION_STATUS_RECEIVED
    assert unchanged.deadline_version == 1


def test_lab_a_lists_only_its_own(
    clients: dict[str, Client], b_submission: Any, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    own = clients["lab_a"].submit(make_request("lab-a")).submission
    listed = list(clients["lab_a"].iter_submissions())
    assert own.submission_id in {s.submission_id for s in listed}
    assert {s.organisation for s in listed} == {"lab-a"}
    everything = {s.submission_id for s in clients["reviewer"].iter_submissions()}
    assert {own.submission_id, b_submission.submission_id} <= everything


def test_reviewers_read_everything_but_change_nothing(clients: dict[str, Client], b_submission: Any) -> None:
    reviewer = clients["reviewer"]
    assert reviewer.get_submission(b_submission.submission_id).organisation == "lab-b"
    assert next(iter(reviewer.watch(b_submission.submission_id, timeout=5))).sequence == 1
    with pytest.raises(PermissionDenied):
        reviewer.withdraw(b_submission.submission_id)
    with pytest.raises(PermissionDenied):
        reviewer.update_release_plan(b_submission.submission_id, future(25))


def test_services_read_every_submission_but_change_nothing(
    clients: dict[str, Client],
    b_submission: Any,
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    # The benchmark asks whether a submission was withdrawn right before it starts a job.
    service = clients["service"]
    assert service.get_submission(b_submission.submission_id).organisation == "lab-b"
    assert b_submission.submission_id in {s.submission_id for s in service.iter_submissions()}
    with pytest.raises(PermissionDenied):
        service.withdraw(b_submission.submission_id)
    with pytest.raises(PermissionDenied):
        service.update_release_plan(b_submission.submission_id, future(25))
    with pytest.raises(PermissionDenied):
        service.submit(make_request("lab-b"))
    clients["lab_b"].withdraw(b_submission.submission_id, reason="not ready")
    withdrawn = service.get_submission(b_submission.submission_id)
    assert withdrawn.status == intake_pb2.SUBMISSION_STATUS_WITHDRAWN


@pytest.mark.parametrize("role", ["operator", "admin"])
def test_other_roles_read_no_submissions(
    clients: dict[str, Client],
    b_submission: Any,
    role: str,
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
) -> None:
    client = clients[role]
    with pytest.raises(PermissionDenied):
        client.get_submission(b_submission.submission_id)
    with pytest.raises(PermissionDenied):
        client.list_submissions()
    with pytest.raises(PermissionDenied):
        client.submit(make_request("lab-b"))


def _raw_get(intake: Any, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    with grpc.insecure_channel(intake.target) as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        try:
            stub.GetSubmission(
                intake_pb2.GetSubmissionRequest(submission_id=UNKNOWN_ID), metadata=metadata, timeout=5
            )
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
    raise AssertionError("the call succeeded")


def test_missing_malformed_and_wrong_tokens_are_unauthenticated(intake: Any) -> None:
    valid = intake.token("alice", Role.LAB, "lab-a")
    assert _raw_get(intake, (("authorization", f"Bearer {valid}"),)) == grpc.StatusCode.NOT_FOUND
    for metadata in (
        (),
        (("authorization", "Bearer "),),
        (("authorization", f"Basic {valid}"),),
        (("authorization", "Bearer pft_00000000_not-a-real-token"),),
        (("authorization", f"Bearer {valid[:-2]}xx"),),
    ):
        assert _raw_get(intake, metadata) == grpc.StatusCode.UNAUTHENTICATED, metadata


def test_expired_and_revoked_tokens_are_unauthenticated(
    intake: Any, make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    expiring = intake.token("eve", Role.LAB, "lab-a", expires_at=datetime.now(UTC) + timedelta(seconds=1))
    with Client(intake.target, token=expiring) as client:
        client.list_submissions()
        time.sleep(1.2)
        with pytest.raises(Unauthenticated):
            client.list_submissions()
    with Client(intake.target, token=intake.token("root2", Role.ADMIN, "preflight")) as admin:
        issued = admin.create_token(principal_id="mallory", role=identity_pb2.ROLE_LAB, organisation="lab-a")
        with Client(intake.target, token=issued.token) as client:
            client.submit(make_request("lab-a"))
            admin.revoke_token(issued.token_id)
            with pytest.raises(Unauthenticated):
                client.list_submissions()


def test_a_caller_revokes_the_token_it_presents_and_no_other(intake: Any) -> None:
    tokens = intake.tokens()
    own = tokens.create(Principal("lena", Role.LAB, "lab-a"))
    other = tokens.create(Principal("bob", Role.LAB, "lab-b"))
    with Client(intake.target, token=own.token) as lab, Client(intake.target, token=other.token) as bob:
        # Another principal's token, or an id that names none, is refused alike and changes nothing.
        for token_id in (other.token_id, UNKNOWN_ID.replace("-", "")):
            with pytest.raises(PermissionDenied):
                lab.revoke_token(token_id)
        bob.list_submissions()
        lab.revoke_token(own.token_id)
        with pytest.raises(Unauthenticated):
            lab.list_submissions()
        bob.list_submissions()


def test_only_admins_issue_tokens(clients: dict[str, Client]) -> None:
    for role in ("lab_a", "reviewer", "service"):
        with pytest.raises(PermissionDenied):
            clients[role].create_token(principal_id="x", role=identity_pb2.ROLE_ADMIN, organisation="lab-a")


def test_only_a_jobs_worker_resolves_credentials_and_every_attempt_is_audited(
    intake: Any,
    clients: dict[str, Client],
    make_request: Callable[..., intake_pb2.SubmitModelRequest],
    credential: str,
) -> None:
    submission = clients["lab_a"].submit(make_request("lab-a")).submission
    ref = submission.access.endpoint.credential_ref
    assert ref and credential not in str(submission)
    for role in ("lab_a", "reviewer", "admin", "service"):
        with pytest.raises(PermissionDenied):
            clients[role].resolve_credential(ref, "job-x")

    def worker(job_id: str) -> Client:
        """A client with the job token of `job_id` (as IssueJobToken issues it)."""
        return Client(intake.target, token=intake.token(job_id, Role.WORKER, "preflight"))

    # A job intake does not know for the submission (test_intake_progress.py: a running one).
    with worker("job-1") as client, pytest.raises(Unavailable):
        client.resolve_credential(ref, "job-1")
    with worker("job-2") as client, pytest.raises(NotFound):
        client.resolve_credential("cred-unknown", "job-2")
    clients["lab_a"].withdraw(submission.submission_id)
    with worker("job-3") as client, pytest.raises(FailedPrecondition):
        client.resolve_credential(ref, "job-3")
    log = tables.credential_access_log
    with intake.engine.connect() as conn:
        rows = conn.execute(
            select(log.c.principal_id, log.c.job_id, log.c.outcome).where(
                log.c.credential_ref.in_([ref, "cred-unknown"])
            )
        ).all()
    audit = {(principal, job): outcome.split(":")[0] for principal, job, outcome in rows}
    assert audit == {
        ("alice", "job-x"): "denied",
        ("rita", "job-x"): "denied",
        ("root", "job-x"): "denied",
        ("worker", "job-x"): "denied",
        ("job-1", "job-1"): "denied",
        ("job-2", "job-2"): "denied",
        ("job-3", "job-3"): "denied",
    }


def test_mtls_client_certificates_name_the_principal(
    intake_factory: Callable[..., Any], make_request: Callable[..., intake_pb2.SubmitModelRequest]
) -> None:
    authority = TestAuthority()
    server_cert = authority.issue("intake", organisation="preflight", unit="service")
    server = intake_factory(tls=ServerTLS(server_cert.certificate, server_cert.key, client_ca=authority.pem))
    lab = authority.issue("alice", organisation="lab-a", unit="lab")
    with Client(server.target, tls=TLS(authority.pem, lab.certificate, lab.key)) as lab_client:
        submission = lab_client.submit(make_request("lab-a")).submission
        assert submission.submitted_by == "alice"
        assert [s.submission_id for s in lab_client.iter_submissions()] == [submission.submission_id]
    operator = authority.issue("otto", organisation="bank", unit="operator")
    operator_tls = TLS(authority.pem, operator.certificate, operator.key)
    with Client(server.target, tls=operator_tls) as operator_client, pytest.raises(PermissionDenied):
        operator_client.list_submissions()
    with Client(server.target, tls=TLS(authority.pem), timeout=5) as anonymous, pytest.raises(Unavailable):
        anonymous.list_submissions()
