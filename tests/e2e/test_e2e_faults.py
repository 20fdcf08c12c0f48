"""Faults on the whole stack: every service SIGKILLed mid-run, the broker stopped and restarted.

Nothing accepted may be lost, no report may be issued twice, no alert delivered twice."""

from __future__ import annotations

import os
import random
import signal
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from preflight.benchmark.v1 import events_pb2 as benchmark_events
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.intake.v1 import events_pb2 as intake_events
from preflight.sdk import Client
from preflight_testkit.stack import (
    RunningStack,
    start_stack,
    submit,
    topic_events,
    wait_report_ready,
    wait_until,
)

pytestmark = pytest.mark.slow
SERVICES = ("intake", "benchmark", "clearinghouse", "notifier")
# One suite with few samples: each submission is planned one short job.
FAST_CATALOG = Path(__file__).parent / "data" / "catalog_fast.yaml"


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(
        tmp_path_factory.mktemp("fault-stack"),
        {
            "PREFLIGHT_BENCHMARK_CATALOG_FILE": str(FAST_CATALOG),
            "PREFLIGHT_STACK_PASS_ENV": "PREFLIGHT_BENCHMARK_CATALOG_FILE",
            "PREFLIGHT_STACK_KAFKA_RESTART_DELAY": "8",
        },
    )
    yield running
    running.stack_command("down")


def _kill(stack: RunningStack, name: str) -> None:
    pid = stack.state["pids"][name]
    os.kill(int(pid), signal.SIGKILL)


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (n={len(ordered)})"


def _assert_one_report_each(stack: RunningStack, ids: list[str]) -> list[tuple[object, object, int]]:
    reviews = topic_events(stack, "preflight.reviews.v1", [clearinghouse_events.ReviewReportReady])
    reports: dict[str, set[str]] = defaultdict(set)
    for attributes, payload, _ in reviews:
        reports[payload.submission_id].add(attributes.id)
    for sid in ids:
        assert len(reports[sid]) == 1, f"{sid}: {len(reports[sid])} reports issued"
    return reviews


def _assert_no_alert_delivered_twice(stack: RunningStack) -> None:
    delivered = Counter(
        (record["path"], alert["alert_id"])
        for record in stack.sink("webhook")
        for alert in record["body"].get("alerts", [])
    )
    assert delivered and max(delivered.values()) == 1, [k for k, n in delivered.items() if n > 1]
    mails = Counter((tuple(m["to"]), m["subject"]) for m in stack.sink("mail"))
    assert max(mails.values()) == 1, [k for k, n in mails.items() if n > 1]


def test_the_benchmark_plans_from_the_fast_catalog(fault_stack: RunningStack) -> None:
    with Client(fault_stack.target("intake"), token=fault_stack.tokens["lab"]) as lab:
        sid = submit(fault_stack, lab)

    def planned() -> list[benchmark_events.BenchmarkJobRequested]:
        jobs = topic_events(
            fault_stack, "preflight.benchmark.jobs.v1", [benchmark_events.BenchmarkJobRequested]
        )
        return [payload for _, payload, _ in jobs if payload.submission_id == sid]

    jobs = wait_until("the submission's benchmark jobs", planned, timeout=120)
    assert [(job.suite_id, job.sample_limit, job.planned_jobs) for job in jobs] == [("cyber.knowledge", 3, 1)]


def test_every_service_killed_once_mid_run_loses_and_doubles_nothing(fault_stack: RunningStack) -> None:
    stack = fault_stack
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    victims = list(SERVICES)
    rng.shuffle(victims)
    print(f"\nchaos seed {seed}: kill order {victims}")
    killed: list[str] = []

    def chaos() -> None:
        for name in victims:
            time.sleep(rng.uniform(2.0, 12.0))
            _kill(stack, name)
            killed.append(name)

    submitted_at: dict[str, float] = {}
    with Client(stack.target("intake"), token=stack.tokens["lab"]) as lab:
        monkey = threading.Thread(target=chaos, daemon=True)
        monkey.start()
        ids = []
        for _ in range(20):
            start = time.time()
            sid = submit(stack, lab)
            submitted_at[sid] = start
            ids.append(sid)
            time.sleep(rng.uniform(0.0, 1.0))
        monkey.join()
        assert sorted(killed) == sorted(SERVICES)
        wait_report_ready(stack, lab, ids, timeout=900)
    # The last victim may be killed after the last report: wait for its restart too.
    wait_until(
        "every killed service restarted",
        lambda: all(stack.state["restarts"][name] >= 1 for name in SERVICES),
        timeout=240,
    )

    reviews = _assert_one_report_each(stack, ids)
    _assert_no_alert_delivered_twice(stack)

    # End-to-end latencies over this run (broker timestamps; the kills are part of the run).
    jobs = topic_events(stack, "preflight.benchmark.jobs.v1", [benchmark_events.BenchmarkJobRequested])
    results = topic_events(
        stack,
        "preflight.benchmark.results.v1",
        [benchmark_events.BenchmarkCompleted, benchmark_events.BenchmarkFailed],
    )
    first_job = {sid: min(ts for _, p, ts in jobs if p.submission_id == sid) / 1000 for sid in ids}
    last_result = {sid: max(ts for _, p, ts in results if p.submission_id == sid) / 1000 for sid in ids}
    report_at = {p.submission_id: ts / 1000 for _, p, ts in reviews}
    to_jobs = [first_job[sid] - submitted_at[sid] for sid in ids]
    to_report = [report_at[sid] - last_result[sid] for sid in ids]
    print(f"\nSubmitModel → first BenchmarkJobRequested: {_percentiles(to_jobs)}")
    print(f"last BenchmarkCompleted → ReviewReportReady: {_percentiles(to_report)}")


def test_broker_stopped_and_restarted_mid_run_loses_nothing(fault_stack: RunningStack) -> None:
    stack = fault_stack
    with Client(stack.target("intake"), token=stack.tokens["lab"]) as lab:
        before = [submit(stack, lab) for _ in range(3)]
        os.kill(int(stack.state["kafka_pid"]), signal.SIGKILL)
        # Accepted while the broker is down: stored with its outbox row, published once it is back.
        during = [submit(stack, lab) for _ in range(3)]
        ids = before + during
        wait_report_ready(stack, lab, ids, timeout=600)
    received = topic_events(
        stack,
        "preflight.submissions.v1",
        [
            intake_events.SubmissionReceived,
            intake_events.ReleasePlanChanged,
            intake_events.SubmissionWithdrawn,
        ],
    )
    per_submission = Counter(p.submission_id for a, p, _ in received if a.type.endswith("SubmissionReceived"))
    assert all(per_submission[sid] >= 1 for sid in ids)
    distinct = {(p.submission_id, a.id) for a, p, _ in received if a.type.endswith("SubmissionReceived")}
    assert all(sum(1 for s, _ in distinct if s == sid) == 1 for sid in ids)
    _assert_one_report_each(stack, ids)
    _assert_no_alert_delivered_twice(stack)
