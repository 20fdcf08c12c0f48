"""Configuration from the environment: values, defaults, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from preflight_common.config import (
    ConfigError,
    KafkaSettings,
    Topics,
    database_url,
    env,
    env_file_bytes,
    env_float,
    env_int,
    env_path,
    env_positive,
    read_secret_file,
    secret,
    secret_file,
)
from sqlalchemy.engine import make_url


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


def test_a_client_certificate_authenticates_over_ssl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9093")
    monkeypatch.setenv("PREFLIGHT_KAFKA_SECURITY_PROTOCOL", "ssl")
    monkeypatch.setenv("PREFLIGHT_KAFKA_SSL_CAFILE", "/etc/preflight/kafka-ca/ca.crt")
    monkeypatch.setenv("PREFLIGHT_KAFKA_SSL_CERTFILE", "/etc/preflight/kafka-tls/user.crt")
    monkeypatch.setenv("PREFLIGHT_KAFKA_SSL_KEYFILE", "/etc/preflight/kafka-tls/user.key")
    monkeypatch.delenv("PREFLIGHT_KAFKA_SASL_MECHANISM", raising=False)
    settings = KafkaSettings.from_env()

    assert settings.kafka_python_options() == {
        "bootstrap_servers": ["kafka-0:9093"],
        "security_protocol": "SSL",
        "ssl_cafile": "/etc/preflight/kafka-ca/ca.crt",
        "ssl_certfile": "/etc/preflight/kafka-tls/user.crt",
        "ssl_keyfile": "/etc/preflight/kafka-tls/user.key",
    }
    assert settings.env()["PREFLIGHT_KAFKA_SSL_CERTFILE"] == "/etc/preflight/kafka-tls/user.crt"
    assert settings.env()["PREFLIGHT_KAFKA_SSL_KEYFILE"] == "/etc/preflight/kafka-tls/user.key"


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
        ({"security_protocol": "SSL", "ssl_certfile": "user.crt"}, "PREFLIGHT_KAFKA_SSL_KEYFILE"),
        ({"security_protocol": "SSL", "ssl_keyfile": "user.key"}, "PREFLIGHT_KAFKA_SSL_CERTFILE"),
        (
            {"security_protocol": "PLAINTEXT", "ssl_certfile": "user.crt", "ssl_keyfile": "user.key"},
            "PREFLIGHT_KAFKA_SECURITY_PROTOCOL SSL or SASL_SSL",
        ),
        ({"security_protocol": "PLAINTEXT", "ssl_cafile": "ca.crt"}, "PREFLIGHT_KAFKA_SSL_CAFILE"),
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
        "AUDIT_CHECKPOINTS",
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
        "preflight.audit-checkpoints.v1",
    ]
    assert Topics.dlq(topics.submissions) == "preflight.submissions.v1.dlq"


SECRET_VALUE = "s3cr3t-value-that-must-never-be-quoted"


def test_a_secret_is_read_from_the_file_its_FILE_variable_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(SECRET_VALUE + "\n", encoding="utf-8")
    path.chmod(0o600)
    monkeypatch.delenv("PREFLIGHT_X_TOKEN", raising=False)
    monkeypatch.setenv("PREFLIGHT_X_TOKEN_FILE", str(path))
    assert secret_file("PREFLIGHT_X_TOKEN") == path
    assert secret("PREFLIGHT_X_TOKEN") == SECRET_VALUE
    path.write_text(" padded \n\n", encoding="utf-8")
    assert secret("PREFLIGHT_X_TOKEN") == " padded \n"  # one trailing newline only
    monkeypatch.delenv("PREFLIGHT_X_TOKEN_FILE")
    assert secret("PREFLIGHT_X_TOKEN", "") == ""
    with pytest.raises(ConfigError, match="PREFLIGHT_X_TOKEN_FILE is required"):
        secret("PREFLIGHT_X_TOKEN")


def test_a_secret_in_the_environment_is_refused_without_quoting_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text("from-the-file", encoding="utf-8")
    monkeypatch.setenv("PREFLIGHT_X_TOKEN_FILE", str(path))
    monkeypatch.setenv("PREFLIGHT_X_TOKEN", SECRET_VALUE)
    for read in (secret, secret_file):
        with pytest.raises(ConfigError, match="PREFLIGHT_X_TOKEN_FILE") as refused:
            read("PREFLIGHT_X_TOKEN")
        assert SECRET_VALUE not in str(refused.value)


def test_an_unreadable_or_empty_secret_file_is_refused_naming_the_variable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match="PREFLIGHT_X_TOKEN_FILE: cannot read"):
        read_secret_file(tmp_path / "absent", "PREFLIGHT_X_TOKEN_FILE")
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"PREFLIGHT_X_TOKEN_FILE: .* is empty"):
        read_secret_file(empty, "PREFLIGHT_X_TOKEN_FILE")
    shared = tmp_path / "shared"
    shared.write_text(SECRET_VALUE, encoding="utf-8")
    shared.chmod(0o644)
    with caplog.at_level("WARNING", logger="preflight_common.config"):
        assert read_secret_file(shared, "PREFLIGHT_X_TOKEN_FILE") == SECRET_VALUE
    assert "PREFLIGHT_X_TOKEN_FILE" in caplog.text
    assert SECRET_VALUE not in caplog.text


@pytest.fixture
def no_database_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("URL", "URL_FILE", "PASSWORD", "PASSWORD_FILE"):
        monkeypatch.delenv(f"PREFLIGHT_DATABASE_{name}", raising=False)
    return monkeypatch


def test_a_database_password_comes_from_a_file(
    no_database_settings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch = no_database_settings
    assert database_url("sqlite:///run/x.db") == "sqlite:///run/x.db"
    monkeypatch.setenv("PREFLIGHT_DATABASE_URL", "postgresql+psycopg://preflight@db:5432/intake")
    assert database_url("sqlite:///run/x.db") == "postgresql+psycopg://preflight@db:5432/intake"
    password = tmp_path / "db.password"
    password.write_text("p@ss/word\n", encoding="utf-8")
    monkeypatch.setenv("PREFLIGHT_DATABASE_PASSWORD_FILE", str(password))
    url = database_url("sqlite:///run/x.db")
    assert make_url(url).password == "p@ss/word"
    assert make_url(url).username == "preflight"
    assert make_url(url).database == "intake"
    whole = tmp_path / "db.url"
    whole.write_text(f"postgresql+psycopg://u:{SECRET_VALUE}@db/x\n", encoding="utf-8")
    monkeypatch.delenv("PREFLIGHT_DATABASE_URL")
    monkeypatch.delenv("PREFLIGHT_DATABASE_PASSWORD_FILE")
    monkeypatch.setenv("PREFLIGHT_DATABASE_URL_FILE", str(whole))
    assert database_url("sqlite:///run/x.db") == f"postgresql+psycopg://u:{SECRET_VALUE}@db/x"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        (
            {"PREFLIGHT_DATABASE_URL": f"postgresql+psycopg://u:{SECRET_VALUE}@db/x"},
            "PREFLIGHT_DATABASE_PASSWORD_FILE",
        ),
        ({"PREFLIGHT_DATABASE_PASSWORD": SECRET_VALUE}, "PREFLIGHT_DATABASE_PASSWORD_FILE"),
        ({"PREFLIGHT_DATABASE_URL": f"not a url {SECRET_VALUE}"}, "PREFLIGHT_DATABASE_URL"),
        (
            {"PREFLIGHT_DATABASE_URL": "postgresql+psycopg://u@db/x", "PREFLIGHT_DATABASE_URL_FILE": "/x"},
            "PREFLIGHT_DATABASE_URL_FILE",
        ),
    ],
)
def test_a_database_password_in_the_environment_is_refused(
    no_database_settings: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        no_database_settings.setenv(name, value)
    with pytest.raises(ConfigError, match=named) as refused:
        database_url("sqlite:///run/x.db")
    assert SECRET_VALUE not in str(refused.value)
