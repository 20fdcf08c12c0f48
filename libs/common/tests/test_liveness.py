"""Liveness: loops beat with a budget, stale ones and retrying consumers show on the health service."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from preflight_common.liveness import CONSUMERS_SERVICE, LIVENESS_SERVICE, Liveness

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_loop_is_stale_once_it_misses_its_interval_plus_the_slack() -> None:
    clock = Clock()
    liveness = Liveness(slack=10.0, clock=clock)
    liveness.beat("relay", 5.0)
    liveness.beat("scheduler", 60.0)
    clock.now += 15.0
    assert liveness.stale() == []
    clock.now += 0.1
    assert liveness.stale() == ["relay"]
    liveness.beat("relay", 5.0)
    assert liveness.stale() == []
    clock.now += 60.0
    liveness.end("scheduler")
    assert liveness.stale() == ["relay"]


def test_retrying_consumers_degrade_until_they_recover() -> None:
    liveness = Liveness()
    liveness.retrying("t[0]", "handler failed")
    liveness.retrying("t[1]", "dead-lettering failed")
    liveness.recovered("t[0]")
    assert liveness.degraded() == {"t[1]": "dead-lettering failed"}


async def _status(port: int, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return int(reply.status)


async def _until(port: int, service: str, status: int) -> None:
    async with asyncio.timeout(30):
        while True:
            if await _status(port, service) == status:
                return
            await asyncio.sleep(0.05)


def test_the_health_service_reports_stale_loops_and_retrying_consumers() -> None:
    async def scenario() -> None:
        clock = Clock()
        liveness = Liveness(slack=10.0, clock=clock)
        servicer = health.aio.HealthServicer()
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        watching = asyncio.create_task(liveness.watch(servicer, interval=0.05))
        try:
            liveness.beat("outbox relay", 1.0)
            await _until(port, LIVENESS_SERVICE, SERVING)
            await _until(port, CONSUMERS_SERVICE, SERVING)
            clock.now += 12.0
            await _until(port, LIVENESS_SERVICE, NOT_SERVING)
            liveness.beat("outbox relay", 1.0)
            await _until(port, LIVENESS_SERVICE, SERVING)
            liveness.retrying("topic[0]", "handler failed")
            await _until(port, CONSUMERS_SERVICE, NOT_SERVING)
            assert await _status(port, LIVENESS_SERVICE) == SERVING
            liveness.recovered("topic[0]")
            await _until(port, CONSUMERS_SERVICE, SERVING)
        finally:
            watching.cancel()
            await server.stop(0)

    asyncio.run(scenario())
