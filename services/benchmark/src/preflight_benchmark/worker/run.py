"""One worker run: resolve model access, run the suite with Inspect AI, report the outcome.

The endpoint credential is resolved from its reference at run time and handed
to Inspect's ``openai-api`` provider as a constructor argument of the model
object, so it is never in argv, the environment, Inspect's ``model_args`` (the
eval log records only those, redacted, and the base URL) or any log line;
any message the worker reports is scrubbed of it as well.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from preflight.benchmark.v1 import benchmark_pb2, events_pb2
from preflight_common.fields import timestamp

from preflight_benchmark import __version__
from preflight_benchmark.adapters.events import reason_to_proto
from preflight_benchmark.domain.jobs import CONFIG_ERROR_EXIT, FailureReason
from preflight_benchmark.domain.ports import CredentialError, CredentialResolver
from preflight_benchmark.worker import outcome

log = logging.getLogger(__name__)

# Inspect settings that would widen what it records (tracebacks with local
# variables, raw model API calls) or pick a model from the environment.
UNSAFE_INSPECT_ENV = (
    "INSPECT_TRACEBACK_LOCALS",
    "INSPECT_EVAL_LOG_MODEL_API",
    "INSPECT_EVAL_MODEL",
    "INSPECT_EVAL_MODEL_ARGS",
    "INSPECT_EVAL_MODEL_BASE_URL",
)
PROVIDER_SERVICE = "preflight"
Report = Callable[
    [benchmark_pb2.ReportJobResultRequest], Coroutine[Any, Any, benchmark_pb2.ReportJobResultResponse]
]


@dataclass(frozen=True)
class WorkerSettings:
    """`model_server_url`: the GPU model server beside the worker (weights access; Kubernetes only)."""

    model_server_url: str | None = None
    served_model: str = "weights"
    max_retries: int = 3
    request_timeout: int = 120


class WorkerFailure(Exception):
    def __init__(self, reason: FailureReason, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.reason, self.message, self.retryable = reason, message, retryable


@dataclass(frozen=True)
class ModelAccess:
    spec: str
    base_url: str
    api_key: str


def harden_environment() -> None:
    """Remove settings that could make Inspect record more than the eval log of record needs."""
    for name in UNSAFE_INSPECT_ENV:
        os.environ.pop(name, None)
    os.environ["INSPECT_DISPLAY"] = "none"


async def model_access(
    job: events_pb2.BenchmarkJobRequested, resolver: CredentialResolver, settings: WorkerSettings
) -> ModelAccess:
    """How to reach the model under test; raises WorkerFailure."""
    kind = job.access.WhichOneof("kind")
    if kind == "endpoint":
        endpoint = job.access.endpoint
        if not endpoint.base_url or not endpoint.model_name:
            raise WorkerFailure(
                FailureReason.CONFIG_ERROR, "endpoint base_url and model_name required", retryable=False
            )
        try:
            credential = await resolver.resolve(endpoint.credential_ref, job.job_id)
        except CredentialError as exc:
            reason = FailureReason.MODEL_UNREACHABLE if exc.retryable else FailureReason.CONFIG_ERROR
            raise WorkerFailure(reason, f"credential: {exc}", retryable=exc.retryable) from None
        return ModelAccess(
            f"openai-api/{PROVIDER_SERVICE}/{endpoint.model_name}", endpoint.base_url, credential
        )
    if kind == "weights":
        if not settings.model_server_url:
            raise WorkerFailure(
                FailureReason.CONFIG_ERROR,
                "weights access needs a GPU model server beside the worker (the Kubernetes executor's vLLM "
                "sidecar); this executor has no GPU",
                retryable=False,
            )
        return ModelAccess(f"openai-api/vllm/{settings.served_model}", settings.model_server_url, "local")
    raise WorkerFailure(FailureReason.CONFIG_ERROR, "access: endpoint or weights required", retryable=False)


def check_log_dir(log_dir: str) -> None:
    """The eval-log folder must be one the worker can write before the suite runs, else a
    configuration error is reported as such, not a crash to retry: a local folder must be
    writable (not a container's read-only root file system); a URL (s3://, gs://), written by
    Inspect through fsspec, needs its file system installed (s3fs comes with Inspect, gcsfs not)."""
    protocol, sep, _ = log_dir.partition("://")
    if sep:
        import fsspec

        try:
            fsspec.get_filesystem_class(protocol)
        except (ImportError, ValueError) as exc:
            raise WorkerFailure(
                FailureReason.CONFIG_ERROR, f"eval log store {protocol}://: {exc}", retryable=False
            ) from None
        return
    try:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        writable = os.access(log_dir, os.W_OK)
    except OSError as exc:
        raise WorkerFailure(
            FailureReason.CONFIG_ERROR, f"eval log folder {log_dir}: {exc.strerror}", retryable=False
        ) from None
    if not writable:
        raise WorkerFailure(
            FailureReason.CONFIG_ERROR, f"eval log folder {log_dir}: not writable", retryable=False
        )


def fetch_suite_data(job: events_pb2.BenchmarkJobRequested, folder: Path) -> dict[str, str]:
    """The task arguments naming local copies of the suite's data files (catalog `data`), taken
    from the catalog's data mirror into `folder` with their digests checked."""
    from preflight_benchmark.adapters.catalog_file import load_catalog
    from preflight_benchmark.domain.catalog import CatalogError
    from preflight_benchmark.suites.published import DataFetchError, fetch_data

    try:
        catalog = load_catalog()
    except CatalogError as exc:
        raise WorkerFailure(FailureReason.CONFIG_ERROR, str(exc)[:2000], retryable=False) from None
    suite = catalog.suite(job.suite_id, job.suite_version)
    if suite is None:
        return {}
    try:
        return {s.arg: str(fetch_data(s, catalog.data_mirror, folder)) for s in suite.data}
    except DataFetchError as exc:
        raise WorkerFailure(FailureReason.CONFIG_ERROR, str(exc)[:2000], retryable=False) from None


def run_inspect(
    job: events_pb2.BenchmarkJobRequested, access: ModelAccess, log_dir: str, settings: WorkerSettings
) -> list[object]:
    """Run the suite's task through Inspect's Python API (with its data files fetched); returns
    the eval logs, samples included.

    `log_dir` is the job's own folder, shared by its attempts, and the task runs as an Inspect
    eval set there: an attempt after one that died mid-suite resumes that attempt's log, reusing
    the samples it had scored and written, rather than asking the model again. The model is the
    one this attempt built with the credential it resolved (never rebuilt from the log), so the
    credential is still only a constructor argument. One pass only: retries are the dispatcher's.
    """
    from google.protobuf.json_format import MessageToDict
    from inspect_ai import eval_set
    from inspect_ai.log import read_eval_log
    from inspect_ai.model import get_model

    # The attempt's cache folder (XDG_CACHE_HOME, set by both executors) holds the data copies.
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    data_args = fetch_suite_data(job, cache / "preflight-data")

    model = get_model(access.spec, base_url=access.base_url, api_key=access.api_key, memoize=False)
    _, logs = eval_set(
        job.task_ref,
        log_dir=log_dir,
        retry_attempts=1,
        model=model,
        task_args={**MessageToDict(job.task_args), **data_args},
        limit=job.sample_limit or None,
        display="none",
        log_model_api=False,
        max_retries=settings.max_retries,
        timeout=settings.request_timeout,
        metadata={"preflight_job_id": job.job_id, "preflight_submission_id": job.submission_id},
    )
    # An eval set answers with its logs' headers; the report needs the samples' scores too.
    return [read_eval_log(log.location) for log in logs]


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def classify_error(message: str) -> tuple[FailureReason, bool]:
    lowered = message.lower()
    if "401" in lowered or "authentication" in lowered or "permission" in lowered:
        return FailureReason.MODEL_UNREACHABLE, False
    if "connect" in lowered or "timeout" in lowered or "timed out" in lowered:
        return FailureReason.MODEL_UNREACHABLE, True
    return FailureReason.EVAL_ERROR, False


def evaluate(
    assignment: benchmark_pb2.WorkerAssignment, access: ModelAccess, settings: WorkerSettings
) -> benchmark_pb2.ReportJobResultRequest:
    """Run Inspect and build the report (Completed, or Failed when a log did not succeed)."""
    from inspect_ai import __version__ as inspect_version
    from inspect_ai.log import EvalLog

    job = assignment.job
    request = benchmark_pb2.ReportJobResultRequest(job_id=job.job_id, attempt=assignment.attempt)
    started = datetime.now(UTC)
    logs = [log for log in run_inspect(job, access, assignment.log_dir, settings) if isinstance(log, EvalLog)]
    finished = datetime.now(UTC)
    bad = [log for log in logs if log.status != "success"]
    if not logs or bad:
        detail = "no eval log" if not logs else f"{bad[0].eval.task}: {bad[0].status}"
        if bad and bad[0].error is not None:
            detail += f": {bad[0].error.message}"
        reason, retryable = classify_error(detail)
        request.failed.CopyFrom(
            events_pb2.BenchmarkFailed(
                reason=reason_to_proto(reason),
                message=_scrub(detail, access.api_key)[:2000],
                retryable=retryable,
                failed_at=timestamp(finished),
                eval_log_uri=",".join(log.location for log in logs),
            )
        )
        return request
    request.completed.CopyFrom(
        outcome.completed(
            logs,
            started=started,
            finished=finished,
            inspect_version=inspect_version,
            benchmark_version=__version__,
        )
    )
    return request


def failure_request(
    assignment: benchmark_pb2.WorkerAssignment, failure: WorkerFailure
) -> benchmark_pb2.ReportJobResultRequest:
    request = benchmark_pb2.ReportJobResultRequest(job_id=assignment.job.job_id, attempt=assignment.attempt)
    request.failed.CopyFrom(
        events_pb2.BenchmarkFailed(
            reason=reason_to_proto(failure.reason),
            message=failure.message,
            retryable=failure.retryable,
            failed_at=timestamp(datetime.now(UTC)),
        )
    )
    return request


def execute(
    assignment: benchmark_pb2.WorkerAssignment,
    resolver: CredentialResolver,
    report: Report,
    settings: WorkerSettings,
) -> int:
    """Run the attempt and report its outcome; returns the process exit status.

    0: an outcome was reported; CONFIG_ERROR_EXIT: a configuration error was
    reported (never retried). Raises when the outcome could not be reported
    (the attempt then ends without a result and the dispatcher retries it).
    """
    harden_environment()
    job = assignment.job
    try:
        check_log_dir(assignment.log_dir)
        access = asyncio.run(model_access(job, resolver, settings))
        request = evaluate(assignment, access, settings)
    except WorkerFailure as failure:
        request = failure_request(assignment, failure)
    response = asyncio.run(report(request))
    kind = request.WhichOneof("outcome")
    log.info(
        "job %s attempt %d reported %s (accepted=%s)", job.job_id, assignment.attempt, kind, response.accepted
    )
    config_error = kind == "failed" and request.failed.reason == reason_to_proto(FailureReason.CONFIG_ERROR)
    return CONFIG_ERROR_EXIT if config_error else 0
