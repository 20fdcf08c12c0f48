"""The dispatcher: starts due attempts on an executor and settles attempts that end without a result.

It works from the service's own job table (the source of truth the planner
wrote in the same transaction as the BenchmarkJobRequested events), not from
the jobs topic: a job is started by a compare-and-set PENDING → RUNNING, so a
restarted dispatcher neither loses nor doubles work. After a restart, jobs
left RUNNING are handed to the executor again with the same attempt number
(the Kubernetes executor re-attaches to the existing Job; a local worker died
with its parent, so it starts afresh).

A round runs every poll interval, and at once when `wake` is called (the planner stored or changed
jobs) or an attempt ended (its slot is free), so a due job waits for a free slot, not for the
next poll. Every round: (1) active jobs whose access window closed fail as WINDOW_CLOSED
and their workers are stopped; (2) workers of jobs the service ended meanwhile
(withdrawal) are stopped, while a worker that reported its outcome exits by
itself (its Kubernetes Job completes and is kept for its TTL); (3) pending jobs
whose window is open start, up to the concurrency bound, earliest deadline first
(`choose`): the deadline is the end of the job's access window, which the review deadline
bounds, and a lab with `lab_cap` attempts running starts another only while no
other lab's job waits, so one lab's many submissions cannot hold every slot
while another's are due sooner or wait their turn. Each round sets the gauge
`preflight_benchmark_queue_depth` (due jobs waiting) and each first attempt
records how long its job waited in `preflight_benchmark_job_wait_seconds`.

Right before an attempt is handed to the executor (a new one, or one resumed
after a restart) intake, the source of truth, is asked whether the submission
was withdrawn: the planner may not have read a withdrawal from the submissions
topic yet (it was made while this process was down). A withdrawn submission's
job ends as WITHDRAWN instead of starting; while intake cannot tell, the attempt
waits (launching nothing) until it can, or until the job ended otherwise.

With a `Leadership` (replicas sharing one database and one cluster), only the
leader adopts running attempts and starts new ones, so the concurrency bound
holds for the service, not per replica: a replica that stops leading stops
watching its attempts (their workers keep running) and the next leader adopts
them.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry import metrics
from preflight.benchmark.v1 import events_pb2
from preflight_common.clock import Clock, utc_now
from preflight_common.liveness import Liveness

from preflight_benchmark.domain.catalog import Resources
from preflight_benchmark.domain.jobs import (
    ENDED_BY_THE_SERVICE,
    AttemptEnd,
    AttemptOutcome,
    FailureReason,
    JobStatus,
    after_unreported_end,
)
from preflight_benchmark.domain.ports import (
    Attempt,
    Executor,
    JobEvents,
    Jobs,
    JobSpans,
    Leadership,
    SubmissionStatuses,
    SubmissionStatusUnknown,
)
from preflight_benchmark.domain.records import JobRecord

log = logging.getLogger(__name__)
_meter = metrics.get_meter(__name__)
QUEUE_DEPTH = _meter.create_gauge(
    "preflight_benchmark_queue_depth", description="Pending jobs whose access window is open"
)
JOB_WAIT = _meter.create_histogram(
    "preflight_benchmark_job_wait_seconds",
    unit="s",
    description="From a job becoming due (planned, window open) to its first attempt starting",
)


@dataclass(frozen=True)
class DispatcherSettings:
    """`lab_cap`: running attempts of one organisation past which its jobs start only when no
    other organisation's job waits (0: no cap)."""

    log_root: str
    max_concurrency: int = 2
    lab_cap: int = 0
    poll_interval: float = 0.5
    # Longest wait between two questions to an intake that could not answer (seconds).
    status_retry_cap: float = 10.0


def _attempt(job: JobRecord, log_root: str, events: JobEvents, *, resumed: bool = False) -> Attempt:
    request = events_pb2.BenchmarkJobRequested.FromString(job.request)
    # One folder per job, shared by its attempts: a retried attempt resumes the log there.
    log_dir = posixpath.join(log_root.rstrip("/"), job.submission_id, job.job_id)
    return Attempt(
        job_id=job.job_id,
        submission_id=job.submission_id,
        suite_id=job.suite_id,
        attempt=job.attempt,
        access_kind=request.access.WhichOneof("kind") or "",
        resources=_resources(request),
        timeout=request.timeout.ToTimedelta(),
        assignment=events.assignment_json(job, log_dir),
        sandbox=request.sandbox,
        resumed=resumed,
    )


def _resources(request: events_pb2.BenchmarkJobRequested) -> Resources:
    return Resources(
        gpu=request.resources.gpu,
        cpu=request.resources.cpu or "1",
        memory=request.resources.memory or "2Gi",
        accelerator=request.resources.accelerator,
    )


def choose(
    candidates: Sequence[JobRecord], running: Mapping[str, int], free: int, lab_cap: int
) -> list[JobRecord]:
    """The jobs to start in `free` slots: `candidates` in earliest-deadline order, skipping the
    jobs of organisations with `lab_cap` attempts running (`running`: organisation → attempts,
    counting those chosen here) as long as another organisation's candidate is left; the skipped
    ones then fill the slots still free, earliest deadline first (no slot idles for the cap)."""
    counts = Counter(running)
    chosen: list[JobRecord] = []
    capped: list[JobRecord] = []
    for job in candidates:
        if len(chosen) == free:
            return chosen
        if lab_cap and counts[job.organisation] >= lab_cap:
            capped.append(job)
            continue
        chosen.append(job)
        counts[job.organisation] += 1
    return chosen + capped[: free - len(chosen)]


def _became_due(job: JobRecord) -> float:
    return max(job.created_at, job.not_before).timestamp()


class Dispatcher:
    """Runs jobs on one executor. `run` until `stop` is set; attempts still running are left to resume."""

    def __init__(
        self,
        store: Jobs,
        events: JobEvents,
        spans: JobSpans,
        executor: Executor,
        statuses: SubmissionStatuses,
        settings: DispatcherSettings,
        clock: Clock = utc_now,
        leadership: Leadership | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._spans = spans
        self._executor = executor
        self._statuses = statuses
        self._settings = settings
        self._clock = clock
        self._leadership = leadership
        self._running: dict[str, tuple[JobRecord, asyncio.Task[None]]] = {}
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Run a round now rather than at the next poll: jobs may have become due. Call it on the
        dispatcher's event loop."""
        self._woken.set()

    @property
    def running(self) -> dict[str, int]:
        """Job id → attempt of the attempts this dispatcher watches."""
        return {job_id: job.attempt for job_id, (job, _) in self._running.items()}

    async def run(self, stop: asyncio.Event, liveness: Liveness) -> None:
        """Tick every poll interval, or when woken, while leading, until `stop` is set, beating
        `liveness` each round.

        On taking the lead the jobs left RUNNING are adopted; on losing it their watches end.
        """
        adopted = False
        while not stop.is_set():
            liveness.beat("dispatcher", self._settings.poll_interval)
            self._woken.clear()  # a wake from here on runs the next round at once
            try:
                if self._leadership is None or self._leadership.leading():
                    if not adopted:
                        for job in await asyncio.to_thread(self._store.in_status, JobStatus.RUNNING):
                            self._watch(job, resumed=True)
                        adopted = True
                    await self.tick()
                elif adopted:
                    log.warning(
                        "dispatcher no longer leads: leaving %d attempts to the next leader",
                        len(self._running),
                    )
                    await self._forget_attempts()
                    adopted = False
            except Exception:
                log.exception("dispatcher tick failed")
            await self._pause(stop)
        liveness.end("dispatcher")
        await self._forget_attempts()

    async def _pause(self, stop: asyncio.Event) -> None:
        """Until the poll interval passed, `stop` is set or the dispatcher is woken."""
        waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._woken.wait())}
        try:
            await asyncio.wait(
                waits, timeout=self._settings.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for wait in waits:
                wait.cancel()

    async def _forget_attempts(self) -> None:
        """Stop watching every attempt; their workers run on, for whoever dispatches next."""
        tasks = [task for _, task in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()

    async def tick(self) -> None:
        now = self._clock()
        for job in await asyncio.to_thread(self._store.expired, now):
            ending = self._events.failed(
                FailureReason.WINDOW_CLOSED, "the access window closed", retryable=False, now=now
            )
            ended = await asyncio.to_thread(self._store.end, job.job_id, ending, now)
            if ended is not None:
                log.info("job %s failed: access window closed", job.job_id)
        for job_id, (job, _) in list(self._running.items()):
            current = await asyncio.to_thread(self._store.get, job_id)
            if current is None or current.failure_reason in ENDED_BY_THE_SERVICE:
                await self._executor.cancel(job_id, job.attempt)
        free = self._settings.max_concurrency - len(self._running)
        if free > 0:
            running = Counter(job.organisation for job, _ in self._running.values())
            candidates = await asyncio.to_thread(self._store.due, now, free)
            for job in choose(candidates, running, free, self._settings.lab_cap):
                started = await asyncio.to_thread(self._store.start_attempt, job, now)
                if started is not None:
                    log.info(
                        "job %s: attempt %d starting on %s",
                        started.job_id,
                        started.attempt,
                        self._executor.name,
                    )
                    if started.attempt == 1:
                        JOB_WAIT.record(max(0.0, now.timestamp() - _became_due(started)))
                    self._watch(started)
        QUEUE_DEPTH.set(await asyncio.to_thread(self._store.count_due, now))

    def _watch(self, job: JobRecord, *, resumed: bool = False) -> None:
        task = asyncio.create_task(
            self._run_attempt(job, resumed=resumed), name=f"attempt {job.job_id}#{job.attempt}"
        )
        self._running[job.job_id] = (job, task)

    async def _launchable(self, job: JobRecord) -> bool:
        """Whether the attempt may start: intake does not say its submission was withdrawn.

        A withdrawn submission's job ends as WITHDRAWN here (and a worker of the attempt
        still running from before a restart is stopped). While intake cannot tell,
        this waits (with capped backoff) and gives up once the job is no longer this
        running attempt (the window closed, or the planner ended it).
        """
        delay = self._settings.poll_interval
        while True:
            try:
                withdrawn = await self._statuses.withdrawn(job.submission_id)
                break
            except SubmissionStatusUnknown as exc:
                current = await asyncio.to_thread(self._store.get, job.job_id)
                if current is None or current.status != JobStatus.RUNNING or current.attempt != job.attempt:
                    return False
                log.warning("job %s waits to start: %s; asking again in %.1fs", job.job_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.status_retry_cap)
        if not withdrawn:
            return True
        now = self._clock()
        ending = self._events.failed(
            FailureReason.WITHDRAWN, "submission withdrawn (intake)", retryable=False, now=now
        )
        if await asyncio.to_thread(self._store.end, job.job_id, ending, now, job.attempt) is not None:
            log.info("job %s failed: its submission was withdrawn (not started)", job.job_id)
        # A worker of this attempt that outlived the previous process (a Kubernetes Job) is stopped.
        await self._executor.cancel(job.job_id, job.attempt)
        return False

    async def _run_attempt(self, job: JobRecord, *, resumed: bool) -> None:
        try:
            if not await self._launchable(job):
                return
            # The attempt's span continues the job's trace; the worker's run is its child.
            with self._spans(
                "benchmark attempt",
                submission_id=job.submission_id,
                job_id=job.job_id,
                suite_id=job.suite_id,
                attempt=job.attempt,
                traceparent=job.traceparent,
            ):
                try:
                    outcome = await self._executor.run(
                        _attempt(job, self._settings.log_root, self._events, resumed=resumed)
                    )
                except Exception as exc:  # an executor bug must not lose the attempt
                    log.exception("executor failed on job %s", job.job_id)
                    outcome = AttemptOutcome(AttemptEnd.INFRASTRUCTURE, f"executor error: {exc}")
                await asyncio.to_thread(self._settle, job.job_id, job.attempt, outcome)
        finally:
            current = self._running.get(job.job_id)
            if current is not None and current[0].attempt == job.attempt:
                del self._running[job.job_id]
            self.wake()  # its slot is free (or the job is due again)

    def _settle(self, job_id: str, attempt: int, outcome: AttemptOutcome) -> None:
        job = self._store.get(job_id)
        if job is None or job.status != JobStatus.RUNNING or job.attempt != attempt:
            return  # the worker reported, or the job was ended by withdrawal or the window
        decision = after_unreported_end(attempt, job.max_attempts, outcome)
        if decision is None:
            return
        now = self._clock()
        if decision.status == JobStatus.PENDING:
            self._store.requeue(job_id, attempt, decision.message, now)
            log.warning("job %s: %s", job_id, decision.message)
            return
        assert decision.reason is not None
        ending = self._events.failed(decision.reason, decision.message, retryable=decision.retryable, now=now)
        if self._store.end(job_id, ending, now, attempt=attempt) is not None:
            log.warning("job %s failed: %s", job_id, decision.message)
