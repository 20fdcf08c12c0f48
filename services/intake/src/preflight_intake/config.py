"""Intake's configuration, from the environment (documented in services/intake/README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from preflight_common.channels import credentials_from_env
from preflight_common.config import (
    ConfigError,
    KafkaSettings,
    Topics,
    database_url,
    env,
    env_float,
    env_path,
    env_positive,
)
from preflight_common.grpcserver import ServerTLS

from preflight_intake.domain.federation import Federation, MappingError
from preflight_intake.domain.model import WindowPolicy

DEFAULT_DATABASE_URL = "sqlite:///run/intake/intake.db"


@dataclass(frozen=True)
class IntakeSettings:
    """Everything the intake process needs except its encryption keys (read apart, never kept here)."""

    # May carry the database password (`config.database_url`): never in a repr, a log or a traceback.
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    listen: str = "[::]:50051"
    policy: WindowPolicy = field(default_factory=WindowPolicy)
    relay_interval: float = 0.2
    close_interval: float = 60.0
    # Seconds between checks (one query for all open watches) for changes made by another
    # replica (this process's own changes are pushed to its watches as they commit).
    watch_resync_interval: float = 30.0
    shutdown_grace: float = 10.0
    consumer_group: str = "preflight-intake"
    token_lifetime_days: float = 90.0
    # The clearinghouse, whose published key a ReviewReportReady's signature must verify with.
    clearinghouse_target: str = "localhost:50053"
    # TLS for calls to the clearinghouse (PREFLIGHT_GRPC_TLS_CA); None: plaintext.
    client_tls: grpc.ChannelCredentials | None = None
    # How long a benchmark outcome waits for its job's BenchmarkJobRequested before it is refused.
    plan_wait: float = 60.0
    tls: ServerTLS | None = None
    # Who may sign in through OpenID Connect (ExchangeIdToken); None: nobody.
    federation: Federation | None = None
    # The longest-lived token ExchangeIdToken issues, in seconds.
    oidc_token_lifetime: float = 8 * 3600.0
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)

    @classmethod
    def from_env(cls) -> IntakeSettings:
        """Read the settings; raises ConfigError naming the variable that is wrong."""
        policy = WindowPolicy(
            max_days=env_float("PREFLIGHT_INTAKE_MAX_WINDOW_DAYS", 30),
            min_days=env_float("PREFLIGHT_INTAKE_MIN_WINDOW_DAYS", 7),
        )
        if not 0 < policy.min_days <= policy.max_days:
            raise ConfigError(
                "PREFLIGHT_INTAKE_MIN_WINDOW_DAYS must be positive and at most "
                "PREFLIGHT_INTAKE_MAX_WINDOW_DAYS"
            )
        return cls(
            database_url=database_url(DEFAULT_DATABASE_URL),
            listen=env("PREFLIGHT_GRPC_LISTEN", cls.listen),
            policy=policy,
            relay_interval=env_positive("PREFLIGHT_INTAKE_RELAY_INTERVAL", cls.relay_interval),
            close_interval=env_positive("PREFLIGHT_INTAKE_CLOSE_INTERVAL", cls.close_interval),
            watch_resync_interval=env_positive(
                "PREFLIGHT_INTAKE_WATCH_RESYNC_INTERVAL", cls.watch_resync_interval
            ),
            shutdown_grace=env_positive("PREFLIGHT_INTAKE_SHUTDOWN_GRACE", cls.shutdown_grace),
            consumer_group=env("PREFLIGHT_INTAKE_CONSUMER_GROUP", cls.consumer_group),
            token_lifetime_days=env_positive("PREFLIGHT_INTAKE_TOKEN_LIFETIME_DAYS", cls.token_lifetime_days),
            clearinghouse_target=env("PREFLIGHT_CLEARINGHOUSE_TARGET", cls.clearinghouse_target),
            client_tls=credentials_from_env(),
            plan_wait=env_positive("PREFLIGHT_INTAKE_PLAN_WAIT", cls.plan_wait),
            tls=ServerTLS.from_env("PREFLIGHT_INTAKE"),
            federation=_federation(),
            oidc_token_lifetime=env_positive("PREFLIGHT_INTAKE_OIDC_TOKEN_LIFETIME", cls.oidc_token_lifetime),
            kafka=KafkaSettings.from_env(),
            topics=Topics.from_env(),
        )


def _federation() -> Federation | None:
    """The OpenID Connect mapping in the file PREFLIGHT_INTAKE_OIDC_FILE names (None when unset);
    ConfigError naming the variable and the malformed entry."""
    if not env("PREFLIGHT_INTAKE_OIDC_FILE", ""):
        return None
    path = env_path("PREFLIGHT_INTAKE_OIDC_FILE")
    try:
        return Federation.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"PREFLIGHT_INTAKE_OIDC_FILE: cannot read {path}") from None
    except MappingError as exc:
        raise ConfigError(f"PREFLIGHT_INTAKE_OIDC_FILE: {exc}") from None
