"""OpenTelemetry for Preflight processes: one setup call, and trace context in Kafka headers.

`setup_telemetry` installs a tracer provider with the service's resource; it
exports over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, to a JSON-lines
file when `PREFLIGHT_OTEL_FILE` is set (one span per line, for local runs and
end-to-end tests), and is a no-op exporter otherwise. gRPC clients and servers
are instrumented.
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

from preflight_common.envelope import RawHeaders, headers_dict

_setup_lock = threading.Lock()
_configured: TracerProvider | None = None


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON object per line to a file."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [span.to_json(indent=None) for span in spans]
        with self._lock, open(self._path, "a", encoding="utf-8") as out:
            for line in lines:
                out.write(json.dumps(json.loads(line)) + "\n")
        return SpanExportResult.SUCCESS


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
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if path := os.environ.get("PREFLIGHT_OTEL_FILE"):
            provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(path)))
        from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient

        GrpcInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
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
