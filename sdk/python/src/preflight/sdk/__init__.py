"""Preflight's Python SDK: clients for labs, reviewers and operators.

`IntakeClient`, `ClearinghouseClient`, `NotifierClient` and `BenchmarkClient`
(blocking; `preflight.sdk.aio` has their asyncio twins) have one typed method
per RPC, default deadlines, retries on UNAVAILABLE, automatic idempotency keys,
iterators over pages and resumable streams, and raise the typed errors of
`preflight.sdk.errors`. `Client` and `AsyncClient` are intake clients that own
their channel. `Preflight` (and `AsyncPreflight`) holds the connection to a whole
deployment, from a profile (`preflight.sdk.config`). `verify_report` checks a
review report's signature. `load_manifest` reads the
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
from preflight.sdk._calls import Assessment, Transition
from preflight.sdk._common import DEFAULT_TIMEOUT, TLS
from preflight.sdk.aio import AsyncClient
from preflight.sdk.alerts import AlertSubscription, ReceivedAlert, subscribe_alerts
from preflight.sdk.client import (
    BenchmarkClient,
    ClearinghouseClient,
    Client,
    IntakeClient,
    NotifierClient,
    ServiceClient,
)
from preflight.sdk.config import ConfigError, Profile, load_profile
from preflight.sdk.deployment import AsyncPreflight, Preflight
from preflight.sdk.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreflightError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from preflight.sdk.manifest import ManifestError, load_manifest
from preflight.sdk.reports import ReportVerificationError, verify_report

__all__ = [
    "DEFAULT_TIMEOUT",
    "TLS",
    "Aborted",
    "AlertSubscription",
    "AlreadyExists",
    "Assessment",
    "AsyncClient",
    "AsyncPreflight",
    "BenchmarkClient",
    "ClearinghouseClient",
    "Client",
    "ConfigError",
    "DeadlineExceeded",
    "EndpointAccessSpec",
    "FailedPrecondition",
    "FieldViolation",
    "IntakeClient",
    "InvalidArgument",
    "ManifestError",
    "ModelAccessSpec",
    "NotFound",
    "NotifierClient",
    "PermissionDenied",
    "Preflight",
    "PreflightError",
    "Profile",
    "ReceivedAlert",
    "ReportVerificationError",
    "ResourceExhausted",
    "ServiceClient",
    "Submission",
    "SubmissionStatus",
    "SubmitModelRequest",
    "SubmitModelResponse",
    "Transition",
    "Unauthenticated",
    "Unavailable",
    "WatchSubmissionResponse",
    "load_manifest",
    "load_profile",
    "subscribe_alerts",
    "verify_report",
]
