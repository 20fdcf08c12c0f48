"""Per-submission review state and the review report computed from it.

A submission's review is the set of benchmark jobs planned for it
(BenchmarkJobRequested) and their terminal outcomes (BenchmarkCompleted or
BenchmarkFailed). Events of one submission arrive on different topics, so a
terminal event may come before its request: it is kept and counts once the
request arrives. The report is computed when at least one job is planned and
every planned job has ended.

Scores: for every completed suite, the task scores of the metric the policy
reads for the suite's capability. A capability's score is the sample-weighted
mean of its tasks' values; its standard error combines the tasks' standard
errors with the same weights (a task reporting none, with a proportion value,
gets the binomial sqrt(p(1-p)/n)); the 95% interval is score ± 1.96·stderr,
clipped to [0, 1] for proportions. When a suite has several completed jobs,
the latest attempt counts. A suite is failed when none of its jobs completed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from preflight_clearinghouse.domain.audit import Checkpoint
from preflight_clearinghouse.domain.canonical import canonical_json
from preflight_clearinghouse.domain.reviews.policy import RiskPolicy

REPORT_SCHEMA = "preflight.review-report/2"
"""The `schema` of a signed report body (version 1 named neither the organisation, the superseded
version nor an audit checkpoint)."""
Z95 = 1.959964
DIGITS = 6
Outcome = Literal["completed", "failed"]


@dataclass(frozen=True)
class TaskResult:
    """One Inspect task's score in a completed suite."""

    task: str
    metric: str
    value: float
    stderr: float
    samples: int


@dataclass(frozen=True)
class JobRecord:
    """What is known of one benchmark job."""

    job_id: str
    suite_id: str
    suite_version: str
    capability: str
    attempt: int
    requested: bool
    # From the request: the job's last attempt (0: no bound known) and when its window opens.
    max_attempts: int = 0
    not_before: datetime | None = None
    outcome: Outcome | None = None
    tasks: tuple[TaskResult, ...] = ()
    eval_log_uri: str = ""
    failure_reason: str = ""
    failure_message: str = ""

    @property
    def ended(self) -> bool:
        return self.outcome is not None


WITHDRAWN_FAILURE = "FAILURE_REASON_WITHDRAWN"
"""The failure reason of a job the benchmark ended because its submission was withdrawn."""


@dataclass(frozen=True)
class ReviewState:
    """A submission's jobs as far as events have told."""

    submission_id: str
    jobs: tuple[JobRecord, ...]
    # SubmissionWithdrawn was applied.
    withdrawal_heard: bool = False
    # The jobs of the plan, once the benchmark announced its end (BenchmarkPlanEnded).
    plan: tuple[str, ...] | None = None

    def withdrawn(self) -> bool:
        """The submission was withdrawn, so it gets no report: intake said so, or a job of it failed
        WITHDRAWN (the benchmark ends jobs so only on a withdrawal, and its results topic may be read
        before the submissions topic tells the same)."""
        return self.withdrawal_heard or any(j.failure_reason == WITHDRAWN_FAILURE for j in self.jobs)

    def planned(self) -> list[JobRecord]:
        """Jobs whose request has been seen."""
        return [j for j in self.jobs if j.requested]

    def complete(self) -> bool:
        """The benchmark announced the plan's end and every job it lists has its result here (the
        announcement may be read before a result that waits for its request on the jobs topic)."""
        if not self.plan:
            return False
        ended = {j.job_id for j in self.planned() if j.ended}
        return ended.issuperset(self.plan)


@dataclass(frozen=True)
class CapabilityResult:
    """A capability's aggregated score."""

    capability: str
    metric: str
    score: float
    stderr: float
    ci_low: float
    ci_high: float
    suites: tuple[str, ...]
    samples: int
    tier: str


@dataclass(frozen=True)
class FailedSuiteResult:
    """A suite that ended without a result."""

    suite_id: str
    suite_version: str
    job_id: str
    reason: str
    message: str


@dataclass(frozen=True)
class SuiteResult:
    """Provenance of one suite's contribution: which job counted, and its eval log."""

    suite_id: str
    suite_version: str
    capability: str
    job_id: str
    outcome: Outcome
    eval_log_uri: str


@dataclass(frozen=True)
class ReportContent:
    """Everything a report says except its identity, version and issue time."""

    tier: str
    policy_id: str
    policy_version: str
    basis: str
    scores: tuple[CapabilityResult, ...]
    failed_suites: tuple[FailedSuiteResult, ...]
    unassessed_capabilities: tuple[str, ...]
    suites: tuple[SuiteResult, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def content_hash(self) -> str:
        """SHA-256 of the canonical content: equal results, equal hash (so replays issue nothing new)."""
        return hashlib.sha256(canonical_json(self.as_dict())).hexdigest()


def _round(value: float) -> float:
    return round(value, DIGITS)


def _task_stderr(task: TaskResult) -> float:
    if task.stderr > 0 or not 0.0 <= task.value <= 1.0 or task.samples <= 0:
        return max(task.stderr, 0.0)
    return math.sqrt(task.value * (1.0 - task.value) / task.samples)


def aggregate(
    capability: str, metric: str, suites: Sequence[JobRecord], policy: RiskPolicy
) -> CapabilityResult | None:
    """Aggregate the completed suites of one capability (None when no task reports `metric`)."""
    tasks = [t for job in suites for t in job.tasks if t.metric == metric and math.isfinite(t.value)]
    if not tasks:
        return None
    total = sum(max(t.samples, 0) for t in tasks)
    weights = [max(t.samples, 0) / total for t in tasks] if total else [1.0 / len(tasks)] * len(tasks)
    score = sum(w * t.value for w, t in zip(weights, tasks, strict=True))
    stderr = math.sqrt(sum((w * _task_stderr(t)) ** 2 for w, t in zip(weights, tasks, strict=True)))
    low, high = score - Z95 * stderr, score + Z95 * stderr
    if all(0.0 <= t.value <= 1.0 for t in tasks):
        low, high = max(0.0, low), min(1.0, high)
    score, stderr, low, high = _round(score), _round(stderr), _round(low), _round(high)
    return CapabilityResult(
        capability=capability,
        metric=metric,
        score=score,
        stderr=stderr,
        ci_low=low,
        ci_high=high,
        suites=tuple(sorted({job.suite_id for job in suites})),
        samples=total,
        tier=policy.capability_tier(capability, score, high),
    )


def _latest_per_suite(jobs: Iterable[JobRecord]) -> dict[tuple[str, str], list[JobRecord]]:
    by_suite: dict[tuple[str, str], list[JobRecord]] = defaultdict(list)
    for job in jobs:
        by_suite[(job.suite_id, job.suite_version)].append(job)
    for group in by_suite.values():
        group.sort(key=lambda j: (j.outcome == "completed", j.attempt, j.job_id))
    return by_suite


def compute_report(state: ReviewState, policy: RiskPolicy) -> ReportContent:
    """The report content for a complete review state (see the module doc)."""
    if not state.complete():
        raise ValueError("the review is not complete")
    counted: list[JobRecord] = []
    failed: list[FailedSuiteResult] = []
    for (suite_id, suite_version), group in sorted(_latest_per_suite(state.planned()).items()):
        best = group[-1]
        counted.append(best)
        if best.outcome == "failed":
            failed.append(
                FailedSuiteResult(
                    suite_id, suite_version, best.job_id, best.failure_reason, best.failure_message
                )
            )
    completed_by_capability: dict[str, list[JobRecord]] = defaultdict(list)
    for job in counted:
        if job.outcome == "completed":
            completed_by_capability[job.capability].append(job)
    scores = [
        result
        for capability, jobs in sorted(completed_by_capability.items())
        if (result := aggregate(capability, policy.metric_for(capability), jobs, policy)) is not None
    ]
    assessed = {s.capability for s in scores}
    return ReportContent(
        tier=policy.highest([s.tier for s in scores]),
        policy_id=policy.policy_id,
        policy_version=policy.version,
        basis=policy.basis,
        scores=tuple(scores),
        failed_suites=tuple(failed),
        unassessed_capabilities=tuple(sorted(set(policy.rules) - assessed)),
        suites=tuple(
            SuiteResult(
                j.suite_id, j.suite_version, j.capability, j.job_id, j.outcome or "failed", j.eval_log_uri
            )
            for j in counted
        ),
    )


@dataclass(frozen=True)
class SubmissionInfo:
    """What the clearinghouse keeps of a SubmissionReceived: the lab, the model and the consent,
    set once."""

    submission_id: str
    organisation: str
    model_name: str
    model_version: str
    share_identity: bool
    received_at: datetime


@dataclass(frozen=True)
class IssuedReport:
    """One issued, signed report version."""

    report_id: str
    submission_id: str
    version: int
    content: ReportContent
    issued_at: datetime
    signing_key_id: str
    body: bytes
    digest: str
    signature: bytes
    organisation: str


@dataclass(frozen=True)
class Supersedes:
    """The version a new report version replaces, as its signed body names it."""

    report_id: str
    version: int
    digest: str


def report_body(
    *,
    report_id: str,
    submission_id: str,
    version: int,
    organisation: str,
    content: ReportContent,
    issued_at: datetime,
    signing_key_id: str,
    supersedes: Supersedes | None,
    audit_checkpoint: Checkpoint,
) -> bytes:
    """The canonical JSON that is signed: every field of the API's ReviewReport that is fixed at
    issue — identity, version, the submitting lab's organisation, the content, issue time and key id
    — plus the version it supersedes (null for the first: a later version marks this one superseded
    by naming it) and the audit log's chain head at issue (`audit_checkpoint`, a signed checkpoint
    `verify-audit` accepts). Notes and sign-offs are added after issue and are not part of it.
    """
    return canonical_json(
        {
            "schema": REPORT_SCHEMA,
            "report_id": report_id,
            "submission_id": submission_id,
            "version": version,
            "organisation": organisation,
            "issued_at": issued_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "signing_key_id": signing_key_id,
            "supersedes": asdict(supersedes) if supersedes else None,
            "audit_checkpoint": audit_checkpoint.as_dict(),
            **content.as_dict(),
        }
    )


def content_from_body(body: bytes) -> ReportContent:
    """The content part of a signed report body (the inverse of `report_body` for the content)."""
    data = json.loads(body)
    return ReportContent(
        tier=data["tier"],
        policy_id=data["policy_id"],
        policy_version=data["policy_version"],
        basis=data["basis"],
        scores=tuple(CapabilityResult(**{**s, "suites": tuple(s["suites"])}) for s in data["scores"]),
        failed_suites=tuple(FailedSuiteResult(**f) for f in data["failed_suites"]),
        unassessed_capabilities=tuple(data["unassessed_capabilities"]),
        suites=tuple(SuiteResult(**s) for s in data["suites"]),
    )


@dataclass(frozen=True)
class ReportRecord:
    """A stored report version: what was signed, and whether a newer version supersedes it."""

    report_id: str
    submission_id: str
    version: int
    tier: str
    policy_id: str
    policy_version: str
    content_hash: str
    body: bytes
    digest: str
    signature: bytes
    signing_key_id: str
    issued_at: datetime
    organisation: str
    superseded: bool


@dataclass(frozen=True)
class NoteRecord:
    """A reviewer's note on a report version (not signed)."""

    note_id: str
    author_id: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class SignOffRecord:
    """A reviewer's sign-off of a report version (not signed)."""

    reviewer_id: str
    comment: str
    signed_off_at: datetime
