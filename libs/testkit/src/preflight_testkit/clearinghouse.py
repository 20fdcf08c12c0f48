"""The clearinghouse's fixtures and helpers, for its tests (and the console's feeds and the
benchmarks under bench/): principals, findings and events to start from, wired use cases on a
migrated database, and a real gRPC server on loopback that authenticates through a real
IdentityService (hosted here, as intake hosts it). Nothing is mocked.

Fixtures, taken in by name by services/clearinghouse/tests/conftest.py: `clock` (`ManualClock`),
`signer`, `components` (on `db_url`: SQLite and PostgreSQL), `sqlite_components`, `loopback`
(`LoopbackServer`) and `api` (`Api` over SQLite).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from preflight.benchmark.v1 import events_pb2 as benchmark_events
from preflight.clearinghouse.v1 import clearinghouse_pb2_grpc
from preflight.identity.v1 import identity_pb2_grpc
from preflight.intake.v1 import events_pb2 as intake_events
from preflight.intake.v1 import submission_pb2
from preflight.sdk.cli import main
from preflight_clearinghouse.adapters import codec, tables
from preflight_clearinghouse.adapters.signing import ReportSigner
from preflight_clearinghouse.bootstrap import Components, build
from preflight_clearinghouse.config import ClearinghouseSettings
from preflight_clearinghouse.domain.audit import GENESIS, entry_hash
from preflight_clearinghouse.domain.findings.finding import (
    AffectedProduct,
    CodeLocation,
    Cvss,
    Finding,
    FindingInput,
    FindingSource,
    Origin,
    ProductInput,
    fingerprint,
)
from preflight_clearinghouse.domain.findings.ports import FindingsUnitOfWork
from preflight_clearinghouse.domain.findings.workflow import EmbargoState, FindingState
from preflight_clearinghouse.domain.reviews.reports import SubmissionInfo
from preflight_clearinghouse.domain.sharing import Audience, Role, Tlp, Viewer
from preflight_clearinghouse.entrypoints.server import build_grpc_server
from preflight_common.auth import (
    IdentityServicer,
    IntrospectionAuthenticator,
    LocalAuthenticator,
    Principal,
    TokenStore,
    tokens_table,
)
from preflight_common.auth import Role as AuthRole
from preflight_common.db import make_engine
from preflight_common.grpcserver import build_server
from sqlalchemy import Engine, MetaData, delete, select, update

from preflight_testkit import events
from preflight_testkit.clock import START as START
from preflight_testkit.clock import ManualClock as ManualClock
from preflight_testkit.clock import ts as ts
from preflight_testkit.loops import LoopThread

V31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
V40 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"

REVIEWER = Viewer("rev-1", Role.REVIEWER, "agency")
ADMIN = Viewer("adm-1", Role.ADMIN, "platform")
SERVICE = Viewer("svc-1", Role.SERVICE, "platform")
LAB_X = Viewer("lab-x-user", Role.LAB, "lab-xq7")
LAB_Y = Viewer("lab-y-user", Role.LAB, "lab-yz3")
OP_A = Viewer("op-a-user", Role.OPERATOR, "op-a", frozenset({"energy"}))
OP_B = Viewer("op-b-user", Role.OPERATOR, "op-b", frozenset({"water", "finance"}))
OP_C = Viewer("op-c-user", Role.OPERATOR, "op-c")


def report_input(**overrides: Any) -> FindingInput:
    """A direct report every rule accepts: libfoo heap overflow, TLP:AMBER to op-a and finance."""
    base = FindingInput(
        title="Heap overflow in libfoo's header parser",
        description="A crafted Content-Length header overflows a heap buffer in parse_header().",
        cwe_ids=["CWE-787"],
        affected_products=[ProductInput(purl="pkg:pypi/libfoo", version_range="vers:pypi/>=1.0.0|<1.4.2")],
        location=CodeLocation("src/libfoo/parse.py", "parse_header", 120),
        cvss_v3_vector=V31,
        tlp=Tlp.AMBER,
        audience_organisations=["op-a"],
        audience_sectors=["finance"],
        evidence="poc: curl -H 'Content-Length: -1' …",
    )
    return replace(base, **overrides)


def make_finding(**overrides: Any) -> Finding:
    """A stored-shape finding (published, TLP:AMBER to op-a) with every field set; override freely."""
    affected = (AffectedProduct(purl="pkg:pypi/libfoo", version_range="vers:pypi/>=1.0.0|<1.4.2"),)
    location = CodeLocation("src/libfoo/parse.py", "parse_header", 120)
    base = Finding(
        finding_id=str(uuid.uuid4()),
        title="Heap overflow in libfoo",
        description="A crafted header overflows a heap buffer.",
        state=FindingState.VALIDATED,
        embargo_state=EmbargoState.NONE,
        embargo_end=None,
        remediation_due=None,
        cwe_ids=("CWE-787",),
        affected=affected,
        location=location,
        cvss=Cvss(),
        tlp=Tlp.AMBER,
        audience=Audience(frozenset({"op-a"}), frozenset()),
        source=None,
        origin=Origin.REVIEWER,
        reporter_id="rev-1",
        reporter_organisation="agency",
        evidence="evidence-secret",
        fingerprint=fingerprint(affected, location, ("CWE-787",)),
        link=None,
        patch_statuses=(),
        created_at=START,
        updated_at=START,
        published_at=START,
        revision=1,
    )
    return replace(base, **overrides)


def store_finding(uow: FindingsUnitOfWork, finding: Finding) -> None:
    """Insert a finding as the registry would (row, audience and an audit entry for the change feed)."""
    uow.insert_findings([finding])
    uow.audit(
        at=finding.updated_at,
        actor="test",
        action="finding.reported",
        subject_kind="finding",
        subject_id=finding.finding_id,
    )


def source(organisation: str, consent: bool | None, submission_id: str = "") -> FindingSource:
    return FindingSource(
        submission_id=submission_id or f"sub-{uuid.uuid4().hex[:8]}",
        organisation=organisation,
        model_name=f"model-of-{organisation}",
        model_version="2.0",
        share_identity=consent,
    )


# --- events as the other services publish them ---------------------------------------------


def submission_received(
    submission_id: str, organisation: str = "lab-xq7", consent: bool = False
) -> intake_events.SubmissionReceived:
    """A submission received at START, open for a week, sharing its identity with operators when
    `consent`."""
    return events.submission_received(
        submission_id,
        organisation,
        (START, START + timedelta(days=7)),
        consent=submission_pb2.SharingConsent(share_identity_with_operators=consent),
        received_at=ts(START),
    )


SUITES = (
    ("cyber.vuln-detect", "vulnerability_detection", "accuracy"),
    ("cyber.exploit", "exploit_generation", "accuracy"),
    ("cyber.knowledge", "security_knowledge", "accuracy"),
    ("cyber.discovery", "vulnerability_discovery", "recall"),
)
SUITE_IDS = tuple(suite_id for suite_id, _, _ in SUITES)


def job_id(submission_id: str, suite_id: str) -> str:
    return f"{submission_id}/{suite_id}/1.0.0"


def first_attempt(submission_id: str, suite_id: str, capability: str) -> dict[str, Any]:
    """The fields every benchmark job event of a suite's first attempt carries."""
    return {
        "job_id": job_id(submission_id, suite_id),
        "submission_id": submission_id,
        "suite_id": suite_id,
        "suite_version": "1.0.0",
        "capability": capability,
        "attempt": 1,
    }


def job_requested(
    submission_id: str, suite_id: str, capability: str, planned_jobs: int = len(SUITES)
) -> benchmark_events.BenchmarkJobRequested:
    return benchmark_events.BenchmarkJobRequested(
        **first_attempt(submission_id, suite_id, capability),
        max_attempts=3,
        planned_jobs=planned_jobs,
    )


def completed(
    submission_id: str,
    suite_id: str,
    capability: str,
    metric: str,
    value: float,
    samples: int = 12,
    candidates: tuple[benchmark_events.CandidateFinding, ...] = (),
) -> benchmark_events.BenchmarkCompleted:
    return benchmark_events.BenchmarkCompleted(
        **first_attempt(submission_id, suite_id, capability),
        scores=[
            benchmark_events.TaskScore(task=suite_id, metric=metric, value=value, stderr=0.1, samples=samples)
        ],
        samples_total=samples,
        eval_log_uri=f"file:///logs/{suite_id}.eval",
        candidate_findings=list(candidates),
    )


def plan_ended(
    submission_id: str, suites: tuple[str, ...] = SUITE_IDS
) -> benchmark_events.BenchmarkPlanEnded:
    """The benchmark's announcement that the submission's plan (one job per suite) ended."""
    announced = benchmark_events.BenchmarkPlanEnded(
        submission_id=submission_id,
        jobs=[
            benchmark_events.PlannedJobOutcome(
                job_id=job_id(submission_id, suite), suite_id=suite, attempts=1
            )
            for suite in suites
        ],
    )
    announced.ended_at.FromDatetime(START)
    return announced


def candidate(**overrides: Any) -> benchmark_events.CandidateFinding:
    fields: dict[str, Any] = {
        "cwe_ids": ["CWE-89"],
        "affected_product": "pkg:pypi/shopdb",
        "affected_file": "shopdb/query.py",
        "affected_function": "find_user",
        "line": 42,
        "title": "SQL injection in find_user",
        "description": "User input is concatenated into SQL.",
        "evidence": "model transcript: ' OR 1=1 --",
    }
    fields.update(overrides)
    return benchmark_events.CandidateFinding(**fields)


def failed(submission_id: str, suite_id: str, capability: str) -> benchmark_events.BenchmarkFailed:
    return benchmark_events.BenchmarkFailed(
        **first_attempt(submission_id, suite_id, capability),
        reason=benchmark_events.FAILURE_REASON_TIMEOUT,
        message="suite timed out after 3600 s",
    )


# --- running the service -------------------------------------------------------------------


def make_components(
    database_url: str, tmp_path: Path, signer: ReportSigner, clock: ManualClock, **settings: object
) -> Components:
    defaults: dict[str, object] = {
        "database_url": database_url,
        "state_dir": tmp_path / "state",
        "stream_poll_interval": 0.05,
    }
    config = replace(ClearinghouseSettings(), **{**defaults, **settings})  # type: ignore[arg-type]
    return build(config, signer, clock=clock)


@dataclass
class Identity:
    """A real IdentityService on loopback (as intake hosts it) and tokens for principals."""

    target: str
    store: TokenStore
    service_token: str

    def token(self, principal: Principal) -> str:
        return self.store.create(principal).token


class LoopbackServer(LoopThread):
    """Runs grpc.aio servers on a private event loop in a thread, so sync tests can call them."""

    def __init__(self) -> None:
        super().__init__("loopback-servers")
        self._servers: list[grpc.aio.Server] = []

    def start(self, server: grpc.aio.Server) -> None:
        self.run(server.start())
        self._servers.append(server)

    def close(self) -> None:
        """Stop every server started here (latest first), then the loop."""
        for server in reversed(self._servers):
            self.run(server.stop(0))
        super().close()


def start_identity(loopback: LoopbackServer, tmp_path: Path) -> Identity:
    metadata = MetaData()
    table = tokens_table(metadata)
    engine = make_engine(f"sqlite:///{tmp_path / 'identity.db'}")
    metadata.create_all(engine)
    store = TokenStore(engine, table)

    def register(server: grpc.aio.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(store), server)

    async def build_identity() -> tuple[grpc.aio.Server, int]:
        server, port, _health = build_server(
            "127.0.0.1:0", [register], authenticator=LocalAuthenticator(store), service_names=[]
        )
        return server, port

    server, port = loopback.run(build_identity())
    loopback.start(server)
    service_token = store.create(Principal("clearinghouse", AuthRole.SERVICE, "platform")).token
    return Identity(f"127.0.0.1:{port}", store, service_token)


@dataclass
class Api:
    """A clearinghouse gRPC server on loopback and a way to call it as any principal."""

    components: Components
    identity: Identity
    target: str
    channel: grpc.Channel
    stub: clearinghouse_pb2_grpc.ClearinghouseServiceStub

    def as_(self, principal: Principal) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying a fresh token for `principal`."""
        return (("authorization", f"Bearer {self.identity.token(principal)}"),)

    def cli_as(self, principal: Principal, tmp_path: Path) -> Callable[..., tuple[int, str, str]]:
        """The `preflight` CLI run in-process against this server as `principal` (a fresh token in
        a file under `tmp_path`): each call takes the command line's words and returns the exit
        code, standard output and standard error."""
        token = tmp_path / "token"
        token.write_text(self.identity.token(principal))

        def preflight(*args: str) -> tuple[int, str, str]:
            out, err = io.StringIO(), io.StringIO()
            code = main(["--target", self.target, "--token-file", str(token), *args], out, err)
            return code, out.getvalue(), err.getvalue()

        return preflight


def start_api(loopback: LoopbackServer, tmp_path: Path, components: Components) -> Api:
    identity = start_identity(loopback, tmp_path)

    async def build_api() -> tuple[grpc.aio.Server, int]:
        authenticator = IntrospectionAuthenticator(identity.target, identity.service_token, cache_ttl=30)
        server, port, _health = build_grpc_server(components, authenticator, "127.0.0.1:0")
        return server, port

    server, port = loopback.run(build_api())
    loopback.start(server)
    target = f"127.0.0.1:{port}"
    channel = grpc.insecure_channel(target)
    return Api(
        components, identity, target, channel, clearinghouse_pb2_grpc.ClearinghouseServiceStub(channel)
    )


def published_to_op_a(components: Components) -> Finding:
    """A reviewer's report (TLP:AMBER to op-a and finance, `report_input`), validated."""
    finding, _ = components.registry.report(REVIEWER, report_input())
    for state in (FindingState.TRIAGED, FindingState.VALIDATED):
        finding = components.registry.transition(REVIEWER, finding.finding_id, state, None, "", 0)
    return finding


def issue_report(components: Components, submission_id: str, organisation: str) -> None:
    """A submission of `organisation` whose planned suites all completed: its report is issued."""
    reviews = components.reviews
    reviews.submission_received(
        f"{submission_id}/received",
        SubmissionInfo(submission_id, organisation, "frontier", "1.0", False, START),
    )
    for suite, capability, _metric in SUITES:
        planned = codec.planned_job(job_requested(submission_id, suite, capability))
        reviews.job_requested(f"{submission_id}/{suite}/requested", submission_id, planned)
    for suite, capability, metric in SUITES:
        ended, _ = codec.completed_job(completed(submission_id, suite, capability, metric, 0.9))
        reviews.job_ended(f"{submission_id}/{suite}/ended", submission_id, ended)
    reviews.plan_ended(
        f"{submission_id}/plan-ended", submission_id, [j.job_id for j in plan_ended(submission_id).jobs]
    )


def recompute_audit_chain(engine: Engine) -> None:
    """What whoever holds the database can do: rehash every audit entry from its stored content and
    move the head to the new last hash, so that the chain is consistent with itself again."""
    log = tables.audit_log
    with engine.begin() as conn:
        prev, seq = GENESIS, 0
        for row in conn.execute(select(log).order_by(log.c.seq)).all():
            digest = entry_hash(
                prev,
                seq=row.seq,
                at=row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC),
                actor=row.actor,
                action=row.action,
                subject_kind=row.subject_kind,
                subject_id=row.subject_id,
                details=json.loads(row.details),
            )
            conn.execute(update(log).where(log.c.seq == row.seq).values(prev_hash=prev, hash=digest))
            prev, seq = digest, row.seq
        conn.execute(update(tables.audit_head).values(seq=seq, hash=prev))


def truncate_audit_log(engine: Engine, keep: int) -> None:
    """Delete the audit entries after `keep` and move the head back to the last one kept."""
    with engine.begin() as conn:
        conn.execute(delete(tables.audit_log).where(tables.audit_log.c.seq > keep))
    recompute_audit_chain(engine)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `preflight-clearinghouse` console script with `env` added to this environment."""
    return subprocess.run(
        [sys.executable, "-m", "preflight_clearinghouse.entrypoints.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def signer() -> ReportSigner:
    return ReportSigner(Ed25519PrivateKey.generate())


@pytest.fixture
def components(db_url: str, tmp_path: Path, signer: ReportSigner, clock: ManualClock) -> Iterator[Components]:
    """Wired use cases on a migrated database (SQLite and PostgreSQL)."""
    built = make_components(db_url, tmp_path, signer, clock)
    yield built
    built.engine.dispose()


@pytest.fixture
def sqlite_components(tmp_path: Path, signer: ReportSigner, clock: ManualClock) -> Iterator[Components]:
    """Wired use cases on a migrated SQLite database."""
    built = make_components(f"sqlite:///{tmp_path / 'ch.db'}", tmp_path, signer, clock)
    yield built
    built.engine.dispose()


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    servers = LoopbackServer()
    yield servers
    servers.close()


@pytest.fixture
def api(loopback: LoopbackServer, tmp_path: Path, sqlite_components: Components) -> Iterator[Api]:
    """The clearinghouse API on loopback over SQLite, authenticated through a loopback IdentityService."""
    started = start_api(loopback, tmp_path, sqlite_components)
    yield started
    started.channel.close()
