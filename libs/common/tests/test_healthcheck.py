"""`preflight-health` (what the chart's `helm test` runs) against a real gRPC health service on
loopback, and its probe reads against an authenticated server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from preflight.benchmark.v1 import benchmark_pb2, benchmark_pb2_grpc
from preflight.clearinghouse.v1 import clearinghouse_pb2, clearinghouse_pb2_grpc
from preflight.identity.v1 import identity_pb2_grpc
from preflight.notifier.v1 import notifier_pb2, notifier_pb2_grpc
from preflight_common.auth import (
    IdentityServicer,
    LocalAuthenticator,
    Principal,
    Role,
    TokenStore,
    tokens_table,
)
from preflight_common.db import make_engine
from preflight_common.grpcserver import build_server, mark_serving
from preflight_common.healthcheck import READS, main
from preflight_common.ports import free_port
from sqlalchemy import MetaData


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


class _Jobs(benchmark_pb2_grpc.BenchmarkServiceServicer):
    async def ListJobs(self, request: Any, context: Any) -> benchmark_pb2.ListJobsResponse:
        assert request.page_size == 1
        return benchmark_pb2.ListJobsResponse()


class _Reports(clearinghouse_pb2_grpc.ClearinghouseServiceServicer):
    async def ListReports(self, request: Any, context: Any) -> clearinghouse_pb2.ListReportsResponse:
        assert request.page_size == 1
        return clearinghouse_pb2.ListReportsResponse()


class _Alerts(notifier_pb2_grpc.NotifierServiceServicer):
    async def ListAlerts(self, request: Any, context: Any) -> notifier_pb2.ListAlertsResponse:
        assert request.page_size == 1
        return notifier_pb2.ListAlertsResponse()


@pytest.fixture
async def probed(tmp_path: Path) -> AsyncIterator[tuple[str, TokenStore]]:
    """Intake's identity service and stand-ins of the other services' probe reads, on one
    authenticated loopback server (the real token store, authenticator and probe rule)."""
    engine = make_engine(f"sqlite:///{tmp_path}/tokens.db")
    metadata = MetaData()
    table = tokens_table(metadata)
    metadata.create_all(engine)
    store = TokenStore(engine, table)
    server, port, health_servicer = build_server(
        "127.0.0.1:0",
        [
            lambda s: identity_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(store), s),
            lambda s: benchmark_pb2_grpc.add_BenchmarkServiceServicer_to_server(_Jobs(), s),
            lambda s: clearinghouse_pb2_grpc.add_ClearinghouseServiceServicer_to_server(_Reports(), s),
            lambda s: notifier_pb2_grpc.add_NotifierServiceServicer_to_server(_Alerts(), s),
        ],
        authenticator=LocalAuthenticator(store),
        service_names=[],
    )
    await server.start()
    await mark_serving(health_servicer, [])
    yield f"127.0.0.1:{port}", store
    await server.stop(None)
    engine.dispose()


def token_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "probe-token"
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


async def test_each_services_probe_read_passes_with_a_probe_token(
    probed: tuple[str, TokenStore],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, store = probed
    probe = store.create(Principal("helm-test", Role.PROBE, "preflight")).token
    monkeypatch.setenv("PREFLIGHT_PROBE_TOKEN_FILE", str(token_file(tmp_path, probe)))
    for service in READS:
        assert await asyncio.to_thread(main, [target, "--read", service]) == 0, capsys.readouterr().err
        assert f"{target}: {service}'s probe read: OK" in capsys.readouterr().err


async def test_a_probe_read_fails_without_a_valid_token_naming_the_status_never_the_token(
    probed: tuple[str, TokenStore],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, store = probed
    issued = store.create(Principal("helm-test", Role.PROBE, "preflight"))
    store.revoke(issued.token_id)
    monkeypatch.setenv("PREFLIGHT_PROBE_TOKEN_FILE", str(token_file(tmp_path, issued.token)))
    assert await asyncio.to_thread(main, [target, "--read", "benchmark"]) == 1
    err = capsys.readouterr().err
    assert f"{target}: benchmark's probe read: UNAUTHENTICATED" in err
    assert issued.token not in err
    monkeypatch.delenv("PREFLIGHT_PROBE_TOKEN_FILE")
    assert await asyncio.to_thread(main, [target, "--read", "intake"]) == 1
    assert "PREFLIGHT_PROBE_TOKEN_FILE is required" in capsys.readouterr().err
