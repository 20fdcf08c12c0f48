"""The benchmark platform's overhead for one suite, next to calling Inspect AI directly.

    python bench/benchmark_overhead.py [--runs 5] [--suite cyber.knowledge]

Starts its own single-node Apache Kafka broker (LocalKafka, temporary data), an intake
stand-in (ResolveCredential + IdentityService over gRPC) and the scripted reference model on
loopback, then measures in one run, on the same task (the full suite from the shipped catalog)
and the same endpoint:

* direct, in-process: `inspect_ai.eval` on the task in this (warm) process;
* direct, fresh process: a new Python process that imports Inspect and runs the same eval —
  what a worker has to do at the least;
* platform: the benchmark service (planner agent, dispatcher, LocalExecutor, worker process,
  credential resolution over gRPC, result report, outbox relay) — from the BenchmarkJobRequested
  event's time to the BenchmarkCompleted event read back from Kafka, and from publishing the
  SubmissionReceived to the same point.

Bounded: about a minute and a half with the defaults.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from preflight.benchmark.v1 import events_pb2
from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.reference_model.server import ReferenceModelServer
from preflight_common.localkafka import LocalKafka, find_repo_root
from preflight_testkit.benchmark import (
    benchmark_process,
    intake_stand_in,
    service_settings,
    submission,
    wait_until,
)

FRESH_PROCESS = """
import sys
from inspect_ai import eval
from inspect_ai.model import get_model
task, base_url, log_dir = sys.argv[1:4]
key = sys.stdin.readline().strip()
model = get_model("openai-api/preflight/reference", base_url=base_url, api_key=key, memoize=False)
(log,) = eval(task, model=model, log_dir=log_dir, display="none")
assert log.status == "success", log.status
"""


def direct_in_process(task: str, server: ReferenceModelServer, key: str, log_dir: Path) -> float:
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import get_model

    started = time.perf_counter()
    model = get_model("openai-api/preflight/reference", base_url=server.base_url, api_key=key, memoize=False)
    (log,) = inspect_eval(task, model=model, log_dir=str(log_dir), display="none")
    assert log.status == "success", log.status
    return time.perf_counter() - started


def direct_fresh_process(task: str, server: ReferenceModelServer, key: str, log_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, task, server.base_url, str(log_dir)],
        input=key + "\n",
        text=True,
        check=True,
        env={**os.environ, "XDG_DATA_HOME": str(log_dir / "data")},
    )
    return time.perf_counter() - started


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):6.2f} s   min {min(values):6.2f} s   max {max(values):6.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--suite", default="cyber.knowledge", help="a suite id of the shipped catalog")
    args = parser.parse_args()
    suite = next(s for s in load_catalog().suites if s.id == args.suite)
    key = "sk-bench-" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="benchmark-overhead-") as tmp:
        root = Path(tmp)
        catalog = root / "catalog.yaml"
        catalog.write_text(
            yaml.safe_dump(
                {
                    "catalog_version": "bench",
                    "suites": [
                        {
                            "id": suite.id,
                            "version": suite.version,
                            "task": suite.task,
                            "capability": suite.capability,
                            "access_kinds": sorted(suite.access_kinds),
                            "timeout_seconds": int(suite.timeout.total_seconds()),
                        }
                    ],
                }
            )
        )
        os.environ["PREFLIGHT_BENCHMARK_CATALOG_FILE"] = str(catalog)
        os.environ.setdefault("PREFLIGHT_KAFKA_SESSION_TIMEOUT", "6")
        os.environ.setdefault("PREFLIGHT_KAFKA_HEARTBEAT_INTERVAL", "1")
        os.environ["XDG_DATA_HOME"] = str(root / "inspect-data")
        started = time.perf_counter()
        broker = LocalKafka(root / "kafka", repo_root=find_repo_root(Path(__file__).resolve().parent))
        broker.start()
        print(f"Kafka broker started in {time.perf_counter() - started:.1f} s")
        server = ReferenceModelServer(api_key=key, model_name="reference").start()
        try:
            in_process = [
                direct_in_process(suite.task, server, key, root / "direct") for _ in range(args.runs)
            ]
            fresh = [direct_fresh_process(suite.task, server, key, root / "fresh") for _ in range(args.runs)]
            with (
                intake_stand_in(root) as intake,
                benchmark_process(service_settings(root, broker.admin_settings(), intake), root) as service,
            ):
                requested_to_completed, submitted_to_completed, worker_eval = [], [], []
                for _ in range(args.runs):
                    received = submission(
                        base_url=server.base_url,
                        model_name="reference",
                        credential_ref=intake.add_credential(key),
                    )
                    published = datetime.now(UTC)
                    service.publish(received)
                    (done,) = wait_until(
                        lambda r=received: service.tap.terminal(r.submission_id), 120, "the completed event"
                    )
                    finished = datetime.now(UTC)
                    assert isinstance(done, events_pb2.BenchmarkCompleted), done
                    (requested_at,) = [
                        attributes.time
                        for _, attributes, payload in service.tap.events
                        if isinstance(payload, events_pb2.BenchmarkJobRequested)
                        and payload.submission_id == received.submission_id
                    ]
                    requested_to_completed.append((finished - requested_at).total_seconds())
                    submitted_to_completed.append((finished - published).total_seconds())
                    samples = done.samples_total
                    worker_eval.append(done.duration.ToTimedelta().total_seconds())
        finally:
            server.stop()
            broker.stop()
    print(f"\nsuite {suite.id} ({suite.task}, {samples} samples), {args.runs} runs each, same endpoint:")
    print(f"  direct Inspect eval, in-process (warm):       {summary(in_process)}")
    print(f"  direct Inspect eval, fresh Python process:    {summary(fresh)}")
    print(f"  platform, job requested -> completed event:   {summary(requested_to_completed)}")
    print(f"  platform, submission -> completed event:      {summary(submitted_to_completed)}")
    print(f"  of which the Inspect eval inside the worker:  {summary(worker_eval)}")
    overhead = statistics.median(requested_to_completed) - statistics.median(fresh)
    print(f"  platform overhead over a fresh-process eval (medians): {overhead:+.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
