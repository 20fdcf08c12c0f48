"""Trace context in Kafka headers, and the per-process telemetry setup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
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


class _HttpCollector:
    """An OTLP/HTTP trace receiver on loopback (POST /v1/traces, binary protobuf)."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf":
                    collector.requests.append(ExportTraceServiceRequest.FromString(body))
                    reply = ExportTraceServiceResponse().SerializeToString()
                    self.send_response(200)
                else:
                    reply = b""
                    self.send_response(404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _GrpcCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver on loopback."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self._server = grpc.server(ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.endpoint = f"http://127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()

    def Export(self, request: ExportTraceServiceRequest, context: Any) -> ExportTraceServiceResponse:
        self.requests.append(request)
        return ExportTraceServiceResponse()

    def close(self) -> None:
        self._server.stop(grace=None)


def _run_telemetry_process(env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.pop("PREFLIGHT_OTEL_FILE", None)
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, str(TELEMETRY_PROCESS), "preflight-notifier"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("protocol", "collector_type"),
    [("grpc", _GrpcCollector), ("http/protobuf", _HttpCollector)],
    ids=["grpc", "http-protobuf"],
)
def test_setup_exports_spans_to_an_otlp_collector_over_the_configured_protocol(
    protocol: str, collector_type: type[_GrpcCollector | _HttpCollector]
) -> None:
    collector = collector_type()
    try:
        result = _run_telemetry_process(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
        )
    finally:
        collector.close()
    assert result.returncode == 0, result.stderr
    [request] = collector.requests
    [resource_spans] = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
    assert service == "preflight-notifier"
    assert [s.name for scope in resource_spans.scope_spans for s in scope.spans] == ["probe"]


def test_an_unknown_otlp_protocol_is_a_configuration_error_naming_the_variable() -> None:
    result = _run_telemetry_process(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
        }
    )
    assert result.returncode != 0
    assert "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' is not an OTLP protocol" in result.stderr
