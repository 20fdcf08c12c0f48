"""What the blocking and the asyncio clients share: channels, their retry policy, and request parts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Self

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.clearinghouse.v1 import clearinghouse_pb2
from preflight.identity.v1 import identity_pb2
from preflight.intake.v1 import intake_pb2, submission_pb2
from preflight.notifier.v1 import notifier_pb2

DEFAULT_TIMEOUT = 10.0
"""Deadline (seconds) of every unary call unless the call gives its own."""

WATCH_RECONNECTS = 5
"""How many times in a row `watch` reconnects after UNAVAILABLE without receiving anything."""

_RETRIED_SERVICES = (
    "preflight.intake.v1.IntakeService",
    "preflight.identity.v1.IdentityService",
    "preflight.benchmark.v1.BenchmarkService",
)

_READ_VERBS = frozenset({"Get", "List", "Query", "Preview", "Export", "Stream", "Subscribe", "Verify"})
"""The first word of every read RPC's name (reads are named by the verb, and none of these changes
anything): every such method of the clearinghouse and the notifier is retried, so a new read is
retried without being listed."""

_RETRIED_CHANGES = {
    clearinghouse_pb2.DESCRIPTOR.services_by_name["ClearinghouseService"]: frozenset(
        {"SignOffReport", "ReportFinding", "SetPatchStatus"}
    ),
    notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"]: frozenset(
        {"AcknowledgeAlert", "ExpireSilence"}
    ),
}
"""Per service whose methods are retried one by one, the changes doing twice cannot do twice."""


def _verb(method: str) -> str:
    """The first word of a method's CamelCase name (`ListFindings` → `List`; `Listen` is not `List`)."""
    word = re.match(r"[A-Z][a-z]*", method)
    return word.group() if word else ""


# Calls that fail with UNAVAILABLE (the service was not reached or is restarting) are retried by
# gRPC itself with exponential backoff, when doing them twice cannot change anything twice: reads
# (`_READ_VERBS`); SubmitModel and ReportFinding, which carry an idempotency key; changes that are
# refused (not repeated) once applied (a withdrawal, a sign-off) or that set a value (a patch
# status, an acknowledgement). The clearinghouse's other changes (a note, a re-issue, a finding's
# transition, assessment, sharing, aliases, references, credits, link, assignment, SSVC decision,
# import, a comment or an attachment) and a new silence are never retried: each would be recorded
# again.
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": name} for name in _RETRIED_SERVICES]
                + [
                    {"service": service.full_name, "method": method.name}
                    for service, changes in _RETRIED_CHANGES.items()
                    for method in service.methods
                    if _verb(method.name) in _READ_VERBS or method.name in changes
                ],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)

CHANNEL_OPTIONS: tuple[tuple[str, str | int], ...] = (
    ("grpc.service_config", SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
)


class Closing:
    """An object that owns channels: `with` closes it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClosing:
    """An object that owns asyncio channels: `async with` closes it."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


@dataclass(frozen=True)
class TLS:
    """TLS settings: the CA to trust (None: the system's) and, for mTLS, a client certificate and key.

    All PEM-encoded bytes.
    """

    root_certificates: bytes | None = None
    client_certificate: bytes | None = None
    client_key: bytes | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.client_key,
            certificate_chain=self.client_certificate,
        )


def channel_credentials(tls: bool | TLS) -> grpc.ChannelCredentials | None:
    """None for plaintext; TLS with the system's roots for `True`."""
    if tls is True:
        return TLS().credentials()
    if isinstance(tls, TLS):
        return tls.credentials()
    return None


Channel = grpc.Channel
"""What a blocking client calls through: `open_channel`'s, or any other (instrumented, shared)."""

AioChannel = grpc.aio.Channel
"""What an asyncio client calls through: `open_aio_channel`'s, or any other."""


def open_channel(target: str, tls: bool | TLS) -> grpc.Channel:
    """A blocking channel to `target` with the clients' retry policy."""
    credentials = channel_credentials(tls)
    if credentials:
        return grpc.secure_channel(target, credentials, CHANNEL_OPTIONS)
    return grpc.insecure_channel(target, CHANNEL_OPTIONS)


def open_aio_channel(target: str, tls: bool | TLS) -> grpc.aio.Channel:
    """An asyncio channel to `target` with the clients' retry policy."""
    credentials = channel_credentials(tls)
    if credentials:
        return grpc.aio.secure_channel(target, credentials, CHANNEL_OPTIONS)
    return grpc.aio.insecure_channel(target, CHANNEL_OPTIONS)


def reconnect_delay(error: grpc.RpcError, failures: int) -> float | None:
    """How long to wait before reopening a stream after its `failures`-th failure in a row without
    news, or None when the error is final (anything but UNAVAILABLE, or too many failures)."""
    if error.code() != grpc.StatusCode.UNAVAILABLE or failures > WATCH_RECONNECTS:
        return None
    return min(5.0, 0.2 * 2.0**failures)


def serialize(message: Message) -> bytes:
    """A request's wire bytes (what every call's `request_serializer` is)."""
    return message.SerializeToString()


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def timestamp(moment: datetime) -> Timestamp:
    """A Timestamp for a timezone-aware datetime; raises ValueError for a naive one."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no timezone; give an aware datetime (e.g. in UTC)")
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def release_plan_request(
    submission_id: str,
    planned_release: datetime,
    access_window: tuple[datetime, datetime] | None,
    reason: str,
) -> intake_pb2.UpdateReleasePlanRequest:
    request = intake_pb2.UpdateReleasePlanRequest(
        submission_id=submission_id, planned_release=timestamp(planned_release), reason=reason
    )
    if access_window is not None:
        start, end = access_window
        request.access_window.CopyFrom(
            submission_pb2.AccessWindow(start=timestamp(start), end=timestamp(end))
        )
    return request


def create_token_request(
    *,
    principal_id: str,
    role: identity_pb2.Role.ValueType,
    organisation: str,
    sectors: Iterable[str],
    expires_at: datetime | None,
    description: str,
) -> identity_pb2.CreateTokenRequest:
    request = identity_pb2.CreateTokenRequest(
        principal=identity_pb2.Principal(
            principal_id=principal_id, role=role, organisation=organisation, sectors=list(sectors)
        ),
        description=description,
    )
    if expires_at is not None:
        request.expires_at.CopyFrom(timestamp(expires_at))
    return request
