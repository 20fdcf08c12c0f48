"""The clearinghouse's configuration, from the environment (see services/clearinghouse/README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc
from preflight_common.auth import INTROSPECTION_CACHE_TTL
from preflight_common.channels import credentials_from_env
from preflight_common.config import (
    ConfigError,
    KafkaSettings,
    Topics,
    database_url,
    env,
    env_path,
    env_positive,
)
from preflight_common.grpcserver import ServerTLS

DEFAULT_DATABASE_URL = "sqlite:///run/clearinghouse/clearinghouse.db"


@dataclass(frozen=True)
class ClearinghouseSettings:
    """Everything the clearinghouse process needs except secrets (the signing key and the service token)."""

    # May carry the database password (`config.database_url`): never in a repr, a log or a traceback.
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    # Local working files: the signing key, when no key is configured.
    state_dir: Path = Path("run/clearinghouse")
    listen: str = "[::]:50053"
    identity_target: str = "localhost:50051"
    policy_file: Path | None = None
    signing_key_id: str = ""
    publisher_name: str = "Preflight clearinghouse"
    publisher_namespace: str = "https://clearinghouse.preflight.example"
    relay_interval: float = 0.2
    stream_poll_interval: float = 0.5
    embargo_interval: float = 30.0
    # How often the audit chain head is checked and, when it moved, a signed checkpoint published.
    checkpoint_interval: float = 60.0
    auth_cache_ttl: float = INTROSPECTION_CACHE_TTL
    shutdown_grace: float = 10.0
    # How long a benchmark outcome waits for its job's BenchmarkJobRequested before it is refused.
    plan_wait: float = 60.0
    consumer_group: str = "preflight-clearinghouse"
    tls: ServerTLS | None = None
    # TLS for calls to intake's IdentityService (PREFLIGHT_GRPC_TLS_CA); None: plaintext.
    client_tls: grpc.ChannelCredentials | None = None
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)

    @classmethod
    def from_env(cls) -> ClearinghouseSettings:
        """Read the settings; raises ConfigError naming the variable that is wrong."""
        policy_file = env("PREFLIGHT_CLEARINGHOUSE_POLICY_FILE", "")
        return cls(
            database_url=database_url(DEFAULT_DATABASE_URL),
            state_dir=env_path("PREFLIGHT_CLEARINGHOUSE_STATE_DIR", cls.state_dir),
            listen=env("PREFLIGHT_GRPC_LISTEN", cls.listen),
            identity_target=env("PREFLIGHT_IDENTITY_TARGET", cls.identity_target),
            policy_file=Path(policy_file) if policy_file else None,
            signing_key_id=env("PREFLIGHT_CLEARINGHOUSE_SIGNING_KEY_ID", ""),
            publisher_name=env("PREFLIGHT_CLEARINGHOUSE_PUBLISHER_NAME", cls.publisher_name),
            publisher_namespace=_url("PREFLIGHT_CLEARINGHOUSE_PUBLISHER_NAMESPACE", cls.publisher_namespace),
            relay_interval=env_positive("PREFLIGHT_CLEARINGHOUSE_RELAY_INTERVAL", cls.relay_interval),
            stream_poll_interval=env_positive(
                "PREFLIGHT_CLEARINGHOUSE_STREAM_POLL_INTERVAL", cls.stream_poll_interval
            ),
            embargo_interval=env_positive("PREFLIGHT_CLEARINGHOUSE_EMBARGO_INTERVAL", cls.embargo_interval),
            checkpoint_interval=env_positive(
                "PREFLIGHT_CLEARINGHOUSE_CHECKPOINT_INTERVAL", cls.checkpoint_interval
            ),
            auth_cache_ttl=env_positive("PREFLIGHT_CLEARINGHOUSE_AUTH_CACHE_TTL", cls.auth_cache_ttl),
            shutdown_grace=env_positive("PREFLIGHT_CLEARINGHOUSE_SHUTDOWN_GRACE", cls.shutdown_grace),
            plan_wait=env_positive("PREFLIGHT_CLEARINGHOUSE_PLAN_WAIT", cls.plan_wait),
            consumer_group=env("PREFLIGHT_CLEARINGHOUSE_CONSUMER_GROUP", cls.consumer_group),
            tls=ServerTLS.from_env("PREFLIGHT_CLEARINGHOUSE"),
            client_tls=credentials_from_env(),
            kafka=KafkaSettings.from_env(),
            topics=Topics.from_env(),
        )


def _url(name: str, default: str) -> str:
    value = env(name, default)
    if not value.startswith("https://"):
        raise ConfigError(f"{name} must be an https:// URL, got {value!r}")
    return value
