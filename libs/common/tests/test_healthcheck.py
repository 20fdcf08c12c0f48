"""`preflight-health` (what the chart's `helm test` runs) against a real gRPC health service on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from preflight_common.healthcheck import main
from preflight_common.ports import free_port


@pytest.fixture
def served() -> Iterator[tuple[str, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(None)


def test_a_serving_service_passes_and_one_that_is_not_fails(
    served: tuple[str, health.HealthServicer], capsys: pytest.CaptureFixture[str]
) -> None:
    target, servicer = served
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("preflight.liveness", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert main([target]) == 0
    assert main([target, "--service", "preflight.liveness"]) == 1
    assert f"{target}: NOT_SERVING" in capsys.readouterr().err


def test_no_answer_fails_naming_why(capsys: pytest.CaptureFixture[str]) -> None:
    target = f"127.0.0.1:{free_port()}"
    assert main([target, "--timeout", "2"]) == 1
    assert f"{target}: no health answer: " in capsys.readouterr().err
