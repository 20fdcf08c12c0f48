"""The dispatcher on a real SQLite store: earliest review deadline first with a per-lab cap, an
attempt whose process dies mid-run retried in a new one, and jobs started as soon as they are
planned or a slot frees, not at the next poll.

The workers are real processes running the warm-worker loop (a fresh child per attempt) with a
stand-in attempt that records which job and attempt it runs and then holds, instead of running Inspect."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from preflight.intake.v1.events_pb2 import SubmissionReceived
from preflight_benchmark.adapters import events
from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.adapters.executors.local import LocalExecutor
from preflight_benchmark.adapters.grpc_clients import GrpcSubmissionStatuses
from preflight_benchmark.adapters.store import JobStore
from preflight_benchmark.adapters.tracing import job_span
from preflight_benchmark.bootstrap import migrate
from preflight_benchmark.domain.jobs import JobStatus
from preflight_benchmark.domain.records import JobRecord
from preflight_benchmark.service_layer.dispatcher import Dispatcher, DispatcherSettings, choose
from preflight_benchmark.service_layer.planner import Planner
from preflight_common.db import make_engine
from preflight_common.envelope import EventAttributes
from preflight_common.liveness import Liveness
from preflight_testkit.benchmark import intake_stand_in, submission
from preflight_testkit.waiting import until

HOLDING_WORKER = """
import json, os, pathlib, sys, time
from preflight_benchmark.worker.serve import serve

def attempt():
    spec = json.loads(pathlib.Path(os.environ["PREFLIGHT_WORKER_ASSIGNMENT_FILE"]).read_text())
    with open(os.environ["RUNS_FILE"], "a") as out:
        out.write(f"{spec['job']['jobId']} {spec['attempt']} {os.getpid()}\\n")
    time.sleep(120)
    return 0

sys.exit(serve(attempt))
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    url = f"sqlite:///{tmp_path / 'benchmark.db'}"
    migrate(url)
    engine = make_engine(url)
    yield JobStore(engine, jobs_topic="jobs", results_topic="results")
    engine.dispose()


def received_by(organisation: str, window_end: datetime) -> SubmissionReceived:
    """A submission of `organisation` whose access window ends at `window_end`."""
    return submission(
        base_url="http://127.0.0.1:9/v1",
        model_name="m",
        credential_ref="cred",
        organisation=organisation,
        end=window_end,
    )


def plan(store: JobStore, organisation: str, window_end: datetime, count: int = 1) -> list[str]:
    """`count` submissions of `organisation` whose access window ends at `window_end`."""
    planner = Planner(store, load_catalog(), events, job_span, executor="local", max_attempts=3)
    ids = []
    for _ in range(count):
        received = received_by(organisation, window_end)
        planner.plan(f"event-{received.submission_id}", received)
        ids.append(received.submission_id)
    return ids


def labs(jobs: list[JobRecord]) -> list[str]:
    return [job.organisation for job in jobs]


def test_the_lab_due_tomorrow_goes_first_however_many_jobs_another_lab_queued(store: JobStore) -> None:
    now = datetime.now(UTC)
    plan(store, "lab-a", now + timedelta(days=20), count=5)  # queued first, due later
    plan(store, "lab-b", now + timedelta(days=1))
    candidates = store.due(now, 2)
    # Earliest deadline first, at most the free slots' worth of each lab.
    assert labs(candidates) == ["lab-b", "lab-b", "lab-a", "lab-a"]
    assert labs(choose(candidates, {}, 2, lab_cap=1)) == ["lab-b", "lab-a"]
    assert labs(choose(candidates, {}, 2, lab_cap=0)) == ["lab-b", "lab-b"]
    # The one free slot goes to lab-a (lab-b is at its cap) ...
    assert labs(choose(candidates, {"lab-b": 1}, 1, lab_cap=1)) == ["lab-a"]
    # ... but no slot idles for the cap when only one lab waits.
    only_a = [job for job in candidates if job.organisation == "lab-a"]
    assert labs(choose(only_a, {"lab-a": 1}, 2, lab_cap=1)) == ["lab-a", "lab-a"]


def test_a_lab_at_its_cap_does_not_starve_a_later_lab(store: JobStore) -> None:
    now = datetime.now(UTC)
    plan(store, "lab-a", now + timedelta(days=5), count=5)  # twenty jobs, all due before lab-b's
    plan(store, "lab-b", now + timedelta(days=6))
    picked = choose(store.due(now, 2), {}, 2, lab_cap=1)
    assert sorted(labs(picked)) == ["lab-a", "lab-b"]


@contextlib.asynccontextmanager
async def dispatching(
    store: JobStore, tmp_path: Path, max_concurrency: int, poll_interval: float = 0.05
) -> AsyncIterator[tuple[Path, Dispatcher]]:
    """A dispatcher (lab cap 1) on `store` with a pool of holding workers; yields their runs file
    and the dispatcher."""
    script = tmp_path / "holding_worker.py"
    script.write_text(HOLDING_WORKER)
    runs_file = tmp_path / "runs"
    executor = LocalExecutor(
        work_root=tmp_path / "work",
        worker_command=[sys.executable, str(script)],
        worker_env={"PATH": "/usr/bin:/bin", "RUNS_FILE": str(runs_file)},
        max_concurrency=max_concurrency,
        kill_grace=1.0,
    )
    with intake_stand_in(tmp_path) as intake:
        statuses = GrpcSubmissionStatuses(intake.target, intake.service_token)
        settings = DispatcherSettings(
            log_root=str(tmp_path / "logs"),
            max_concurrency=max_concurrency,
            lab_cap=1,
            poll_interval=poll_interval,
        )
        dispatcher = Dispatcher(store, events, job_span, executor, statuses, settings)
        stop = asyncio.Event()
        running = asyncio.create_task(dispatcher.run(stop, Liveness()))
        try:
            yield runs_file, dispatcher
        finally:
            stop.set()
            await running
            await executor.close()
            await statuses.close()


def runs(path: Path) -> list[tuple[str, int, int]]:
    """(job id, attempt, worker pid) of every attempt the workers started, in order."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [(job, int(attempt), int(pid)) for job, attempt, pid in (line.split() for line in lines)]


async def test_the_dispatcher_starts_the_earliest_deadlines_within_the_lab_cap(
    store: JobStore, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    plan(store, "lab-a", now + timedelta(days=20), count=5)
    [due_tomorrow] = plan(store, "lab-b", now + timedelta(days=1))
    async with dispatching(store, tmp_path, max_concurrency=2) as (runs_file, _):
        await until(lambda: len(runs(runs_file)) == 2, timeout=60)
        running = store.in_status(JobStatus.RUNNING)
    assert sorted(labs(running)) == ["lab-a", "lab-b"]
    assert [job.submission_id for job in running if job.organisation == "lab-b"] == [due_tomorrow]


async def test_an_attempt_whose_process_dies_is_retried_in_a_new_one(store: JobStore, tmp_path: Path) -> None:
    plan(store, "lab-a", datetime.now(UTC) + timedelta(days=1))
    async with dispatching(store, tmp_path, max_concurrency=1) as (runs_file, _):
        await until(lambda: len(runs(runs_file)) == 1, timeout=60)
        [(job_id, attempt, victim)] = runs(runs_file)
        assert attempt == 1
        os.kill(victim, signal.SIGKILL)
        await until(lambda: len(runs(runs_file)) == 2, timeout=60)
        retried_job, retried_attempt, replacement = runs(runs_file)[1]
        job = store.get(job_id)
    assert (retried_job, retried_attempt) == (job_id, 2)
    assert replacement != victim
    assert job is not None and (job.status, job.attempt) == (JobStatus.RUNNING, 2)
    assert job.message == "attempt 1 failed, retrying: worker killed by SIGKILL"


# Longer than any test waits: a job these tests see started was started without waiting for a poll.
NO_POLL = 3600.0


async def test_a_planned_job_starts_without_waiting_for_the_next_poll(
    store: JobStore, tmp_path: Path
) -> None:
    window_end = datetime.now(UTC) + timedelta(days=1)
    plan(store, "lab-a", window_end)  # four jobs: the first round starts them, then waits to poll
    dispatched = dispatching(store, tmp_path, max_concurrency=5, poll_interval=NO_POLL)
    async with dispatched as (runs_file, dispatcher):
        await until(lambda: len(runs(runs_file)) == 4, timeout=60)
        planner = Planner(
            store,
            load_catalog(),
            events,
            job_span,
            executor="local",
            max_attempts=3,
            on_change=dispatcher.wake,
        )
        received = received_by("lab-b", window_end)
        attributes = EventAttributes(
            id=f"event-{received.submission_id}",
            type="preflight.intake.v1.SubmissionReceived",
            source="preflight.intake",
            time=datetime.now(UTC),
            subject=received.submission_id,
        )
        await planner.handle(attributes, received)
        await until(lambda: len(runs(runs_file)) == 5, timeout=60)
        [started] = [job for job in store.in_status(JobStatus.RUNNING) if job.organisation == "lab-b"]
    assert started.submission_id == received.submission_id


async def test_a_freed_slot_starts_the_next_job_without_waiting_for_the_next_poll(
    store: JobStore, tmp_path: Path
) -> None:
    plan(store, "lab-a", datetime.now(UTC) + timedelta(days=1))  # four jobs, one slot
    async with dispatching(store, tmp_path, max_concurrency=1, poll_interval=NO_POLL) as (runs_file, _):
        await until(lambda: len(runs(runs_file)) == 1, timeout=60)
        [(_, _, victim)] = runs(runs_file)
        os.kill(victim, signal.SIGKILL)  # its attempt ends without a result: the slot is free
        await until(lambda: len(runs(runs_file)) == 2, timeout=60)
        assert len(store.in_status(JobStatus.RUNNING)) == 1
