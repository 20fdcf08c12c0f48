"""Fixtures for the notifier's tests: a controllable clock, real HTTP and SMTP receivers on loopback,
a routing file pointing at them, and the wired notifier over a real database."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from aiosmtpd.controller import Controller
from preflight.identity.v1 import identity_pb2_grpc
from preflight.notifier.v1 import notifier_pb2_grpc
from preflight_common.auth import (
    IdentityServicer,
    IntrospectionAuthenticator,
    LocalAuthenticator,
    Principal,
    Role,
    TokenStore,
    tokens_table,
)
from preflight_common.db import make_engine
from preflight_common.grpcserver import build_server, mark_serving
from preflight_common.ports import free_port
from sqlalchemy import MetaData

sys.path.insert(0, str(Path(__file__).parent))

from notifier_support import (
    WEBHOOK_SECRET,
    MailHandler,
    ManualClock,
    Received,
    SmtpServer,
    WebhookReceiver,
    loopback_settings,
    routing_document,
)
from preflight_notifier.adapters.grpc import NotifierServicer
from preflight_notifier.bootstrap import Components, build
from preflight_notifier.config import NotifierSettings
from preflight_notifier.entrypoints.server import SERVICE_NAMES


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    state = WebhookReceiver(port=0)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.requests.append(Received(self.path, dict(self.headers.items()), body))
                script = state.scripts.get(self.path, [])
                status = script.pop(0) if script else 200
                delay = state.delays.get(self.path, 0.0)
                extra = state.headers.get(self.path, {})
            if delay:
                threading.Event().wait(delay)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler = MailHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer(port, handler)
    controller.stop()


@pytest.fixture
def routing_file(tmp_path: Path, webhook_receiver: WebhookReceiver) -> Path:
    secret = tmp_path / "webhook.secret"
    secret.write_text(WEBHOOK_SECRET + "\n")
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(routing_document(webhook_receiver, secret)))
    return path


@pytest.fixture
def settings(db_url: str, routing_file: Path, smtp_server: SmtpServer) -> NotifierSettings:
    return loopback_settings(db_url, routing_file, smtp_server)


Build = Callable[[], Components]


@pytest.fixture
def make_notifier(settings: NotifierSettings, clock: ManualClock) -> Iterator[Build]:
    """Builds a notifier over the test database; each call is a fresh process's worth of parts."""
    built: list[Components] = []

    def make() -> Components:
        components = build(settings, clock=clock, rng=random.Random(7))
        built.append(components)
        return components

    yield make
    for components in built:
        components.engine.dispose()


@pytest.fixture
def notifier(make_notifier: Build) -> Components:
    return make_notifier()


# --- the gRPC API behind real authentication --------------------------------------------------

PRINCIPALS = {
    "service": Principal("notifier", Role.SERVICE, "preflight"),
    "admin": Principal("root", Role.ADMIN, "agency"),
    "reviewer": Principal("rita", Role.REVIEWER, "agency"),
    "lab-a": Principal("ada", Role.LAB, "lab-a"),
    "lab-b": Principal("bob", Role.LAB, "lab-b"),
    "bank-a": Principal("ops-a", Role.OPERATOR, "bank-a", frozenset({"finance"})),
    "bank-b": Principal("ops-b", Role.OPERATOR, "bank-b", frozenset({"finance"})),
    "water": Principal("ops-w", Role.OPERATOR, "water-co", frozenset({"water"})),
    # A monitoring probe of an operator's organisation and sector: it still sees nothing.
    "probe": Principal("helm-test", Role.PROBE, "bank-a", frozenset({"finance"})),
}


@dataclass
class Api:
    """The notifier's gRPC API on loopback, authenticating through a real identity service."""

    stub: notifier_pb2_grpc.NotifierServiceStub
    tokens: dict[str, str]
    target: str
    stop: Callable[[], Awaitable[None]]
    """Stops the API server, ending its calls and streams (UNAVAILABLE for their clients)."""
    start: Callable[[], Awaitable[None]]
    """Starts another API server on `target`, after `stop`."""

    def auth(self, who: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[who]}"),)


async def serve_api(
    notifier: Components, clock: ManualClock, authenticator: IntrospectionAuthenticator, port: int
) -> tuple[grpc.aio.Server, int]:
    """The notifier's gRPC API on 127.0.0.1:`port` (0: any free port), started and serving; and
    its port."""
    servicer = NotifierServicer(notifier.engine, clock, stream_poll_interval=0.05)

    def register_notifier(server: grpc.aio.Server) -> None:
        notifier_pb2_grpc.add_NotifierServiceServicer_to_server(servicer, server)

    server, bound, health = build_server(
        f"127.0.0.1:{port}", [register_notifier], authenticator=authenticator, service_names=SERVICE_NAMES
    )
    await server.start()
    await mark_serving(health, SERVICE_NAMES)
    return server, bound


@pytest.fixture
async def api(notifier: Components, clock: ManualClock, tmp_path: Path) -> AsyncIterator[Api]:
    metadata = MetaData()
    table = tokens_table(metadata)
    token_engine = make_engine(f"sqlite:///{tmp_path / 'identity.db'}")
    metadata.create_all(token_engine)
    token_store = TokenStore(token_engine, table)
    tokens = {name: token_store.create(p).token for name, p in PRINCIPALS.items()}

    def register_identity(server: grpc.aio.Server) -> None:
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(token_store), server)

    identity, identity_port, _ = build_server(
        "127.0.0.1:0",
        [register_identity],
        authenticator=LocalAuthenticator(token_store),
        service_names=["preflight.identity.v1.IdentityService"],
    )
    await identity.start()
    authenticator = IntrospectionAuthenticator(f"127.0.0.1:{identity_port}", tokens["service"], cache_ttl=0.0)
    server, port = await serve_api(notifier, clock, authenticator, 0)
    running = [server]

    async def stop() -> None:
        await running.pop().stop(None)

    async def start() -> None:
        running.append((await serve_api(notifier, clock, authenticator, port))[0])

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Api(notifier_pb2_grpc.NotifierServiceStub(channel), tokens, f"127.0.0.1:{port}", stop, start)
    await channel.close()
    for left in running:
        await left.stop(None)
    await authenticator.close()
    await identity.stop(None)
    token_engine.dispose()
    await notifier.webhooks.close()
