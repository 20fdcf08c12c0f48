"""The console's settings, from `PREFLIGHT_*` environment variables (README, Configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from preflight_common.config import ConfigError, env, env_path, env_positive, read_or_create_secret


@dataclass(frozen=True)
class Settings:
    """Where the console listens, the services it calls and how sessions are kept."""

    listen: str
    intake_target: str
    clearinghouse_target: str
    benchmark_target: str
    notifier_target: str
    session_key_file: Path
    session_ttl: float
    secure_cookies: str

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment; ConfigError naming a variable that is wrong."""
        secure = env("PREFLIGHT_CONSOLE_SECURE_COOKIES", "auto")
        if secure not in ("auto", "always"):
            raise ConfigError("PREFLIGHT_CONSOLE_SECURE_COOKIES: must be auto or always")
        return cls(
            listen=env("PREFLIGHT_CONSOLE_LISTEN", "127.0.0.1:8080"),
            intake_target=env("PREFLIGHT_INTAKE_TARGET", "localhost:50051"),
            clearinghouse_target=env("PREFLIGHT_CLEARINGHOUSE_TARGET", "localhost:50053"),
            benchmark_target=env("PREFLIGHT_BENCHMARK_TARGET", "localhost:50052"),
            notifier_target=env("PREFLIGHT_NOTIFIER_TARGET", "localhost:50054"),
            session_key_file=env_path("PREFLIGHT_CONSOLE_SESSION_KEY_FILE", Path("run/console/session.key")),
            session_ttl=env_positive("PREFLIGHT_CONSOLE_SESSION_TTL", 8 * 3600.0),
            secure_cookies=secure,
        )

    def session_key(self) -> bytes:
        """The session key from its file, generated (mode 0600) on first start."""
        return read_or_create_secret(self.session_key_file).encode()

    def host_port(self) -> tuple[str, int]:
        """The listen address split; ConfigError naming PREFLIGHT_CONSOLE_LISTEN when malformed."""
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError("PREFLIGHT_CONSOLE_LISTEN: expected host:port")
        return host.strip("[]"), int(port)
