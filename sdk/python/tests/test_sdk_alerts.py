"""The operators' alert subscription: the names it derives, decoding, de-duplication, and the CLI's
configuration errors (the subscription against a real broker is in services/notifier/tests)."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from preflight.notifier.v1 import events_pb2
from preflight.sdk import cli
from preflight.sdk.alerts import ALERT_SOURCE, ALERT_TYPE, AlertSubscription, SeenAlerts, decode


def subscription(**overrides: object) -> AlertSubscription:
    values: dict[str, object] = {
        "bootstrap_servers": "127.0.0.1:9093, 127.0.0.2:9093",
        "organisation": "bank-a",
        "password_file": "/nonexistent/operator-bank-a.password",
        "sectors": ("finance", "energy", "finance"),
    }
    values.update(overrides)
    return AlertSubscription(**values)  # type: ignore[arg-type]


def test_a_subscription_reads_its_organisations_and_sectors_topics_as_its_principal() -> None:
    sub = subscription()
    assert sub.topics() == [
        "preflight.alerts.v1.org.bank-a",
        "preflight.alerts.v1.sector.energy",
        "preflight.alerts.v1.sector.finance",
    ]
    assert sub.group_id() == "operator-bank-a.alerts"
    assert sub.principal() == "operator-bank-a"
    assert sub.servers() == ["127.0.0.1:9093", "127.0.0.2:9093"]
    assert subscription(name="soc", alerts_prefix="tenant.alerts").topics()[0] == "tenant.alerts.org.bank-a"
    assert subscription(name="soc").group_id() == "operator-bank-a.soc"


@pytest.mark.parametrize(
    ("overrides", "what"),
    [
        ({"organisation": "Bank A"}, "organisation"),
        ({"sectors": ("fin/ance",)}, "sector"),
        ({"name": ""}, "name"),
    ],
)
def test_a_bad_name_is_refused(overrides: dict[str, object], what: str) -> None:
    with pytest.raises(ValueError, match=what):
        subscription(**overrides)


def test_the_password_is_read_from_its_file_and_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert subscription(password_file=secret).password() == "s3cret"
    with pytest.raises(ValueError, match="cannot read the password file") as raised:
        subscription().password()
    assert "s3cret" not in str(raised.value)


def test_only_decodable_alerts_from_the_notifier_are_yielded() -> None:
    alert = events_pb2.Alert(alert_id="a-1", subject_id="f-1")
    headers = [
        ("ce_type", ALERT_TYPE.encode()),
        ("ce_source", ALERT_SOURCE.encode()),
        ("ce_id", b"e-1"),
        ("content-type", b"application/protobuf"),
    ]
    received = decode("t", headers, alert.SerializeToString())
    assert received is not None
    assert (received.alert.alert_id, received.topic, received.event_id) == ("a-1", "t", "e-1")
    assert decode("t", [("ce_type", b"preflight.other.v1.Event")], alert.SerializeToString()) is None
    assert decode("t", headers, None) is None
    assert decode("t", headers, b"\xff\xff\xff") is None
    forged = [(key, b"preflight.intake" if key == "ce_source" else item) for key, item in headers]
    assert decode("t", forged, alert.SerializeToString()) is None
    assert decode("t", [h for h in headers if h[0] != "ce_source"], alert.SerializeToString()) is None


def test_an_alert_id_is_yielded_once_and_the_memory_is_bounded() -> None:
    seen = SeenAlerts(capacity=2)
    assert [seen.first_time(a) for a in ("a", "b", "a", "c")] == [True, True, False, True]
    assert seen.first_time("b") is True  # forgotten: the oldest goes first once full
    assert seen.first_time("c") is False


def test_alert_follow_refuses_an_incomplete_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (
        "PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS",
        "PREFLIGHT_ORGANISATION",
        "PREFLIGHT_KAFKA_SASL_PASSWORD_FILE",
    ):
        monkeypatch.delenv(variable, raising=False)
    err = io.StringIO()
    assert cli.main(["alert", "follow", "--organisation", "bank-a"], out=io.StringIO(), err=err) == 2
    assert "--bootstrap" in err.getvalue() and "PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS" in err.getvalue()
    err = io.StringIO()
    argv = ["alert", "follow", "--bootstrap", "127.0.0.1:1", "--organisation", "bank-a"]
    assert cli.main([*argv, "--password-file", "/nonexistent/pw"], out=io.StringIO(), err=err) == 2
    assert "cannot read the password file /nonexistent/pw" in err.getvalue()
    err = io.StringIO()
    monkeypatch.setenv("PREFLIGHT_KAFKA_SASL_PASSWORD_FILE", "/nonexistent/pw")
    assert cli.main([*argv[:-1], "Bank A"], out=io.StringIO(), err=err) == 2
    assert "organisation must be" in err.getvalue()


def test_alert_follow_says_when_the_event_bus_cannot_be_reached(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("unused")
    port = socket.socket()
    port.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    argv = [
        "alert",
        "follow",
        "--bootstrap",
        f"127.0.0.1:{port.getsockname()[1]}",
        "--organisation",
        "bank-a",
    ]
    err = io.StringIO()
    try:
        code = cli.main(
            [*argv, "--password-file", str(password), "--security-protocol", "SASL_PLAINTEXT"],
            out=io.StringIO(),
            err=err,
        )
    finally:
        port.close()
    assert code == 1
    assert "UNAVAILABLE: the event bus could not be reached" in err.getvalue()
