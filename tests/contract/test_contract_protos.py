"""The contracts: generated code matches protos/, and every event payload is a registered CloudEvent type."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from preflight.benchmark.v1 import events_pb2 as benchmark_events
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.intake.v1 import events_pb2 as intake_events
from preflight.notifier.v1 import events_pb2 as notifier_events
from preflight_common.envelope import ce_type_of

ROOT = Path(__file__).resolve().parents[2]

EVENT_TYPES = [
    intake_events.SubmissionReceived,
    intake_events.ReleasePlanChanged,
    intake_events.SubmissionWithdrawn,
    benchmark_events.BenchmarkJobRequested,
    benchmark_events.BenchmarkCompleted,
    benchmark_events.BenchmarkFailed,
    benchmark_events.BenchmarkPlanEnded,
    clearinghouse_events.ReviewReportReady,
    clearinghouse_events.FindingPublished,
    clearinghouse_events.FindingUpdated,
    notifier_events.Alert,
]


def test_generated_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_event_type_is_named_by_its_area_and_version() -> None:
    for message in EVENT_TYPES:
        prefix, area, version, name = ce_type_of(message).split(".")
        assert (prefix, version, name) == ("preflight", "v1", message.__name__)
        assert area in {"intake", "benchmark", "clearinghouse", "notifier"}


def test_distinct_event_types_never_share_a_ce_type() -> None:
    assert len({ce_type_of(message) for message in EVENT_TYPES}) == len(EVENT_TYPES)
