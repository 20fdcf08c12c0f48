"""What the blocking and the asyncio clients share: channel settings and request building."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from preflight.identity.v1 import identity_pb2
from preflight.intake.v1 import intake_pb2, submission_pb2

DEFAULT_TIMEOUT = 10.0
"""Deadline (seconds) of every unary call unless the call gives its own."""

WATCH_RECONNECTS = 5
"""How many times in a row `watch` reconnects after UNAVAILABLE without receiving anything."""

_RETRIED_SERVICES = ("preflight.intake.v1.IntakeService", "preflight.identity.v1.IdentityService")

# Calls that fail with UNAVAILABLE (the service was not reached or is restarting) are retried by
# gRPC itself with exponential backoff. Every intake call is safe to retry: SubmitModel carries an
# idempotency key, the other changes are refused (not repeated) once applied.
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": name} for name in _RETRIED_SERVICES],
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


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def timestamp(moment: datetime) -> Timestamp:
    """A Timestamp for a timezone-aware datetime; raises ValueError for a naive one."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no timezone; give an aware datetime (e.g. in UTC)")
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def submit_request(request: intake_pb2.SubmitModelRequest) -> intake_pb2.SubmitModelRequest:
    """The request with an idempotency key: the caller's, or a fresh random one."""
    if request.idempotency_key:
        return request
    keyed = intake_pb2.SubmitModelRequest()
    keyed.CopyFrom(request)
    keyed.idempotency_key = f"sdk-{uuid.uuid4()}"
    return keyed


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


def list_request(
    statuses: Iterable[intake_pb2.SubmissionStatus.ValueType], page_size: int, page_token: str
) -> intake_pb2.ListSubmissionsRequest:
    return intake_pb2.ListSubmissionsRequest(
        statuses=list(statuses), page_size=page_size, page_token=page_token
    )


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
