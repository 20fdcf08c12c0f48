"""One submission, one OpenTelemetry trace: from intake's SubmitModel to the notifier's alert.

Every process of the stack appends its finished spans to `<run dir>/traces.jsonl`
(`PREFLIGHT_OTEL_FILE`); the test reads that file while the stack runs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
from preflight.intake.v1 import intake_pb2
from preflight.sdk import Client
from preflight_common.telemetry import SUBMISSION_ID
from preflight_testkit.stack import RunningStack, submission_request, wait_until

pytestmark = pytest.mark.slow

SUBMIT_MODEL = "/preflight.intake.v1.IntakeService/SubmitModel"
# (service, span name prefix) of the spans that name the submission, one kind per hop of its path.
HOPS = (
    ("preflight-benchmark", "benchmark job "),
    ("preflight-benchmark", "benchmark attempt "),
    ("preflight-worker", "worker run "),
    ("preflight-clearinghouse", "issue report"),
    ("preflight-notifier", "alert review_deadline T-7d"),
)

Span = dict[str, Any]


def spans(stack: RunningStack) -> list[Span]:
    """The spans exported so far (a line still being written is left for the next read)."""
    path = stack.run_dir / "traces.jsonl"
    if not path.exists():
        return []
    *complete, _partial = path.read_text(encoding="utf-8").split("\n")
    return [json.loads(line) for line in complete if line.strip()]


def service(span: Span) -> str:
    return str(span["resource"]["attributes"]["service.name"])


def hops_of(stack: RunningStack, submission_id: str) -> dict[tuple[str, str], list[Span]] | None:
    """The submission's spans by hop, once every hop is there and every planned job has a worker run."""
    found: dict[tuple[str, str], list[Span]] = defaultdict(list)
    for span in spans(stack):
        if span["attributes"].get(SUBMISSION_ID) != submission_id:
            continue
        for hop in HOPS:
            if service(span) == hop[0] and span["name"].startswith(hop[1]):
                found[hop].append(span)
    planned = {s["attributes"]["preflight.job_id"] for s in found[HOPS[0]]}
    run = {s["attributes"]["preflight.job_id"] for s in found[HOPS[2]]}
    return dict(found) if all(found[hop] for hop in HOPS) and planned == run else None


def top_of(span: Span, exported: dict[tuple[str, str], Span]) -> Span:
    """The span's farthest ancestor exported so far (SubmitModel's server span once the trace is whole)."""
    while (parent := exported.get((span["context"]["trace_id"], span["parent_id"]))) is not None:
        span = parent
    return span


def test_one_trace_joins_submit_model_the_jobs_the_workers_the_report_and_the_alert(
    stack: RunningStack,
) -> None:
    # The example manifest, releasing in 6 days: the review deadline's T-7d alert fires at once.
    with Client(stack.target("intake"), token=stack.tokens["lab"]) as lab:
        submission_id = lab.submit(submission_request(stack, release_days=6)).submission.submission_id
        wait_until(
            "REPORT_READY",
            lambda: lab.get_submission(submission_id).status == intake_pb2.SUBMISSION_STATUS_REPORT_READY,
            timeout=120,
        )
    found = wait_until("a span of every hop in traces.jsonl", lambda: hops_of(stack, submission_id), 30)

    trace_ids = {span["context"]["trace_id"] for hop in HOPS for span in found[hop]}
    assert len(trace_ids) == 1, f"the submission's spans are in {len(trace_ids)} traces"

    def exported() -> dict[tuple[str, str], Span]:
        return {(span["context"]["trace_id"], span["context"]["span_id"]): span for span in spans(stack)}

    def tops() -> set[tuple[str, str]] | None:
        index = exported()
        ends = {(service(top), top["name"]) for top in (top_of(s, index) for h in HOPS for s in found[h])}
        return ends if ends == {("preflight-intake", SUBMIT_MODEL)} else None

    # Every hop descends from intake's SubmitModel span (its ancestors may still be on their way to the file).
    wait_until("every hop's ancestry back to SubmitModel", tops, 10)

    # Each worker run continues its own attempt's span, which continues its job's span.
    index = exported()
    for run in found[("preflight-worker", "worker run ")]:
        attempt = index[(run["context"]["trace_id"], run["parent_id"])]
        job = index[(attempt["context"]["trace_id"], attempt["parent_id"])]
        for parent, name in ((attempt, "benchmark attempt "), (job, "benchmark job ")):
            assert service(parent) == "preflight-benchmark" and parent["name"].startswith(name)
            assert parent["attributes"]["preflight.job_id"] == run["attributes"]["preflight.job_id"]
