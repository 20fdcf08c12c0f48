"""Turning Inspect eval logs into BenchmarkCompleted (scores, usage, candidate findings)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from inspect_ai.log import EvalLog
from preflight.benchmark.v1 import events_pb2
from preflight_common.fields import clip_strings, timestamp

# Scorers put reported vulnerabilities in their score's metadata under this key
# (a list of {file, line, function, cwe, title, description, evidence}) and the
# affected product's purl under "affected_product".
FINDINGS_KEY = "findings"


def task_scores(log: EvalLog) -> list[events_pb2.TaskScore]:
    """One TaskScore per scorer metric (stderr folded into its metric)."""
    scores: list[events_pb2.TaskScore] = []
    if log.results is None:
        return scores
    for score in log.results.scores:
        stderr = score.metrics.get("stderr")
        for name, metric in score.metrics.items():
            if name == "stderr":
                continue
            scores.append(
                events_pb2.TaskScore(
                    task=log.eval.task,
                    metric=score.name if name == "mean" else name,
                    value=float(metric.value),
                    stderr=float(stderr.value) if stderr is not None else 0.0,
                    samples=log.results.completed_samples,
                )
            )
    return scores


def candidate_findings(log: EvalLog) -> list[events_pb2.CandidateFinding]:
    """Every vulnerability a scorer recorded under FINDINGS_KEY, as a candidate finding."""
    findings: list[events_pb2.CandidateFinding] = []
    for sample in log.samples or []:
        for score in (sample.scores or {}).values():
            meta = score.metadata or {}
            findings.extend(
                events_pb2.CandidateFinding(
                    cwe_ids=[str(item.get("cwe", ""))] if item.get("cwe") else [],
                    affected_product=str(meta.get("affected_product", "")),
                    affected_file=str(item.get("file", "")),
                    affected_function=str(item.get("function", "")),
                    line=int(item.get("line", 0) or 0),
                    title=str(item.get("title", "")),
                    description=str(item.get("description", "")),
                    evidence=str(item.get("evidence", "")),
                )
                for item in meta.get(FINDINGS_KEY) or []
            )
    return findings


def completed(
    logs: Sequence[EvalLog],
    *,
    started: datetime,
    finished: datetime,
    inspect_version: str,
    benchmark_version: str,
) -> events_pb2.BenchmarkCompleted:
    """The result of successful logs (identity fields are filled in by the service)."""
    message = events_pb2.BenchmarkCompleted(
        inspect_version=inspect_version,
        benchmark_version=benchmark_version,
        started_at=timestamp(started),
        finished_at=timestamp(finished),
        eval_log_uri=",".join(log.location for log in logs),
    )
    message.duration.FromTimedelta(finished - started)
    for log in logs:
        message.scores.extend(task_scores(log))
        message.candidate_findings.extend(candidate_findings(log))
        if log.results is not None:
            message.samples_total += log.results.completed_samples
        for usage in log.stats.model_usage.values():
            message.usage.input_tokens += usage.input_tokens
            message.usage.output_tokens += usage.output_tokens
            message.usage.total_tokens += usage.total_tokens
    # Findings carry what a model or scorer wrote: fit them to BenchmarkService's limits, or the
    # whole result would be refused.
    clip_strings(message)
    return message
