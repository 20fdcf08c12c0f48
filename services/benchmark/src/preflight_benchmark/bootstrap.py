"""Wires the real adapters into the planner, dispatcher and servicer."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from preflight_common.clock import Clock, utc_now
from preflight_common.db import make_engine, run_migrations
from sqlalchemy import Engine

from preflight_benchmark.adapters import events
from preflight_benchmark.adapters.catalog_file import load_catalog
from preflight_benchmark.adapters.executors.local import LocalExecutor
from preflight_benchmark.adapters.grpc_clients import GrpcJobTokens, GrpcSubmissionStatuses
from preflight_benchmark.adapters.store import JobStore
from preflight_benchmark.adapters.tracing import job_span
from preflight_benchmark.config import BenchmarkSettings, KubernetesSettings, accelerator_classes
from preflight_benchmark.domain.catalog import Catalog
from preflight_benchmark.domain.ports import Executor
from preflight_benchmark.service_layer.dispatcher import Dispatcher, DispatcherSettings
from preflight_benchmark.service_layer.planner import Planner

if TYPE_CHECKING:
    from preflight_benchmark.adapters.executors.k8s_lease import LeaseElection

MIGRATIONS = Path(__file__).parent / "migrations"
# What a local worker inherits from the service's environment (nothing else: in
# particular not the database URL or Kafka credentials).
WORKER_ENV_PASSTHROUGH = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "PREFLIGHT_BENCHMARK_CATALOG_FILE",
    # Where the worker's spans go (no credentials: OTLP headers are not passed on).
    "PREFLIGHT_OTEL_FILE",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    # The CA that verifies intake's and this service's TLS certificates.
    "PREFLIGHT_GRPC_TLS_CA",
)


def migrate(database_url: str) -> None:
    """Bring the database to the newest schema."""
    run_migrations(database_url, MIGRATIONS)


@dataclass(frozen=True)
class Components:
    settings: BenchmarkSettings
    engine: Engine
    store: JobStore
    catalog: Catalog
    planner: Planner
    executor: Executor
    statuses: GrpcSubmissionStatuses
    dispatcher: Dispatcher
    # The Kubernetes executor's dispatcher-leader election (to run beside the dispatcher); None locally.
    election: LeaseElection | None


def local_worker_env(settings: BenchmarkSettings, benchmark_target: str) -> dict[str, str]:
    """The local workers' environment: the passed-through variables and where intake and this
    service are. No token: each attempt gets its own job's (`LocalExecutor`), never the service's."""
    env = {name: os.environ[name] for name in WORKER_ENV_PASSTHROUGH if name in os.environ}
    env.update(
        {"PREFLIGHT_INTAKE_TARGET": settings.intake_target, "PREFLIGHT_BENCHMARK_TARGET": benchmark_target}
    )
    return env


def make_executor(
    settings: BenchmarkSettings, benchmark_target: str
) -> tuple[Executor, LeaseElection | None]:
    """The configured executor and, for Kubernetes, the election of the one dispatcher that uses it."""
    job_tokens = GrpcJobTokens(
        settings.identity_target, settings.service_token, credentials=settings.client_tls
    )
    if settings.executor == "kubernetes":
        # Imported here: the Kubernetes client takes seconds to import, and only this executor needs it.
        from preflight_benchmark.adapters.executors.k8s_lease import LeaseElection
        from preflight_benchmark.adapters.executors.kubernetes import KubernetesExecutor, api_client_from

        k8s = KubernetesSettings.from_env(benchmark_target, settings.log_root)
        api = api_client_from(k8s.kubeconfig)
        election = LeaseElection(
            api, k8s.manifest.namespace, k8s.lease_name, k8s.lease_identity, lease_seconds=k8s.lease_seconds
        )
        return KubernetesExecutor(api, k8s.manifest, job_tokens=job_tokens), election
    return LocalExecutor(
        work_root=Path(settings.work_dir).resolve(),
        worker_command=(sys.executable, "-m", "preflight_benchmark.entrypoints.worker_cli", "serve"),
        worker_env=local_worker_env(settings, benchmark_target),
        max_concurrency=settings.max_concurrency,
        memory_limit=settings.worker_memory,
        cpus=settings.local_cpus,
        memory=settings.local_memory,
        max_jobs_per_worker=settings.worker_max_jobs,
        job_tokens=job_tokens,
    ), None


def build(
    settings: BenchmarkSettings,
    benchmark_target: str,
    *,
    executor: Executor | None = None,
    clock: Clock = utc_now,
) -> Components:
    """Migrate the database and build every part (nothing is started)."""
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    store = JobStore(
        engine, jobs_topic=settings.topics.benchmark_jobs, results_topic=settings.topics.benchmark_results
    )
    # Accelerator classes map to nodes on Kubernetes only; the local executor has no GPUs and ignores them.
    catalog = load_catalog(accelerators=accelerator_classes() if settings.executor == "kubernetes" else None)
    executor, election = (executor, None) if executor else make_executor(settings, benchmark_target)
    log_root = settings.log_root if "://" in settings.log_root else str(Path(settings.log_root).resolve())
    statuses = GrpcSubmissionStatuses(
        settings.intake_target, settings.service_token, credentials=settings.client_tls
    )
    dispatcher = Dispatcher(
        store,
        events,
        job_span,
        executor,
        statuses,
        DispatcherSettings(
            log_root=log_root,
            max_concurrency=settings.max_concurrency,
            lab_cap=settings.lab_cap,
            poll_interval=settings.poll_interval,
        ),
        clock,
        leadership=election,
    )
    return Components(
        settings=settings,
        engine=engine,
        store=store,
        catalog=catalog,
        planner=Planner(
            store,
            catalog,
            events,
            job_span,
            executor=executor.name,
            max_attempts=settings.max_attempts,
            clock=clock,
            on_change=dispatcher.wake,  # what the planner stores starts without waiting for a poll
        ),
        executor=executor,
        statuses=statuses,
        dispatcher=dispatcher,
        election=election,
    )
