"""The four shipped suites through the platform next to the same suites in one warm Inspect eval.

    python bench/platform_vs_direct.py [--runs 3] [--slots 4] [--concurrent 1,5,20]

Starts its own single-node Apache Kafka broker (LocalKafka, temporary data), an intake stand-in
(ResolveCredential + IdentityService over gRPC) and the scripted reference model on loopback,
then measures in one run, with the shipped catalog's full suites and the same endpoint:

* direct: one `inspect_ai.eval` of the four tasks in this process, warmed by one eval first,
  with `max_tasks` = `--slots`;
* platform: the benchmark service with `--slots` attempts at once (planner agent, dispatcher,
  the local executor's warm workers, credential resolution over gRPC, result reports, outbox
  relay), warmed by one submission first: from the submission's first BenchmarkJobRequested
  to its last terminal event, by the events' own times.

The goal is a platform time within 1.2x the direct one. With `--concurrent`, N submissions at
once (4N suites) through the platform, from the first publish to the last terminal event,
next to one direct eval of the same 4N tasks with the same parallelism.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from preflight.benchmark.v1 import events_pb2
from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.reference_model.server import ReferenceModelServer
from preflight_common.localkafka import LocalKafka, find_repo_root
from preflight_testkit.benchmark import (
    BenchmarkProcess,
    IntakeStandIn,
    benchmark_process,
    intake_stand_in,
    service_settings,
    submission,
    wait_until,
)


def direct(tasks: list[str], server: ReferenceModelServer, key: str, log_dir: Path, slots: int) -> float:
    """Seconds for one warm `eval` of `tasks`, `slots` at once."""
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import get_model

    started = time.perf_counter()
    model = get_model("openai-api/preflight/reference", base_url=server.base_url, api_key=key, memoize=False)
    logs = inspect_eval(tasks, model=model, log_dir=str(log_dir), display="none", max_tasks=slots)
    assert all(log.status == "success" for log in logs), [log.status for log in logs]
    return time.perf_counter() - started


def platform(
    service: BenchmarkProcess, intake: IntakeStandIn, server: ReferenceModelServer, key: str, count: int
) -> tuple[float, float]:
    """`count` submissions at once: (first job requested → last job ended, first publish → last
    job ended), in seconds, by the events' times."""
    received = [
        submission(
            base_url=server.base_url, model_name="reference", credential_ref=intake.add_credential(key)
        )
        for _ in range(count)
    ]
    ids = {r.submission_id for r in received}
    published = datetime.now(UTC)
    for r in received:
        service.publish(r)
    suites = len(load_catalog().for_access("endpoint"))
    for r in received:
        wait_until(
            lambda r=r: len(service.tap.terminal(r.submission_id)) == suites, 600, "the terminal events"
        )
    requested: list[datetime] = []
    ended: list[datetime] = []
    for _, attributes, payload in service.tap.events:
        if getattr(payload, "submission_id", None) not in ids:
            continue
        if isinstance(payload, events_pb2.BenchmarkJobRequested):
            requested.append(attributes.time)
        elif not isinstance(payload, events_pb2.BenchmarkPlanEnded):  # ends with the last job
            assert isinstance(payload, events_pb2.BenchmarkCompleted), payload
            ended.append(attributes.time)
    return (max(ended) - min(requested)).total_seconds(), (max(ended) - published).total_seconds()


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):6.2f} s   min {min(values):6.2f} s   max {max(values):6.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--slots", type=int, default=4, help="attempts at once (and Inspect's max_tasks)")
    parser.add_argument("--concurrent", default="", help="comma-separated submission counts, e.g. 1,5,20")
    args = parser.parse_args()
    suites = load_catalog().for_access("endpoint")
    assert all(not s.task_args and not s.sample_limit for s in suites), "the shipped suites run whole"
    tasks = [s.task for s in suites]
    key = "sk-bench-" + secrets.token_urlsafe(24)
    counts = [int(n) for n in args.concurrent.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="platform-vs-direct-") as tmp:
        root = Path(tmp)
        os.environ.setdefault("PREFLIGHT_KAFKA_SESSION_TIMEOUT", "6")
        os.environ.setdefault("PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL", "1")
        os.environ["XDG_DATA_HOME"] = str(root / "inspect-data")
        broker = LocalKafka(root / "kafka", repo_root=find_repo_root(Path(__file__).resolve().parent))
        broker.start()
        server = ReferenceModelServer(api_key=key, model_name="reference").start()
        try:
            direct(tasks, server, key, root / "warm-up", args.slots)
            direct_times = [direct(tasks, server, key, root / "direct", args.slots) for _ in range(args.runs)]
            print(f"direct: {summary(direct_times)}", flush=True)
            direct_many = {n: direct(tasks * n, server, key, root / "direct", args.slots) for n in counts}
            print(f"direct, {counts} submissions' suites: {direct_many}", flush=True)
            with intake_stand_in(root) as intake:
                settings = service_settings(root, broker.admin_settings(), intake, max_concurrency=args.slots)
                with benchmark_process(settings, root) as service:
                    platform(service, intake, server, key, 1)  # warm-up
                    runs = [platform(service, intake, server, key, 1) for _ in range(args.runs)]
                    print(f"platform: {summary([r for r, _ in runs])}", flush=True)
                    many = {n: platform(service, intake, server, key, n) for n in counts}
        finally:
            server.stop()
            broker.stop()
    requested = [r for r, _ in runs]
    print(f"\nthe {len(tasks)} shipped suites, {args.runs} runs each, {args.slots} at once, same endpoint:")
    print(f"  direct: one warm Inspect eval (max_tasks={args.slots}):   {summary(direct_times)}")
    print(f"  platform: job requested -> last job ended:       {summary(requested)}")
    print(f"  platform: submission -> last job ended:          {summary([s for _, s in runs])}")
    ratio = statistics.median(requested) / statistics.median(direct_times)
    print(f"  platform / direct (medians): {ratio:.2f}x (goal <= 1.2x)")
    for n in counts:
        _, submitted = many[n]
        print(
            f"  {n:3d} submissions at once ({n * len(tasks)} suites): platform {submitted:7.2f} s, "
            f"direct {direct_many[n]:7.2f} s, {submitted / direct_many[n]:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
