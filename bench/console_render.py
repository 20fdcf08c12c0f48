"""Console pages at scale: the review queue with 1,000 open submissions and the findings board with
10,000 findings, next to the bare gRPC list calls each page makes, measured in the same run.

    python bench/console_render.py [--submissions 1000] [--jobs 4] [--findings 10000] [--runs 10]

Builds intake, the benchmark service and the clearinghouse from their own bootstraps on fresh
SQLite files (no broker: nothing here publishes) and serves them over real gRPC on loopback,
authenticated against intake's token registry; submits `--submissions` models through intake's
SubmitModel (all open), plans `--jobs` benchmark jobs for each, stores `--findings` findings (as
bench/findings_query.py does), then starts `preflight-console serve` as its own process and signs a
reviewer in. For each page it prints p50/p99 over `--runs` requests of the time to first byte
(the response's status line and headers) and of the full page (its last byte), the page's size,
next to the same reviewer's bare gRPC calls that page makes, through grpc.aio stubs with nothing
rendered: for the queue, ListSubmissions of the open statuses in pages of 200 and then
SummarizeJobs for every 200 of them (concurrently); for the board, ListFindings in pages of 200.
The difference is what the console adds (its own calls' SDK decoding, sorting, the template).

About a minute on a 2-core machine with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
from findings_query import percentiles
from findings_query import seed as seed_findings
from intake_throughput import submit_request
from preflight.benchmark.v1 import benchmark_pb2, benchmark_pb2_grpc
from preflight.clearinghouse.v1 import clearinghouse_pb2, clearinghouse_pb2_grpc
from preflight.identity.v1 import identity_pb2_grpc
from preflight.intake.v1 import intake_pb2, intake_pb2_grpc
from preflight_common.auth import IdentityServicer, LocalAuthenticator, Principal, Role, TokenStore
from preflight_common.grpcserver import build_server

PAGE = 200
OPEN = [
    intake_pb2.SUBMISSION_STATUS_RECEIVED,
    intake_pb2.SUBMISSION_STATUS_BENCHMARKING,
    intake_pb2.SUBMISSION_STATUS_UNDER_REVIEW,
    intake_pb2.SUBMISSION_STATUS_REPORT_READY,
]
LAB = Principal("bench@bench-lab", Role.LAB, "bench-lab")
REVIEWER = Principal("bench-reviewer@agency", Role.REVIEWER, "agency")


def build_services(
    root: Path,
) -> tuple[dict[str, list[Callable[[grpc.aio.Server], None]]], TokenStore, object, object]:
    """Intake, benchmark and clearinghouse servicers from their bootstraps on SQLite under `root`;
    also intake's token store, the benchmark's job store and the clearinghouse's components."""
    from preflight_benchmark import bootstrap as benchmark
    from preflight_benchmark.adapters.grpc import BenchmarkServicer
    from preflight_benchmark.config import BenchmarkSettings
    from preflight_clearinghouse import bootstrap as clearinghouse
    from preflight_clearinghouse.adapters.grpc import ClearinghouseServicer
    from preflight_clearinghouse.config import ClearinghouseSettings
    from preflight_intake import bootstrap as intake
    from preflight_intake.adapters.crypto import Keyring, new_key_entry
    from preflight_intake.adapters.grpc import IntakeServicer
    from preflight_intake.config import IntakeSettings

    os.environ["PREFLIGHT_CLEARINGHOUSE_STATE_DIR"] = str(root / "clearinghouse")
    os.environ["PREFLIGHT_BENCHMARK_LOG_ROOT"] = str(root / "eval-logs")
    os.environ["PREFLIGHT_BENCHMARK_WORK_DIR"] = str(root / "work")
    os.environ["PREFLIGHT_DATABASE_URL"] = f"sqlite:///{root / 'intake.db'}"
    i = intake.build(IntakeSettings.from_env(), Keyring.parse(new_key_entry("bench")))
    os.environ["PREFLIGHT_DATABASE_URL"] = f"sqlite:///{root / 'benchmark.db'}"
    b = benchmark.build(BenchmarkSettings.from_env(), "127.0.0.1:1")
    os.environ["PREFLIGHT_DATABASE_URL"] = f"sqlite:///{root / 'clearinghouse.db'}"
    settings = ClearinghouseSettings.from_env()
    c = clearinghouse.build(settings, clearinghouse.signer_from_env(settings))
    intake_api, identity_api = IntakeServicer(i.intake), IdentityServicer(i.tokens)
    benchmark_api = BenchmarkServicer(b.store)
    clearinghouse_api = ClearinghouseServicer(c.reviews, c.registry, c.checkpoints)
    served: dict[str, list[Callable[[grpc.aio.Server], None]]] = {
        "intake": [
            lambda s: intake_pb2_grpc.add_IntakeServiceServicer_to_server(intake_api, s),
            lambda s: identity_pb2_grpc.add_IdentityServiceServicer_to_server(identity_api, s),
        ],
        "benchmark": [lambda s: benchmark_pb2_grpc.add_BenchmarkServiceServicer_to_server(benchmark_api, s)],
        "clearinghouse": [
            lambda s: clearinghouse_pb2_grpc.add_ClearinghouseServiceServicer_to_server(clearinghouse_api, s)
        ],
    }
    return served, i.tokens, b.store, c


SERVICE_NAMES = {
    "intake": ["preflight.intake.v1.IntakeService", "preflight.identity.v1.IdentityService"],
    "benchmark": ["preflight.benchmark.v1.BenchmarkService"],
    "clearinghouse": ["preflight.clearinghouse.v1.ClearinghouseService"],
}


async def submit(target: str, token: str, count: int) -> list[str]:
    """`count` submissions through SubmitModel, 16 at a time; their ids."""
    metadata = (("authorization", f"Bearer {token}"),)
    ids: list[str] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = intake_pb2_grpc.IntakeServiceStub(channel)
        limit = asyncio.Semaphore(16)

        async def one() -> None:
            async with limit:
                answer = await stub.SubmitModel(submit_request(), metadata=metadata, timeout=60)
            ids.append(answer.submission.submission_id)

        await asyncio.gather(*(one() for _ in range(count)))
    return ids


def plan_jobs(store: object, submission_ids: list[str], per_submission: int) -> None:
    """`per_submission` pending jobs for each submission, as the planner would store them."""
    from preflight_benchmark.adapters.store import JobStore
    from preflight_testkit.benchmark import plan_pending

    assert isinstance(store, JobStore)
    now = datetime.now(UTC)
    suites = [f"cyber.suite-{n}" for n in range(per_submission)]
    for submission_id in submission_ids:
        plan_pending(store, submission_id, LAB.organisation, suites, (now, now + timedelta(days=10)))


class Bare:
    """The reviewer's own gRPC calls, over channels opened once (as the console's are)."""

    def __init__(self, targets: dict[str, str], token: str) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)
        names = ("intake", "benchmark", "clearinghouse")
        self.channels = [grpc.aio.insecure_channel(targets[name]) for name in names]
        self.intake = intake_pb2_grpc.IntakeServiceStub(self.channels[0])
        self.benchmark = benchmark_pb2_grpc.BenchmarkServiceStub(self.channels[1])
        self.clearinghouse = clearinghouse_pb2_grpc.ClearinghouseServiceStub(self.channels[2])

    async def queue(self) -> int:
        """The queue's calls: every open submission, then their jobs' summaries; the rows."""
        ids: list[str] = []
        token = ""
        while True:
            page = await self.intake.ListSubmissions(
                intake_pb2.ListSubmissionsRequest(statuses=OPEN, page_size=PAGE, page_token=token),
                metadata=self.metadata,
            )
            ids += [s.submission_id for s in page.submissions]
            token = page.next_page_token
            if not token:
                break
        await asyncio.gather(
            *(
                self.benchmark.SummarizeJobs(
                    benchmark_pb2.SummarizeJobsRequest(submission_ids=ids[n : n + PAGE]),
                    metadata=self.metadata,
                )
                for n in range(0, len(ids), PAGE)
            )
        )
        return len(ids)

    async def board(self) -> int:
        """The board's calls: every finding, in pages of 200; the rows."""
        rows, token = 0, ""
        while True:
            page = await self.clearinghouse.ListFindings(
                clearinghouse_pb2.ListFindingsRequest(page_size=PAGE, page_token=token),
                metadata=self.metadata,
            )
            rows += len(page.findings)
            token = page.next_page_token
            if not token:
                return rows

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


def p50(samples: list[float]) -> float:
    return sorted(samples)[len(samples) // 2]


async def timed(runs: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def page_times(client: httpx.AsyncClient, path: str, runs: int) -> tuple[list[float], list[float], int]:
    """Time to first byte and to the last byte of `runs` GETs of `path`, and the page's size."""
    first, full, size = [], [], 0
    for _ in range(runs):
        started = time.perf_counter()
        async with client.stream("GET", path) as response:
            first.append(time.perf_counter() - started)
            body = await response.aread()
            full.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code, body[:300])
        size = len(body)
    return first, full, size


async def sign_in(client: httpx.AsyncClient, token: str) -> None:
    form = await client.get("/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, "the sign-in form has its CSRF token"
    answer = await client.post(
        "/sign-in", data={"csrf": csrf.group(1), "token": token}, headers={"origin": str(client.base_url)}
    )
    assert answer.status_code == 303, answer.text


async def wait_healthy(
    client: httpx.AsyncClient, console: asyncio.subprocess.Process, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if console.returncode is not None:
            raise RuntimeError(f"the console exited with {console.returncode}")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the console did not answer /healthz")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(args: argparse.Namespace, root: Path) -> None:
    served, tokens, job_store, clearinghouse = build_services(root)
    authenticator = LocalAuthenticator(tokens)
    servers, targets = [], {}
    for name, registrations in served.items():
        server, port, _ = build_server(
            "127.0.0.1:0", registrations, authenticator=authenticator, service_names=SERVICE_NAMES[name]
        )
        await server.start()
        servers.append(server)
        targets[name] = f"127.0.0.1:{port}"
    lab, reviewer = tokens.create(LAB).token, tokens.create(REVIEWER).token

    started = time.perf_counter()
    ids = await submit(targets["intake"], lab, args.submissions)
    plan_jobs(job_store, ids, args.jobs)
    seconds = time.perf_counter() - started
    print(f"{args.submissions:,} open submissions with {args.jobs} jobs each in {seconds:.1f} s")
    seconds = seed_findings(clearinghouse, args.findings, max(1, args.findings // 50))  # type: ignore[arg-type]
    print(f"{args.findings:,} findings stored in {seconds:.1f} s")

    port = free_port()
    env = {
        **os.environ,
        "PREFLIGHT_CONSOLE_LISTEN": f"127.0.0.1:{port}",
        "PREFLIGHT_INTAKE_TARGET": targets["intake"],
        "PREFLIGHT_BENCHMARK_TARGET": targets["benchmark"],
        "PREFLIGHT_CLEARINGHOUSE_TARGET": targets["clearinghouse"],
        "PREFLIGHT_NOTIFIER_TARGET": "127.0.0.1:1",
        "PREFLIGHT_CONSOLE_SESSION_KEY_FILE": str(root / "console" / "session.key"),
        "PREFLIGHT_CONSOLE_SESSION_DB": str(root / "console" / "sessions.sqlite"),
    }
    console = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "preflight-console"),
        "serve",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    bare = Bare(targets, reviewer)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            await wait_healthy(client, console)
            await sign_in(client, reviewer)
            rows, found = await bare.queue(), await bare.board()
            assert (rows, found) == (args.submissions, args.findings), (rows, found)
            pages: list[tuple[str, str, Callable[[], Awaitable[int]]]] = [
                (f"queue, {rows:,} open submissions", "/review/queue", bare.queue),
                (f"findings board, {found:,} findings", "/review/findings", bare.board),
            ]
            for label, path, calls in pages:
                await page_times(client, path, 1)  # warm: templates compiled, channels connected
                first, full, size = await page_times(client, path, args.runs)
                baseline = await timed(args.runs, calls)
                print(f"\n{label} ({size / 1024:,.0f} KiB of HTML), {args.runs} requests each:")
                print(f"  console, first byte      {percentiles(first)}")
                print(f"  console, full page       {percentiles(full)}")
                print(f"  bare gRPC list calls     {percentiles(baseline)}")
                print(f"  console / bare (p50)     {p50(full) / p50(baseline):.1f}x")
    finally:
        await bare.close()
        console.terminate()
        await asyncio.wait_for(console.wait(), timeout=30)
        for server in servers:
            await server.stop(None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=1_000, help="open submissions in the queue")
    parser.add_argument("--jobs", type=int, default=4, help="benchmark jobs planned for each")
    parser.add_argument("--findings", type=int, default=10_000, help="findings on the board")
    parser.add_argument("--runs", type=int, default=10, help="requests of each page (and of its bare calls)")
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"{sys.platform}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; SQLite, loopback")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
