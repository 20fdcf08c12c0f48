"""OpenTelemetry for Preflight processes: one setup call, and trace context in Kafka headers.

`setup_telemetry` installs a tracer provider with the service's resource; it
exports over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (gRPC, or protobuf
over HTTP when `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` is `http/protobuf`), to a JSON-lines
file when `PREFLIGHT_OTEL_FILE` is set (one span per line, for local runs and
end-to-end tests), and is a no-op exporter otherwise. gRPC clients (blocking
and asyncio) and servers are instrumented. It also serves the process's metrics
for Prometheus when `OTEL_METRICS_EXPORTER` says so (`preflight_common.metrics`).

Work that runs later, outside the span that caused it (a job dispatched from
a table, a reminder fired by a scheduler, a worker process), keeps the cause's
`current_traceparent()` with it and starts its span in `context_of(...)`, so a
submission's whole path is one trace. Such spans carry the submission id as
the `SUBMISSION_ID` attribute.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import MutableSequence, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from preflight_common.config import ConfigError
from preflight_common.envelope import RawHeaders, headers_dict
from preflight_common.metrics import setup_metrics

SUBMISSION_ID = "preflight.submission_id"
# The file exporter is read while processes run (local runs, end-to-end tests): export often.
FILE_EXPORT_DELAY_MS = 500.0

_setup_lock = threading.Lock()
_configured: TracerProvider | None = None


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON object per line to a file."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        text = "".join(json.dumps(json.loads(span.to_json(indent=None))) + "\n" for span in spans)
        # One append per batch: several processes share the file, and a single O_APPEND
        # write never interleaves with theirs (buffered writes could split a line).
        with self._lock:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
        return SpanExportResult.SUCCESS


def _otlp_exporter() -> SpanExporter:
    """The OTLP span exporter for the protocol the standard variables name (gRPC by default)."""
    variable = next(
        (
            v
            for v in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
            if os.environ.get(v)
        ),
        None,
    )
    protocol = os.environ[variable] if variable else "grpc"
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    raise ConfigError(
        f"{variable}: {protocol!r} is not an OTLP protocol Preflight exports (grpc, http/protobuf)"
    )


def setup_telemetry(service_name: str, **resource_attributes: str) -> TracerProvider:
    """Install the process's tracer provider (idempotent: later calls return the first).

    OpenTelemetry allows one global tracer provider per process: when an SDK provider is
    already installed (by a test harness or an auto-instrumentation agent), the exporters are
    added to it and its resource is kept, instead of failing to replace it.
    """
    global _configured
    with _setup_lock:
        if _configured is not None:
            return _configured
        existing = trace.get_tracer_provider()
        if isinstance(existing, TracerProvider):
            provider = existing
        else:
            resource = Resource.create({"service.name": service_name, **resource_attributes})
            provider = TracerProvider(resource=resource)
            trace.set_tracer_provider(provider)
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
        if path := os.environ.get("PREFLIGHT_OTEL_FILE"):
            # OTEL_BSP_SCHEDULE_DELAY, when set, wins over the short default.
            delay = None if "OTEL_BSP_SCHEDULE_DELAY" in os.environ else FILE_EXPORT_DELAY_MS
            provider.add_span_processor(
                BatchSpanProcessor(JsonLinesSpanExporter(path), schedule_delay_millis=delay)
            )
        setup_metrics(provider.resource)
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcInstrumentorClient

        GrpcInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
        GrpcAioInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
        _configured = provider
        return provider


def inject_headers(carrier: MutableSequence[tuple[str, bytes]] | None = None) -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`, `tracestate`).

    When `carrier` (Kafka headers) is given, the headers are appended to it too.
    """
    values: dict[str, str] = {}
    propagate.inject(values)
    if carrier is not None:
        carrier.extend((name, value.encode()) for name, value in values.items())
    return values


def extract_context(headers: RawHeaders) -> otel_context.Context:
    """The trace context carried by Kafka headers (empty context when there is none)."""
    return propagate.extract(headers_dict(headers))


def current_traceparent() -> str | None:
    """The current span as a W3C `traceparent` value, to keep with work done later (None outside a trace)."""
    return inject_headers().get("traceparent")


def context_of(traceparent: str) -> otel_context.Context:
    """The context to start a span in so that it continues the trace `traceparent` names."""
    return propagate.extract({"traceparent": traceparent})
