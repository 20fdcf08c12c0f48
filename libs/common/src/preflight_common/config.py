"""Configuration shared by every Preflight process, read from the environment.

Every getter raises `ConfigError` naming the variable when a value is malformed,
so a misconfigured deployment fails at start with a message that says what to fix.
Secrets are the exception to "from the environment": a secret `<NAME>` is read from the
file `<NAME>_FILE` names (`secret`), and `<NAME>` itself is refused.
"""

from __future__ import annotations

import logging
import os
import secrets
import ssl
import stat
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from preflight.sdk.naming import DEFAULT_ALERTS_PREFIX
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def env(name: str, default: str | None = None) -> str:
    """The variable's value, or `default`; raises ConfigError if neither exists."""
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ConfigError(f"{name} is required")
        return default
    return value


def env_int(name: str, default: int) -> int:
    """An integer variable; raises ConfigError naming it if it does not parse."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    """A number variable; raises ConfigError naming it if it does not parse."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def env_positive(name: str, default: float) -> float:
    """A number variable that must be positive (an interval, a timeout…); ConfigError naming it otherwise."""
    value = env_float(name, default)
    if value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value}")
    return value


def env_path(name: str, default: Path | None = None) -> Path:
    """A path variable (not required to exist)."""
    raw = os.environ.get(name)
    if raw:
        return Path(raw)
    if default is None:
        raise ConfigError(f"{name} is required")
    return default


def env_file_bytes(name: str) -> bytes:
    """The contents of the file a required path variable names; ConfigError naming it otherwise."""
    path = env_path(name)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None


def secret_file(name: str) -> Path | None:
    """The path `<name>_FILE` names (None when unset): the one way a secret reaches a process.

    A secret is never an environment variable (the environment is readable by whoever can
    inspect the process, is inherited by its children and shows up in crash reports): a
    non-empty `<name>` is refused with a ConfigError that names `<name>_FILE` and never quotes
    the value.
    """
    if os.environ.get(name):
        raise ConfigError(
            f"{name} must not be set: a secret is never an environment variable; "
            f"write it to a file and set {name}_FILE to its path"
        )
    raw = os.environ.get(f"{name}_FILE")
    return Path(raw) if raw else None


def secret(name: str, default: str | None = None) -> str:
    """The secret in the file `<name>_FILE` names (`read_secret_file`), or `default` when that
    variable is unset; ConfigError naming `<name>_FILE` if it is required, or `<name>` is set."""
    path = secret_file(name)
    if path is None:
        if default is None:
            raise ConfigError(f"{name}_FILE is required: the path of a file holding the secret")
        return default
    return read_secret_file(path, f"{name}_FILE")


def read_secret_file(path: Path, variable: str) -> str:
    """The secret in `path`, one trailing newline removed; ConfigError naming `variable` if it
    cannot be read or is empty, never quoting the contents.

    A file that others (not its owner or group) may read is accepted with a warning: Kubernetes
    Secret volumes are group-readable through the pod's fsGroup and world-readable unless the
    volume's defaultMode says otherwise, so refusing would break deployments that are otherwise
    sound.
    """
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{variable}: cannot read {path}: {reason}") from None
    if mode & stat.S_IROTH:
        log.warning("%s: %s is readable by every user of the host; make it mode 0600 or 0440", variable, path)
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise ConfigError(f"{variable}: {path} is empty")
    return value


def database_url(default: str) -> str:
    """The service's database URL, whose password (if any) never comes from the environment.

    `PREFLIGHT_DATABASE_URL_FILE` names a file holding the whole URL; otherwise the URL is
    `PREFLIGHT_DATABASE_URL` (or `default`), which must carry no password, with the password of
    `PREFLIGHT_DATABASE_PASSWORD_FILE` put in when that is set. ConfigError naming the variable
    for a password in `PREFLIGHT_DATABASE_URL`, for both the URL file and the URL variable, or
    for a URL that does not parse; no message quotes a URL.
    """
    url_file = os.environ.get("PREFLIGHT_DATABASE_URL_FILE")
    if not url_file:
        return _url_with_password(env("PREFLIGHT_DATABASE_URL", default))
    if os.environ.get("PREFLIGHT_DATABASE_URL") or os.environ.get("PREFLIGHT_DATABASE_PASSWORD_FILE"):
        raise ConfigError(
            "PREFLIGHT_DATABASE_URL_FILE: set it alone, without PREFLIGHT_DATABASE_URL or "
            "PREFLIGHT_DATABASE_PASSWORD_FILE (its URL carries its password)"
        )
    url = read_secret_file(Path(url_file), "PREFLIGHT_DATABASE_URL_FILE").strip()
    _parse_url(url, "PREFLIGHT_DATABASE_URL_FILE")
    return url


def _url_with_password(plain: str) -> str:
    url = _parse_url(plain, "PREFLIGHT_DATABASE_URL")
    if url.password is not None:
        raise ConfigError(
            "PREFLIGHT_DATABASE_URL must not carry a password: a secret is never an environment "
            "variable; set PREFLIGHT_DATABASE_PASSWORD_FILE (or PREFLIGHT_DATABASE_URL_FILE)"
        )
    password = secret("PREFLIGHT_DATABASE_PASSWORD", "")
    if not password:
        return plain
    return url.set(password=password).render_as_string(hide_password=False)


def _parse_url(text: str, variable: str) -> URL:
    try:
        return make_url(text)
    except ArgumentError:
        raise ConfigError(f"{variable}: not a database URL") from None


def write_secret_file(path: Path, value: str) -> Path:
    """Write `value` (and a newline) to `path` with mode 0600, replacing any earlier file whole
    (folders created); returns `path`. How a process hands a secret to a child: the child gets
    `<NAME>_FILE`, never the value."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    staged.replace(path)
    return path


def read_or_create_secret(path: Path) -> str:
    """The secret in the file `path`, generated first (random, mode 0600, folders created) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text(encoding="utf-8").strip()


_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_TLS_PROTOCOLS = ("SSL", "SASL_SSL")


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach the Kafka cluster, and who the client is there.

    A client authenticates with SASL (`SASL_PLAINTEXT`, `SASL_SSL`: a user name and a password
    file) or with a TLS client certificate (`SSL` with `ssl_certfile` and `ssl_keyfile`, PEM
    files: the broker maps the certificate's subject to the principal). `ssl_cafile` is the
    CA the brokers' certificates are verified against (the system CAs when empty); every
    `ssl_*` file needs a TLS protocol (`SSL`, `SASL_SSL`).
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password_file: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    def __post_init__(self) -> None:
        if not self.servers():
            raise ConfigError("PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS must not be empty")
        if self.security_protocol not in _SECURITY_PROTOCOLS:
            raise ConfigError(
                f"PREFLIGHT_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(_SECURITY_PROTOCOLS)}"
            )
        if self.sasl_mechanism not in _SASL_MECHANISMS:
            raise ConfigError(
                f"PREFLIGHT_KAFKA_SASL_MECHANISM must be one of {', '.join(_SASL_MECHANISMS[1:])}"
            )
        if bool(self.sasl_mechanism) != self.security_protocol.startswith("SASL_"):
            raise ConfigError(
                "PREFLIGHT_KAFKA_SASL_MECHANISM must be set exactly when PREFLIGHT_KAFKA_SECURITY_PROTOCOL "
                "is SASL_PLAINTEXT or SASL_SSL"
            )
        if self.sasl_mechanism and not (self.sasl_username and self.sasl_password_file):
            raise ConfigError(
                "PREFLIGHT_KAFKA_SASL_USERNAME and PREFLIGHT_KAFKA_SASL_PASSWORD_FILE are required with SASL"
            )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError(
                "PREFLIGHT_KAFKA_SSL_CERTFILE and PREFLIGHT_KAFKA_SSL_KEYFILE must be set together"
            )
        if (self.ssl_cafile or self.ssl_certfile) and self.security_protocol not in _TLS_PROTOCOLS:
            raise ConfigError(
                "PREFLIGHT_KAFKA_SSL_CAFILE, PREFLIGHT_KAFKA_SSL_CERTFILE and PREFLIGHT_KAFKA_SSL_KEYFILE "
                "need PREFLIGHT_KAFKA_SECURITY_PROTOCOL SSL or SASL_SSL"
            )

    @classmethod
    def from_env(cls) -> KafkaSettings:
        return cls(
            bootstrap_servers=env("PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS", cls.bootstrap_servers),
            security_protocol=env("PREFLIGHT_KAFKA_SECURITY_PROTOCOL", cls.security_protocol).upper(),
            sasl_mechanism=os.environ.get("PREFLIGHT_KAFKA_SASL_MECHANISM", "").upper(),
            sasl_username=os.environ.get("PREFLIGHT_KAFKA_SASL_USERNAME", ""),
            sasl_password_file=os.environ.get("PREFLIGHT_KAFKA_SASL_PASSWORD_FILE", ""),
            ssl_cafile=os.environ.get("PREFLIGHT_KAFKA_SSL_CAFILE", ""),
            ssl_certfile=os.environ.get("PREFLIGHT_KAFKA_SSL_CERTFILE", ""),
            ssl_keyfile=os.environ.get("PREFLIGHT_KAFKA_SSL_KEYFILE", ""),
        )

    def kafka_python_options(self) -> dict[str, Any]:
        """Keyword options for kafka-python clients (producer, consumer, admin)."""
        options = self._client_options()
        if self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        if self.ssl_certfile:
            options["ssl_certfile"] = self.ssl_certfile
            options["ssl_keyfile"] = self.ssl_keyfile
        return options

    def aiokafka_options(self) -> dict[str, Any]:
        """Keyword options for aiokafka clients: kafka-python's, with TLS as `ssl_context()`."""
        options = self._client_options()
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        return options

    def _client_options(self) -> dict[str, Any]:
        """The options both Kafka clients name alike: brokers, protocol, SASL (password read now)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.servers(),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password()
        return options

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of asyncio clients (aiokafka): the brokers verified against
        `ssl_cafile` (else the system CAs), the client certificate presented when set; None
        without TLS. The key file is read here, once: a renewed certificate needs a new client."""
        if self.security_protocol not in _TLS_PROTOCOLS:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def sasl_password(self) -> str:
        """The SASL password, read from its file at each call (a rotated secret is picked up on reconnect).

        Raises ConfigError naming PREFLIGHT_KAFKA_SASL_PASSWORD_FILE if it cannot be read; the
        password itself never appears in an error, a log or the environment.
        """
        return read_secret_file(Path(self.sasl_password_file), "PREFLIGHT_KAFKA_SASL_PASSWORD_FILE")

    def env(self) -> dict[str, str]:
        """The `PREFLIGHT_KAFKA_*` variables from which `from_env()` reads these settings (no secret)."""
        values = {
            "PREFLIGHT_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "PREFLIGHT_KAFKA_SECURITY_PROTOCOL": self.security_protocol,
            "PREFLIGHT_KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "PREFLIGHT_KAFKA_SASL_USERNAME": self.sasl_username,
            "PREFLIGHT_KAFKA_SASL_PASSWORD_FILE": self.sasl_password_file,
            "PREFLIGHT_KAFKA_SSL_CAFILE": self.ssl_cafile,
            "PREFLIGHT_KAFKA_SSL_CERTFILE": self.ssl_certfile,
            "PREFLIGHT_KAFKA_SSL_KEYFILE": self.ssl_keyfile,
        }
        return {name: value for name, value in values.items() if value}

    def servers(self) -> list[str]:
        """The bootstrap `host:port` entries (blanks around commas ignored)."""
        return [server.strip() for server in self.bootstrap_servers.split(",") if server.strip()]


@dataclass(frozen=True)
class Topics:
    """Topic names (configuration; these are the defaults)."""

    submissions: str = "preflight.submissions.v1"
    benchmark_jobs: str = "preflight.benchmark.jobs.v1"
    benchmark_results: str = "preflight.benchmark.results.v1"
    reviews: str = "preflight.reviews.v1"
    findings: str = "preflight.findings.v1"
    # Finding alerts go to one topic per audience under this prefix (`preflight_common.bus`):
    # `<prefix>.org.<organisation>` and `<prefix>.sector.<sector>`. Not a topic itself.
    alerts_prefix: str = DEFAULT_ALERTS_PREFIX
    # Review-deadline alerts name a lab and its release plan: for labs' and reviewers' systems
    # only, never granted to operators.
    review_alerts: str = "preflight.review-alerts.v1"
    # Signed checkpoints of the clearinghouse's audit chain head, kept outside its database.
    audit_checkpoints: str = "preflight.audit-checkpoints.v1"

    @classmethod
    def from_env(cls) -> Topics:
        """Defaults, each overridable by `PREFLIGHT_TOPIC_<FIELD>` (e.g. PREFLIGHT_TOPIC_ALERTS_PREFIX)."""
        values = {f.name: env(f"PREFLIGHT_TOPIC_{f.name.upper()}", f.default) for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**values)

    def all(self) -> list[str]:
        """Every fixed topic, in declaration order (the per-audience alert topics are not among them)."""
        return [getattr(self, f.name) for f in fields(self) if f.name != "alerts_prefix"]

    @staticmethod
    def dlq(topic: str) -> str:
        """The dead-letter twin of a topic."""
        return f"{topic}.dlq"
