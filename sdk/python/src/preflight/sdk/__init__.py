"""Preflight's Python SDK: clients for labs, reviewers and operators.

`Client` (blocking) and `AsyncClient` (asyncio) have one typed method per RPC,
default deadlines, retries on UNAVAILABLE, automatic idempotency keys, and
raise the typed errors of `preflight.sdk.errors`. `load_manifest` reads the
YAML manifest the `preflight submit` command takes. `subscribe_alerts` (and its
asyncio twin in `preflight.sdk.aio`) follows an operator organisation's finding
alerts on the event bus.
"""

from preflight.intake.v1.intake_pb2 import (
    EndpointAccessSpec,
    ModelAccessSpec,
    Submission,
    SubmissionStatus,
    SubmitModelRequest,
    SubmitModelResponse,
    WatchSubmissionResponse,
)
from preflight.sdk._common import DEFAULT_TIMEOUT, TLS
from preflight.sdk.aio import AsyncClient
from preflight.sdk.alerts import AlertSubscription, ReceivedAlert, subscribe_alerts
from preflight.sdk.client import Client
from preflight.sdk.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreflightError,
    Unauthenticated,
    Unavailable,
)
from preflight.sdk.manifest import ManifestError, load_manifest

__all__ = [
    "DEFAULT_TIMEOUT",
    "TLS",
    "AlertSubscription",
    "AlreadyExists",
    "AsyncClient",
    "Client",
    "DeadlineExceeded",
    "EndpointAccessSpec",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "ManifestError",
    "ModelAccessSpec",
    "NotFound",
    "PermissionDenied",
    "PreflightError",
    "ReceivedAlert",
    "Submission",
    "SubmissionStatus",
    "SubmitModelRequest",
    "SubmitModelResponse",
    "Unauthenticated",
    "Unavailable",
    "WatchSubmissionResponse",
    "load_manifest",
    "subscribe_alerts",
]
