"""Configuration from the environment: values, defaults, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from preflight_common.config import (
    ConfigError,
    KafkaSettings,
    Topics,
    env,
    env_file_bytes,
    env_float,
    env_int,
    env_path,
    env_positive,
)


def test_env_helpers_read_defaults_and_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLIGHT_X", "value")
    monkeypatch.setenv("PREFLIGHT_N", "42")
    monkeypatch.setenv("PREFLIGHT_F", "0.5")
    monkeypatch.setenv("PREFLIGHT_P", "/srv/data")
    monkeypatch.setenv("PREFLIGHT_EMPTY", "")
    assert env("PREFLIGHT_X") == "value"
    assert env("PREFLIGHT_EMPTY", "fallback") == "fallback"
    assert env_int("PREFLIGHT_N", 1) == 42
    assert env_int("PREFLIGHT_UNSET", 7) == 7
    assert env_float("PREFLIGHT_F", 1.0) == 0.5
    assert env_positive("PREFLIGHT_F", 1.0) == 0.5
    assert env_path("PREFLIGHT_P") == Path("/srv/data")
    assert env_path("PREFLIGHT_UNSET", Path("run")) == Path("run")


@pytest.mark.parametrize(
    ("name", "raw", "read", "message"),
    [
        ("PREFLIGHT_REQUIRED", None, lambda: env("PREFLIGHT_REQUIRED"), "PREFLIGHT_REQUIRED is required"),
        ("PREFLIGHT_REQUIRED", "", lambda: env("PREFLIGHT_REQUIRED"), "PREFLIGHT_REQUIRED is required"),
        ("PREFLIGHT_N", "many", lambda: env_int("PREFLIGHT_N", 1), "PREFLIGHT_N must be an integer"),
        ("PREFLIGHT_F", "fast", lambda: env_float("PREFLIGHT_F", 1.0), "PREFLIGHT_F must be a number"),
        ("PREFLIGHT_P", None, lambda: env_path("PREFLIGHT_P"), "PREFLIGHT_P is required"),
        (
            "PREFLIGHT_F",
            "0",
            lambda: env_positive("PREFLIGHT_F", 1.0),
            "PREFLIGHT_F must be a positive number",
        ),
        (
            "PREFLIGHT_F",
            "-2",
            lambda: env_positive("PREFLIGHT_F", 1.0),
            "PREFLIGHT_F must be a positive number",
        ),
        (
            "PREFLIGHT_P",
            "/nonexistent/ca.pem",
            lambda: env_file_bytes("PREFLIGHT_P"),
            "PREFLIGHT_P: cannot read",
        ),
    ],
)
def test_env_errors_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str | None, read: object, message: str
) -> None:
    if raw is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=message):
        read()  # type: ignore[operator]


def test_kafka_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    password = tmp_path / "kafka.password"
    password.write_text("s3cret\n", encoding="utf-8")
    monkeypatch.setenv("PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9093, kafka-1:9093,")
    monkeypatch.setenv("PREFLIGHT_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("PREFLIGHT_KAFKA_SASL_MECHANISM", "scram-sha-512")
    monkeypatch.setenv("PREFLIGHT_KAFKA_SASL_USERNAME", "intake")
    monkeypatch.setenv("PREFLIGHT_KAFKA_SASL_PASSWORD_FILE", str(password))
    monkeypatch.setenv("PREFLIGHT_KAFKA_SSL_CAFILE", "/etc/kafka/ca.crt")
    settings = KafkaSettings.from_env()

    assert settings.servers() == ["kafka-0:9093", "kafka-1:9093"]
    assert settings.faust_broker() == "kafka://kafka-0:9093;kafka://kafka-1:9093"
    assert settings.kafka_python_options() == {
        "bootstrap_servers": ["kafka-0:9093", "kafka-1:9093"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "intake",
        "sasl_plain_password": "s3cret",
        "ssl_cafile": "/etc/kafka/ca.crt",
    }
    # What a child process is given to read the same settings: the password's file, not the password.
    assert settings.env() == {
        "PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9093, kafka-1:9093,",
        "PREFLIGHT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "PREFLIGHT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "PREFLIGHT_KAFKA_SASL_USERNAME": "intake",
        "PREFLIGHT_KAFKA_SASL_PASSWORD_FILE": str(password),
        "PREFLIGHT_KAFKA_SSL_CAFILE": "/etc/kafka/ca.crt",
    }


def test_the_sasl_password_is_read_from_its_file_at_each_call(tmp_path: Path) -> None:
    password = tmp_path / "kafka.password"
    password.write_text("first\n", encoding="utf-8")
    settings = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="preflight-intake",
        sasl_password_file=str(password),
    )
    assert settings.sasl_password() == "first"
    password.write_text("rotated", encoding="utf-8")
    assert settings.kafka_python_options()["sasl_plain_password"] == "rotated"
    password.unlink()
    with pytest.raises(ConfigError, match="PREFLIGHT_KAFKA_SASL_PASSWORD_FILE") as refused:
        settings.sasl_password()
    assert "rotated" not in str(refused.value)


def test_kafka_settings_default_to_a_local_plaintext_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOOTSTRAP_SERVERS", "SECURITY_PROTOCOL", "SASL_MECHANISM", "SSL_CAFILE"):
        monkeypatch.delenv(f"PREFLIGHT_KAFKA_{name}", raising=False)
    settings = KafkaSettings.from_env()
    assert settings.kafka_python_options() == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "PLAINTEXT",
    }


@pytest.mark.parametrize(
    ("fields", "variable"),
    [
        ({"bootstrap_servers": " , "}, "PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS"),
        ({"security_protocol": "TLS"}, "PREFLIGHT_KAFKA_SECURITY_PROTOCOL"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "PREFLIGHT_KAFKA_SASL_MECHANISM"),
        ({"security_protocol": "SASL_SSL"}, "PREFLIGHT_KAFKA_SASL_MECHANISM"),
        ({"sasl_mechanism": "PLAIN"}, "PREFLIGHT_KAFKA_SASL_MECHANISM"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "admin"},
            "PREFLIGHT_KAFKA_SASL_PASSWORD_FILE",
        ),
    ],
)
def test_inconsistent_kafka_settings_are_refused(fields: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        KafkaSettings(**fields)


def test_topic_names_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    for field in (
        "SUBMISSIONS",
        "BENCHMARK_JOBS",
        "BENCHMARK_RESULTS",
        "REVIEWS",
        "FINDINGS",
        "REVIEW_ALERTS",
    ):
        monkeypatch.delenv(f"PREFLIGHT_TOPIC_{field}", raising=False)
    monkeypatch.setenv("PREFLIGHT_TOPIC_REVIEW_ALERTS", "tenant-a.review-alerts")
    monkeypatch.setenv("PREFLIGHT_TOPIC_ALERTS_PREFIX", "tenant-a.alerts")
    topics = Topics.from_env()
    assert topics.alerts_prefix == "tenant-a.alerts"
    assert topics.all() == [
        "preflight.submissions.v1",
        "preflight.benchmark.jobs.v1",
        "preflight.benchmark.results.v1",
        "preflight.reviews.v1",
        "preflight.findings.v1",
        "tenant-a.review-alerts",
    ]
    assert Topics.dlq(topics.submissions) == "preflight.submissions.v1.dlq"
