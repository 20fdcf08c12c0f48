"""Trace context in Kafka headers, and the per-process telemetry setup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from preflight_common.telemetry import context_of, current_traceparent, extract_context, inject_headers

TELEMETRY_PROCESS = Path(__file__).parent / "support" / "telemetry_process.py"


def test_trace_context_round_trips_through_kafka_headers(span_exporter: Any) -> None:
    carrier: list[tuple[str, bytes]] = [("ce_id", b"evt-1")]
    with trace.get_tracer(__name__).start_as_current_span("publish") as span:
        values = inject_headers(carrier)
    sent = span.get_span_context()

    assert values["traceparent"].split("-")[1:3] == [f"{sent.trace_id:032x}", f"{sent.span_id:016x}"]
    assert carrier == [("ce_id", b"evt-1"), *((name, value.encode()) for name, value in values.items())]
    received = trace.get_current_span(extract_context(carrier)).get_span_context()
    assert (received.trace_id, received.span_id, received.is_remote) == (sent.trace_id, sent.span_id, True)


def test_headers_without_a_trace_give_an_empty_context() -> None:
    assert not trace.get_current_span(extract_context([("ce_id", b"evt-1")])).get_span_context().is_valid
    assert not trace.get_current_span(extract_context(None)).get_span_context().is_valid


def test_a_kept_traceparent_continues_its_trace_later(span_exporter: Any) -> None:
    tracer = trace.get_tracer(__name__)
    assert current_traceparent() is None
    with tracer.start_as_current_span("cause") as cause:
        kept = current_traceparent()
    assert kept is not None
    with tracer.start_as_current_span("later", context=context_of(kept)) as later:
        pass

    assert later.parent is not None
    assert later.parent.span_id == cause.get_span_context().span_id
    assert later.get_span_context().trace_id == cause.get_span_context().trace_id


@pytest.mark.parametrize("preinstalled", [False, True], ids=["fresh-process", "provider-preinstalled"])
def test_setup_exports_spans_to_the_configured_file(tmp_path: Path, preinstalled: bool) -> None:
    spans_file = tmp_path / "spans.jsonl"
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["PREFLIGHT_OTEL_FILE"] = str(spans_file)
    command = [sys.executable, str(TELEMETRY_PROCESS), "preflight-intake"]
    result = subprocess.run(
        [*command, *(["--preinstalled"] if preinstalled else [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    assert json.loads(result.stdout) == {"idempotent": True, "global": True}
    [span] = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert span["name"] == "probe"
    if not preinstalled:  # a provider installed earlier keeps its own resource
        assert span["resource"]["attributes"]["service.name"] == "preflight-intake"
        assert span["resource"]["attributes"]["deployment.environment"] == "test"
