"""Clearinghouse package+version query ("which findings affect pkg:pypi/flask@2.3.1?") at 100,000 findings.

    python bench/findings_query.py [--stored 100000] [--packages 2000] [--calls 300]

Stores `--stored` findings spread over `--packages` PyPI packages (each product a purl with a
`vers:` range; random TLP labels, audiences and states), then prints p50/p99 of
`FindingRegistry.affecting` — the index lookup of the package, the version check against each
candidate's range and the sharing policy — for a reviewer (sees all) and an operator (sees what its
TLP and audience allow), next to the plain indexed SQL the lookup runs (the candidate rows of the
package, fetched), measured in the same run on the same SQLite file at the same packages. Also
prints SQLite's plan for that SQL, which must search `ix_finding_packages_package`.

Bounded well under 2 minutes on a 2-core machine with the defaults.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from preflight_clearinghouse.adapters import tables
from preflight_clearinghouse.adapters.signing import ReportSigner
from preflight_clearinghouse.bootstrap import Components, build
from preflight_clearinghouse.config import ClearinghouseSettings
from preflight_clearinghouse.domain.findings.finding import (
    AffectedProduct,
    CodeLocation,
    FindingInput,
    Origin,
    ProductInput,
    check_report,
)
from preflight_clearinghouse.domain.findings.workflow import FindingState
from preflight_clearinghouse.domain.sharing import Audience, Tlp, Viewer
from preflight_clearinghouse.domain.sharing import Role as ViewerRole
from sqlalchemy import bindparam, select

V31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
REVIEWER = Viewer("bench-reviewer", ViewerRole.REVIEWER, "agency")
OPERATOR = Viewer("bench-operator", ViewerRole.OPERATOR, "op-a", frozenset({"energy"}))
OPERATORS = ("op-a", "op-b", "op-c", "op-d")
SECTORS = ("energy", "water", "finance", "healthcare")


def seed(components: Components, stored: int, packages: int) -> float:
    """Store `stored` findings, finding i naming package i mod `packages` with a range of its own."""
    rng = random.Random(7)
    now = datetime.now(UTC) - timedelta(days=1)
    draft = check_report(
        FindingInput(
            title="Overflow in parser",
            description="A crafted header overflows a buffer.",
            cwe_ids=["CWE-787"],
            affected_products=[ProductInput(purl="pkg:pypi/lib0", version_range="vers:pypi/>=1.0|<2.0")],
            location=CodeLocation("src/parse.py", "parse", 10),
            cvss_v3_vector=V31,
            tlp=Tlp.AMBER,
            audience_organisations=["op-a"],
        ),
        now,
    )
    base = draft.received(
        finding_id="",
        origin=Origin.REVIEWER,
        reporter_id="bench",
        reporter_organisation="agency",
        source=None,
        link=None,
        now=now,
    )
    findings = []
    for i in range(stored):
        low = rng.randint(0, 8)
        published = rng.random() < 0.6
        findings.append(
            replace(
                base,
                finding_id=str(uuid.uuid4()),
                affected=(
                    AffectedProduct(
                        purl=f"pkg:pypi/lib{i % packages}", version_range=f"vers:pypi/>={low}.0|<{low + 2}.0"
                    ),
                ),
                tlp=rng.choice(list(Tlp)),
                audience=Audience(
                    frozenset(rng.sample(OPERATORS, rng.randint(0, 2))),
                    frozenset(rng.sample(SECTORS, rng.randint(0, 1))),
                ),
                state=FindingState.VALIDATED if published else FindingState.RECEIVED,
                published_at=now if published else None,
            )
        )
    started = time.perf_counter()
    for start in range(0, stored, 10_000):
        with components.findings_store.write() as uow:
            uow.insert_findings(findings[start : start + 10_000])
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"


def timed(queries: list[tuple[str, str]], call: Callable[[str, str], int]) -> tuple[list[float], int]:
    samples, found = [], 0
    for package, version in queries:
        start = time.perf_counter()
        found += call(package, version)
        samples.append(time.perf_counter() - start)
    return samples, found


def bench_query(components: Components, calls: int, packages: int) -> None:
    rng = random.Random(11)
    queries = [(f"pkg:pypi/lib{rng.randrange(packages)}", f"{rng.randint(0, 9)}.5") for _ in range(calls)]
    p = tables.finding_packages.c
    plain = (
        select(tables.findings)
        .join(tables.finding_packages, p.finding_id == tables.findings.c.finding_id)
        .where(p.package == bindparam("package"))
    )
    with components.engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(plain.compile(conn)), (queries[0][0],)).all()
    print("plain SQL plan: " + "; ".join(str(row[-1]) for row in plan))

    def bare(package: str, _version: str) -> int:
        with components.engine.connect() as conn:
            return len(conn.execute(plain, {"package": package}).all())

    samples, rows = timed(queries, bare)
    print(f"plain indexed SQL        {percentiles(samples)}   ({rows / calls:.0f} candidate rows a query)")
    for name, viewer in (("reviewer", REVIEWER), ("operator", OPERATOR)):

        def use_case(package: str, version: str, v: Viewer = viewer) -> int:
            return len(components.registry.affecting(v, f"{package}@{version}"))

        samples, matched = timed(queries, use_case)
        print(f"affecting  {name:8}      {percentiles(samples)}   ({matched / calls:.1f} findings a query)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=100_000, help="findings stored")
    parser.add_argument("--packages", type=int, default=2_000, help="distinct packages they name")
    parser.add_argument("--calls", type=int, default=300, help="queries per measurement")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(
            ClearinghouseSettings(), database_url=f"sqlite:///{Path(tmp) / 'bench.db'}", state_dir=Path(tmp)
        )
        components = build(settings, ReportSigner(Ed25519PrivateKey.generate()))
        print(f"SQLite (WAL) in {tmp}; {sys.platform}, Python {sys.version.split()[0]}")
        seconds = seed(components, args.stored, args.packages)
        print(f"stored {args.stored:,} findings over {args.packages:,} packages in {seconds:.1f} s")
        bench_query(components, args.calls, args.packages)
        components.engine.dispose()
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
