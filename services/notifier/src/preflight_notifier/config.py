"""The notifier's configuration, from the environment (documented in services/notifier/README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc
from preflight_common.auth import INTROSPECTION_CACHE_TTL
from preflight_common.bus import Participants
from preflight_common.channels import credentials_from_env
from preflight_common.config import (
    ConfigError,
    KafkaSettings,
    Topics,
    database_url,
    env,
    env_int,
    env_positive,
    secret_file,
)
from preflight_common.grpcserver import ServerTLS
from preflight_common.topics import load_participants

from preflight_notifier.adapters.email import SECURITY_MODES, SmtpSettings
from preflight_notifier.adapters.routing_file import default_routing_path

DEFAULT_DATABASE_URL = "sqlite:///run/notifier/notifier.db"


@dataclass(frozen=True)
class NotifierSettings:
    """Everything the notifier process needs. Secrets are not kept here: they are read when used."""

    # May carry the database password (`config.database_url`): never in a repr, a log or a traceback.
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    listen: str = "[::]:50054"
    identity_target: str = "localhost:50051"
    routing_file: Path = field(default_factory=default_routing_path)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    scheduler_interval: float = 1.0
    dispatch_interval: float = 1.0
    delivery_interval: float = 1.0
    relay_interval: float = 0.2
    stream_poll_interval: float = 0.5
    delivery_lease: float = 300.0
    introspection_cache_ttl: float = INTROSPECTION_CACHE_TTL
    shutdown_grace: float = 10.0
    scheduler_batch: int = 500
    tls: ServerTLS | None = None
    # TLS for calls to intake's IdentityService (PREFLIGHT_GRPC_TLS_CA); None: plaintext.
    client_tls: grpc.ChannelCredentials | None = None
    consumer_group: str = "preflight-notifier"
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)
    # The registered operator organisations: the only audiences finding alerts are published to.
    participants: Participants = field(default_factory=Participants)

    @classmethod
    def from_env(cls) -> NotifierSettings:
        """Read the settings; raises ConfigError naming the variable that is wrong."""
        security = env("PREFLIGHT_NOTIFIER_SMTP_SECURITY", "starttls").lower()
        if security not in SECURITY_MODES:
            raise ConfigError(f"PREFLIGHT_NOTIFIER_SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)}")
        smtp = SmtpSettings(
            host=env("PREFLIGHT_NOTIFIER_SMTP_HOST", "localhost"),
            port=env_int("PREFLIGHT_NOTIFIER_SMTP_PORT", 25),
            security=security,
            username=env("PREFLIGHT_NOTIFIER_SMTP_USERNAME", ""),
            credential_file=str(secret_file("PREFLIGHT_NOTIFIER_SMTP_PASSWORD") or ""),
            sender=env("PREFLIGHT_NOTIFIER_SMTP_FROM", "preflight-notifier@localhost"),
            ca_file=env("PREFLIGHT_NOTIFIER_SMTP_CA_FILE", ""),
            timeout=env_positive("PREFLIGHT_NOTIFIER_SMTP_TIMEOUT", 30.0),
        )
        routing = env("PREFLIGHT_NOTIFIER_ROUTING_FILE", "")
        return cls(
            database_url=database_url(DEFAULT_DATABASE_URL),
            listen=env("PREFLIGHT_GRPC_LISTEN", cls.listen),
            identity_target=env("PREFLIGHT_IDENTITY_TARGET", cls.identity_target),
            routing_file=Path(routing) if routing else default_routing_path(),
            smtp=smtp,
            scheduler_interval=env_positive("PREFLIGHT_NOTIFIER_SCHEDULER_INTERVAL", cls.scheduler_interval),
            dispatch_interval=env_positive("PREFLIGHT_NOTIFIER_DISPATCH_INTERVAL", cls.dispatch_interval),
            delivery_interval=env_positive("PREFLIGHT_NOTIFIER_DELIVERY_INTERVAL", cls.delivery_interval),
            relay_interval=env_positive("PREFLIGHT_NOTIFIER_RELAY_INTERVAL", cls.relay_interval),
            stream_poll_interval=env_positive(
                "PREFLIGHT_NOTIFIER_STREAM_POLL_INTERVAL", cls.stream_poll_interval
            ),
            delivery_lease=env_positive("PREFLIGHT_NOTIFIER_DELIVERY_LEASE", cls.delivery_lease),
            introspection_cache_ttl=env_positive(
                "PREFLIGHT_NOTIFIER_INTROSPECTION_CACHE_TTL", cls.introspection_cache_ttl
            ),
            shutdown_grace=env_positive("PREFLIGHT_NOTIFIER_SHUTDOWN_GRACE", cls.shutdown_grace),
            scheduler_batch=int(env_positive("PREFLIGHT_NOTIFIER_SCHEDULER_BATCH", cls.scheduler_batch)),
            tls=ServerTLS.from_env("PREFLIGHT_NOTIFIER"),
            client_tls=credentials_from_env(),
            consumer_group=env("PREFLIGHT_NOTIFIER_CONSUMER_GROUP", cls.consumer_group),
            kafka=KafkaSettings.from_env(),
            topics=Topics.from_env(),
            participants=load_participants(),
        )
