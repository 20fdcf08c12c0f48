"""Deliveries to a real HTTP receiver and a real SMTP server on loopback: signatures, retries with
backoff, the delivery log, grouping, silences, inhibition, and crash safety."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from preflight.clearinghouse.v1 import events_pb2 as clearinghouse_events
from preflight.common.v1 import common_pb2
from preflight_notifier.adapters import store
from preflight_notifier.adapters.email import EmailSender, SmtpSettings
from preflight_notifier.bootstrap import Components
from preflight_notifier.domain.delivery import ClaimedDelivery, Result, verify_signature
from preflight_notifier.domain.matchers import Matcher
from preflight_notifier.domain.silences import Silence
from preflight_testkit.notifier import (
    START,
    WEBHOOK_SECRET,
    MailHandler,
    ManualClock,
    SmtpServer,
    WebhookReceiver,
    apply,
    finding_notice,
    rows,
    submission_received,
)

DAY = timedelta(days=1)


@pytest.fixture
async def live(notifier: Components) -> AsyncIterator[Components]:
    yield notifier
    await notifier.webhooks.close()


async def settle(components: Components, clock: ManualClock, wait: timedelta = timedelta(seconds=30)) -> None:
    """Fire what is due, let the group wait pass, flush, and make the due attempts."""
    components.scheduler.run_pass()
    clock.advance(seconds=wait.total_seconds())
    components.dispatcher.run_pass()
    await components.deliverer.run_pass()


def log(components: Components, recipient_like: str = "%") -> list[Any]:
    return rows(
        components,
        "SELECT attempt, receiver, recipient, status, status_code, error, started_at, finished_at "
        "FROM delivery_log WHERE recipient LIKE :r ORDER BY id",
        r=recipient_like,
    )


def delivery(components: Components, receiver: str) -> Any:
    found = rows(components, "SELECT * FROM deliveries WHERE receiver = :r", r=receiver)
    assert len(found) == 1, found
    return found[0]


async def test_webhook_answering_500_twice_then_200_gets_one_delivery_after_three_logged_attempts(
    live: Components, clock: ManualClock, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.scripts["/reviewers"] = [500, 500]
    apply(live, submission_received("sub-1", START + 8 * DAY))
    clock.set(START + DAY)
    await settle(live, clock)
    assert delivery(live, "reviewers").status == "pending"
    await live.deliverer.run_pass()  # the backoff has not passed: no attempt
    assert len(webhook_receiver.to("/reviewers")) == 1
    clock.advance(seconds=10)
    await live.deliverer.run_pass()
    clock.advance(seconds=20)
    await live.deliverer.run_pass()
    clock.advance(minutes=30)
    await live.deliverer.run_pass()

    requests = webhook_receiver.to("/reviewers")
    assert [r.headers["Preflight-Attempt"] for r in requests] == ["1", "2", "3"]
    assert len({r.headers["Preflight-Delivery-Id"] for r in requests}) == 1
    assert [(e.attempt, e.status, e.status_code) for e in log(live, "http%")] == [
        (1, "retry", 500),
        (2, "retry", 500),
        (3, "delivered", 200),
    ]
    assert all(e.finished_at is not None and e.receiver == "reviewers" for e in log(live, "http%"))
    final = delivery(live, "reviewers")
    assert (final.status, final.attempts) == ("delivered", 3)
    last = requests[-1]
    signature = last.headers["Preflight-Signature"]
    stamp = int(signature.split(",")[0].removeprefix("t="))
    assert verify_signature(WEBHOOK_SECRET.encode(), signature, last.body, now=stamp)
    assert not verify_signature(b"another-secret", signature, last.body, now=stamp)
    document = last.json()
    assert document["delivery_id"] == last.headers["Preflight-Delivery-Id"]
    assert [a["threshold"] for a in document["alerts"]] == ["T-7d"]
    assert document["alerts"][0]["tlp"] == "TLP:AMBER+STRICT"
    assert "audience" not in document["alerts"][0] and b"ada@lab-a.example" not in last.body


async def test_an_empty_webhook_secret_file_sends_nothing_until_the_secret_is_there(
    live: Components, clock: ManualClock, webhook_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    secret = tmp_path / "webhook.secret"  # the file the test routing names
    secret.write_text("\n")  # e.g. a Secret whose key was left blank
    apply(live, submission_received("sub-1", START + 8 * DAY))
    clock.set(START + DAY)
    await settle(live, clock)
    assert webhook_receiver.to("/reviewers") == []
    [entry] = [e for e in log(live, "http%") if e.receiver == "reviewers"]
    assert (entry.status, entry.error) == ("retry", "receiver reviewers: webhook secret is not configured")
    secret.write_text(WEBHOOK_SECRET + "\n")  # fixed within the retry window: delivered, signed
    clock.advance(seconds=10)
    await live.deliverer.run_pass()
    [request] = webhook_receiver.to("/reviewers")
    signature = request.headers["Preflight-Signature"]
    stamp = int(signature.split(",")[0].removeprefix("t="))
    assert verify_signature(WEBHOOK_SECRET.encode(), signature, request.body, now=stamp)


async def test_a_400_is_not_retried_and_is_logged_as_failed(
    live: Components, clock: ManualClock, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.scripts["/reviewers"] = [400]
    apply(live, submission_received("sub-1", START + 8 * DAY))
    clock.set(START + DAY)
    await settle(live, clock)
    for _ in range(3):
        clock.advance(hours=1)
        await live.deliverer.run_pass()
    assert len(webhook_receiver.to("/reviewers")) == 1
    assert [(e.attempt, e.status, e.status_code, e.error) for e in log(live, "http%")] == [
        (1, "failed", 400, "HTTP 400")
    ]
    assert delivery(live, "reviewers").status == "failed"


async def test_429_waits_for_retry_after_and_a_timeout_is_retried(
    live: Components, clock: ManualClock, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.scripts["/reviewers"] = [500, 429]  # the first answer arrives too late
    webhook_receiver.headers["/reviewers"] = {"Retry-After": "120"}
    webhook_receiver.delays["/reviewers"] = 2.5  # the receiver's timeout is 2s
    apply(live, submission_received("sub-1", START + 8 * DAY))
    clock.set(START + DAY)
    await settle(live, clock)
    assert [(e.status, e.error) for e in log(live, "http%")] == [("retry", "timed out after 2s")]
    webhook_receiver.delays.clear()
    clock.advance(seconds=10)
    await live.deliverer.run_pass()
    assert [(e.status, e.status_code) for e in log(live, "http%")][-1] == ("retry", 429)
    clock.advance(seconds=119)
    await live.deliverer.run_pass()
    assert len(log(live, "http%")) == 2
    clock.advance(seconds=2)
    await live.deliverer.run_pass()
    assert [e.status for e in log(live, "http%")] == ["retry", "retry", "delivered"]


async def test_retries_stop_after_the_last_allowed_attempt(
    live: Components, clock: ManualClock, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.scripts["/reviewers"] = [503] * 10
    apply(live, submission_received("sub-1", START + 8 * DAY))
    clock.set(START + DAY)
    await settle(live, clock)
    for _ in range(8):
        clock.advance(minutes=6)
        await live.deliverer.run_pass()
    entries = log(live, "http%")
    assert [e.status for e in entries] == ["retry"] * 4 + ["failed"]
    assert entries[-1].error == "gave up after 5 attempts: HTTP 503"
    assert delivery(live, "reviewers").status == "failed"


async def test_a_crash_between_sending_and_logging_causes_one_duplicate_never_a_loss(
    make_notifier: Callable[[], Components], clock: ManualClock, webhook_receiver: WebhookReceiver
) -> None:
    first = make_notifier()
    apply(first, submission_received("sub-1", START + 8 * DAY))
    clock.set(START + DAY)
    first.scheduler.run_pass()
    clock.advance(seconds=30)
    first.dispatcher.run_pass()
    claimed = [c for c in first.deliverer.claim() if c.receiver == "reviewers"]
    assert [e.status for e in log(first, "http%")] == ["started"]  # logged (and committed) before sending
    outcome = await first.webhooks.send(first.routing.receivers["reviewers"], claimed[0])
    assert outcome.result is Result.DELIVERED
    await first.webhooks.close()  # ... and the process dies before recording the result.

    second = make_notifier()  # the delivery is still pending work in the database
    clock.advance(minutes=4)
    await second.deliverer.run_pass()
    assert len(webhook_receiver.to("/reviewers")) == 1  # leased to the dead attempt
    clock.advance(minutes=2)
    await second.deliverer.run_pass()
    await second.webhooks.close()
    requests = webhook_receiver.to("/reviewers")
    assert len(requests) == 2
    assert requests[0].headers["Preflight-Delivery-Id"] == requests[1].headers["Preflight-Delivery-Id"]
    assert [(e.attempt, e.status) for e in log(second, "http%")] == [(1, "started"), (2, "delivered")]
    assert delivery(second, "reviewers").status == "delivered"


async def test_lab_contacts_get_the_review_alert_by_email_with_its_tlp_marking(
    live: Components, clock: ManualClock, smtp_server: SmtpServer
) -> None:
    apply(live, submission_received("sub-1", START + 8 * DAY))
    clock.set(START + DAY)
    await settle(live, clock)
    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert mail.recipients == ["ada@lab-a.example"]
    message = mail.message
    assert message["Subject"] == "[Preflight] [TLP:AMBER+STRICT] Review deadline in 7 days: submission sub-1"
    assert message["To"] == "ada@lab-a.example"
    assert message["Preflight-Delivery-Id"] == delivery(live, "lab-contacts").delivery_id
    body = message.get_content().replace("\r\n", "\n")
    assert body.startswith("TLP:AMBER+STRICT\n")
    assert "[INFO] Review deadline in 7 days: submission sub-1" in body
    assert [(e.receiver, e.status, e.status_code) for e in log(live, "%@%")] == [
        ("lab-contacts", "delivered", 250)
    ]


async def test_smtp_4xx_is_retried_and_5xx_fails(
    live: Components, clock: ManualClock, smtp_server: SmtpServer
) -> None:
    smtp_server.handler.replies = ["451 4.3.0 mailbox busy"]
    apply(live, submission_received("sub-1", START + 8 * DAY))
    clock.set(START + DAY)
    await settle(live, clock)
    clock.advance(seconds=10)
    await live.deliverer.run_pass()
    assert [(e.status, e.status_code) for e in log(live, "%@%")] == [("retry", 451), ("delivered", 250)]
    assert len(smtp_server.messages) == 1
    smtp_server.handler.replies = ["550 5.1.1 no such user"]
    clock.set(START + 5 * DAY)
    await settle(live, clock)
    entries = log(live, "%@%")
    assert (entries[-1].status, entries[-1].status_code) == ("failed", 550)
    assert "no such user" in entries[-1].error


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp.pem", tmp_path / "smtp.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class TlsMailHandler(MailHandler):
    def __init__(self) -> None:
        super().__init__()
        self.encrypted: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.encrypted.append(session.ssl is not None)
        return await super().handle_DATA(server, session, envelope)


async def test_starttls_with_login_delivers_encrypted_and_a_wrong_password_fails_without_leaking_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    from preflight_common.ports import free_port

    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = TlsMailHandler()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"notifier",
            b"smtp-pass-123",
        )
        return AuthResult(success=ok, handled=False)

    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        password = tmp_path / "smtp.password"
        settings = SmtpSettings(
            host="localhost",
            port=port,
            security="starttls",
            username="notifier",
            credential_file=str(password),
            ca_file=str(cert),
        )
        sender = EmailSender(settings, clock)
        claimed = ClaimedDelivery("d-1", "ops", "soc@bank-b.example", "[Preflight] hello", "body\n", 1)
        password.write_text("smtp-pass-123\n")
        delivered = await sender.send(None, claimed)  # type: ignore[arg-type]
        assert delivered.result is Result.DELIVERED
        assert handler.encrypted == [True]
        assert handler.messages[0].recipients == ["soc@bank-b.example"]
        password.write_text("wrong-pass-456")  # read at each delivery: a rotated password is used
        refused = await sender.send(None, claimed)  # type: ignore[arg-type]
        assert (refused.result, refused.status_code) == (Result.FAILED, 535)
        assert "wrong-pass-456" not in refused.error
        plain = EmailSender(SmtpSettings(host="localhost", port=port, security="none"), clock)
        assert (await plain.send(None, claimed)).result is Result.FAILED  # type: ignore[arg-type]
        assert len(handler.messages) == 1
    finally:
        controller.stop()


async def test_a_burst_inside_the_group_wait_arrives_as_one_delivery(
    live: Components, clock: ManualClock, webhook_receiver: WebhookReceiver
) -> None:
    for index in range(3):
        notice = finding_notice(f"f-{index}", embargo_end=START + 4 * DAY + timedelta(seconds=10 * index))
        apply(live, clearinghouse_events.FindingPublished(finding=notice))
    clock.set(START + DAY)
    for _ in range(3):
        live.scheduler.run_pass()
        live.dispatcher.run_pass()
        clock.advance(seconds=10)
    await live.deliverer.run_pass()
    assert webhook_receiver.to("/bank-a") == []  # still inside the group wait
    clock.set(START + DAY + timedelta(seconds=30))
    live.dispatcher.run_pass()
    await live.deliverer.run_pass()
    posts = webhook_receiver.to("/bank-a")
    assert len(posts) == 1
    assert sorted(a["subject_id"] for a in posts[0].json()["alerts"]) == ["f-0", "f-1", "f-2"]
    assert posts[0].json()["group_labels"] == {"kind": "embargo_end"}
    # The next alert of the group waits for the group interval after that delivery.
    late = finding_notice("f-3", embargo_end=START + 4 * DAY + timedelta(minutes=1))
    apply(live, clearinghouse_events.FindingPublished(finding=late))
    clock.set(START + DAY + timedelta(minutes=1))
    await settle(live, clock, wait=timedelta(minutes=1))
    assert len(webhook_receiver.to("/bank-a")) == 1
    clock.set(START + DAY + timedelta(minutes=5, seconds=30))
    live.dispatcher.run_pass()
    await live.deliverer.run_pass()
    assert [len(p.json()["alerts"]) for p in webhook_receiver.to("/bank-a")] == [3, 1]


async def test_silences_suppress_only_their_organisation_and_expire(
    live: Components, clock: ManualClock, webhook_receiver: WebhookReceiver
) -> None:
    silence = Silence(
        "s-1",
        (Matcher.parse('kind="embargo_end"'),),
        START,
        START + 2 * DAY,
        "ops@bank-a",
        "bank-a",
        "maintenance",
        START,
    )
    with store.write_transaction(live.engine) as stored:
        stored.insert_silence(silence)
    shared = {"organisations": ("bank-a",), "sectors": ("finance",), "tlp": common_pb2.TLP_GREEN}
    apply(
        live,
        clearinghouse_events.FindingPublished(
            finding=finding_notice("f-1", embargo_end=START + 4 * DAY, **shared)
        ),
    )
    apply(
        live,
        clearinghouse_events.FindingPublished(
            finding=finding_notice("f-2", embargo_end=START + 6 * DAY, **shared)
        ),
    )
    clock.set(START + DAY)
    await settle(live, clock)
    assert webhook_receiver.to("/bank-a") == []  # silenced
    assert len(webhook_receiver.to("/bank-b")) == 1  # another organisation: not silenced by bank-a
    statuses = rows(
        live, "SELECT g.receiver, n.status FROM notifications n JOIN alert_groups g USING (group_key)"
    )
    assert ("bank-a", "silenced") in {(r.receiver, r.status) for r in statuses}
    clock.set(START + 3 * DAY)  # the silence has expired
    await settle(live, clock)
    delivered = [
        (a["subject_id"], a["threshold"]) for p in webhook_receiver.to("/bank-a") for a in p.json()["alerts"]
    ]
    assert delivered == [("f-1", "T-1d"), ("f-2", "T-3d")]  # f-1's T-3d was silenced, not postponed


async def test_a_met_review_inhibits_its_overdue_alert_waiting_in_its_group(
    live: Components, clock: ManualClock, webhook_receiver: WebhookReceiver
) -> None:
    apply(live, submission_received("sub-1", START + 2 * DAY))
    clock.set(START + DAY)
    await settle(live, clock)  # T-1d (T-7d and T-3d superseded at submission)
    clock.set(START + 2 * DAY)
    await settle(live, clock)  # T-0
    clock.set(START + 3 * DAY)
    live.scheduler.run_pass()  # overdue+1d fires and waits in its group ...
    clock.advance(seconds=10)
    apply(live, clearinghouse_events.ReviewReportReady(report_id="r", submission_id="sub-1", version=1))
    clock.advance(seconds=30)
    live.dispatcher.run_pass()
    await live.deliverer.run_pass()
    delivered = [a["threshold"] for p in webhook_receiver.to("/reviewers") for a in p.json()["alerts"]]
    assert delivered == ["T-1d", "T-0", "met"]
    inhibited = rows(
        live,
        "SELECT n.status FROM notifications n JOIN alerts a USING (alert_id) "
        "JOIN alert_groups g ON g.group_key = n.group_key "
        "WHERE g.receiver = 'reviewers' AND a.kind = 'review_deadline' ORDER BY n.id",
    )
    assert [r.status for r in inhibited] == ["sent", "sent", "inhibited"]


async def test_an_audience_narrowed_after_an_alert_fired_applies_before_it_is_delivered(
    live: Components, clock: ManualClock, webhook_receiver: WebhookReceiver
) -> None:
    shared = {"organisations": ("bank-a",), "sectors": ("finance",), "embargo_end": START + 4 * DAY}
    apply(
        live,
        clearinghouse_events.FindingPublished(
            finding=finding_notice("f-1", tlp=common_pb2.TLP_GREEN, **shared)
        ),
    )
    clock.set(START + DAY)
    live.scheduler.run_pass()  # T-3d: for bank-a by name and bank-b by sector, waiting in their groups
    narrowed = finding_notice("f-1", tlp=common_pb2.TLP_RED, revision=2, **shared)
    apply(live, clearinghouse_events.FindingUpdated(finding=narrowed))  # RED: named organisations only
    clock.advance(seconds=30)
    live.dispatcher.run_pass()
    await live.deliverer.run_pass()
    assert len(webhook_receiver.to("/bank-a")) == 1
    assert webhook_receiver.to("/bank-b") == []
    verdicts = rows(
        live, "SELECT g.receiver, n.status FROM notifications n JOIN alert_groups g USING (group_key)"
    )
    assert {(r.receiver, r.status) for r in verdicts} >= {("bank-a", "sent"), ("bank-b", "denied")}
