"""The one service runtime (`preflight_common.service`): a toy service declared like the real ones,
served on loopback with its Kafka side on the session's broker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from preflight_common.auth import Principal, Role
from preflight_common.config import KafkaSettings, Topics
from preflight_common.consumer import Route
from preflight_common.db import make_engine
from preflight_common.envelope import EventAttributes, EventRegistry
from preflight_common.grpcserver import ServerTLS
from preflight_common.outbox import outbox_table
from preflight_common.runtime import SHUTDOWN_SLACK
from preflight_common.service import Background, Loop, Parts, Service, serve
from preflight_testkit.waiting import until
from sqlalchemy import MetaData

TOY = "preflight.toy.v1.Toy"
HOLD = f"/{TOY}/Hold"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
WAIT = 120.0  # generous: a loaded machine starts the Kafka side slowly


@dataclass(frozen=True)
class ToySettings:
    kafka: KafkaSettings
    shutdown_grace: float
    listen: str = "127.0.0.1:0"
    tls: ServerTLS | None = None
    topics: Topics = field(default_factory=Topics)
    consumer_group: str = "preflight-notifier-toy"
    relay_interval: float = 0.2


class Anyone:
    """Authenticates every caller as one service principal."""

    async def authenticate(self, token: str | None, context: grpc.aio.ServicerContext) -> Principal:
        return Principal("toy-caller", Role.SERVICE, "preflight")


class Toy:
    """The toy's one method, `Hold`, answers once `release` is set; `held` is set while a call waits.
    It consumes `topic` (nothing is published there: its handler is never called)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.closed: list[str] = []

    async def hold(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.held.set()
        await self.release.wait()
        return b"released"

    def register(self, server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(self.hold)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(TOY, {"Hold": handler}),))

    def service(
        self,
        tmp_path: Path,
        settings: ToySettings,
        *,
        loops: Sequence[Loop] = (),
        background: Sequence[Background] = (),
    ) -> Service:
        """The toy declared as a service ("notifier": the runtime takes its events' source from
        the bus), closing a hook on exit."""

        async def close() -> None:
            self.closed.append("closed")

        async def build() -> Parts:
            metadata = MetaData()
            outbox = outbox_table(metadata)
            engine = make_engine(f"sqlite:///{tmp_path / 'toy.db'}")
            metadata.create_all(engine)
            return Parts(
                registrations=[self.register],
                service_names=[TOY],
                authenticator=Anyone(),
                engine=engine,
                outbox=outbox,
                routes=[Route(self.topic, EventRegistry([]), ignore)],
                loops=loops,
                background=background,
                closing=[close],
            )

        return Service("notifier", settings, build)


async def ignore(attributes: EventAttributes, payload: Message) -> None:
    raise AssertionError("the toy's topic carries no events")


@pytest.fixture
def toy(unique_topic: Callable[..., str]) -> Toy:
    return Toy(unique_topic("toy"))


@asynccontextmanager
async def serving(service: Service, stop: asyncio.Event) -> AsyncIterator[tuple[asyncio.Task[None], str]]:
    """`serve(service)` running, and its target once ready; on exit, stopped and awaited."""
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    running = asyncio.create_task(serve(service, stop=stop, on_ready=ready.set_result))
    done, _ = await asyncio.wait({ready, running}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    assert ready in done, "the toy service did not become ready"
    try:
        yield running, f"127.0.0.1:{ready.result()}"
    finally:
        stop.set()
        await asyncio.wait({running}, timeout=WAIT)


async def health_of(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    return int(answer.status)


async def test_health_serves_once_started_and_turns_not_serving_while_calls_drain(
    toy: Toy, kafka_settings: KafkaSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="preflight_common")
    stop = asyncio.Event()
    service = toy.service(tmp_path, ToySettings(kafka_settings, shutdown_grace=60.0))
    async with serving(service, stop) as (running, target), grpc.aio.insecure_channel(target) as channel:
        assert await health_of(channel, "") == SERVING
        assert await health_of(channel, TOY) == SERVING
        await until(
            lambda: "outbox relay and agents running" in caplog.text, "the Kafka side running", timeout=WAIT
        )
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=TOY))
        assert (await watch.read()).status == SERVING
        call = channel.unary_unary(HOLD)(b"", timeout=WAIT)
        await asyncio.wait_for(toy.held.wait(), WAIT)

        stop.set()
        assert (await asyncio.wait_for(watch.read(), WAIT)).status == NOT_SERVING
        watch.cancel()  # an open Watch is an in-flight call too: it would hold the drain
        assert not running.done()  # the in-flight call holds the drain (within the grace)
        toy.release.set()
        assert await call == b"released"
        await asyncio.wait_for(running, WAIT)
    assert toy.closed == ["closed"]
    logged = [record.getMessage() for record in caplog.records]
    assert logged.index("notifier shutting down: draining in-flight calls") < logged.index("notifier stopped")
    assert any(message.startswith("notifier serving on port ") for message in logged)


async def test_a_call_still_running_after_the_grace_is_cut_off_and_the_process_stops_within_budget(
    toy: Toy, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    stop = asyncio.Event()
    grace = 1.0
    service = toy.service(tmp_path, ToySettings(kafka_settings, shutdown_grace=grace))
    async with serving(service, stop) as (running, target), grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(HOLD)(b"", timeout=WAIT)
        await asyncio.wait_for(toy.held.wait(), WAIT)
        asked = time.monotonic()
        stop.set()
        await asyncio.wait_for(running, grace + SHUTDOWN_SLACK)
        assert time.monotonic() - asked < grace + SHUTDOWN_SLACK
        with pytest.raises(grpc.aio.AioRpcError):
            await call
    assert toy.closed == ["closed"]


async def test_a_failing_round_of_a_loop_is_logged_and_the_loop_goes_on(
    toy: Toy, kafka_settings: KafkaSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rounds: list[int] = []

    async def flaky() -> None:
        rounds.append(len(rounds))
        raise RuntimeError("database unavailable")

    stop = asyncio.Event()
    service = toy.service(
        tmp_path, ToySettings(kafka_settings, shutdown_grace=5.0), loops=[Loop("flaky work", 0.2, flaky)]
    )
    async with serving(service, stop) as (running, target), grpc.aio.insecure_channel(target) as channel:
        await until(lambda: len(rounds) >= 3, "three rounds of the flaky loop")
        assert not running.done()
        assert await health_of(channel, "") == SERVING
    assert running.exception() is None
    assert "flaky work failed; retrying in 0.2s" in caplog.text


async def test_a_background_part_that_dies_takes_the_process_down_after_draining(
    toy: Toy, kafka_settings: KafkaSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stop = asyncio.Event()
    doomed = asyncio.Event()

    async def fragile(halt: asyncio.Event, liveness: object) -> None:
        await doomed.wait()
        raise RuntimeError("the dispatcher lost its database")

    service = toy.service(
        tmp_path,
        ToySettings(kafka_settings, shutdown_grace=5.0),
        background=[Background("dispatcher", fragile)],
    )
    async with serving(service, stop) as (running, _):
        doomed.set()
        with pytest.raises(RuntimeError, match=r"^dispatcher failed$") as failed:
            await asyncio.wait_for(running, WAIT)
    assert str(failed.value.__cause__) == "the dispatcher lost its database"
    assert toy.closed == ["closed"]  # drained and closed before raising
    assert "dispatcher failed; shutting down" in caplog.text
