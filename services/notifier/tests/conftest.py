"""Fixtures for the notifier's tests: a controllable clock, real HTTP and SMTP receivers on loopback,
a routing file pointing at them, and the wired notifier over a real database."""

from __future__ import annotations

import random
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).parent))

from notifier_support import (
    SECRET_ENV,
    WEBHOOK_SECRET,
    MailHandler,
    ManualClock,
    Received,
    SmtpServer,
    WebhookReceiver,
    routing_document,
)
from preflight_notifier.adapters.email import SmtpSettings
from preflight_notifier.bootstrap import Components, build
from preflight_notifier.config import NotifierSettings


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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler = MailHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer(port, handler)
    controller.stop()


@pytest.fixture
def routing_file(tmp_path: Path, webhook_receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(SECRET_ENV, WEBHOOK_SECRET)
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(routing_document(webhook_receiver)))
    return path


@pytest.fixture
def settings(db_url: str, routing_file: Path, smtp_server: SmtpServer) -> NotifierSettings:
    return NotifierSettings(
        database_url=db_url,
        routing_file=routing_file,
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_server.port, security="none", timeout=5.0),
    )


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
