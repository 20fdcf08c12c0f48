"""Channels from one Preflight process to another's gRPC API: TLS when the deployment names a CA.

Servers serve TLS when given a certificate (`preflight_common.grpcserver.ServerTLS`); their
callers inside Preflight (introspection at intake's IdentityService, workers resolving
credentials and reporting results) then verify them against the CA in `PREFLIGHT_GRPC_TLS_CA`.
"""

from __future__ import annotations

import grpc

from preflight_common.config import env, env_file_bytes

GRPC_TLS_CA = "PREFLIGHT_GRPC_TLS_CA"


def credentials_from_env() -> grpc.ChannelCredentials | None:
    """TLS verified against the CA certificate (PEM file) named by PREFLIGHT_GRPC_TLS_CA; None
    (plaintext) when it is unset. ConfigError naming the variable when the file is unreadable."""
    if not env(GRPC_TLS_CA, ""):
        return None
    return grpc.ssl_channel_credentials(root_certificates=env_file_bytes(GRPC_TLS_CA))


def aio_channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    """An asyncio channel to `target`: TLS with `credentials`, plaintext without."""
    if credentials is None:
        return grpc.aio.insecure_channel(target)
    return grpc.aio.secure_channel(target, credentials)
