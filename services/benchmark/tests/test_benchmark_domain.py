"""The domain rules: catalog validation, deterministic job ids, the fan-out, what follows an attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.domain.catalog import CatalogError, parse_catalog
from preflight_benchmark.domain.jobs import (
    AccessWindow,
    AttemptEnd,
    AttemptOutcome,
    FailureReason,
    JobStatus,
    after_reported_failure,
    after_unreported_end,
    job_id,
    plan,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
WINDOW = AccessWindow(NOW, NOW + timedelta(days=7))


def suite(**overrides: Any) -> dict[str, Any]:
    base = {
        "id": "cyber.test",
        "version": "1.0.0",
        "task": "preflight_benchmark/knowledge",
        "capability": "security_knowledge",
        "access_kinds": ["endpoint", "weights"],
        "timeout_seconds": 60,
    }
    return {**base, **overrides}


def test_shipped_catalog_has_the_four_cyber_suites_for_both_access_kinds() -> None:
    catalog = load_catalog()
    ids = [s.id for s in catalog.suites]
    assert ids == ["cyber.vuln-detect", "cyber.exploit", "cyber.knowledge", "cyber.discovery"]
    assert catalog.for_access("endpoint") == catalog.for_access("weights") == catalog.suites
    assert all(s.sample_limit == 0 for s in catalog.suites), "the shipped catalog runs full suites"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"suites": []}, "catalog.catalog_version"),
        ({"catalog_version": 1, "suites": [suite(id="Bad Id")]}, "suites[0].id"),
        # `$` alone would let a name end in a newline
        ({"catalog_version": 1, "suites": [suite(id="cyber.knowledge\n")]}, "suites[0].id"),
        (
            {"catalog_version": 1, "suites": [suite(resources={"memory": "1Gi\n"})]},
            "suites[0].resources.memory",
        ),
        ({"catalog_version": 1, "suites": [suite(timeout_seconds=0)]}, "suites[0].timeout_seconds"),
        ({"catalog_version": 1, "suites": [suite(access_kinds=["ftp"])]}, "suites[0].access_kinds"),
        (
            {"catalog_version": 1, "suites": [suite(resources={"memory": "lots"})]},
            "suites[0].resources.memory",
        ),
        ({"catalog_version": 1, "suites": [suite(resources={"gpu": -1})]}, "suites[0].resources.gpu"),
        ({"catalog_version": 1, "suites": [suite(sample_limit=True)]}, "suites[0].sample_limit"),
        ({"catalog_version": 1, "suites": [suite(), suite()]}, "suites[1].id"),
        ({"catalog_version": 1, "suites": []}, "catalog.suites: no suite supports endpoint access"),
        (
            {"catalog_version": 1, "suites": [suite(access_kinds=["endpoint"])]},
            "catalog.suites: no suite supports weights access",
        ),
    ],
)
def test_malformed_catalog_is_rejected_naming_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(CatalogError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_catalog(document)


def test_job_ids_are_deterministic_and_distinct_per_suite_version_and_attempt() -> None:
    a = job_id("sub-1", "cyber.exploit", "1.0.0")
    assert a == job_id("sub-1", "cyber.exploit", "1.0.0", 1)
    assert a.startswith("bj-") and len(a) == 35
    others = {
        job_id("sub-2", "cyber.exploit", "1.0.0"),
        job_id("sub-1", "cyber.knowledge", "1.0.0"),
        job_id("sub-1", "cyber.exploit", "1.0.1"),
        job_id("sub-1", "cyber.exploit", "1.0.0", 2),
    }
    assert a not in others and len(others) == 4


def test_plan_fans_out_one_job_per_suite_supporting_the_access_kind() -> None:
    catalog = parse_catalog(
        {
            "catalog_version": "x",
            "suites": [
                suite(id="a.one", access_kinds=["endpoint"]),
                suite(id="a.two", access_kinds=["endpoint", "weights"]),
                suite(id="a.three", access_kinds=["weights"]),
            ],
        }
    )
    endpoint = plan("sub-1", "endpoint", WINDOW, catalog, max_attempts=3)
    assert [p.suite.id for p in endpoint] == ["a.one", "a.two"]
    assert plan("sub-1", "endpoint", WINDOW, catalog, max_attempts=3) == endpoint
    assert [p.suite.id for p in plan("sub-1", "weights", WINDOW, catalog, max_attempts=3)] == [
        "a.two",
        "a.three",
    ]


def test_access_window_is_half_open() -> None:
    assert not WINDOW.opened(NOW - timedelta(seconds=1)) and WINDOW.opened(NOW)
    assert not WINDOW.closed(WINDOW.end - timedelta(microseconds=1)) and WINDOW.closed(WINDOW.end)


def test_crashed_attempts_are_retried_up_to_the_bound_then_fail() -> None:
    crash = AttemptOutcome(AttemptEnd.CRASHED, "worker killed by SIGKILL")
    retry = after_unreported_end(1, 3, crash)
    assert retry is not None and retry.status == JobStatus.PENDING
    final = after_unreported_end(3, 3, crash)
    assert final is not None and final.status == JobStatus.FAILED
    assert final.reason == FailureReason.WORKER_CRASHED and final.retryable


def test_a_worker_that_succeeds_without_reporting_fails_at_once_as_misconfigured() -> None:
    decision = after_unreported_end(1, 3, AttemptOutcome(AttemptEnd.EXITED, "Job preflight-x-a1 succeeded"))
    assert decision is not None
    assert (decision.status, decision.reason, decision.retryable) == (
        JobStatus.FAILED,
        FailureReason.CONFIG_ERROR,
        False,
    )
    assert "without reporting a result (Job preflight-x-a1 succeeded)" in decision.message


@pytest.mark.parametrize(
    ("end", "reason"),
    [(AttemptEnd.TIMED_OUT, FailureReason.TIMEOUT), (AttemptEnd.CONFIG_ERROR, FailureReason.CONFIG_ERROR)],
)
def test_timeouts_and_configuration_errors_fail_at_once(end: AttemptEnd, reason: FailureReason) -> None:
    decision = after_unreported_end(1, 3, AttemptOutcome(end))
    assert decision is not None and (decision.status, decision.reason) == (JobStatus.FAILED, reason)


def test_cancelled_attempts_decide_nothing() -> None:
    assert after_unreported_end(1, 3, AttemptOutcome(AttemptEnd.CANCELLED)) is None


def test_reported_failures_retry_only_when_retryable() -> None:
    retry = after_reported_failure(1, 3, FailureReason.MODEL_UNREACHABLE, True, "connection refused")
    assert retry.status == JobStatus.PENDING
    final = after_reported_failure(1, 3, FailureReason.EVAL_ERROR, False, "task errored")
    assert (final.status, final.reason, final.retryable) == (
        JobStatus.FAILED,
        FailureReason.EVAL_ERROR,
        False,
    )
