"""The notifier's fixtures and helpers, for its tests: a controllable clock, real HTTP and SMTP
receivers on loopback, a routing file pointing at them, the wired notifier over a real database,
its gRPC API behind real authentication, and the events it consumes. Nothing is mocked.

Fixtures, taken in by name by services/notifier/tests/conftest.py: `clock` (`ManualClock`),
`webhook_receiver` (`WebhookReceiver`), `smtp_server` (`SmtpServer`), `routing_file`, `settings`
(`loopback_settings` on `db_url`), `make_notifier`, `notifier`, `api` (`Api`: the API on loopback,
authenticating through a real IdentityService, with a token for each of `PRINCIPALS`).
"""

from __future__ import annotations

import email
import email.policy
import json
import random
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from aiosmtpd.controller import Controller
from google.protobuf.message import Message
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.common.v1 import common_pb2
from preflight.identity.v1 import identity_pb2_grpc
from preflight.intake.v1 import events_pb2 as intake_events
from preflight.notifier.v1 import notifier_pb2, notifier_pb2_grpc
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
from preflight_notifier.adapters.email import SmtpSettings
from preflight_notifier.adapters.grpc import NotifierServicer
from preflight_notifier.bootstrap import Components, build
from preflight_notifier.config import NotifierSettings
from preflight_notifier.entrypoints.server import SERVICE_NAMES
from sqlalchemy import MetaData, text

from preflight_testkit import events
from preflight_testkit.clock import START as START
from preflight_testkit.clock import ManualClock as ManualClock
from preflight_testkit.clock import ts

WEBHOOK_SECRET = "whsec-test-0123456789"  # noqa: S105 - the test receivers' webhook secret


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers each path with the scripted statuses in turn (then 200), recording every request."""

    port: int
    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, list[int]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    content: str

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_string(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class MailHandler:
    def __init__(self) -> None:
        self.messages: list[Mail] = []
        self.replies: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        content = envelope.content.decode("utf-8", errors="replace")
        self.messages.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    port: int
    handler: MailHandler

    @property
    def messages(self) -> list[Mail]:
        return self.handler.messages


def loopback_settings(
    database_url: str, routing_file: Path, smtp_server: SmtpServer, **overrides: Any
) -> NotifierSettings:
    """A notifier's settings over the test routing file and the loopback SMTP server; `overrides` sets
    any other field (Kafka, topics, participants)."""
    return NotifierSettings(
        database_url=database_url,
        routing_file=routing_file,
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_server.port, security="none", timeout=5.0),
        **overrides,
    )


def routing_document(receiver: WebhookReceiver, secret_file: Path) -> dict[str, Any]:
    """The test routing: reviewers and two operators on webhooks (signed with the secret in
    `secret_file`), lab contacts and an operator by e-mail."""

    def hook(path: str) -> dict[str, Any]:
        return {"url": receiver.url(path), "secret_file": str(secret_file), "timeout": "2s"}

    retry = {"initial": "10s", "maximum": "5m", "max_attempts": 5}
    return {
        "deadlines": {
            "late_after": "1m",
            "review": {
                "thresholds": [
                    {"before": "7d", "severity": "info"},
                    {"before": "3d", "severity": "info"},
                    {"before": "1d", "severity": "warning"},
                    {"before": "0", "severity": "critical"},
                ],
                "repeat_interval": "1d",
            },
            "embargo_end": {
                "thresholds": [{"before": "3d"}, {"before": "1d", "severity": "warning"}, {"before": "0"}]
            },
            "remediation_due": {"thresholds": [{"before": "7d"}, {"before": "0", "severity": "critical"}]},
        },
        "route": {
            "receiver": "reviewers",
            "group_by": ["kind", "subject_id", "threshold"],
            "group_wait": "30s",
            "group_interval": "5m",
            "routes": [
                {
                    "matchers": ['kind=~"review_deadline|review_met"'],
                    "receiver": "lab-contacts",
                    "continue": True,
                },
                {"matchers": ['kind=~"review_deadline|review_met"'], "receiver": "reviewers"},
                {
                    "matchers": ['kind=~"embargo_end|remediation_due"'],
                    "group_by": ["kind"],
                    "receiver": "bank-a",
                    "continue": True,
                },
                {"matchers": ['kind=~"embargo_end|remediation_due"'], "receiver": "bank-b", "continue": True},
                {
                    "matchers": ['kind=~"embargo_end|remediation_due"'],
                    "receiver": "bank-b-mail",
                    "continue": True,
                },
                {"matchers": ['kind=~"embargo_end|remediation_due"'], "receiver": "water-mail"},
            ],
        },
        "receivers": [
            {
                "name": "reviewers",
                "audience": {"role": "reviewer"},
                "webhook": hook("/reviewers"),
                "retry": retry,
            },
            {"name": "lab-contacts", "audience": "lab_contacts", "email": {}, "retry": retry},
            {
                "name": "bank-a",
                "audience": {"role": "operator", "organisation": "bank-a", "sectors": ["finance"]},
                "webhook": hook("/bank-a"),
                "retry": retry,
            },
            {
                "name": "bank-b",
                "audience": {"role": "operator", "organisation": "bank-b", "sectors": ["finance"]},
                "webhook": hook("/bank-b"),
                "retry": retry,
            },
            {
                "name": "bank-b-mail",
                "audience": {"role": "operator", "organisation": "bank-b", "sectors": ["finance"]},
                "email": {"to": ["soc@bank-b.example"]},
                "retry": retry,
            },
            {
                "name": "water-mail",
                "audience": {"role": "operator", "organisation": "water-co", "sectors": ["water"]},
                "email": {"to": ["ops@water-co.example"]},
                "retry": retry,
            },
        ],
        "inhibit_rules": [
            {
                "source_matchers": ['kind="review_met"'],
                "target_matchers": ['kind="review_deadline"', 'stage="overdue"'],
                "equal": ["subject_id"],
            }
        ],
    }


def submission_received(
    submission_id: str, release: datetime, *, version: int = 1, organisation: str = "lab-a"
) -> intake_events.SubmissionReceived:
    """A submission received 20 days before `release`, open for the 10 days before it, its review
    deadline at `release` (version `version`)."""
    return events.submission_received(
        submission_id,
        organisation,
        (release - timedelta(days=10), release),
        received_at=ts(release - timedelta(days=20)),
        planned_release=ts(release),
        review_deadline=ts(release),
        deadline_version=version,
        contacts=[common_pb2.Contact(name="Ada", email="ada@lab-a.example", role="security")],
    )


def release_moved(
    submission_id: str, release: datetime, version: int, organisation: str = "lab-a"
) -> intake_events.ReleasePlanChanged:
    return intake_events.ReleasePlanChanged(
        submission_id=submission_id,
        organisation=organisation,
        planned_release=ts(release),
        review_deadline=ts(release),
        deadline_version=version,
    )


def finding_notice(
    finding_id: str,
    *,
    embargo_end: datetime | None = None,
    remediation_due: datetime | None = None,
    organisations: tuple[str, ...] = ("bank-a",),
    sectors: tuple[str, ...] = (),
    tlp: common_pb2.Tlp.ValueType = common_pb2.TLP_AMBER,
    revision: int = 1,
    state: clearinghouse_events.FindingState.ValueType = clearinghouse_events.FINDING_STATE_VALIDATED,
) -> clearinghouse_events.FindingNotice:
    notice = clearinghouse_events.FindingNotice(
        finding_id=finding_id,
        title="Heap overflow in libexample",
        state=state,
        embargo_state=clearinghouse_events.EMBARGO_STATE_ACTIVE,
        cvss_score=8.1,
        severity="HIGH",
        cwe_ids=["CWE-122"],
        affected_products=["pkg:generic/libexample@1.2.3"],
        tlp=tlp,
        audience=common_pb2.Audience(organisations=list(organisations), sectors=list(sectors)),
        source=clearinghouse_events.FindingSource(
            submission_id="sub-secret", developer="Secret Lab", model_name="secret-model"
        ),
        revision=revision,
        updated_at=ts(START),
    )
    if embargo_end is not None:
        notice.embargo_end.CopyFrom(ts(embargo_end))
    if remediation_due is not None:
        notice.remediation_due.CopyFrom(ts(remediation_due))
    return notice


def apply(components: Components, payload: Message, event_id: str | None = None) -> bool:
    """Apply an event as the consumer would (a fresh event id unless given)."""
    return components.keeper.apply(event_id or str(uuid.uuid4()), payload)


def rows(components: Components, sql: str, **params: Any) -> list[Any]:
    with components.engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


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


# --- alerts already fired, for the API's and the SDK's tests ----------------------------------

DAY = timedelta(days=1)


@pytest.fixture(name="db_url")
def sqlite_db_url(tmp_path: Path) -> str:
    """`db_url` on SQLite only, for a test module whose checks do not depend on the database engine
    (it keeps the suite short): the module takes it in by importing it."""
    return f"sqlite:///{tmp_path / 'notifier.db'}"


def publish_findings(notifier: Components) -> None:
    """f-1: bank-a by name (AMBER); f-2: the finance sector but RED; f-3: the finance sector (GREEN)."""
    for finding_id, organisations, sectors, tlp in (
        ("f-1", ("bank-a",), (), common_pb2.TLP_AMBER),
        ("f-2", (), ("finance",), common_pb2.TLP_RED),
        ("f-3", (), ("finance",), common_pb2.TLP_GREEN),
    ):
        notice = finding_notice(
            finding_id, embargo_end=START + 4 * DAY, organisations=organisations, sectors=sectors, tlp=tlp
        )
        apply(notifier, clearinghouse_events.FindingPublished(finding=notice))


@pytest.fixture
def alerts_fired(notifier: Components, clock: ManualClock) -> None:
    """Alerts fired a day after START: sub-1's review deadline and the `publish_findings` embargoes."""
    apply(notifier, submission_received("sub-1", START + 8 * DAY))
    publish_findings(notifier)
    clock.set(START + DAY)
    notifier.scheduler.run_pass()


def matcher(
    label: str, value: str, op: notifier_pb2.MatchOperator.ValueType = notifier_pb2.MATCH_OPERATOR_EQUAL
) -> notifier_pb2.Matcher:
    """A silence's matcher of `label` (equal to `value` unless `op` says otherwise)."""
    return notifier_pb2.Matcher(label=label, operator=op, value=value)
