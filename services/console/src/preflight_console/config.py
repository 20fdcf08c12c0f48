"""The console's settings, from `PREFLIGHT_*` environment variables (README, Configuration)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from preflight_common.config import (
    ConfigError,
    env,
    env_path,
    env_positive,
    read_or_create_secret,
    read_secret_file,
    secret_file,
)
from preflight_common.oidc import issuer_url_problem

REDIRECT_URL = re.compile(r"https?://[^\s/?#@]+/sign-in/oidc/callback")
"""A redirect URL the console can answer: its own callback path, on the console's origin."""


@dataclass(frozen=True)
class OidcSettings:
    """The OpenID provider people sign in with, and the console's client registration there."""

    issuer: str
    client_id: str
    # Empty: a public client (PKCE alone); else sent as HTTP Basic to the token endpoint.
    client_secret: str = field(default="", repr=False)
    scopes: str = "openid email profile"
    # How the sign-in page names the provider ("Sign in with …").
    name: str = "single sign-on"
    # The callback URL registered at the provider; empty: the origin each request came to.
    redirect_url: str = ""

    @classmethod
    def from_env(cls) -> OidcSettings | None:
        """None unless PREFLIGHT_CONSOLE_OIDC_ISSUER is set; ConfigError naming a wrong variable."""
        issuer = env("PREFLIGHT_CONSOLE_OIDC_ISSUER", "")
        if not issuer:
            return None
        problem = issuer_url_problem(issuer)
        if problem:
            raise ConfigError(f"PREFLIGHT_CONSOLE_OIDC_ISSUER: {problem}")
        client_id = env("PREFLIGHT_CONSOLE_OIDC_CLIENT_ID", "")
        if not client_id:
            raise ConfigError(
                "PREFLIGHT_CONSOLE_OIDC_CLIENT_ID is required with PREFLIGHT_CONSOLE_OIDC_ISSUER"
            )
        scopes = env("PREFLIGHT_CONSOLE_OIDC_SCOPES", cls.scopes)
        if "openid" not in scopes.split():
            raise ConfigError("PREFLIGHT_CONSOLE_OIDC_SCOPES: must include openid")
        redirect_url = env("PREFLIGHT_CONSOLE_OIDC_REDIRECT_URL", "")
        if redirect_url and not REDIRECT_URL.fullmatch(redirect_url):
            raise ConfigError(
                "PREFLIGHT_CONSOLE_OIDC_REDIRECT_URL: the console's http(s) origin and /sign-in/oidc/callback"
            )
        path = secret_file("PREFLIGHT_CONSOLE_OIDC_CLIENT_SECRET")
        return cls(
            issuer=issuer,
            client_id=client_id,
            client_secret=read_secret_file(path, "PREFLIGHT_CONSOLE_OIDC_CLIENT_SECRET_FILE") if path else "",
            scopes=scopes,
            name=env("PREFLIGHT_CONSOLE_OIDC_NAME", cls.name),
            redirect_url=redirect_url,
        )


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
    # OpenID Connect sign-in; None: Preflight tokens only.
    oidc: OidcSettings | None = None
    # The SQLite file sessions are kept in; None: in memory (a restart signs everyone out).
    session_db: Path | None = None
    # The CSAF provider's OpenPGP secret key (armored, no passphrase); None: documents unsigned.
    csaf_openpgp_key_file: Path | None = None

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
            oidc=OidcSettings.from_env(),
            session_db=env_path("PREFLIGHT_CONSOLE_SESSION_DB", Path("run/console/sessions.sqlite")),
            csaf_openpgp_key_file=secret_file("PREFLIGHT_CONSOLE_CSAF_OPENPGP_KEY"),
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
