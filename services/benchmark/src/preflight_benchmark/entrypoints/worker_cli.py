"""`preflight-worker`: run ONE attempt of one benchmark job, serve attempts as a warm worker of the
local executor, or fetch model weights (a Kubernetes init step).

The assignment (a WorkerAssignment as JSON, references only) comes from the
file named by PREFLIGHT_WORKER_ASSIGNMENT_FILE, or from PREFLIGHT_WORKER_ASSIGNMENT.
A run is traced as `preflight-worker`, in the trace of the assignment's `traceparent`.
`serve` imports Inspect AI and the suites once, then runs each attempt the local
executor hands it in a fresh child forked from itself (`preflight_benchmark.worker.serve`),
exactly as `run` would, its spans flushed before the child exits.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from pathlib import Path

from preflight.benchmark.v1 import benchmark_pb2
from preflight_common.channels import credentials_from_env
from preflight_common.config import ConfigError, secret
from preflight_common.telemetry import setup_telemetry

from preflight_benchmark.adapters.events import parse_assignment
from preflight_benchmark.adapters.executors.k8s_manifest import ASSIGNMENT_ENV
from preflight_benchmark.adapters.executors.local import ASSIGNMENT_FILE_ENV
from preflight_benchmark.adapters.grpc_clients import GrpcCredentialResolver, GrpcResultReporter
from preflight_benchmark.adapters.tracing import job_span
from preflight_benchmark.domain.jobs import CONFIG_ERROR_EXIT
from preflight_benchmark.worker import serve, weights
from preflight_benchmark.worker.run import WorkerSettings, execute

log = logging.getLogger("preflight_benchmark.worker")

# What Inspect imports only once an eval runs (its OpenAI-compatible provider and the chat client
# it builds, scoring, hooks, the agent protocol's server and its web stack, the eval-log reader's
# file systems, numpy, rich's markdown) and the suites' data fetching: imported by a warm worker, so
# that each attempt's child starts with them instead of spending about a second of CPU importing
# them again. Some are Inspect's private modules: one that a later Inspect renames only makes
# attempts slower to start.
EVAL_MODULES = (
    "inspect_ai.model._providers.openai_compatible",
    "inspect_ai.model._providers.none",
    "inspect_ai.agent._acp",
    "inspect_ai.agent._acp.server",
    "inspect_ai.agent._acp.transport_live",
    "inspect_ai.agent._acp._client_registry",
    "inspect_ai.hooks",
    "inspect_ai.hooks._startup",
    "inspect_ai._control.scoring",
    "inspect_ai._control.strict",
    "inspect_ai._control.current_server",
    "inspect_ai._control.config_record",
    "inspect_ai._control.disconnect",
    "inspect_ai.solver._transcript",
    "openai.resources.chat.chat",
    "openai.resources.chat.completions.completions",
    "openai.resources.chat.completions.messages",
    "openai.lib._chat_completion_resources",
    "openai.pagination",
    "httpcore2",
    "anyio._backends._asyncio",
    "anyio.streams.tls",
    "anyio.streams.stapled",
    "truststore",
    "uvicorn.main",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.protocols.websockets.wsproto_impl",
    "fastapi.telemetry._runtime",
    "uvicorn.supervisors.multiprocess",
    "uvicorn.supervisors.statreload",
    "pydantic.v1",
    "multiprocessing.connection",
    "logging.config",
    "logging.handlers",
    "fsspec.implementations.chained",
    "rich._emoji_codes",
    "numpy",
    "rich.markdown",
    "preflight_benchmark.adapters.catalog_file",
    "preflight_benchmark.catalog",
    "preflight_benchmark.suites.published",
)


class ConfigurationError(Exception):
    """The worker cannot run as configured (exit status CONFIG_ERROR_EXIT)."""


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigurationError(f"{name} is not set")
    return value


def load_assignment() -> benchmark_pb2.WorkerAssignment:
    path = os.environ.get(ASSIGNMENT_FILE_ENV)
    text = Path(path).read_text(encoding="utf-8") if path else os.environ.get(ASSIGNMENT_ENV, "")
    if not text:
        raise ConfigurationError(f"neither {ASSIGNMENT_FILE_ENV} nor {ASSIGNMENT_ENV} is set")
    try:
        return parse_assignment(text)
    except Exception as exc:
        raise ConfigurationError(f"the assignment does not parse: {exc}") from None


def run() -> int:
    assignment = load_assignment()
    token = secret("PREFLIGHT_SERVICE_TOKEN")
    credentials = credentials_from_env()
    resolver = GrpcCredentialResolver(_required("PREFLIGHT_INTAKE_TARGET"), token, credentials=credentials)
    reporter = GrpcResultReporter(_required("PREFLIGHT_BENCHMARK_TARGET"), token, credentials=credentials)
    settings = WorkerSettings(
        model_server_url=os.environ.get("PREFLIGHT_WORKER_MODEL_SERVER_URL") or None,
        served_model=os.environ.get("PREFLIGHT_WORKER_SERVED_MODEL", "weights"),
    )
    job = assignment.job
    log.info("job %s attempt %d: suite %s", job.job_id, assignment.attempt, job.suite_id)
    setup_telemetry("preflight-worker")  # its spans are flushed when the process exits
    with job_span(
        "worker run",
        submission_id=job.submission_id,
        job_id=job.job_id,
        suite_id=job.suite_id,
        attempt=assignment.attempt,
        traceparent=assignment.traceparent or None,
    ):
        return execute(assignment, resolver, reporter.report, settings)


def attempt_status() -> int:
    """Run the attempt of the current environment as `run`; a configuration error is its status."""
    try:
        return run()
    except (ConfigurationError, ConfigError) as exc:
        log.error("configuration error: %s", exc)
        return CONFIG_ERROR_EXIT
    finally:
        setup_telemetry("preflight-worker").force_flush()


def preload() -> None:
    """What every attempt needs, imported once: Inspect AI, its OpenAI provider, what an eval imports
    (`EVAL_MODULES`) and the suites. Nothing here starts a thread, resolves a credential or reads an
    assignment: a warm worker forks every attempt from this state."""
    import inspect_ai
    import inspect_ai.log
    import inspect_ai.model  # noqa: F401
    import openai  # noqa: F401
    from inspect_ai._util.entrypoints import ensure_entry_points

    ensure_entry_points()  # registers the suites' tasks (this package's inspect_ai entry point)
    for module in EVAL_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    # Inspect's model database (read on an eval's first generate, a fifth of a second): read once
    # here. A later Inspect without this private function only makes attempts slower to start.
    with contextlib.suppress(ImportError, AttributeError):
        from inspect_ai.model._model_info import _get_lookup_index

        _get_lookup_index()


def fetch_weights(dest: Path) -> int:
    """Fetch the assignment's weights into `dest`, every digest checked before anything is served
    (`preflight_benchmark.worker.weights`); a mismatch is a configuration error."""
    artifact = load_assignment().job.access.weights
    try:
        files = weights.fetch(artifact.artifact_uri, artifact.sha256, dest)
    except weights.WeightsError as exc:
        raise ConfigurationError(str(exc)) from None
    log.info("weights verified: %d file(s) in %s", len(files), dest)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="preflight-worker",
        description="Run one attempt of a Preflight benchmark job with Inspect AI and report its outcome "
        f"(assignment from ${ASSIGNMENT_FILE_ENV} or ${ASSIGNMENT_ENV}).",
    )
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the assignment (the default)")
    commands.add_parser("serve", help="run each assignment the local executor hands over in a fresh child")
    fetch = commands.add_parser("fetch-weights", help="fetch and verify the assignment's weights")
    fetch.add_argument("--dest", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "serve":
            return serve.serve(attempt_status, preload)
        return fetch_weights(args.dest) if args.command == "fetch-weights" else run()
    except (ConfigurationError, ConfigError) as exc:  # ours, or a setting preflight_common refused
        log.error("configuration error: %s", exc)
        return CONFIG_ERROR_EXIT


if __name__ == "__main__":
    sys.exit(main())
