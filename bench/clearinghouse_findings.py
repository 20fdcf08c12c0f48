"""Clearinghouse findings: ingest rate with dedup, and ListFindings latency with 100,000 findings stored.

    python bench/clearinghouse_findings.py [--ingest 3000] [--stored 100000] [--calls 300]

Prints, each next to a baseline measured in the same run on the same SQLite file:

1. direct reports ingested per second through the use case (checks, CVSS scoring, dedup lookup,
   insert, audit-chain entry; one transaction each; 30% duplicates of earlier reports), against
   plain single-row inserts of the same rows (no checks, no dedup, no audit);
2. benchmark candidate findings ingested per second (50 per BenchmarkCompleted, one transaction
   per result), same baseline;
3. ListFindings p50/p99 over real gRPC on loopback with `--stored` findings in the database, for a
   reviewer (sees all) and an operator (sees what its TLP/audience allow), pages of 100 from random
   positions, against the bare SQL query of 100 rows at the same positions.

Bounded well under 2 minutes on a 2-core machine with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from preflight.clearinghouse.v1 import clearinghouse_pb2 as pb
from preflight.clearinghouse.v1 import clearinghouse_pb2_grpc
from preflight_clearinghouse.adapters import tables
from preflight_clearinghouse.adapters.signing import ReportSigner
from preflight_clearinghouse.bootstrap import Components, build
from preflight_clearinghouse.config import ClearinghouseSettings
from preflight_clearinghouse.domain.findings.finding import (
    CandidateInput,
    CodeLocation,
    Finding,
    FindingDraft,
    FindingInput,
    Origin,
    ProductInput,
    check_report,
)
from preflight_clearinghouse.domain.findings.queries import FindingQuery
from preflight_clearinghouse.domain.findings.workflow import FindingState
from preflight_clearinghouse.domain.sharing import Audience, Tlp, Viewer
from preflight_clearinghouse.domain.sharing import Role as ViewerRole
from preflight_clearinghouse.entrypoints.server import build_grpc_server
from preflight_clearinghouse.service_layer.findings import encode_page_token
from preflight_common.auth import LocalAuthenticator, Principal, Role, TokenStore, tokens_table
from sqlalchemy import MetaData, select

V31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
REPORTER = Viewer("bench-reviewer", ViewerRole.REVIEWER, "agency")
OPERATORS = ("op-a", "op-b", "op-c", "op-d")
SECTORS = ("energy", "water", "finance", "healthcare")


def report(i: int, distinct: int) -> FindingInput:
    """Report number i; i and i + distinct share a fingerprint (and sharing), so they deduplicate."""
    n = i % distinct
    return FindingInput(
        title=f"Overflow {i} in parser",
        description="A crafted header overflows a buffer.",
        cwe_ids=["CWE-787"],
        affected_products=[ProductInput(purl=f"pkg:pypi/lib{n}", version_range="vers:pypi/>=1.0|<2.0")],
        location=CodeLocation("src/parse.py", f"parse_{n}", 10),
        cvss_v3_vector=V31,
        tlp=Tlp.AMBER,
        audience_organisations=["op-a"],
    )


def per_second(count: int, seconds: float) -> str:
    return f"{count / seconds:9.0f}/s"


def baseline_inserts(components: Components, findings: list[Finding], per_transaction: int) -> float:
    """The same findings stored as they are: no checks, no dedup lookup, no audit entry."""
    start = time.perf_counter()
    for chunk in range(0, len(findings), per_transaction):
        with components.findings_store.write() as uow:
            uow.insert_findings(findings[chunk : chunk + per_transaction])
    return time.perf_counter() - start


def bench_direct_reports(components: Components, count: int) -> None:
    distinct = int(count * 0.7)
    start = time.perf_counter()
    duplicates = sum(components.registry.report(REPORTER, report(i, distinct))[1] for i in range(count))
    elapsed = time.perf_counter() - start
    now = datetime.now(UTC)
    findings = [
        _finding(str(uuid.uuid4()), check_report(report(i, distinct), now), now) for i in range(count)
    ]
    base = baseline_inserts(components, findings, 1)
    print(
        f"direct reports   {per_second(count, elapsed)}  ({duplicates} linked as duplicates)"
        f"   baseline plain inserts {per_second(count, base)}"
    )


def bench_candidates(components: Components, results: int, per_result: int) -> None:
    start = time.perf_counter()
    for r in range(results):
        candidates = [
            CandidateInput(
                title=f"candidate {r}/{c}",
                description="model-reported overflow",
                evidence="transcript",
                cwe_ids=["CWE-787"],
                affected_product=f"pkg:pypi/cand{c % 20}",
                location=CodeLocation("src/x.py", f"f{c % 20}", c),
            )
            for c in range(per_result)
        ]
        with components.findings_store.write() as uow:
            components.registry.ingest_candidates(uow, f"sub-{r}", f"job-{r}", candidates, datetime.now(UTC))
    elapsed = time.perf_counter() - start
    count = results * per_result
    now = datetime.now(UTC)
    draft = check_report(report(0, 1), now)
    base = baseline_inserts(
        components, [_finding(str(uuid.uuid4()), draft, now) for _ in range(count)], per_result
    )
    print(
        f"candidate batch  {per_second(count, elapsed)}  ({per_result} per result)"
        f"   baseline plain inserts {per_second(count, base)}"
    )


def _finding(finding_id: str, draft: FindingDraft, now: datetime, **overrides: object) -> Finding:
    finding = draft.received(
        finding_id=finding_id,
        origin=Origin.REVIEWER,
        reporter_id="bench",
        reporter_organisation="agency",
        source=None,
        link=None,
        now=now,
    )
    return replace(finding, **overrides)  # type: ignore[arg-type]


def seed(components: Components, stored: int) -> float:
    """Store `stored` findings with random TLP labels, audiences and states (10,000 per transaction)."""
    rng = random.Random(7)
    now = datetime.now(UTC) - timedelta(days=1)
    draft = check_report(report(0, 1), now)
    findings = []
    for _ in range(stored):
        published = rng.random() < 0.6
        findings.append(
            _finding(
                str(uuid.uuid4()),
                draft,
                now,
                tlp=rng.choice(list(Tlp)),
                audience=Audience(
                    frozenset(rng.sample(OPERATORS, rng.randint(0, 2))),
                    frozenset(rng.sample(SECTORS, rng.randint(0, 1))),
                ),
                state=FindingState.VALIDATED if published else FindingState.RECEIVED,
                published_at=now if published else None,
            )
        )
    return baseline_inserts(components, findings, 10_000)


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"


def timed(calls: int, call: Callable[[int], object], positions: list[int]) -> list[float]:
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        call(positions[i % len(positions)])
        samples.append(time.perf_counter() - start)
    return samples


def bench_list(components: Components, calls: int, stored: int) -> None:
    rng = random.Random(11)
    positions = [rng.randint(0, stored - 200) for _ in range(calls)]
    f = tables.findings.c
    raw = select(tables.findings).order_by(f.seq).limit(100)

    def bare(position: int) -> object:
        with components.engine.connect() as conn:
            return conn.execute(raw.where(f.seq > position)).all()

    timed(20, bare, positions)
    print(f"baseline bare SQL         {percentiles(timed(calls, bare, positions))}   (100 rows, no policy)")
    viewers = {
        "reviewer": Principal("bench-reviewer", Role.REVIEWER, "agency"),
        "operator": Principal("bench-operator", Role.OPERATOR, "op-a", frozenset({"energy"})),
    }
    for name, principal in viewers.items():
        viewer = Viewer(
            principal.principal_id,
            ViewerRole(principal.role.value),
            principal.organisation,
            principal.sectors,
        )

        def use_case(position: int, v: Viewer = viewer) -> object:
            return components.registry.list_visible(v, FindingQuery(), 100, encode_page_token(position))

        timed(20, use_case, positions)
        print(f"list use case   {name:8}  {percentiles(timed(calls, use_case, positions))}   (in process)")

    metadata = MetaData()
    tokens = TokenStore(components.engine, tokens_table(metadata))
    metadata.create_all(components.engine)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[grpc.aio.Server, int]:
        server, port, _health = build_grpc_server(components, LocalAuthenticator(tokens), "127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = clearinghouse_pb2_grpc.ClearinghouseServiceStub(channel)
    for name, principal in viewers.items():
        md = (("authorization", f"Bearer {tokens.create(principal).token}"),)

        def call(position: int, md: tuple[tuple[str, str], ...] = md) -> object:
            request = pb.ListFindingsRequest(page_size=100, page_token=encode_page_token(position))
            response = stub.ListFindings(request, metadata=md)
            assert len(response.findings) == 100
            return response

        timed(20, call, positions)
        figures = percentiles(timed(calls, call, positions))
        print(f"ListFindings    {name:8}  {figures}   (gRPC; {stored:,} stored)")
    channel.close()
    asyncio.run_coroutine_threadsafe(server.stop(0), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest", type=int, default=3000, help="direct reports to ingest")
    parser.add_argument("--stored", type=int, default=100_000, help="findings stored for the list benchmark")
    parser.add_argument("--calls", type=int, default=300, help="ListFindings calls per principal")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(
            ClearinghouseSettings(),
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
            state_dir=Path(tmp),
        )
        components = build(settings, ReportSigner(Ed25519PrivateKey.generate()))
        print(f"SQLite (WAL) in {tmp}; {sys.platform}, Python {sys.version.split()[0]}")
        bench_direct_reports(components, args.ingest)
        bench_candidates(components, 40, 50)
        seconds = seed(components, args.stored)
        print(f"stored {args.stored:,} more findings in {seconds:.1f} s")
        bench_list(components, args.calls, args.stored)
        components.engine.dispose()
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
