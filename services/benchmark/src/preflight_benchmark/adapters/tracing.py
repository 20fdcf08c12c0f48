"""The spans of a job's life, in its submission's trace.

The planner opens `benchmark job <suite>` for each job it plans (inside the
SubmissionReceived consumer span) and keeps that span's `traceparent` with the
job; the dispatcher opens `benchmark attempt <suite>` from it for each attempt,
and the worker opens `worker run <suite>` from the `traceparent` of its
assignment. Each carries the submission id, the job id and the suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from preflight_common.telemetry import SUBMISSION_ID, context_of

tracer = trace.get_tracer("preflight_benchmark")


@contextmanager
def job_span(
    name: str,
    *,
    submission_id: str,
    job_id: str,
    suite_id: str,
    attempt: int = 0,
    traceparent: str | None = None,
) -> Iterator[trace.Span]:
    """The current span `<name> <suite>` of one job, a child of `traceparent` (else of the current span)."""
    attributes: dict[str, str | int] = {
        SUBMISSION_ID: submission_id,
        "preflight.job_id": job_id,
        "preflight.suite_id": suite_id,
    }
    if attempt:
        attributes["preflight.attempt"] = attempt
    parent = context_of(traceparent) if traceparent else None
    with tracer.start_as_current_span(f"{name} {suite_id}", context=parent, attributes=attributes) as span:
        yield span
