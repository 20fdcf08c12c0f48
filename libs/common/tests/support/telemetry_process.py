"""A process that sets up telemetry and records one span (run by the telemetry tests).

    python telemetry_process.py SERVICE [--preinstalled]

With `--preinstalled`, an SDK tracer provider is installed first, as a test harness or an
auto-instrumentation agent would. Prints one JSON line: whether `setup_telemetry` is idempotent
and whether its provider is the global one. Spans go where the environment says
(`PREFLIGHT_OTEL_FILE`).
"""

from __future__ import annotations

import argparse
import json

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from preflight_common.telemetry import setup_telemetry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service")
    parser.add_argument("--preinstalled", action="store_true")
    args = parser.parse_args()
    if args.preinstalled:
        trace.set_tracer_provider(TracerProvider())
    provider = setup_telemetry(args.service, **{"deployment.environment": "test"})
    with trace.get_tracer("preflight-tests").start_as_current_span("probe"):
        pass
    print(
        json.dumps(
            {
                "idempotent": setup_telemetry("another-name") is provider,
                "global": trace.get_tracer_provider() is provider,
            }
        )
    )
    provider.force_flush()


if __name__ == "__main__":
    main()
