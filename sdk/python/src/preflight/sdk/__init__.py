"""Preflight's Python SDK: clients for labs, reviewers and operators.

`Client` (blocking) and `AsyncClient` (asyncio) have one typed method per RPC,
default deadlines, retries on UNAVAILABLE, automatic idempotency keys, and
raise the typed errors of `preflight.sdk.errors`. `load_manifest` reads the
YAML manifest the `preflight submit` command takes.
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
    "Submission",
    "SubmissionStatus",
    "SubmitModelRequest",
    "SubmitModelResponse",
    "Unauthenticated",
    "Unavailable",
    "WatchSubmissionResponse",
    "load_manifest",
]
