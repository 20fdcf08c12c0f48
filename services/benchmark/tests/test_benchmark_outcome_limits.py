"""A worker's result fits BenchmarkService's request limits whatever a model or scorer wrote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from inspect_ai.log import EvalLog, EvalResults, EvalSample, EvalStats
from inspect_ai.scorer import Score
from preflight.benchmark.v1 import benchmark_pb2
from preflight_benchmark.worker.outcome import FINDINGS_KEY, completed
from preflight_common.fields import EVIDENCE_LIMIT, TEXT_LIMIT, string_violations


def _log(finding: dict[str, str], location: str) -> EvalLog:
    score = Score(value=1, metadata={FINDINGS_KEY: [finding], "affected_product": "pkg:pypi/x"})
    return EvalLog.model_construct(
        location=location,
        results=EvalResults.model_construct(completed_samples=1, scores=[]),
        samples=[EvalSample.model_construct(scores={"finds": score})],
        stats=EvalStats.model_construct(model_usage={}),
    )


def test_oversized_findings_are_clipped_to_the_limits_and_many_log_uris_fit() -> None:
    finding = {
        "title": "T" * 10_000,
        "description": "d",
        "evidence": "e" * (EVIDENCE_LIMIT + 50_000),
        "file": "src/" + "a" * 5_000,
        "cwe": "CWE-787",
    }
    logs = [_log(finding, f"/var/lib/preflight/eval-logs/sub-1/job-1/task-{i:03}.eval") for i in range(40)]
    started = datetime(2026, 12, 1, tzinfo=UTC)
    result = completed(
        logs,
        started=started,
        finished=started + timedelta(minutes=5),
        inspect_version="0",
        benchmark_version="0",
    )
    request = benchmark_pb2.ReportJobResultRequest(job_id="job-1", attempt=1, completed=result)
    assert string_violations(request) == []
    first = result.candidate_findings[0]
    assert len(first.title) == TEXT_LIMIT and len(first.evidence) == EVIDENCE_LIMIT
    assert first.evidence == "e" * EVIDENCE_LIMIT and first.cwe_ids == ["CWE-787"]
    assert result.eval_log_uri.count(",") == 39
